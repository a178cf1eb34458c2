"""The :class:`Sharded` strategy: a benchmark split over ``dask.distributed`` workers,
``await bench.run(url, cluster=X)``.

Why: one process reads every stream on one event loop; at thousands of streams its reads
queue behind each other and its timing error grows (``benchmarks/loadgen_accuracy.py``). Several
processes, or machines, each reading a share of the streams, keep it down
(``benchmarks/dask_shards.py`` measures by how much).

How a sharded run goes:

1. :func:`connect` resolves ``X``: ``True``/``"local"``/an int starts a ``LocalCluster`` of
   worker processes (closed afterwards); a ``distributed.Client`` is used as is; a cluster
   object or a scheduler address gets a client of its own (closed afterwards). Blocking
   client calls run in a thread (:meth:`Connection.call`), so the notebook kernel's loop and
   the background loop keep running; an asynchronous client is awaited instead.
2. :func:`plan` splits the load. Closed loop: worker ``w`` owns the concurrency slots
   ``s`` with ``s % n == w``, and global request ``k`` goes to the owner of slot ``k % C``,
   as the first ``C`` requests of one process go to slots ``0..C-1``. So each worker sends
   requests in proportion to its slots (evenly when ``n`` divides ``C``), prompts cycle by
   global index, and the warm-up is spread alike. Open loop: the driver draws the whole
   arrival schedule once, with the run's seed, and deals arrival ``k`` to worker ``k % n``
   with its global index and offset; a concurrency cap is split like the slots.
3. :func:`probe_clocks` asks each worker for its wall clock a few times and keeps the probe
   with the shortest round trip: offset = worker clock - midpoint, uncertainty = half the
   round trip (Cristian's algorithm). The probe also proves the worker can import glm_live
   before any load is sent.
4. The driver picks a start instant on the wall clock, about a second ahead; every worker
   (:func:`run_shard`, one task pinned to each) turns it into an instant on its own monotonic
   clock, waits for it and runs a :class:`~.local.Local` strategy with its
   :class:`~.load.Shard`. A thread polls a named ``distributed.Event`` every 0.25 s,
   so that :meth:`Sharded.cancel` on the driver stops every worker; what they had is kept.
5. :func:`merge` puts each worker's recorder on the driver's monotonic clock (worker clock ->
   its wall clock by its anchor -> minus its offset, when the offset is larger than its
   uncertainty -> the driver's monotonic clock) and builds the frames exactly as a local run
   does, plus a ``worker`` column. Wall-clock columns stay each worker's own stamps, and the
   events' ``sent_ns`` is the server's: timing error is a worker's arrival on its wall clock
   minus the server's send stamp, on the machine that received the chunk.
   ``calibration["clock"]`` says how well the workers' clocks agreed, by the probes and, when
   the server stamps its chunks, by each worker's smallest arrival-minus-send.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ...errors import GlmLiveError
from ...wire._secret import scrub
from .load import Load, Progress, Shard, monotonic_at, snapshot
from .local import Local
from .results import BenchResult
from .shards import ShardOutput, merge, plan

__all__ = [
    "ClusterError",
    "Connection",
    "Sharded",
    "connect",
    "local_cluster",
    "local_workers",
    "probe_clocks",
    "run_shard",
]


class ClusterError(GlmLiveError):
    """A benchmark sharded over ``dask.distributed`` workers could not use its cluster.

    The message says which worker or address failed and what to do about it. A failure of
    glm_live's own load generator on a worker is chained as ``__cause__``.

    Attributes:
        partial: What the workers that did finish returned, merged into one
            :class:`~.results.BenchResult`; ``None`` when nothing came back.
    """

    def __init__(self, message: str, *, partial: BenchResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


_INSTALL = "pip install 'glm_live[dask]'"
_LOCAL_WORKERS = 2  # cluster=True: two worker processes, one thread each
_LEAD_S = 1.0  # from picking the start to the start: dispatching a task takes milliseconds
_PROBES = 7  # clock probes per worker; the shortest round trip wins
_POLL_S = 0.25  # how often a worker looks for the stop signal
_CHECK_S = 1.0  # how often the driver looks for workers that left
_GRACE_S = 30.0  # after a cancel, how long the workers get to send back what they have


def _distributed() -> Any:
    """``distributed``, imported on first use: dask is an optional extra."""
    try:
        import distributed
    except ImportError as exc:
        msg = f"bench.run(..., cluster=...) needs dask.distributed: {_INSTALL}"
        raise ImportError(msg) from exc
    return distributed


# -- connecting --------------------------------------------------------------------------------


@dataclass
class Connection:
    """A dask client for sharded runs, and what to close when done.

    Attributes:
        client: The ``distributed.Client``.
        given: How the cluster was given: ``local``, ``client``, ``cluster`` or ``address``.
        address: The scheduler's address.
        owned: What :func:`connect` started and closes afterwards (client, cluster), in
            the order to close them.
    """

    client: Any
    given: str
    address: str
    owned: list[Any] = field(default_factory=list)

    @property
    def asynchronous(self) -> bool:
        return bool(self.client.asynchronous)

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A client method: awaited on an asynchronous client; on a synchronous one it
        blocks, so it runs in a thread and the event loop keeps serving."""
        if self.asynchronous:
            return await method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)

    async def workers(self, timeout: float) -> dict[str, str]:
        """Worker address -> name, sorted by address; waits up to ``timeout`` for one."""
        try:
            # Bounded twice: a thread blocked in the client cannot be cancelled from here.
            waiting = self.call(self.client.wait_for_workers, 1, timeout=timeout)
            await asyncio.wait_for(waiting, timeout + 5)
        except (TimeoutError, OSError) as exc:
            msg = (
                f"the dask scheduler at {self.address} has no workers after {timeout:g} s: "
                f"start some (dask worker {self.address}) or give cluster=True for local ones"
            )
            raise ClusterError(msg) from exc
        if self.asynchronous:
            info = await self.client.scheduler.identity(n_workers=-1)
        else:
            info = await asyncio.to_thread(self.client.scheduler_info, n_workers=-1)
        return {a: str(w.get("name", a)) for a, w in sorted(info["workers"].items())}

    async def close(self) -> None:
        await _close(self.owned)


