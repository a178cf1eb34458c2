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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .cluster import Connection, Sharded, connect
from .load import Load, Progress, Shard, Strategy, chat_url, prompts_from
from .local import Local
from .results import BenchResult
from .telemetry import Scraper, metrics_url_for

__all__ = ["Benchmark", "Shard", "chat_url", "prompts_from", "run", "sweep"]


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
        metrics_url: str | bool | None = None,
        metrics_interval: float = 0.5,
        metrics_token: str | None = None,
        **params: Any,
    ) -> None:
        if _wants_cluster(cluster) and shard is not None:
            msg = "a Benchmark is either a whole run (cluster=...) or one shard of it, not both"
            raise ValueError(msg)
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
