"""The load generator: closed loop, open loop, warm-up, sweeps, cancellation.

Every request has a *scheduled* send time, and latencies count from it: in a closed loop a
worker schedules its next request the moment it is free; in an open loop arrivals are drawn
in advance (Poisson, gamma with ``burstiness``, or constant) and a request that waits for a
free slot (``concurrency`` cap) carries that wait as ``queue_ms``. Nothing is lost to
coordinated omission.

While the run goes, a monitor samples the event loop's lag every 5 ms; afterwards, when the
server stamped ``x_sent_ns`` (the simulator does), the harness reports its own timing error
(arrival on the wall clock minus the server's send stamp), and warns when the client, not the
server, looks like the bottleneck.

With ``cluster=`` the run is sharded over ``dask.distributed`` workers
(:mod:`glm_live.bench.cluster`); each worker runs a :class:`Benchmark` with a :class:`Shard`:
its share of the global request indices (and, open loop, their arrival offsets), started at a
common wall-clock instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...wire.chat import Timings, parse_chunk
from ..recorder import Recorder
from ._http import HTTPResponseError, Response, StreamClient
from .results import BenchResult

__all__ = ["Benchmark", "Shard", "chat_url", "prompts_from", "run", "sweep"]

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Shard:
    """One process's share of a run that several processes drive together.

    Attributes:
        indices: The global request indices this process sends, in order. Prompts cycle by
            global index and requests below the run's ``warmup`` are the warm-up, so a
            request is the same whichever process sends it.
        offsets: Open loop: each request's arrival, in seconds after ``start_wall_ns`` (drawn
            once for the whole run). ``None`` in a closed loop.
        start_wall_ns: The common start, on the wall clock (``time.time_ns()``); each process
            turns it into an instant on its own monotonic clock and waits for it. ``None``:
            start at once.
    """

    indices: tuple[int, ...]
    offsets: tuple[float, ...] | None = None
    start_wall_ns: int | None = None

    def __post_init__(self) -> None:
        if self.offsets is not None and len(self.offsets) != len(self.indices):
            msg = (
                f"a shard's offsets ({len(self.offsets)}) must match its indices "
                f"({len(self.indices)}), one arrival per request"
            )
            raise ValueError(msg)


def snapshot(done: int, total: int, ttfts_ms: Sequence[float], errors: int) -> dict[str, Any]:
    """A progress report: requests done of total, running TTFT p50/p99, errors."""
    ordered = sorted(ttfts_ms)

    def pick(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

    return {
        "done": done,
        "total": total,
        "ttft_p50_ms": pick(0.5),
        "ttft_p99_ms": pick(0.99),
        "errors": errors,
    }


def chat_url(url: str) -> str:
    """The chat-completions URL for a runtime root URL or an OpenAI-compatible base URL."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    _, _, rest = url.partition("://")
    if "/" not in rest:  # a bare root: the runtime's OpenAI-style path
        return url + "/v1/chat/completions"
    return url + "/chat/completions"


def prompts_from(
    prompts: str | Path | Sequence[str] | None, prompt_tokens: int | None, seed: int
) -> list[str]:
    """Prompts from a list, a file (one per line, or JSONL with ``prompt``), or generated to
    about ``prompt_tokens`` tokens (a word is counted as a token)."""
    if prompts is None:
        words = (
            "latency",
            "account",
            "review",
            "revenue",
            "stream",
            "agent",
            "quarter",
            "risk",
            "trend",
            "report",
            "metric",
            "growth",
            "customer",
            "usage",
        )
        rng = random.Random(seed)
        length = prompt_tokens or 16
        return [" ".join(rng.choice(words) for _ in range(length)) for _ in range(64)]
    if isinstance(prompts, str | Path) and Path(prompts).is_file():
        lines = [line for line in Path(prompts).read_text().splitlines() if line.strip()]
        out = []
        for line in lines:
            if line.lstrip().startswith("{"):
                out.append(str(json.loads(line).get("prompt", "")))
            else:
                out.append(line)
        return out
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, Path):
        msg = f"no prompt file at {prompts}"
        raise FileNotFoundError(msg)
    return list(prompts)


