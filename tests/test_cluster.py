"""Benchmarks sharded over dask.distributed workers, against the runtime on loopback and a real
LocalCluster of worker processes."""

from __future__ import annotations

import asyncio
import html
import json
import multiprocessing
import os
import secrets
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from distributed import Client, LocalCluster

from glm_live import bench
from glm_live.measure.bench import Benchmark, BenchResult, ClusterError
from glm_live.measure.bench.load import arrival_offsets
from glm_live.server import ServerHandle, serve
from tests.test_bench import assert_same_frames
from tests.test_search import search_the_knee

SIM = {"ttft_ms": 5, "itl_ms": 2, "tokens": 20}
SLOW = {"ttft_ms": 1, "itl_ms": 5, "tokens": 20}  # 0.1 s per request: long enough to cancel
# Worker processes with one thread each, no dashboard. The scheduler's HTTP server (health,
# metrics) still starts: on port 8787 by default, with a warning when that port is taken
# (another cluster, another test); a free loopback port avoids both.
LOCAL: dict[str, Any] = dict(
    threads_per_worker=1,
    processes=True,
    dashboard_address=None,
    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
)


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(n_workers=2, **LOCAL) as local:
        yield local


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster, set_as_default=False) as connected:
        yield connected


def addresses(client: Client) -> list[str]:
    client.wait_for_workers(2, timeout=60)
    return sorted(client.scheduler_info(n_workers=-1)["workers"])


def workers_processes() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


async def test_closed_loop_is_a_local_run_split_over_workers(
    runtime: ServerHandle, client: Client
) -> None:
    options: dict[str, Any] = dict(concurrency=4, requests=24, warmup=4, sim=SIM)
    local = await bench.run(runtime.url, api_key=runtime.token, **options)
    snapshots: list[dict[str, Any]] = []
    result = await bench.run(
        runtime.url, api_key=runtime.token, cluster=client, progress=snapshots.append, **options
    )
    r, e = result.requests, result.events
    # Progress moves as each worker's shard comes back.
    assert [s["done"] for s in snapshots] == [0, 14, 28]
    assert all(s["total"] == 28 for s in snapshots)
    assert snapshots[-1]["ttft_p50_ms"] is not None
    assert snapshots[-1]["errors"] == 0
    # The same frames as a local run, plus the worker.
    assert list(r.columns) == [*local.requests.columns, "worker"]
    assert list(e.columns) == [*local.events.columns, "worker"]
    assert r.drop(columns="worker").dtypes.equals(local.requests.dtypes)
    assert e.drop(columns="worker").dtypes.equals(local.events.dtypes)
    # Every request exactly once, numbered by global index as one process numbers them.
    assert list(r["request"]) == list(range(28))
    assert list(r["label"]) == [f"request {k}" for k in range(28)]
    assert (r["status"] == "ok").all()
    assert (r["phase"] == "warmup").sum() == (local.requests["phase"] == "warmup").sum() == 4
    assert len(e) == len(local.events)
    assert (e.groupby("request").size() == 22).all()  # role, 20 tokens, usage... and [DONE]
    # Two slots each: global requests alternate between the two workers.
    workers = addresses(client)
    assert set(r["worker"]) == set(workers)
    assert list(r["worker"]) == [workers[k % 2] for k in range(28)]
    assert (e["worker"].to_numpy() == r["worker"].to_numpy()[e["request"]]).all()
    cluster = result.config["cluster"]
    assert cluster["given"] == "client"
    assert [w["concurrency"] for w in cluster["workers"]] == [2, 2]
    assert [w["requests"] for w in cluster["workers"]] == [14, 14]
    # One clock: no request's first event comes before it was scheduled, on any worker.
    first = e.groupby("request")["arrival_ns"].min()
    assert (first.to_numpy() >= r["scheduled_ns"].to_numpy()).all()
    assert (r["sent_ns"] >= r["scheduled_ns"]).all()
    # Wall stamps are the workers' own; the merged monotonic stamps say the same thing,
    # within what the clock probes could tell.
    clock = result.calibration["clock"]
    anchor = e["arrival_ns"] - (e["t"] * 1e9).round().astype("int64")
    assert anchor.nunique() <= 2  # one anchor (float rounding may split it by a nanosecond)
    rebuilt = result.config["started_wall"] * 1e9 + e["t"] * 1e9
    assert (rebuilt - e["arrival_wall_ns"]).abs().max() <= clock["uncertainty_ms"] * 1e6 + 1e3
    # How well the clocks agreed.
    assert [w["worker"] for w in clock["workers"]] == workers
    for w in clock["workers"]:
        assert 0 < w["rtt_ms"] < 1000
        assert abs(w["offset_ms"]) <= w["rtt_ms"] / 2 + 1e-6  # one machine, one clock
        assert w["applied_offset_ms"] == 0.0
        assert w["server_min_delay_ms"] is not None
    assert 0 <= clock["spread_ms"] <= 2 * clock["uncertainty_ms"]
    assert clock["server_spread_ms"] is not None
    assert "workers' clocks agree within" in clock["agreement"]
    assert result.calibration["timing_error_p99_ms"] is not None
    assert "on 2 workers" in repr(result)
    shown = result._repr_mimebundle_()
    assert clock["agreement"] in shown["text/plain"]
    assert html.escape(clock["agreement"]) in shown["text/html"]