async def _close(things: Sequence[Any]) -> None:
    for thing in things:
        with contextlib.suppress(Exception):  # closing must not hide the run's outcome
            await asyncio.to_thread(thing.close)


async def _started(make: Callable[[], list[Any]]) -> list[Any]:
    """``make()`` (start a cluster, connect a client: blocking) in a thread. Cancelling the
    caller cannot stop that thread: what it starts is closed once it has, not left behind."""
    starting = asyncio.ensure_future(asyncio.to_thread(make))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await _close(await starting)
        raise


def local_workers(cluster: Any) -> int | None:
    """How many worker processes ``cluster=`` asks to start locally (``None``: not local)."""
    if cluster is True or cluster == "local":
        return _LOCAL_WORKERS
    if isinstance(cluster, int) and not isinstance(cluster, bool):
        if cluster < 1:
            msg = f"cluster={cluster}: give a number of worker processes >= 1, or True for 2"
            raise ValueError(msg)
        return cluster
    return None


def local_cluster(n_workers: int = _LOCAL_WORKERS) -> Any:
    """A ``distributed.LocalCluster`` for sharded runs on this machine: ``n_workers``
    processes with one thread each (a shard's event loop is its worker's only task), no
    dashboard. The scheduler's HTTP server (health, metrics) still starts; it gets a free
    loopback port, where the default, 8787, is often taken (by another cluster, or Jupyter's
    dask extension) and then costs a warning."""
    return _distributed().LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
    )


