"""Sending thousands of streams' frames on time, from one timer.

A naive streaming endpoint gives every stream a task that sleeps between chunks: each chunk
then costs a timer, a future and a task switch, and each stream drifts by its own processing
time. The :class:`Pacer` keeps every stream's next due time in one heap and arms a single
``loop.call_at`` for the earliest. When it fires, it writes every frame that is due, in a plain
callback, with no task switch at all, and re-arms. Due times are absolute (the first frame's
actual send time plus the planned gaps), so a busy moment delays frames without shifting the
rest of the schedule.

Writing: a stream may come with a :class:`~.._uvicorn_fast.DirectSink` (the runtime obtains one
under uvicorn's httptools protocol, unless told to use plain ASGI): body chunks then go straight
to the connection, the cheapest path there is. Without one, for the last message, and whenever
the connection is applying back-pressure (a slow reader), frames go through the ASGI ``send``
coroutine, driven inline while it does not block (:func:`drive`); a send that must wait is
finished by a task, and that stream pauses until it is done, so a slow client slows only itself.

Every write's lateness (actual minus due time) goes into :class:`LagHistogram`.

Keep-alives: with ``keepalive_s`` set, a stream that has written nothing for that long (a long
time to first token, a ``stall``) gets an SSE comment, ``: keep-alive``, from a timer of its
own, re-armed from its last write. It is written like any frame, between two frames (writes
are whole frames, from callbacks on the one loop), and never moves a frame's due time.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .._uvicorn_fast import DirectSink
from ..asgi import Send
from ..keepalive import KEEPALIVE
from .engine import DONE, StreamPlan

__all__ = ["LAG_BOUNDS", "LagHistogram", "PacedStream", "Pacer", "drive"]

#: Upper bounds (seconds) of the send-lag histogram's buckets.
LAG_BOUNDS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

_SLACK = 0.0002  # frames due this close to now go out in the same pass


class LagHistogram:
    """Counts of send lag per bucket (cumulative on read), plus sum and count."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LAG_BOUNDS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, lag: float) -> None:
        self.counts[bisect.bisect_left(LAG_BOUNDS, lag)] += 1
        self.total += lag
        self.count += 1


