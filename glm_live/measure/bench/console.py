"""The benchmark's console output: an estimate before a run, and its progress as it goes.

``glm-live bench`` prints how long a run should take before it starts (:func:`estimate_s`,
from one measured request: the client cannot see a runtime's simulator settings, and a real
endpoint has none), then reports progress with a :class:`ProgressPrinter`:

- on a terminal, one line redrawn in place with ``\\r`` (a bar, done/total, errors, TTFT,
  time left);
- anywhere else (a file, a pipe, a CI log), a plain line every few seconds, e.g.
  ``concurrency 8: 42/200 done, 3 errors, TTFT p50 123 ms p99 456 ms, 12 s elapsed, eta 45 s``,
  so that a log holds a few dozen lines instead of thousands of carriage returns.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["ProgressPrinter", "estimate_s", "format_duration"]

#: Seconds between two progress lines when the output is not a terminal
#: (``GLM_LIVE_BENCH_PROGRESS_S``, read once at import; tests shorten it).
PLAIN_EVERY_S = float(os.environ.get("GLM_LIVE_BENCH_PROGRESS_S") or 3.0)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``1.2 h``: rounded for a person, not for a log parser."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_s(
    per_request_s: float,
    *,
    requests: int,
    warmup: int = 0,
    concurrency: int | None = None,
    rate: float | None = None,
) -> float:
    """How long a run should take if each request takes ``per_request_s``.

    Closed loop: ``ceil((warmup + requests) / concurrency)`` rounds of one request each.
    Open loop: the arrivals' span, ``(warmup + requests) / rate``, plus the last request.
    Both assume the endpoint keeps its one-request pace under load; most slow down (the
    simulator beyond its ``capacity``), so a high concurrency takes longer than this.
    """
    total = warmup + requests
    if rate is not None:
        return total / rate + per_request_s
    return math.ceil(total / max(1, concurrency or 1)) * per_request_s


class ProgressPrinter:
    """A ``progress`` callback for :func:`~glm_live.measure.bench.run` that writes to a stream.

    Args:
        stream: Where to write (the CLI gives ``sys.stderr``).
        label: What the run is, e.g. ``"concurrency 8"``; starts each plain line.
        terminal: Redraw one line with ``\\r`` (a terminal) or write plain lines every
            ``every_s`` seconds; by default, whether ``stream`` is a terminal.
        every_s: Seconds between plain lines.
        clock: Monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        label: str,
        terminal: bool | None = None,
        every_s: float = PLAIN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.label = label
        self.terminal = _isatty(stream) if terminal is None else terminal
        self.every_s = every_s
        self.clock = clock
        self.started = clock()
        self._last_line: float | None = None
        self._last: dict[str, Any] | None = None
        self._last_written: dict[str, Any] | None = None

    def __call__(self, snapshot: dict[str, Any]) -> None:
        self._last = snapshot
        if self.terminal:
            self._write("\r" + self._bar(snapshot) + "   ", end="")
            return
        now = self.clock()
        if self._last_line is None or now - self._last_line >= self.every_s:
            self._last_line = now
            self._plain(snapshot)

    def close(self) -> None:
        """End the progress output: a newline on a terminal, the final line otherwise."""
        if self.terminal:
            self._write("")
        elif self._last is not None and self._last is not self._last_written:
            self._plain(self._last)

    def line(self, snapshot: dict[str, Any]) -> str:
        """A plain progress line: done, errors, TTFT percentiles, elapsed and time left."""
        parts = [f"{snapshot['done']}/{snapshot['total']} done", f"{snapshot['errors']} errors"]
        parts.append(_ttft(snapshot) or "no TTFT yet")
        parts.append(f"{format_duration(self.clock() - self.started)} elapsed")
        eta = self._eta(snapshot)
        if eta is not None:
            parts.append(f"eta {format_duration(eta)}")
        return f"{self.label}: " + ", ".join(parts)

    def _plain(self, snapshot: dict[str, Any]) -> None:
        self._last_written = snapshot
        self._write(self.line(snapshot))

    def _bar(self, snapshot: dict[str, Any]) -> str:
        done, total = snapshot["done"], max(1, snapshot["total"])
        bar = "#" * int(30 * done / total)
        eta = self._eta(snapshot)
        tail = f" eta {format_duration(eta)}" if eta is not None else ""
        ttft = _ttft(snapshot)
        return (
            f"  [{bar:<30}] {done}/{snapshot['total']} {ttft + ' ' if ttft else ''}"
            f"errors {snapshot['errors']}{tail}"
        )

    def _eta(self, snapshot: dict[str, Any]) -> float | None:
        done, total = snapshot["done"], snapshot["total"]
        if not done or done >= total:
            return None
        return float((self.clock() - self.started) / done * (total - done))

    def _write(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self.stream, flush=True)


def _ttft(snapshot: dict[str, Any]) -> str:
    p50, p99 = snapshot.get("ttft_p50_ms"), snapshot.get("ttft_p99_ms")
    return f"TTFT p50 {p50:.0f} ms p99 {p99:.0f} ms" if p50 is not None else ""


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