@contextlib.asynccontextmanager
async def connect(cluster: Any, *, timeout: float = 30.0) -> AsyncIterator[Connection]:
    """A :class:`Connection` to ``cluster`` (see the module docstring), closed afterwards
    when this opened it.

    Raises:
        ImportError: dask.distributed is not installed.
        TypeError: ``cluster`` is none of the accepted kinds.
        ClusterError: The scheduler could not be reached within ``timeout`` seconds.
    """
    if isinstance(cluster, Connection):  # already open (a sweep's): borrowed, not closed
        yield Connection(cluster.client, cluster.given, cluster.address)
        return
    connection = await _open(cluster, timeout)
    try:
        yield connection
    finally:
        await connection.close()


async def _open(cluster: Any, timeout: float) -> Connection:
    distributed = _distributed()
    n = local_workers(cluster)
    if n is not None:

        def start() -> list[Any]:
            local = local_cluster(n)
            try:
                return [distributed.Client(local, set_as_default=False, timeout=timeout), local]
            except BaseException:
                local.close()
                raise

        client, local = await _started(start)
        return Connection(client, "local", local.scheduler_address, [client, local])
    if isinstance(cluster, distributed.Client):
        loop = getattr(cluster.loop, "asyncio_loop", None)
        if cluster.asynchronous and loop is not asyncio.get_running_loop():
            msg = (
                "this asynchronous dask Client belongs to another event loop: pass a "
                "synchronous Client, the cluster or its scheduler address instead"
            )
            raise ClusterError(msg)
        return Connection(cluster, "client", str(cluster.scheduler.address))
    if isinstance(cluster, str):
        given, address, security = "address", cluster, None
    elif hasattr(cluster, "scheduler_address"):
        given, address = "cluster", str(cluster.scheduler_address)
        security = getattr(cluster, "security", None)
    else:
        msg = (
            "cluster= takes True (2 local worker processes), a number of local worker "
            "processes, a distributed.Client, a dask cluster object or a scheduler address "
            f"such as 'tcp://host:8786'; got {type(cluster).__name__}"
        )
        raise TypeError(msg)
    try:
        (client,) = await _started(
            lambda: [
                distributed.Client(
                    address, timeout=timeout, set_as_default=False, security=security
                )
            ]
        )
    except (OSError, TimeoutError, ValueError) as exc:
        msg = (
            f"could not reach the dask scheduler at {address!r} within {timeout:g} s ({exc}): "
            "check the address (e.g. tcp://host:8786) and that the scheduler is running, "
            "or give cluster=True for local worker processes"
        )
        raise ClusterError(msg) from exc
    return Connection(client, given, address, [client])


# -- clocks --------------------------------------------------------------------------------------


def _clock() -> tuple[int, int]:
    """Runs on a worker: its wall clock and its monotonic clock, now."""
    return time.time_ns(), time.perf_counter_ns()


def _timed(call: Callable[[], Any]) -> tuple[int, Any, int]:
    # Stamped in the thread that blocks, so the hop to that thread is not in the round trip.
    before = time.time_ns()
    answer = call()
    return before, answer, time.time_ns()