def drive(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` inline until it completes or blocks; a blocked one finishes in a task.

    Returns ``None`` when it completed on the spot (no task, no loop turn: the common case of
    a send into a transport with room), else the task finishing it. Cancelling that task
    cancels what ``coro`` waits on, so ``coro`` sees the cancellation where it waits.
    """
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_resume(coro, waiting_on))


async def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    # Continue the coroutine the way a Task would: wait until the future it yielded is done,
    # then resume it (it reads the outcome itself), until it returns.
    #
    # The future is never awaited here, only watched (asyncio.wait adds a done-callback), and
    # the coroutine is resumed only once it is done, when Future.__await__ returns the result
    # without looking at the future's private _asyncio_future_blocking flag. (Awaiting the
    # future itself, as an earlier version did, fails with "await wasn't used with future":
    # the coroutine's own await already set that flag, and only a Task may clear it.) On
    # Python 3.12+ an eager task (eager_start) would do all this for us; 3.11 has none.
    while True:
        try:
            if waiting_on is None:
                await asyncio.sleep(0)  # a bare yield: just give the loop a turn
            else:
                await asyncio.wait({waiting_on})
        except asyncio.CancelledError:
            if waiting_on is not None:
                waiting_on.cancel()
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return


class PacedStream:
    """One response being paced: its plan, where it is, and how to write."""

    __slots__ = (
        "blocked",
        "closed",
        "direct",
        "done",
        "due",
        "first_at",
        "index",
        "keepalive_handle",
        "last_write",
        "on_last_frame",
        "plan",
        "queued",
        "send",
        "stall_handle",
    )

    def __init__(
        self,
        plan: StreamPlan,
        send: Send,
        done: asyncio.Future[str],
        direct: DirectSink | None = None,
    ) -> None:
        self.plan = plan
        self.send = send
        self.done = done
        self.index = 0
        self.due = 0.0
        self.first_at: float | None = None
        self.closed = False
        self.blocked = False
        self.queued = False  # in the pacer's heap (at most once)
        self.stall_handle: asyncio.TimerHandle | None = None
        self.keepalive_handle: asyncio.TimerHandle | None = None
        #: Loop time of the last write (or of the start): when a keep-alive is due from.
        self.last_write = 0.0
        #: Where body chunks go directly (see :mod:`.._uvicorn_fast`), or ``None``: ``send``.
        self.direct = direct
        #: Called once the last frame of a complete answer has been handed to the transport
        #: (before :attr:`done` resolves, which may take a few loop turns more).
        self.on_last_frame: Callable[[], None] | None = None

    def close(self, outcome: str) -> None:
        """Stop pacing this stream (idempotent); ``outcome`` resolves :attr:`done`."""
        if self.closed:
            return
        self.closed = True
        if self.stall_handle is not None:
            self.stall_handle.cancel()
        if self.keepalive_handle is not None:
            self.keepalive_handle.cancel()
        if not self.done.done():
            self.done.set_result(outcome)


class Pacer:
    """Writes the frames of every :class:`PacedStream` on schedule from one timer."""

    def __init__(self, lag: LagHistogram | None = None, keepalive_s: float | None = None) -> None:
        self.lag = lag or LagHistogram()
        #: Seconds of silence before a stream gets a keep-alive comment (``None``: never).
        self.keepalive_s = keepalive_s or None
        self._heap: list[tuple[float, int, PacedStream]] = []
        self._order = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, stream: PacedStream) -> None:
        """Begin pacing: the first frame is due after the plan's first gap."""
        loop = self._loop = asyncio.get_running_loop()
        stream.last_write = loop.time()
        if self.keepalive_s is not None:
            stream.keepalive_handle = loop.call_at(
                stream.last_write + self.keepalive_s, self._keepalive, stream
            )
        if not stream.plan.count:  # a fault before the first frame
            self._end(stream)
            return
        stream.due = stream.last_write + stream.plan.gaps[0]
        self._push(stream)

    def _keepalive(self, stream: PacedStream) -> None:
        """A stream's keep-alive timer: send a comment if it has been silent long enough,
        and re-arm from its last write."""
        if stream.closed or self._loop is None or self.keepalive_s is None:
            return
        due = stream.last_write + self.keepalive_s
        # A stream whose send is blocked is not idle: its client is slow to read.
        now = self._loop.time()
        if not stream.blocked and now >= due - _SLACK:
            self._write(stream, KEEPALIVE, more=True)
            stream.last_write = now
            due = now + self.keepalive_s
        elif stream.blocked:
            due = now + self.keepalive_s
        stream.keepalive_handle = self._loop.call_at(due, self._keepalive, stream)

    def _push(self, stream: PacedStream) -> None:
        stream.queued = True
        heapq.heappush(self._heap, (stream.due, next(self._order), stream))
        self._arm()

    def _arm(self) -> None:
        if not self._heap or self._loop is None:
            return
        due = self._heap[0][0]
        if self._handle is not None:
            if self._armed_for <= due:
                return
            self._handle.cancel()
        self._armed_for = due
        self._handle = self._loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self._handle = None
        self._run_due()
        self._arm()

    def poll(self) -> None:
        """Send whatever is due now. Request handlers call this before their own work, so a
        burst of arriving requests cannot hold back the streams already running by more
        than one request's handling time."""
        if self._heap and self._loop is not None:
            self._run_due()
            self._arm()

    def _run_due(self) -> None:
        loop = self._loop
        assert loop is not None
        heap = self._heap
        now = loop.time()
        while heap and heap[0][0] <= now + _SLACK:
            _, _, stream = heapq.heappop(heap)
            stream.queued = False
            if stream.closed or stream.blocked:
                continue
            self._emit(stream, now)
            now = loop.time()

    def _emit(self, stream: PacedStream, now: float) -> None:
        plan = stream.plan
        count = plan.count
        gaps = plan.gaps
        index = stream.index
        self.lag.observe(max(0.0, now - stream.due))
        if index == 0:
            # The first frame anchors the schedule where it actually goes out: if the loop
            # was busy, the answer starts late but then flows at its planned pace.
            stream.due = stream.first_at = now
        stream.last_write = now  # for the keep-alive timer (no clock read of its own)
        stamp = b"%d}\n\n" % time.time_ns()
        parts = [plan.frame(index), stamp]
        index += 1
        # Frames due at the same moment (the finishing chunk with the last token) go together.
        while index < count and gaps[index] == 0.0:
            parts += (plan.frame(index), stamp)
            index += 1
        stream.index = index
        last = index == count
        if last and plan.end == "done":
            parts.append(DONE)
        self._write(stream, b"".join(parts), more=not (last and plan.end == "done"))
        if last and plan.end == "done" and stream.on_last_frame is not None:
            stream.on_last_frame()
        if not last:
            stream.due += gaps[index]
            if not stream.blocked:
                self._push(stream)
        elif not stream.blocked:
            self._end(stream)

    def _end(self, stream: PacedStream) -> None:
        """After the last frame: finish, cut the connection, or hold it (stall)."""
        end = stream.plan.end
        if end == "done":
            if not stream.plan.count:
                self._write(stream, DONE, more=False)
            stream.close("done")
        elif end == "drop":
            if stream.direct is not None:
                stream.direct.close()
            stream.close("drop")  # without a direct sink, the runtime makes the server cut it
        else:
            assert self._loop is not None
            stream.stall_handle = self._loop.call_later(
                stream.plan.stall_s, stream.close, "stalled"
            )

    def _write(self, stream: PacedStream, data: bytes, more: bool) -> None:
        direct = stream.direct
        if more and direct is not None and direct.try_write(data):
            return
        message = {"type": "http.response.body", "body": data, "more_body": more}
        task = drive(stream.send(message))  # type: ignore[arg-type]
        if task is not None:
            stream.blocked = True
            task.add_done_callback(lambda _: self._unblock(stream))

    def _unblock(self, stream: PacedStream) -> None:
        stream.blocked = False
        if stream.closed:
            return
        if stream.index < stream.plan.count:
            if not stream.queued:  # a keep-alive may have blocked while a frame was queued
                self._push(stream)
        elif stream.stall_handle is None:  # not ended yet (a keep-alive during a stall was)
            self._end(stream)
