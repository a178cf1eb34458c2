"""``BenchProgress``: a benchmark's progress and running percentiles, live in the notebook."""

from __future__ import annotations

from typing import Any

import traitlets

from ._base import LiveWidget, static

__all__ = ["BenchProgress"]


class BenchProgress(LiveWidget):
    """Requests done of total, running TTFT p50/p99, errors; fed by the harness."""

    _esm = static("bench_progress.js")
    _css = static("widgets.css")

    title = traitlets.Unicode("benchmark").tag(sync=True)
    done = traitlets.Int(0).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    errors = traitlets.Int(0).tag(sync=True)
    ttft_p50_ms = traitlets.Float(-1.0).tag(sync=True)
    ttft_p99_ms = traitlets.Float(-1.0).tag(sync=True)
    status = traitlets.Unicode("running").tag(sync=True)

    def report(self, snapshot: dict[str, Any]) -> None:
        """A harness progress callback."""
        self.update(
            done=snapshot["done"],
            total=snapshot["total"],
            errors=snapshot["errors"],
            ttft_p50_ms=snapshot["ttft_p50_ms"] if snapshot["ttft_p50_ms"] is not None else -1.0,
            ttft_p99_ms=snapshot["ttft_p99_ms"] if snapshot["ttft_p99_ms"] is not None else -1.0,
        )