async def probe_clocks(
    connection: Connection, addresses: Sequence[str], *, timeout: float, probes: int = _PROBES
) -> dict[str, tuple[int, int]]:
    """Each worker's wall-clock offset from this process and the round trip that measured it
    (ns), from the fastest of ``probes`` probes.

    Raises:
        ClusterError: A worker cannot load glm_live, or did not answer within ``timeout``.
    """
    client = connection.client
    out: dict[str, tuple[int, int]] = {}
    for address in addresses:
        best: tuple[int, int] | None = None
        for _ in range(probes):
            try:
                if connection.asynchronous:
                    before = time.time_ns()
                    answer = await asyncio.wait_for(client.run(_clock, workers=[address]), timeout)
                    after = time.time_ns()
                else:
                    probe = asyncio.to_thread(
                        _timed, functools.partial(client.run, _clock, workers=[address])
                    )
                    before, answer, after = await asyncio.wait_for(probe, timeout)
            except TimeoutError as exc:
                msg = (
                    f"dask worker {address} did not answer a clock probe within {timeout:g} s: "
                    "is it alive, and reachable from here?"
                )
                raise ClusterError(msg) from exc
            except Exception as exc:
                raise ClusterError(_failure(address, exc, "a clock probe")) from exc
            wall, _ = answer[address]
            rtt = after - before
            if best is None or rtt < best[1]:
                best = (wall - (before + after) // 2, rtt)
        assert best is not None
        out[address] = best
    return out


# -- the workers' side ---------------------------------------------------------------------------


def run_shard(load: Load, shard: Shard, stop: str) -> ShardOutput:
    """The dask task: run ``shard`` of ``load`` on this worker, with a :class:`~.local.Local`
    strategy in a new event loop in the task's thread.

    ``load`` carries the API key: it has to travel, and its repr (which dask logs for a
    failed task) leaves it out. ``stop`` names the ``distributed.Event`` that the driver sets
    to cancel the run.
    """
    distributed = _distributed()
    worker = distributed.get_worker()
    # The Event's client must come from the task's thread: get_client() fails in others.
    event = distributed.Event(stop, client=distributed.get_client())

    async def main() -> Local:
        local = Local(load, shard)
        loop = asyncio.get_running_loop()
        finished = threading.Event()
        watcher = threading.Thread(
            target=_watch, args=(event, finished, loop, local.cancel), daemon=True
        )
        watcher.start()
        try:
            await local.execute()
        finally:
            finished.set()
            await asyncio.to_thread(watcher.join, 4 * _POLL_S)
        return local

    local = asyncio.run(main())
    recorder = local.record()
    return ShardOutput(
        address=str(worker.address),
        name=str(worker.name),
        recorder=recorder,
        indices=local.sent,
        lag_s=local.lag_s,
        late_ns=local.late_ns,
        cancelled=local.cancelled,
        ttfts_ms=local.ttfts_ms(),
        errors=local.errors,
    )


def _watch(
    event: Any,
    finished: threading.Event,
    loop: asyncio.AbstractEventLoop,
    cancel: Callable[[], None],
) -> None:
    """Until the shard ends: wait for the stop signal in slices of 0.25 s, then cancel."""
    while not finished.is_set():
        try:
            stopped = event.wait(_POLL_S)
        except Exception:  # the scheduler went away: the shard runs on, to its own end
            return
        if stopped:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to stop
                loop.call_soon_threadsafe(cancel)
            return


# -- the driver's side ---------------------------------------------------------------------------


class Sharded:
    """Runs a :class:`~.load.Load` over a dask cluster: plan the shards, run each on its
    worker (:func:`run_shard`), merge what comes back (how: the module docstring).

    Args:
        load: What to send, all of it.
        cluster: The cluster as the user gave it (``True``, ``"local"``, a number of local
            worker processes, a ``distributed.Client``, a cluster object, a scheduler
            address, or a sweep's open :class:`Connection`).
        timeout: Seconds to start or reach the cluster and for its workers to answer.
    """

    def __init__(self, load: Load, cluster: Any, *, timeout: float = 30.0) -> None:
        if load.sessions is not None:
            msg = (
                "multi-turn sessions cannot be sharded: each turn waits for the answer to the "
                "previous one in the same process; run them without cluster=..."
            )
            raise ValueError(msg)
        self.load = load
        self.cluster = cluster
        self.timeout = timeout
        self._cancelled = False
        self._progress: Progress | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled (by :meth:`cancel` or by cancelling its task)."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop every worker; :meth:`run` returns what they had (the driver passes the
        signal on within 0.25 s, the workers notice it within 0.25 s more)."""
        self._cancelled = True

    async def run(self, progress: Progress | None = None) -> BenchResult:
        """Run the load over the cluster; cancelling this task stops every worker and
        returns what they had, as :meth:`cancel` does.

        Args:
            progress: Called with a snapshot as each worker's shard comes back.

        Raises:
            ValueError: The load cannot be split over the workers.
            ClusterError: The cluster could not be reached or used, or a worker failed; what
                the others returned is on its ``partial``.
        """
        self._progress = progress
        load = self.load
        offsets = load.schedule()  # drawn once, here, so the schedule is the seed's
        local = local_workers(self.cluster)
        if local is not None:  # a load that cannot be split fails before processes start
            plan(local, total=load.total, concurrency=load.concurrency, offsets=offsets)
        async with connect(self.cluster, timeout=self.timeout) as connection:
            return await self._drive(connection, offsets)

    async def _drive(self, connection: Connection, offsets: list[float] | None) -> BenchResult:
        load, timeout = self.load, self.timeout
        workers = await connection.workers(timeout)
        shares = plan(len(workers), total=load.total, concurrency=load.concurrency, offsets=offsets)
        assigned = {a: share for a, share in zip(workers, shares, strict=True) if share.indices}
        clocks = await probe_clocks(connection, list(assigned), timeout=timeout)
        run_id = uuid.uuid4().hex[:12]
        stop = f"glm-live-bench-stop-{run_id}"
        start_wall_ns = time.time_ns() + int(_LEAD_S * 1e9)
        anchor_ns = monotonic_at(start_wall_ns)
        futures = {
            address: connection.client.submit(
                run_shard,
                replace(load, concurrency=share.concurrency),
                Shard(share.indices, share.offsets, start_wall_ns),
                stop,
                key=f"glm-live-shard-{run_id}-{w}",
                workers=[address],
                allow_other_workers=False,  # a shard is its worker's share of the load
                pure=False,
            )
            for w, (address, share) in enumerate(assigned.items())
        }
        outputs, failures, cause = await _gather(self, connection, futures, stop)
        config = {
            **load.config(),
            "cluster": {
                "given": connection.given,
                "scheduler": connection.address,
                "workers": [
                    {
                        "address": address,
                        "name": workers[address],
                        "concurrency": share.concurrency,
                        "requests": len(share.indices),
                    }
                    for address, share in assigned.items()
                ],
            },
        }
        result = merge(
            outputs,
            config=config,
            clocks=clocks,
            anchor_ns=anchor_ns,
            anchor_wall_ns=start_wall_ns,
            cancelled=self._cancelled or any(o.cancelled for o in outputs),
        )
        if failures:
            msg = scrub(
                "; ".join(failures.values())
                + f". What the other {len(outputs)} worker(s) returned is on .partial",
                [load.api_key],
            )
            raise ClusterError(msg, partial=result) from cause
        return result

    def report(self, outputs: Sequence[ShardOutput]) -> None:
        """Progress, as each worker's shard comes back (the workers do not stream it)."""
        if self._progress is None:
            return
        self._progress(
            snapshot(
                sum(len(o.indices) for o in outputs),
                self.load.total,
                [t for o in outputs for t in o.ttfts_ms],
                sum(o.errors for o in outputs),
            )
        )


