"""``MetricsDashboard``: live latency percentiles and curves for a session's requests."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Any

import traitlets

from ._base import LiveWidget, static

__all__ = ["MetricsDashboard"]

_KEEP = 2000  # recent values per series


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


class MetricsDashboard(LiveWidget):
    """TTFT and inter-token latency percentiles, tokens/s and latency over time (SVG),
    reconnects and errors. Feed it completions (:meth:`record`) and failures (:meth:`fail`).
    """

    _esm = static("metrics_dashboard.js")
    _css = static("widgets.css")

    summary = traitlets.Dict().tag(sync=True)
    series: traitlets.List[Any] = traitlets.List().tag(
        sync=True
    )  # [seconds since start, ttft_ms, tokens/s]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._ttft: deque[float] = deque(maxlen=_KEEP)
        self._itl: deque[float] = deque(maxlen=_KEEP * 10)
        self._points: deque[list[float]] = deque(maxlen=300)
        self._requests = 0
        self._errors = 0
        self._reconnects = 0

    def record(self, completion: Any) -> None:
        """Add a finished completion's timings."""
        timings = completion.timings
        with self._lock:
            self._requests += 1
            ttft = timings.ttft
            if ttft is not None:
                self._ttft.append(ttft * 1000)
            arrivals = list(timings.event_arrivals_ns)
            self._itl.extend((b - a) / 1e6 for a, b in itertools.pairwise(arrivals))
            e2e = timings.e2e
            rate = 0.0
            if e2e and ttft is not None and e2e > ttft and completion.chunks > 1:
                rate = (completion.chunks - 1) / (e2e - ttft)
            self._points.append(
                [
                    round(time.monotonic() - self._start, 2),
                    round((ttft or 0) * 1000, 1),
                    round(rate, 1),
                ]
            )
        self._publish()

    def fail(self) -> None:
        """Count a failed request."""
        with self._lock:
            self._requests += 1
            self._errors += 1
        self._publish()

    def reconnected(self, count: int) -> None:
        """Report the hub's reconnect count."""
        with self._lock:
            self._reconnects = count
        self._publish()

    def _publish(self) -> None:
        with self._lock:
            summary = {
                "requests": self._requests,
                "errors": self._errors,
                "reconnects": self._reconnects,
                "ttft_ms": _percentiles(list(self._ttft)),
                "itl_ms": _percentiles(list(self._itl)),
            }
            series = list(self._points)
        self.update(summary=summary, series=series)