def _wants_cluster(cluster: Any) -> bool:
    # False is "no cluster", as None is; 0 is not (it is a bad number of workers).
    return cluster is not None and cluster is not False


def _arrivals(n: int, rate: float, kind: str, burstiness: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    t = 0.0
    times = []
    for _ in range(n):
        times.append(t)
        if kind == "constant":
            t += 1.0 / rate
        elif kind == "gamma":
            t += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
        else:
            t += rng.expovariate(rate)
    return times


class Benchmark:
    """One benchmark run; :meth:`cancel` stops it and :meth:`run` returns what it has.

    Keyword-only, besides the load options:

    - ``cluster``: shard the run over ``dask.distributed`` workers: ``True`` or ``"local"``
      (a ``LocalCluster`` of 2 worker processes, closed afterwards), an int (that many
      processes), a ``distributed.Client`` (used as is), a cluster object or a scheduler
      address (connected to, then disconnected). See :mod:`glm_live.bench.cluster`.
    - ``cluster_timeout``: seconds to start or reach the cluster and for its workers to answer.
    - ``shard``: run only this :class:`Shard` of the load (what each worker does).
    """

    def __init__(
        self,
        url: str,
        *,
        concurrency: int | None = 1,
        requests: int = 100,
        rate: float | None = None,
        arrivals: str = "poisson",
        burstiness: float = 1.0,
        warmup: int = 0,
        prompts: str | Path | Sequence[str] | None = None,
        prompt_tokens: int | None = None,
        model: str = "glm-4.6",
        api_key: str | None = None,
        seed: int = 0,
        timeout: float = 300.0,
        progress: Progress | None = None,
        cluster: Any = None,
        cluster_timeout: float = 30.0,
        shard: Shard | None = None,
        **params: Any,
    ) -> None:
        if rate is None and not concurrency:
            msg = "give a concurrency (closed loop) or a rate (open loop)"
            raise ValueError(msg)
        if _wants_cluster(cluster) and shard is not None:
            msg = "a Benchmark is either a whole run (cluster=...) or one shard of it, not both"
            raise ValueError(msg)
        if shard is not None and (shard.offsets is None) != (rate is None):
            msg = "a shard has arrival offsets exactly when the run is open loop (rate=...)"
            raise ValueError(msg)
        if arrivals not in ("poisson", "gamma", "constant"):
            msg = f"arrivals must be poisson, gamma or constant, got {arrivals!r}"
            raise ValueError(msg)
        self.url = chat_url(url)
        self.config = {
            "url": self.url,
            "concurrency": concurrency,
            "requests": requests,
            "rate": rate,
            "arrivals": arrivals,
            "burstiness": burstiness,
            "warmup": warmup,
            "model": model,
            "seed": seed,
            "params": params,
        }
        self.concurrency = concurrency
        self.total = warmup + requests if shard is None else len(shard.indices)
        self.warmup = warmup
        self.rate = rate
        self.arrival_kind = arrivals
        self.burstiness = burstiness
        self.seed = seed
        self.model = model
        self.params = params
        self.prompts = prompts_from(prompts, prompt_tokens, seed)
        self.cluster = cluster if _wants_cluster(cluster) else None
        self.cluster_timeout = cluster_timeout
        self.shard = shard
        self.indices = list(range(self.total)) if shard is None else list(shard.indices)
        # What each shard's Benchmark is built with (the api_key travels to the workers, and
        # nowhere else: it is not in the config).
        self.shard_options: dict[str, Any] = {
            **{k: v for k, v in self.config.items() if k not in ("url", "params")},
            **params,
            "prompts": self.prompts,
            "api_key": api_key,
            "timeout": timeout,
        }
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = StreamClient(self.url, headers=headers, timeout=timeout)
        self.progress = progress
        #: How late this process started after its shard's common start (ns).
        self.late_ns = 0
        self.recorder = Recorder()
        self._responses: dict[int, tuple[Response, int, BaseException | None]] = {}
        self._stopped = asyncio.Event()
        self._lag: list[float] = []
        self.cancelled = False

    def cancel(self) -> None:
        """Stop scheduling, cancel what is in flight; :meth:`run` returns the partial result."""
        self.cancelled = True
        self._stopped.set()

    def _body(self, index: int) -> bytes:
        prompt = self.prompts[index % len(self.prompts)]
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
            **self.params,
        }
        return json.dumps(body).encode()

    async def _one(self, index: int, scheduled_ns: int) -> None:
        response = Response()
        error: BaseException | None = None
        try:
            await self.client.post(self._body(index), response)
        except asyncio.CancelledError as exc:
            error = exc
        except (OSError, TimeoutError, HTTPResponseError, ConnectionError) as exc:
            error = exc
        self._responses[index] = (response, scheduled_ns, error)

    async def _monitor(self) -> None:
        interval = 0.005
        while not self._stopped.is_set():
            start = time.perf_counter()
            await asyncio.sleep(interval)
            self._lag.append(max(0.0, time.perf_counter() - start - interval))

    async def _report(self) -> None:
        while not self._stopped.is_set():
            await asyncio.sleep(0.25)
            if self.progress is not None:
                self.progress(self._snapshot())

    def ttfts_ms(self) -> list[float]:
        """Time to the first event of every request that finished so far (ms)."""
        return [
            (r.arrivals[0] - scheduled) / 1e6
            for r, scheduled, error in self._responses.values()
            if error is None and r.arrivals
        ]

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

    def _snapshot(self) -> dict[str, Any]:
        return snapshot(len(self._responses), self.total, self.ttfts_ms(), self.errors)

    async def run(self) -> BenchResult:
        """Run the benchmark (cancelling this task, or :meth:`cancel`, keeps partial data)."""
        if self.cluster is not None:
            from .cluster import run_sharded

            return await run_sharded(self)
        started_wall = await self.execute()
        return self._result(started_wall)

    async def execute(self) -> float:
        """Send the load and keep the raw responses; returns the wall-clock start (s).

        :meth:`run` is this, then the frames; a shard on a worker ships :meth:`record`'s
        recorder back instead, so that the frames are built once, from all the shards.
        """
        monitor = asyncio.ensure_future(self._monitor())
        reporter = asyncio.ensure_future(self._report())
        started_wall = time.time()
        tasks: list[asyncio.Task[None]] = []
        try:
            offsets = None if self.rate is None else self._offsets()
            start = await self._start()
            if offsets is None:
                await self._closed_loop(tasks)
            else:
                await self._open_loop(tasks, offsets, start)
        except asyncio.CancelledError:
            self.cancelled = True
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._stopped.set()
            monitor.cancel()
            reporter.cancel()
            self.client.close()
        if self.progress is not None:
            self.progress(self._snapshot())
        return started_wall

    async def _start(self) -> int:
        """The start on ``perf_counter_ns``: now, or a shard's common instant, waited for."""
        if self.shard is None or self.shard.start_wall_ns is None:
            return time.perf_counter_ns()
        start = time.perf_counter_ns() + (self.shard.start_wall_ns - time.time_ns())
        delay = (start - time.perf_counter_ns()) / 1e9
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)
        self.late_ns = max(0, time.perf_counter_ns() - start)
        return start

    async def _closed_loop(self, tasks: list[asyncio.Task[None]]) -> None:
        counter = iter(self.indices)

        async def worker() -> None:
            for index in counter:
                if self._stopped.is_set():
                    return
                await self._one(index, time.perf_counter_ns())

        workers = [asyncio.ensure_future(worker()) for _ in range(self.concurrency or 1)]
        tasks.extend(workers)
        await _until(workers, asyncio.ensure_future(self._stopped.wait()))

    def _offsets(self) -> list[float]:
        """The open loop's arrivals (s after the start): a shard's, or drawn from the seed."""
        assert self.rate is not None
        if self.shard is not None and self.shard.offsets is not None:
            return list(self.shard.offsets)
        return _arrivals(self.total, self.rate, self.arrival_kind, self.burstiness, self.seed)

    async def _open_loop(
        self, tasks: list[asyncio.Task[None]], offsets: list[float], start: int
    ) -> None:
        limit = asyncio.Semaphore(self.concurrency) if self.concurrency else None

        async def limited(index: int, scheduled: int) -> None:
            if limit is None:
                await self._one(index, scheduled)
                return
            async with limit:
                await self._one(index, scheduled)

        for index, offset in zip(self.indices, offsets, strict=True):
            scheduled = start + int(offset * 1e9)
            delay = (scheduled - time.perf_counter_ns()) / 1e9
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
            if self._stopped.is_set():
                break
            tasks.append(asyncio.ensure_future(limited(index, scheduled)))
        await _until(tasks, asyncio.ensure_future(self._stopped.wait()))

    def _result(self, started_wall: float) -> BenchResult:
        return BenchResult.from_recorder(
            self.record(),
            config=self.config,
            lag_s=self._lag,
            cancelled=self.cancelled,
            started_wall=started_wall,
        )

    def record(self) -> Recorder:
        """Parse the responses into :attr:`recorder`, one request per global index in order
        (after the run: JSON stays off the hot path). Returns the recorder."""
        recorder = self.recorder
        for index in self.sent:
            response, scheduled, error = self._responses[index]
            number = recorder.begin(
                f"request {index}", kind="bench", model=self.model, scheduled_ns=scheduled
            )
            timings, usage, model = _feed(recorder, number, response)
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
                phase="warmup" if index < self.warmup else "measure",
                http_status=response.status or None,
                chunks=len(response.events),
            )
            if model:
                recorder._requests[number].model = model
        return recorder