async def _gather(
    strategy: Sharded, connection: Connection, futures: dict[str, Any], stop: str
) -> tuple[list[ShardOutput], dict[str, str], BaseException | None]:
    """Wait for every shard; meanwhile pass a cancel on to the workers, and notice workers
    that leave (a task pinned to a dead worker would otherwise wait forever) and a scheduler
    that stops answering. Returns the outputs, what failed where, and the first failure."""
    distributed = _distributed()
    timeout = strategy.timeout
    loop = asyncio.get_running_loop()
    finished: asyncio.Queue[str] = asyncio.Queue()

    def notify(address: str) -> Callable[[Any], None]:
        def done(_: Any) -> None:  # on a dask thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits now
                loop.call_soon_threadsafe(finished.put_nowait, address)

        return done

    async def call(method: Callable[..., Any]) -> Any:
        return await asyncio.wait_for(connection.call(method), timeout)

    for where, future in futures.items():
        future.add_done_callback(notify(where))
    pending = dict(futures)
    outputs: list[ShardOutput] = []
    failures: dict[str, str] = {}
    cause: BaseException | None = None

    async def give_up(addresses: Sequence[str], why: Callable[[str], str]) -> None:
        for address in addresses:
            failures[address] = why(address)
            with contextlib.suppress(Exception):  # it is lost either way
                await call(pending.pop(address).cancel)

    event = distributed.Event(stop, client=connection.client)
    signalled = False
    deadline = float("inf")
    checked = time.monotonic()
    strategy.report(outputs)
    while pending:
        address: str | None = None
        try:
            if strategy.cancelled and not signalled:
                signalled, deadline = True, time.monotonic() + _GRACE_S
                with contextlib.suppress(Exception):  # unreachable: the check below says so
                    await call(event.set)
            with contextlib.suppress(TimeoutError):
                address = await asyncio.wait_for(finished.get(), _POLL_S)
            if address in pending:
                try:
                    output = await asyncio.wait_for(
                        _outcome(connection, pending[address], timeout), timeout + 5
                    )
                except Exception as exc:
                    failures[address] = _failure(address, exc)
                    cause = cause or exc
                else:
                    outputs.append(output)
                    strategy.report(outputs)
                del pending[address]
                continue
            if time.monotonic() - checked >= _CHECK_S:
                checked = time.monotonic()
                try:
                    alive = set(await call(connection.client.nthreads))
                except Exception as exc:
                    await give_up(list(pending), functools.partial(_no_scheduler, connection, exc))
                    cause = cause or exc
                    continue
                await give_up(
                    [a for a in pending if a not in alive],
                    lambda a: (
                        f"dask worker {a} left the cluster (it died or was restarted) mid-run"
                    ),
                )
            if time.monotonic() > deadline:
                await give_up(
                    list(pending),
                    lambda a: f"dask worker {a} did not stop within {_GRACE_S:g} s of the cancel",
                )
        except asyncio.CancelledError:
            # Cancelling the run stops the workers and keeps what they had, as a local run
            # does: the cancellation is taken as a request, not propagated.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            strategy.cancel()
            if address is not None and address in pending:
                finished.put_nowait(address)  # it came back while we were interrupted
    if signalled:  # an Event left set stays in the scheduler's memory
        with contextlib.suppress(Exception):
            await call(event.clear)
    return outputs, failures, cause