async def test_open_loop_deals_one_schedule_from_a_common_start(
    runtime: ServerHandle, client: Client
) -> None:
    options: dict[str, Any] = dict(
        rate=200, concurrency=4, requests=30, arrivals="gamma", burstiness=0.5, sim=SIM
    )
    result = await bench.run(runtime.url, api_key=runtime.token, cluster=client, **options)
    local = await bench.run(runtime.url, api_key=runtime.token, **options)
    r = result.requests
    assert len(r) == len(local.requests) == 30
    assert (r["status"] == "ok").all()
    assert r.drop(columns="worker").dtypes.equals(local.requests.dtypes)
    workers = addresses(client)
    assert list(r["worker"]) == [workers[k % 2] for k in range(30)]
    # The schedule is the seed's, as in a local run, and both workers started together:
    # on the merged clock, every request is scheduled at the common start plus its offset.
    offsets = np.array(arrival_offsets(30, 200, "gamma", 0.5, 0))
    scheduled = (r["scheduled_ns"] - r["scheduled_ns"].iloc[0]).to_numpy() / 1e9
    clock = result.calibration["clock"]
    assert np.abs(scheduled - offsets).max() * 1e3 <= clock["uncertainty_ms"] + 0.01
    assert (r["queue_ms"] >= 0).all()
    assert [w["concurrency"] for w in result.config["cluster"]["workers"]] == [2, 2]


async def test_the_ways_to_give_a_cluster(
    runtime: ServerHandle, cluster: LocalCluster, client: Client
) -> None:
    small: dict[str, Any] = dict(concurrency=2, requests=4, sim=SIM)
    given = {
        "cluster": await bench.run(runtime.url, api_key=runtime.token, cluster=cluster, **small),
        "address": await bench.run(
            runtime.url, api_key=runtime.token, cluster=cluster.scheduler_address, **small
        ),
        "client": await bench.run(runtime.url, api_key=runtime.token, cluster=client, **small),
    }
    for how, result in given.items():
        assert result.config["cluster"]["given"] == how
        assert result.config["cluster"]["scheduler"] == cluster.scheduler_address
        assert len(result.requests) == 4
        assert set(result.requests["worker"]) == set(addresses(client))
    # What was given is still usable afterwards: only what the run opened is closed.
    assert client.status == "running"
    assert client.submit(sum, [1, 2]).result(timeout=30) == 3

    before = workers_processes()
    assert len(before) >= 2  # the fixture's worker processes are children of this one
    result = await bench.run(runtime.url, api_key=runtime.token, cluster=True, **small)
    assert result.config["cluster"]["given"] == "local"
    assert result.config["cluster"]["scheduler"] != cluster.scheduler_address
    assert len(result.config["cluster"]["workers"]) == 2
    assert (result.requests["status"] == "ok").all()
    assert workers_processes() <= before  # its two worker processes are gone


async def test_a_sweep_starts_one_local_cluster_for_all_its_runs(runtime: ServerHandle) -> None:
    before = workers_processes()
    assert len(before) >= 2
    results = await bench.sweep(
        runtime.url, api_key=runtime.token, concurrency=[2, 4], requests=8, sim=SIM, cluster=True
    )
    assert [r.config["concurrency"] for r in results] == [2, 4]
    assert len({r.config["cluster"]["scheduler"] for r in results}) == 1
    assert all(r.config["cluster"]["given"] == "local" for r in results)
    assert all(len(r.requests) == 8 for r in results)
    assert workers_processes() <= before
    combined = BenchResult.combine(results)
    assert set(combined.requests["worker"].astype(str)) == {
        w["address"] for w in results[0].config["cluster"]["workers"]
    }


