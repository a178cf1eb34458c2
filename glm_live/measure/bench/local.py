"""The :class:`Local` strategy: a run (or one shard of it) driven from this process.

Every request has a *scheduled* send time, and latencies count from it: in a closed loop a
worker schedules its next request the moment it is free; in an open loop arrivals are drawn
in advance (Poisson, gamma with ``burstiness``, or constant) and a request that waits for a
free slot (``concurrency`` cap) carries that wait as ``queue_ms``. Nothing is lost to
coordinated omission.

While the run goes, a monitor samples the event loop's lag every 5 ms; afterwards, when the
server stamped ``x_sent_ns`` (the simulator does), the harness reports its own timing error
(arrival on the wall clock minus the server's send stamp), and warns when the client, not the
server, looks like the bottleneck.

A sharded run (:mod:`.cluster`) runs a :class:`Local` with a :class:`~.load.Shard` on each
worker: its share of the global request indices (and, open loop, their arrival offsets),
started at a common wall-clock instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from typing import Any

from ...wire.chat import Timings, parse_chunk
from ..recorder import Recorder
from ._http import HTTPResponseError, Response, Sending, StreamClient
from .load import Load, Progress, Shard, monotonic_at, snapshot
from .results import BenchResult
from .workloads import TokenCounter

__all__ = ["Local"]

_LAG_INTERVAL_S = 0.005  # how often the monitor samples the event loop's lag
_REPORT_S = 0.25  # how often progress is reported
_WARM_AHEAD_S = 0.05  # an open loop keeps a connection ready for each send due this soon
_SPIN_S = 0.002  # before a scheduled send, the stretch spent yielding, not on a timer


class Local:
    """Runs a :class:`~.load.Load` in this process: the whole of it, or one :class:`Shard`.

    Args:
        load: What to send.
        shard: This process's share (its own indices, offsets and start); ``None``: all.

    Raises:
        ValueError: The shard has arrival offsets but the load is a closed loop, or the
            other way round.
    """

    def __init__(self, load: Load, shard: Shard | None = None) -> None:
        if shard is not None and (shard.offsets is None) == load.open_loop:
            msg = "a shard has arrival offsets exactly when the run is open loop (rate=...)"
            raise ValueError(msg)
        self.load = load
        self.shard = shard
        #: The global indices this process sends, in order.
        self.indices = list(range(load.total)) if shard is None else list(shard.indices)
        self.total = len(self.indices)
        self.client = StreamClient(load.url, headers=load.headers(), timeout=load.timeout)
        #: How late this process started after its shard's common start (ns).
        self.late_ns = 0
        self.recorder = Recorder()
        self._responses: dict[int, tuple[Response, int, BaseException | None]] = {}
        # Request bodies, by prompt: requests cycle through the prompts, and encoding the
        # same JSON again for each would cost the loop as much as h11 framing the request.
        self._bodies: dict[int, bytes] = {}
        # Loads whose every request has its own body (a trace, unique prefixes) have them
        # built before the start, by global index; a conversation's, as it goes.
        self._by_index: dict[int, bytes] = {}
        self._turns: dict[int, dict[str, Any]] = {}  # sessions: session, turn, think_s
        self.counter = TokenCounter(load.tokenizer)
        self._counted: dict[int, int] = {}  # input tokens, by id() of a kept body
        self._stopped = asyncio.Event()
        self._lag: list[float] = []
        self._cancelled = False
        self._progress: Progress | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled (by :meth:`cancel` or by cancelling its task)."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop scheduling, cancel what is in flight; :meth:`run` returns the partial result."""
        self._cancelled = True
        self._stopped.set()

    async def run(self, progress: Progress | None = None) -> BenchResult:
        """Run the load (cancelling this task, or :meth:`cancel`, keeps partial data).

        Args:
            progress: Called with a snapshot every 0.25 s, and once at the end.
        """
        started_wall = await self.execute(progress)
        return BenchResult.from_recorder(
            self.record(),
            config=self.load.config(),
            lag_s=self._lag,
            cancelled=self._cancelled,
            started_wall=started_wall,
        )

    async def execute(self, progress: Progress | None = None) -> float:
        """Send the load and keep the raw responses; returns the wall-clock start (s).

        :meth:`run` is this, then the frames; a shard on a worker ships :meth:`record`'s
        recorder back instead, so that the frames are built once, from all the shards.
        Cancelling this task stops the run as :meth:`cancel` does, and returns normally.
        """
        self._progress = progress
        monitor = asyncio.ensure_future(self._monitor())
        reporter = asyncio.ensure_future(self._report())
        started_wall = time.time()
        tasks: list[asyncio.Task[None]] = []
        try:
            offsets = self._offsets()
            if self.load.per_request and self.load.sessions is None:
                self._by_index = {i: self.load.body(i) for i in self.indices}
            if offsets is not None and not self.load.concurrency:
                await self._warm(_due(offsets, 0))  # the first sends need no connect either
            start = await self._start()
            if self.load.sessions is not None:
                await self._sessions(tasks)
            elif offsets is None:
                await self._closed_loop(tasks)
            else:
                await self._open_loop(tasks, offsets, start)
        except asyncio.CancelledError:
            self._cancelled = True
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._stopped.set()
            monitor.cancel()
            reporter.cancel()
            self.client.close()
        if progress is not None:
            progress(self.snapshot())
        return started_wall

    # -- what the run has so far -----------------------------------------------------------------

    def ttfts_ms(self) -> list[float]:
        """Time to the first event of every request that finished so far (ms)."""
        out = []
        for response, scheduled, error in self._responses.values():
            if error is None:
                first = response.first_event_ns
                if first is not None:
                    out.append((first - scheduled) / 1e6)
        return out

    @property
    def errors(self) -> int:
        """Requests that failed so far."""
        return sum(1 for _, _, e in self._responses.values() if e is not None)

    @property
    def sent(self) -> list[int]:
        """The global indices of the requests sent so far, in order: :meth:`record` makes one
        recorder row for each, in this order."""
        return sorted(self._responses)

    @property
    def lag_s(self) -> list[float]:
        """The event loop's lag, sampled every 5 ms while the run went (s)."""
        return self._lag

    def snapshot(self) -> dict[str, Any]:
        """A progress report (:func:`~.load.snapshot`) of the run so far."""
        return snapshot(len(self._responses), self.total, self.ttfts_ms(), self.errors)

    # -- sending -----------------------------------------------------------------------------------

    async def _one(
        self,
        index: int,
        scheduled_ns: int,
        body: bytes | None = None,
        sending: Sending | None = None,
    ) -> None:
        """Send request ``index`` (or finish ``sending``, already written) and keep its
        response, or why it failed, in ``_responses``."""
        response = Response() if sending is None else sending.response
        error: BaseException | None = None
        try:
            if sending is None:
                await self.client.post(body or self._body(index), response)
            else:
                await self.client.finish(sending)
        except asyncio.CancelledError as exc:
            error = exc
        except (OSError, TimeoutError, HTTPResponseError, ConnectionError) as exc:
            error = exc
        self._responses[index] = (response, scheduled_ns, error)

    def _body(self, index: int) -> bytes:
        if self._by_index:
            return self._by_index[index]
        prompt = index % len(self.load.prompts)
        body = self._bodies.get(prompt)
        if body is None:
            body = self._bodies[prompt] = self.load.body(prompt)
        return body

    async def _monitor(self) -> None:
        while not self._stopped.is_set():
            start = time.perf_counter()
            await asyncio.sleep(_LAG_INTERVAL_S)
            self._lag.append(max(0.0, time.perf_counter() - start - _LAG_INTERVAL_S))

    async def _report(self) -> None:
        while not self._stopped.is_set():
            await asyncio.sleep(_REPORT_S)
            if self._progress is not None:
                self._progress(self.snapshot())

    async def _start(self) -> int:
        """The start on ``perf_counter_ns``: now, or a shard's common instant, waited for."""
        if self.shard is None or self.shard.start_wall_ns is None:
            return time.perf_counter_ns()
        start = monotonic_at(self.shard.start_wall_ns)
        delay = (start - time.perf_counter_ns()) / 1e9
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
        self.late_ns = max(0, time.perf_counter_ns() - start)
        return start

    async def _until_ns(self, instant: int) -> None:
        """Wait for ``instant`` (``perf_counter_ns``), or a stop. The loop's timers fire up
        to a millisecond late (epoll's timeout is in whole ms), so the last
        :data:`_SPIN_S` is spent yielding to the loop turn after turn: it keeps reading
        streams meanwhile, and the send goes out within a turn of its instant."""
        delay = (instant - time.perf_counter_ns()) / 1e9 - _SPIN_S
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
        while time.perf_counter_ns() < instant and not self._stopped.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0)  # a clock, not an event, is awaited: no timer is this fine

    async def _closed_loop(self, tasks: list[asyncio.Task[None]]) -> None:
        counter = iter(self.indices)

        async def worker() -> None:
            for index in counter:
                if self._stopped.is_set():
                    return
                await self._one(index, time.perf_counter_ns())

        workers = [asyncio.ensure_future(worker()) for _ in range(self.load.concurrency or 1)]
        tasks.extend(workers)
        await _until(workers, asyncio.ensure_future(self._stopped.wait()))

    def _offsets(self) -> list[float] | None:
        """The open loop's arrivals (s after the start): a shard's, or drawn from the seed;
        ``None`` in a closed loop."""
        if self.shard is not None and self.shard.offsets is not None:
            return list(self.shard.offsets)
        return self.load.schedule()

    async def _open_loop(
        self, tasks: list[asyncio.Task[None]], offsets: list[float], start: int
    ) -> None:
        cap = self.load.concurrency
        limit = asyncio.Semaphore(cap) if cap else None

        async def limited(index: int, scheduled: int) -> None:
            if limit is None:
                await self._one(index, scheduled)
                return
            async with limit:
                await self._one(index, scheduled)

        warming: asyncio.Future[None] | None = None
        for k, (index, offset) in enumerate(zip(self.indices, offsets, strict=True)):
            scheduled = start + round(offset * 1e9)
            if limit is None and (warming is None or warming.done()):
                # Connect ahead: an idle connection for each send due soon.
                warming = asyncio.ensure_future(self._warm(_due(offsets, k)))
            await self._until_ns(scheduled)
            if self._stopped.is_set():
                break
            # Uncapped, the request is written here, at its instant, when a connection is
            # idle (the warming sees to that): a task would write it a turn of the loop later.
            sending = (
                None if limit is not None else self.client.start(self._body(index), Response())
            )
            if sending is not None:
                # Its task's first step is queued now, ahead of this loop's next step (where
                # a stop or a cancel is seen): it is awaiting the response before anything
                # can cancel it, so a written request is always recorded.
                tasks.append(asyncio.ensure_future(self._one(index, scheduled, sending=sending)))
            else:
                tasks.append(asyncio.ensure_future(limited(index, scheduled)))
        if warming is not None:
            warming.cancel()
        await _until(tasks, asyncio.ensure_future(self._stopped.wait()))

    async def _warm(self, idle: int) -> None:
        """Open idle connections ahead of the next sends (a failure is the send's to report)."""
        with contextlib.suppress(OSError, ConnectionError):
            await self.client.warm(idle)

    async def _sessions(self, tasks: list[asyncio.Task[None]]) -> None:
        """Conversations, ``concurrency`` at a time: each turn sends the history so far and
        is scheduled its think time after the previous answer ended."""
        sessions = self.load.sessions
        assert sessions is not None
        turns = sessions.turns
        counter = iter(sorted({index // turns for index in self.indices}))

        async def conversation(session: int) -> None:
            history: list[dict[str, Any]] = []
            ended = time.perf_counter_ns()
            for turn in range(turns):
                index = session * turns + turn
                think = sessions.think(self.load.seed, session, turn)
                scheduled = ended + round(think * 1e9) if turn else time.perf_counter_ns()
                await self._until_ns(scheduled)
                if self._stopped.is_set():
                    return
                body = self._by_index[index] = self.load.body(index, history)
                self._turns[index] = {"session": session, "turn": turn, "think_s": think}
                await self._one(index, scheduled, body)
                response, _, error = self._responses[index]
                if error is not None:
                    return  # what would a user answer to an error?
                ended = response.end_ns or time.perf_counter_ns()
                history.append({"role": "user", "content": self.load.prompt(index)})
                history.append({"role": "assistant", "content": _answer(response)})

        async def worker() -> None:
            for session in counter:
                if self._stopped.is_set():
                    return
                await conversation(session)

        workers = [asyncio.ensure_future(worker()) for _ in range(self.load.concurrency or 1)]
        tasks.extend(workers)
        await _until(workers, asyncio.ensure_future(self._stopped.wait()))

    # -- after the run -----------------------------------------------------------------------------

    def record(self) -> Recorder:
        """Parse the responses into :attr:`recorder`, one request per global index in order
        (after the run: the SSE split and the JSON stay off the hot path). Returns it."""
        recorder = self.recorder
        model = self.load.model
        for index in self.sent:
            response, scheduled, error = self._responses[index]
            response.decode()
            number = recorder.begin(
                f"request {index}", kind="bench", model=model, scheduled_ns=scheduled
            )
            texts: list[str] = []
            timings, usage, answered_by = _feed(recorder, number, response, texts)
            status = (
                "ok"
                if error is None
                else ("cancelled" if isinstance(error, asyncio.CancelledError) else "error")
            )
            recorder.end(
                number,
                status=status,
                error=error,
                timings=timings,
                usage=usage,
                model=answered_by,
                phase="warmup" if index < self.load.warmup else "measure",
                http_status=response.status or None,
                chunks=len(response.events),
                **response.phases(),  # connect, TLS, written, headers, first byte (ms)
                input_tokens=self._input_tokens(index),
                output_tokens=self.counter.count("".join(texts)),
                **self._turns.get(index, {}),
            )
        return recorder

    def _input_tokens(self, index: int) -> int:
        """The prompt's tokens by :attr:`counter`: every message's content, summed."""
        body = self._by_index.get(index) or self._body(index)
        key = id(body)
        counted = self._counted.get(key)
        if counted is None:
            counted = self._counted[key] = self.counter.count_messages(json.loads(body)["messages"])
        return counted


def _due(offsets: list[float], k: int) -> int:
    """How many sends, from the ``k``-th on, are due within :data:`_WARM_AHEAD_S` of it
    (at most 64): the idle connections an open loop keeps ready for them. A connect takes a
    fraction of a millisecond on loopback; a send a millisecond after another still finds
    its connection made."""
    horizon = offsets[k] + _WARM_AHEAD_S
    return sum(1 for later in offsets[k : k + 64] if later <= horizon)


async def _until(tasks: Iterable[asyncio.Future[Any]], stop: asyncio.Future[Any]) -> None:
    pending = set(tasks)
    try:
        while pending and not stop.done():
            _, pending = await asyncio.wait(pending | {stop}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(stop)
    finally:
        stop.cancel()


def _answer(response: Response) -> str:
    """The content a response streamed (decoded now: a conversation's next turn sends it)."""
    response.decode()
    parts = []
    for i, (data, arrival, size) in enumerate(
        zip(response.events, response.arrivals, response.sizes, strict=True)
    ):
        with contextlib.suppress(ValueError):
            raw = json.loads(data)
            if isinstance(raw, dict):
                parts.append(parse_chunk(raw, i, arrival, {}, size).content)
    return "".join(parts)


def _feed(
    recorder: Recorder, number: int, response: Response, texts: list[str] | None = None
) -> tuple[Timings, dict[str, Any] | None, str | None]:
    """Record a decoded response's events; returns its timings, its usage and the model that
    answered (after the run: JSON stays off the hot path). ``texts`` gets the text streamed
    (reasoning and content), when given."""
    timings = Timings(
        request_start_ns=response.sent_ns,
        request_sent_ns=response.sent_ns,
        headers_ns=response.headers_ns,
        first_byte_ns=response.first_byte_ns,
        end_ns=response.end_ns,
    )
    usage = None
    model = None
    for i, (data, arrival, size) in enumerate(
        zip(response.events, response.arrivals, response.sizes, strict=True)
    ):
        raw = None
        if data != "[DONE]":
            with contextlib.suppress(ValueError):
                raw = json.loads(data)
        if not isinstance(raw, dict):
            timings.observe(arrival)
            recorder.event(number, i, arrival, size, "other")
            continue
        chunk = parse_chunk(raw, i, arrival, {}, size)
        timings.observe(arrival, chunk)
        sent = raw.get("x_sent_ns")
        recorder.event(
            number,
            i,
            arrival,
            size,
            chunk.kind,
            len(chunk.content) + len(chunk.reasoning),
            sent if isinstance(sent, int) else -1,
        )
        if texts is not None:
            texts.append(chunk.reasoning + chunk.content)
        if chunk.usage is not None:
            usage = dict(chunk.usage)
        model = model or raw.get("model")
    return timings, usage, model