def _no_scheduler(connection: Connection, exc: BaseException, address: str) -> str:
    return (
        f"the dask scheduler at {connection.address} stopped answering "
        f"({type(exc).__name__}: {exc}) before worker {address}'s shard came back"
    )


async def _outcome(connection: Connection, future: Any, timeout: float) -> ShardOutput:
    if connection.asynchronous:
        output = await future
    else:
        output = await asyncio.to_thread(future.result, timeout)
    if not isinstance(output, ShardOutput):
        msg = f"a shard returned {type(output).__name__}, not a ShardOutput"
        raise TypeError(msg)
    return output


def _failure(address: str, exc: BaseException, what: str = "its shard") -> str:
    """What went wrong on a worker, and what to do about it."""
    text = f"{type(exc).__name__}: {exc}"
    # A function that cannot be unpickled there comes back as a plain Exception whose text
    # names the ImportError.
    if isinstance(exc, ImportError) or (
        "glm_live" in text and ("ModuleNotFoundError" in text or "ImportError" in text)
    ):
        return (
            f"dask worker {address} cannot import glm_live ({text}): install it in the "
            f"workers' environment, the same version as here ({_INSTALL})"
        )
    if isinstance(exc, _distributed().client.FutureCancelledError):
        return f"dask worker {address} lost {what} ({text}): did the worker die?"
    return f"dask worker {address} failed {what}: {text}"
