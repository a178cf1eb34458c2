"""The benchmark's front door: :class:`Benchmark`, :func:`run` and :func:`sweep`.

A :class:`Benchmark` resolves its options into a :class:`~.load.Load` and picks how to run
it by what it is given, as a strategy object:

- :class:`~.local.Local`: the whole run in this process (the default), or, with
  ``shard=``, one :class:`~.load.Shard` of it (what each cluster worker runs);
- :class:`~.cluster.Sharded`: with ``cluster=``, the load split over ``dask.distributed``
  workers, each running a :class:`~.local.Local` shard, and merged into one result.

How load is generated and timed is in :mod:`.local`; how it is sharded, in :mod:`.cluster`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .cluster import Connection, Sharded, connect
from .load import Load, Progress, Shard, Strategy, chat_url, prompts_from
from .local import Local
from .results import BenchResult
from .telemetry import Scraper, metrics_url_for
from .workloads import MOONCAKE_BLOCK, Sessions, Trace, read_trace

__all__ = ["Benchmark", "Shard", "chat_url", "prompts_from", "run", "sweep"]


_UNSET: Any = object()  # concurrency not given: 1, or no cap for a trace


def _wants_cluster(cluster: Any) -> bool:
    # False is "no cluster", as None is; 0 is not (it is a bad number of workers).
    return cluster is not None and cluster is not False


class Benchmark:
    """One benchmark run; :meth:`cancel` stops it and :meth:`run` returns what it has.

    Keyword-only, besides the load options (see :class:`~.load.Load`; unknown options go
    into the request body, e.g. ``sim={...}`` or ``max_tokens``):

    - ``cluster``: shard the run over ``dask.distributed`` workers: ``True`` or ``"local"``
      (a ``LocalCluster`` of 2 worker processes, closed afterwards), an int (that many
      processes), a ``distributed.Client`` (used as is), a cluster object or a scheduler
      address (connected to, then disconnected). See :mod:`glm_live.bench.cluster`.
    - ``cluster_timeout``: seconds to start or reach the cluster and for its workers to answer.
    - ``shard``: run only this :class:`Shard` of the load (what each worker does).
    - ``progress``: called with a snapshot of the run as it goes (settable afterwards too).
    - ``metrics_url``: scrape this Prometheus endpoint while the run goes, into
      ``result.telemetry`` (see :mod:`.telemetry`); ``True``: the ``/metrics`` of the
      benchmarked server (the runtime's own). Off by default. A failed scrape is counted
      (``result.calibration["telemetry"]``), never fatal.
    - ``metrics_interval``: seconds between scrapes (0.5).
    - ``metrics_token``: the scrape's bearer token (the runtime's ``/metrics`` wants the admin
      token); default: ``api_key`` when the metrics come from the benchmarked server, none
      otherwise. Never in the result.

    Workloads (:mod:`.workloads`):

    - ``workload=Sessions(count, turns, think_time_s)``: multi-turn conversations,
      ``concurrency`` of them in flight; the requests frame gets ``session``, ``turn`` and
      ``think_s`` columns. Cannot be sharded.
    - ``shared_prefix_tokens=N``: a system prompt of N tokens on every request.
    - ``unique_prefix_tokens=N``: a system prompt of N tokens unique to each request and run
      (cache busting), drawn from ``prefix_seed`` (random unless given; in the config).
    - ``trace="path.jsonl"`` (or a :class:`~.workloads.Trace`): replay a Mooncake trace at
      its timestamps (``trace_speed`` times faster), each hash id a block of ``block_size``
      tokens; ``concurrency`` caps requests in flight only when given.
    - ``tokenizer``: counts the ``input_tokens`` and ``output_tokens`` columns: a
      ``tokenizer.json`` path or ``"tiktoken:<encoding>"``; words otherwise. The config's
      ``token_counter`` says which.

    Attributes:
        load: The resolved options.
        strategy: How the load is run: a :class:`~.local.Local` or a
            :class:`~.cluster.Sharded`.
        progress: The progress callback, or ``None``.

    Raises:
        ValueError: Neither a concurrency nor a rate, an unknown arrival process, both
            ``cluster`` and ``shard``, or a shard that does not fit the loop.
    """

    def __init__(
        self,
        url: str,
        *,
        concurrency: int | None = _UNSET,
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
        metrics_url: str | bool | None = None,
        metrics_interval: float = 0.5,
        metrics_token: str | None = None,
        workload: Sessions | None = None,
        trace: str | Path | Trace | None = None,
        trace_speed: float = 1.0,
        block_size: int = MOONCAKE_BLOCK,
        shared_prefix_tokens: int = 0,
        unique_prefix_tokens: int = 0,
        prefix_seed: int | None = None,
        tokenizer: str | Path | None = None,
        **params: Any,
    ) -> None:
        if _wants_cluster(cluster) and shard is not None:
            msg = "a Benchmark is either a whole run (cluster=...) or one shard of it, not both"
            raise ValueError(msg)
        if workload is not None and not isinstance(workload, Sessions):
            msg = f"workload must be a Sessions(...), got {workload!r}"
            raise TypeError(msg)
        if trace is not None and not isinstance(trace, Trace):
            trace = read_trace(trace, speed=trace_speed, block_size=block_size, seed=seed)
        if concurrency is _UNSET:
            concurrency = None if trace is not None else 1
        if unique_prefix_tokens and prefix_seed is None:
            # Unique per run unless asked otherwise: a fixed seed would repeat the prefixes
            # of the last run, and benchmark the prefix cache by accident (vLLM#54227).
            prefix_seed = secrets.randbits(63)
        if trace is not None:
            requests = len(trace) - warmup
        elif workload is not None:
            requests = workload.total - warmup
        self.load = Load(
            url=chat_url(url),
            concurrency=concurrency,
            requests=requests,
            rate=rate,
            arrivals=arrivals,
            burstiness=burstiness,
            warmup=warmup,
            prompts=tuple(prompts_from(prompts, prompt_tokens, seed)),
            model=model,
            seed=seed,
            params=params,
            timeout=timeout,
            api_key=api_key,
            shared_prefix_tokens=shared_prefix_tokens,
            unique_prefix_tokens=unique_prefix_tokens,
            prefix_seed=prefix_seed,
            trace=trace,
            sessions=workload,
            tokenizer=None if tokenizer is None else str(tokenizer),
        )
        self.strategy: Strategy = (
            Sharded(self.load, cluster, timeout=cluster_timeout)
            if _wants_cluster(cluster)
            else Local(self.load, shard)
        )
        self.progress = progress
        #: Scrapes the server's metrics during :meth:`run` (``metrics_url=...``), or ``None``.
        self.scraper: Scraper | None = None
        if metrics_url:
            target = metrics_url_for(self.load.url) if metrics_url is True else str(metrics_url)
            same = urlsplit(target)[:2] == urlsplit(self.load.url)[:2]
            self.scraper = Scraper(
                target,
                interval=metrics_interval,
                token=metrics_token if metrics_token is not None else (api_key if same else None),
            )

    @property
    def url(self) -> str:
        """The chat-completions URL the requests go to."""
        return self.load.url

    @property
    def config(self) -> dict[str, Any]:
        """How the run was asked for, as its result reports it (no API key)."""
        return self.load.config()

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled."""
        return self.strategy.cancelled

    def cancel(self) -> None:
        """Stop scheduling, cancel what is in flight; :meth:`run` returns the partial result."""
        self.strategy.cancel()

    async def run(self) -> BenchResult:
        """Run the benchmark (cancelling this task, or :meth:`cancel`, keeps partial data).

        Raises:
            ClusterError: A sharded run could not reach or use its cluster, or a worker
                failed (what the others returned is on its ``partial``).
        """
        scraper = self.scraper
        if scraper is None:
            return await self.strategy.run(self.progress)
        scraper.start()
        try:
            result = await self.strategy.run(self.progress)
        finally:
            # Off the loop: the last scrape and the thread's end may take a scrape's timeout.
            await asyncio.get_running_loop().run_in_executor(None, scraper.stop)
        result.config.update(metrics_url=scraper.url, metrics_interval=scraper.interval)
        return result.with_telemetry(scraper.frame(), scraper.info())


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
    cluster = options.get("cluster")
    if _wants_cluster(cluster) and not isinstance(cluster, Connection):
        del options["cluster"]
        async with connect(cluster, timeout=options.get("cluster_timeout", 30.0)) as connection:
            return await sweep(
                url, concurrency=concurrency, rate=rate, each=each, cluster=connection, **options
            )
    if rate is not None:
        return [await each(url, rate=r, **options) for r in rate]
    return [await each(url, concurrency=c, **options) for c in concurrency or [1]]
