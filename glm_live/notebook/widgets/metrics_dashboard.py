"""``MetricsDashboard``: live latency percentiles and charts for a session's requests.

Two ways to feed it:

- :meth:`MetricsDashboard.follow` a :class:`~glm_live.measure.recorder.Recorder`: every request
  the recorder has counts, those that ended before the dashboard existed and those that end
  after, displayed or not. The recorder calls the dashboard back when a request ends or a
  sample is taken (on the background loop's thread); the dashboard reads the new events since
  its last look, so each request costs its own events once, never a scan of the whole record.
- :meth:`MetricsDashboard.record` / :meth:`MetricsDashboard.fail` by hand, one completion or
  failure at a time. While the dashboard follows a recorder these are ignored: the recorder
  already counts those requests, and counting them twice would be wrong.

Every number sent to the browser is rounded (ms to 0.1, tokens/s to 0.1).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import traitlets

from ...measure.recorder import KINDS
from ._base import LiveWidget, static

if TYPE_CHECKING:
    from ...measure.recorder import Recorder

__all__ = ["MetricsDashboard"]

_KEEP = 2000  # recent values per series
_TOKEN_KINDS = frozenset(KINDS.index(k) for k in ("reasoning", "content", "tool"))


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        # nearest rank: the smallest value with at least q of the values at or below it
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


class MetricsDashboard(LiveWidget):
    """TTFT and inter-token latency percentiles, TTFT and tokens/s over time (SVG charts),
    requests, errors and reconnects. Follow a recorder (:meth:`follow`), or feed it
    completions (:meth:`record`) and failures (:meth:`fail`).
    """

    _esm = static("metrics_dashboard.js")
    _css = static("widgets.css")

    summary = traitlets.Dict().tag(sync=True)
    series: traitlets.List[Any] = traitlets.List().tag(
        sync=True
    )  # [seconds since start, ttft_ms, tokens/s]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        self._start = time.monotonic()
        self._reset()
        self._recorder: Recorder | None = None
        self._publish()

    def _reset(self) -> None:
        self._ttft: deque[float] = deque(maxlen=_KEEP)
        self._itl: deque[float] = deque(maxlen=_KEEP * 10)
        self._points: deque[list[float]] = deque(maxlen=300)
        self._requests = 0
        self._errors = 0
        self._cancelled = 0
        self._reconnects = 0
        # Following a recorder: requests counted, the event cursor, per running request the
        # last token's arrival and its token count.
        self._counted: set[int] = set()
        self._cursor = 0
        self._last_token: dict[int, int] = {}
        self._tokens: dict[int, int] = {}

    # -- following a recorder --------------------------------------------------------------------

    def follow(self, recorder: Recorder) -> MetricsDashboard:
        """Count every request of ``recorder``: those it has, and those that end from now on.

        Following the same recorder again changes nothing; following another starts over.
        Returns the dashboard, so ``MetricsDashboard().follow(session.recorder)`` displays it.
        """
        with self._lock:
            if recorder is self._recorder:
                return self
            if self._recorder is not None:
                self._recorder.remove_listener(self._heard)
            self._reset()
            self._recorder = recorder
        # Listen first, then catch up: a request ending in between is heard or found, and
        # counted once either way (``_counted``).
        recorder.add_listener(self._heard)
        with self._lock:
            self._catch_up(recorder)
            self._reconnects = int(recorder.last_sample("hub_reconnects") or 0)
        self._publish()
        return self

    def unfollow(self) -> None:
        """Stop following the recorder (the counts stay as they are)."""
        with self._lock:
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.remove_listener(self._heard)

    def _heard(self, what: str, key: int | str) -> None:
        # The recorder's listener: runs on the thread that ended the request.
        recorder = self._recorder
        if recorder is None:
            return
        with self._lock:
            if what == "end" and isinstance(key, int):
                self._read_events(recorder)
                self._count(recorder, key)
            elif what == "sample" and key == "hub_reconnects":
                self._reconnects = int(recorder.last_sample("hub_reconnects") or 0)
            else:
                return
        self._publish()

    def _catch_up(self, recorder: Recorder) -> None:
        self._read_events(recorder)
        for number in range(recorder.request_count):
            self._count(recorder, number)

    def _read_events(self, recorder: Recorder) -> None:
        """Inter-token gaps and token counts from the events recorded since the last look."""
        self._cursor, requests, arrivals, kinds = recorder.events_since(self._cursor)
        for request, arrival, kind in zip(requests, arrivals, kinds, strict=True):
            if kind not in _TOKEN_KINDS or request in self._counted:
                continue
            last = self._last_token.get(request)
            if last is not None:
                self._itl.append((arrival - last) / 1e6)
            self._last_token[request] = arrival
            self._tokens[request] = self._tokens.get(request, 0) + 1

    def _count(self, recorder: Recorder, number: int) -> None:
        if number in self._counted:
            return
        info = recorder.request_summary(number)
        if info["status"] == "running":
            return
        self._counted.add(number)
        self._last_token.pop(number, None)
        seen = self._tokens.pop(number, 0)
        self._requests += 1
        if info["status"] == "error":
            self._errors += 1
        elif info["status"] == "cancelled":
            self._cancelled += 1
        ttft, e2e = info["ttft_ms"], info["e2e_ms"]
        if ttft is None:
            return
        self._ttft.append(ttft)
        tokens = info["completion_tokens"] or seen
        rate = 0.0
        if e2e is not None and e2e > ttft and tokens > 1:
            rate = (tokens - 1) / ((e2e - ttft) / 1000)
        ended = info["ended_s"] if info["ended_s"] is not None else 0.0
        self._points.append([round(ended, 2), round(ttft, 1), round(rate, 1)])
        self._points = deque(sorted(self._points), maxlen=300)  # caught-up rows come unordered

    # -- feeding by hand -----------------------------------------------------------------------

    def record(self, completion: Any) -> None:
        """Add a finished completion's timings (ignored while following a recorder)."""
        if self._recorder is not None:
            return
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
        """Count a failed request (ignored while following a recorder)."""
        if self._recorder is not None:
            return
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
                "cancelled": self._cancelled,
                "reconnects": self._reconnects,
                "ttft_ms": _percentiles(list(self._ttft)),
                "itl_ms": _percentiles(list(self._itl)),
            }
            series = list(self._points)
        self.update(summary=summary, series=series)