async def test_an_asynchronous_client_is_awaited(
    runtime: ServerHandle, cluster: LocalCluster
) -> None:
    async with Client(cluster.scheduler_address, asynchronous=True, set_as_default=False) as ac:
        result = await bench.run(
            runtime.url, api_key=runtime.token, cluster=ac, concurrency=2, requests=4, sim=SIM
        )
    assert result.config["cluster"]["given"] == "client"
    assert (result.requests["status"] == "ok").all()
    assert result.requests["worker"].nunique() == 2


async def test_bad_cluster_arguments_fail_clearly(runtime: ServerHandle, client: Client) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(ClusterError, match="could not reach the dask scheduler") as caught:
        await asyncio.wait_for(
            bench.run(
                runtime.url,
                api_key=runtime.token,
                cluster=nobody,
                cluster_timeout=1,
                requests=2,
                concurrency=2,
            ),
            30,
        )
    assert nobody in str(caught.value)
    with pytest.raises(TypeError, match="scheduler address"):
        await bench.run(runtime.url, api_key=runtime.token, cluster=2.5, requests=2)
    with pytest.raises(ValueError, match="number of worker processes"):
        await bench.run(runtime.url, api_key=runtime.token, cluster=0, requests=2)
    # One slot cannot be split over two workers: said before any process starts...
    with pytest.raises(ValueError, match="concurrency=1 cannot be split over 2 workers"):
        await bench.run(runtime.url, api_key=runtime.token, cluster=True, concurrency=1, requests=2)
    # ...or once the workers are known (here an open loop's cap).
    with pytest.raises(ValueError, match="concurrency=1 cannot be split over 2 workers"):
        await bench.run(
            runtime.url, api_key=runtime.token, cluster=client, rate=100, concurrency=1, requests=2
        )


async def test_the_api_key_reaches_the_workers_and_nothing_else(client: Client) -> None:
    key = "sk-" + secrets.token_hex(16)  # made up here: no credential lives in the source
    with serve(token=key) as guarded:  # answers 401 without the key
        refused = await bench.run(guarded.url, cluster=client, concurrency=2, requests=2, sim=SIM)
        result = await bench.run(
            guarded.url, cluster=client, concurrency=2, requests=4, api_key=key, sim=SIM
        )
    assert (refused.requests["http_status"] == 401).all()
    assert (result.requests["status"] == "ok").all()  # both workers sent it
    shown = [
        repr(result),
        json.dumps(result._repr_mimebundle_()),
        json.dumps(result.config, default=str),
        json.dumps(result.calibration, default=str),
        result.requests.to_csv(),
        result.events.to_csv(),
    ]
    assert not any(key in text for text in shown)


@pytest.mark.parametrize("suffix", [".parquet", ".json"])
def test_save_and_load_keep_the_worker(
    runtime: ServerHandle, client: Client, tmp_path: Path, suffix: str
) -> None:
    # run_sync: on the project's background loop, as a script or a blocking cell runs it.
    result = bench.run_sync(
        runtime.url, api_key=runtime.token, cluster=client, concurrency=2, requests=6, sim=SIM
    )
    result.save(tmp_path / f"run{suffix}")
    loaded = BenchResult.load(tmp_path / f"run{suffix}")
    assert_same_frames(loaded, result)
    worker = result.requests["worker"].astype(str)
    assert list(loaded.requests["worker"].astype(str)) == list(worker)
    assert loaded.calibration["clock"] == json.loads(json.dumps(result.calibration["clock"]))
    assert loaded.config["cluster"] == result.config["cluster"]


