"""Sending thousands of streams' frames on time, from one timer.

A naive streaming endpoint gives every stream a task that sleeps between chunks: each chunk
then costs a timer, a future and a task switch, and each stream drifts by its own processing
time. The :class:`Pacer` keeps every stream's next due time in one heap and arms a single
``loop.call_at`` for the earliest. When it fires, it writes every frame that is due, in a plain
callback, with no task switch at all, and re-arms. Due times are absolute (the first frame's
actual send time plus the planned gaps), so a busy moment delays frames without shifting the
rest of the schedule.

Writing: under uvicorn's httptools protocol the pacer writes chunked frames straight to the
connection's transport, the cheapest path there is. Anywhere else, and whenever that transport
is applying back-pressure (a slow reader), it goes through the ASGI ``send`` coroutine, driven
inline while it does not block; a send that must wait is finished by a task, and that stream
pauses until it is done, so a slow client slows only itself.

Every write's lateness (actual minus due time) goes into :class:`LagHistogram`.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import time
from collections.abc import Coroutine
from typing import Any

from ..asgi import Send, uvicorn_cycle
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

    Returns ``None`` when it completed on the spot, else the task finishing it.
    """
    try:
        waiting_on = _claim(coro.send(None))
    except StopIteration:
        return None
    return asyncio.ensure_future(_resume(coro, waiting_on))


def _claim(awaited: Any) -> Any:
    # A coroutine blocked on a future yields it with _asyncio_future_blocking set; a Task
    # clears that flag when it takes the future over, and so must we, or awaiting the future
    # again raises "await wasn't used with future".
    if awaited is not None:
        awaited._asyncio_future_blocking = False
    return awaited


async def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    # Continue the coroutine the way a Task would: wait until what it is blocked on is done,
    # then resume it (it reads the outcome itself), until it returns. Cancelling this task
    # cancels what the coroutine waits on, so the coroutine sees the cancellation.
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
            waiting_on = _claim(coro.send(None))
        except StopIteration:
            return


class PacedStream:
    """One response being paced: its plan, where it is, and how to write."""

    __slots__ = (
        "blocked",
        "closed",
        "done",
        "due",
        "first_at",
        "index",
        "plan",
        "send",
        "stall_handle",
        "transport_cycle",
    )

    def __init__(self, plan: StreamPlan, send: Send, done: asyncio.Future[str]) -> None:
        self.plan = plan
        self.send = send
        self.done = done
        self.index = 0
        self.due = 0.0
        self.first_at: float | None = None
        self.closed = False
        self.blocked = False
        self.stall_handle: asyncio.TimerHandle | None = None
        self.transport_cycle = uvicorn_cycle(send)

    def close(self, outcome: str) -> None:
        """Stop pacing this stream (idempotent); ``outcome`` resolves :attr:`done`."""
        if self.closed:
            return
        self.closed = True
        if self.stall_handle is not None:
            self.stall_handle.cancel()
        if not self.done.done():
            self.done.set_result(outcome)


class Pacer:
    """Writes the frames of every :class:`PacedStream` on schedule from one timer."""

    def __init__(self, lag: LagHistogram | None = None) -> None:
        self.lag = lag or LagHistogram()
        self._heap: list[tuple[float, int, PacedStream]] = []
        self._order = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, stream: PacedStream) -> None:
        """Begin pacing: the first frame is due after the plan's first gap."""
        loop = self._loop = asyncio.get_running_loop()
        if not stream.plan.count:  # a fault before the first frame
            self._end(stream)
            return
        stream.due = loop.time() + stream.plan.gaps[0]
        self._push(stream)

    def _push(self, stream: PacedStream) -> None:
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
            cycle = stream.transport_cycle
            if cycle is not None:
                cycle.transport.close()
            stream.close("drop")
        else:
            assert self._loop is not None
            stream.stall_handle = self._loop.call_later(
                stream.plan.stall_s, stream.close, "stalled"
            )

    def _write(self, stream: PacedStream, data: bytes, more: bool) -> None:
        cycle = stream.transport_cycle
        if more and cycle is not None and not cycle.flow.write_paused:
            if not cycle.disconnected:
                cycle.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
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
            self._push(stream)
        else:
            self._end(stream)