async def _until(tasks: Iterable[asyncio.Future[Any]], stop: asyncio.Future[Any]) -> None:
    pending = set(tasks)
    try:
        while pending and not stop.done():
            _, pending = await asyncio.wait(pending | {stop}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(stop)
    finally:
        stop.cancel()


def _feed(
    recorder: Recorder, number: int, response: Response
) -> tuple[Timings, dict[str, Any] | None, str | None]:
    """Parse a finished response's events (after the run: JSON stays off the hot path)."""
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
        if chunk.usage is not None:
            usage = dict(chunk.usage)
        model = model or raw.get("model")
    return timings, usage, model


async def run(url: str, **options: Any) -> BenchResult:
    """Benchmark ``url`` (see :class:`Benchmark` for the options; unknown ones go into the
    request body, e.g. ``sim={...}`` or ``max_tokens``).

    With ``cluster=...`` the load is sharded over ``dask.distributed`` workers
    (:mod:`glm_live.measure.bench.cluster`). :func:`glm_live.bench.run` is this with a live
    progress view in a notebook.
    """
    return await Benchmark(url, **options).run()


async def sweep(
    url: str,
    *,
    concurrency: Sequence[int] | None = None,
    rate: Sequence[float] | None = None,
    each: Callable[..., Awaitable[BenchResult]] = run,
    **options: Any,
) -> list[BenchResult]:
    """One run per concurrency (or per rate), in order; ``each`` makes one run.

    With ``cluster=...`` the cluster is started (or connected to) once, for all the runs.
    """
    if _wants_cluster(options.get("cluster")):
        from .cluster import Connection, connect

        if not isinstance(options["cluster"], Connection):
            async with connect(
                options.pop("cluster"), timeout=options.get("cluster_timeout", 30.0)
            ) as connection:
                return await sweep(
                    url,
                    concurrency=concurrency,
                    rate=rate,
                    each=each,
                    cluster=connection,
                    **options,
                )
    if rate is not None:
        return [await each(url, rate=r, **options) for r in rate]
    return [await each(url, concurrency=c, **options) for c in concurrency or [1]]