async def test_cancel_stops_every_worker_and_keeps_what_they_had(
    runtime: ServerHandle, client: Client
) -> None:
    run = Benchmark(
        runtime.url, api_key=runtime.token, cluster=client, concurrency=2, requests=400, sim=SLOW
    )
    task = asyncio.ensure_future(run.run())
    await asyncio.sleep(2.5)  # a second to start, then some requests on both workers
    run.cancel()
    result = await asyncio.wait_for(task, 20)  # all 400 would take 20 s
    assert result.config["cancelled"] is True
    assert 4 <= len(result.requests) < 400
    assert result.requests[result.requests["status"] == "ok"]["worker"].nunique() == 2

    # Cancelling the task that runs it does the same.
    task = asyncio.ensure_future(
        bench.run(
            runtime.url,
            api_key=runtime.token,
            cluster=client,
            concurrency=2,
            requests=400,
            sim=SLOW,
        )
    )
    await asyncio.sleep(2.5)
    task.cancel()
    result = await asyncio.wait_for(task, 20)
    assert result.config["cancelled"] is True
    assert 4 <= len(result.requests) < 400


async def test_a_worker_without_glm_live_is_a_clear_error(
    runtime: ServerHandle, tmp_path: Path
) -> None:
    blocker = tmp_path / "no_glm_live.py"
    blocker.write_text("import sys\n\nsys.modules['glm_live'] = None  # import glm_live fails\n")
    with (
        LocalCluster(n_workers=1, preload=[str(blocker)], **LOCAL) as local,
        pytest.raises(ClusterError, match="cannot import glm_live") as caught,
    ):
        await bench.run(
            runtime.url, api_key=runtime.token, cluster=local, concurrency=2, requests=2
        )
    assert "pip install 'glm_live[dask]'" in str(caught.value)


async def test_a_worker_that_dies_is_an_error_that_keeps_the_others_shards(
    runtime: ServerHandle, client: Client
) -> None:
    workers = addresses(client)
    victim = workers[0]
    pid = client.run(os.getpid, workers=[victim])[victim]
    submitted = asyncio.Event()
    run = Benchmark(
        runtime.url, api_key=runtime.token, cluster=client, concurrency=4, requests=40, sim=SIM
    )

    def kill_on_submit(snapshot: dict[str, Any]) -> None:
        if not submitted.is_set():  # the first report: the shards are on their way
            submitted.set()
            os.kill(pid, signal.SIGKILL)

    run.progress = kill_on_submit
    try:
        with pytest.raises(ClusterError, match=f"dask worker {victim}") as caught:
            await asyncio.wait_for(run.run(), 60)
    finally:
        addresses(client)  # the nanny restarts it, for the tests that follow
    partial = caught.value.partial
    assert isinstance(partial, BenchResult)
    assert set(partial.requests["worker"].astype(str)) == {workers[1]}
    assert len(partial.requests) == 20
    assert (partial.requests["status"] == "ok").all()


def test_cli_bench_on_a_cluster(
    runtime: ServerHandle, cluster: LocalCluster, tmp_path: Path
) -> None:
    import subprocess
    import sys

    out = tmp_path / "sharded.parquet"
    command = [sys.executable, "-m", "glm_live", "bench", runtime.url, "--concurrency", "2,4"]
    command += ["--requests", "8", "--sim", json.dumps(SIM), "--out", str(out)]
    # The runtime's token reaches glm-live bench as a user's would: GLM_LIVE_TOKEN.
    env = {**os.environ, "GLM_LIVE_TOKEN": runtime.token or ""}
    completed = subprocess.run(
        [*command, "--cluster", cluster.scheduler_address],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert "workers' clocks agree within" in completed.stdout
    loaded = BenchResult.load(out)
    assert sorted(loaded.requests["concurrency"].unique()) == [2, 4]
    assert len(loaded.requests) == 16
    assert loaded.requests["worker"].astype(str).nunique() == 2
    refused = subprocess.run(
        [*command, "--cluster", "tcp://127.0.0.1:9", "--cluster-timeout", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert "could not reach the dask scheduler" in refused.stderr


async def test_a_capacity_search_shards_every_level_over_one_cluster(
    runtime: ServerHandle, client: Client
) -> None:
    # The simulator's knee at 8 streams (tests/test_search.py): found the same when each
    # level's concurrency is split over the two workers, since the server counts the streams.
    found = await search_the_knee(runtime, cluster=client)
    passed, failed = found.capacity
    assert passed is not None
    assert failed is not None
    assert passed <= 8 < failed
    workers = addresses(client)
    for level in found.levels:
        requests = level.result.requests
        assert sorted(set(requests["worker"])) == workers, level.value
        assert len(requests) == 16
