"""The benchmark harness against the embedded runtime: frames, dialects, faults, cancel, files."""

from __future__ import annotations

import asyncio
import json
import pickle
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glm_live import bench
from glm_live.measure.bench import Benchmark, BenchResult
from glm_live.server import ServerHandle, serve
from tests.byteserver import ByteServer, sse

SIM = {"ttft_ms": 5, "itl_ms": 2, "tokens": 20}


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


def test_chat_url_and_prompts(tmp_path: Path) -> None:
    assert bench.chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert bench.chat_url("https://api.z.ai/api/paas/v4") == (
        "https://api.z.ai/api/paas/v4/chat/completions"
    )
    assert bench.chat_url("http://h/v1/chat/completions") == "http://h/v1/chat/completions"
    lines = tmp_path / "p.txt"
    lines.write_text("first prompt\n\nsecond prompt\n")
    assert bench.prompts_from(lines, None, 0) == ["first prompt", "second prompt"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    assert bench.prompts_from(jsonl, None, 0) == ["a", "b"]
    generated = bench.prompts_from(None, 50, 1)
    assert all(len(p.split()) == 50 for p in generated)


async def test_closed_loop_frames(runtime: ServerHandle) -> None:
    result = await bench.run(
        runtime.url, api_key=runtime.token, concurrency=4, requests=24, warmup=4, sim=SIM
    )
    r, e = result.requests, result.events
    assert len(r) == 28
    assert (r["status"] == "ok").all()
    assert (r["phase"] == "warmup").sum() == 4
    assert len(result.measured) == 24
    assert (r["completion_tokens"] == 20).all()
    content = e[e["kind"] == "content"].groupby("request").size()
    assert (content == 20).all()  # one content event per token, as usage says
    assert (r["tokens_per_chunk"] == 1.0).all()
    assert {"sent_ns", "arrival_wall_ns", "arrival_ns", "bytes", "kind"} <= set(e.columns)
    stamped = e.dropna(subset=["sent_ns"])
    assert len(stamped) == 28 * 21  # every chunk but [DONE] carries x_sent_ns
    assert (stamped["arrival_wall_ns"] >= stamped["sent_ns"].astype("int64") - 5_000_000).all()
    assert (r["ttft_ms"] <= r["e2e_ms"]).all()
    assert (r["queue_ms"] >= 0).all()
    cal = result.calibration
    assert cal["timing_error_p99_ms"] is not None
    assert cal["loop_lag_p99_ms"] is not None
    summary = result.summary()
    assert {"p50", "p90", "p95", "p99", "p99.9", "p99_low", "p99_high"} <= set(summary.columns)
    assert (
        summary.loc["ttft_ms", "p50_low"]
        <= summary.loc["ttft_ms", "p50"]
        <= (summary.loc["ttft_ms", "p50_high"])
    )
    html = result._repr_mimebundle_()["text/html"]
    assert "ttft_ms" in html


async def test_open_loop_schedules_ahead_and_counts_queueing(runtime: ServerHandle) -> None:
    result = await bench.run(
        runtime.url,
        api_key=runtime.token,
        rate=200,
        concurrency=2,
        requests=30,
        arrivals="gamma",
        burstiness=0.5,
        sim=SIM,
    )
    r = result.requests.sort_values("scheduled_ns")
    assert len(r) == 30
    assert (r["status"] == "ok").all()
    # Two slots for bursty arrivals at 200/s: some requests wait, and that wait is counted.
    assert (r["queue_ms"] >= 0).all()
    assert r["queue_ms"].max() > 0
    assert (r["ttft_ms"] >= r["queue_ms"]).all()


def test_dialects_side_by_side(runtime: ServerHandle) -> None:
    result = bench.run_sync(
        runtime.url,
        api_key=runtime.token,
        concurrency=2,
        requests=10,
        sim={**SIM, "reasoning_tokens": 5},
        thinking={"type": "enabled"},
    )
    table = result.dialects()
    assert set(table["tool"]) == {"glm_live", "vLLM", "GuideLLM", "genai-perf"}
    assert table["definition"].str.len().min() > 20
    row = table.set_index(["tool", "metric"])
    # Reasoning comes first: content-only TTFTs (genai-perf) come later than any-token ones.
    assert row.loc[("genai-perf", "ttft_ms"), "p50"] > row.loc[("GuideLLM", "ttft_ms"), "p50"]
    # GuideLLM's "TPOT" includes the time to first token; its "ITL" is vLLM's TPOT.
    assert row.loc[("GuideLLM", "tpot_ms"), "p50"] > row.loc[("GuideLLM", "itl_ms"), "p50"]
    assert row.loc[("vLLM", "itl_ms"), "count"] > row.loc[("vLLM", "tpot_ms"), "count"]


def test_faults_are_rows_with_errors(runtime: ServerHandle) -> None:
    limited = bench.run_sync(
        runtime.url,
        api_key=runtime.token,
        concurrency=2,
        requests=6,
        sim={**SIM, "fault": "rate_limit"},
    )
    assert (limited.requests["status"] == "error").all()
    assert (limited.requests["http_status"] == 429).all()
    assert (limited.requests["error_type"] == "HTTPResponseError").all()
    dropped = bench.run_sync(
        runtime.url,
        api_key=runtime.token,
        concurrency=2,
        requests=4,
        sim={**SIM, "fault": "drop", "fault_after": 7},
    )
    assert (dropped.requests["status"] == "error").all()
    kept = dropped.events[dropped.events["kind"] == "content"].groupby("request").size()
    assert (kept == 7).all()  # what arrived before the drop is kept


async def test_cancel_keeps_partial_results(runtime: ServerHandle) -> None:
    run = Benchmark(
        runtime.url,
        api_key=runtime.token,
        concurrency=2,
        requests=400,
        sim={"ttft_ms": 1, "itl_ms": 5, "tokens": 20},
    )
    four_done = asyncio.Event()
    run.progress = lambda snapshot: four_done.set() if snapshot["done"] >= 4 else None
    task = asyncio.ensure_future(run.run())
    await asyncio.wait_for(four_done.wait(), 10)
    run.cancel()
    result = await asyncio.wait_for(task, 10)
    assert result.config["cancelled"] is True
    assert 4 <= len(result.requests) < 400
    assert (result.requests["status"] == "ok").sum() >= 4


async def test_cancelling_an_open_loop_keeps_every_request_the_server_received(
    server: ByteServer,
) -> None:
    # Uncapped, an open loop writes each request in the scheduler's own turn: whatever the
    # server got must be in the result, answered or cancelled, none lost to the cancel.
    server.play(sse(*[step for n in range(20) for step in (b'data: {"n": %d}\n\n' % n, 0.02)]))
    run = Benchmark(server.url, rate=400, requests=400, seed=3, concurrency=None)
    five_done = asyncio.Event()
    run.progress = lambda snapshot: five_done.set() if snapshot["done"] >= 5 else None
    task = asyncio.ensure_future(run.run())
    await asyncio.wait_for(five_done.wait(), 10)
    run.cancel()
    result = await asyncio.wait_for(task, 10)
    received = len(server.requests)
    assert result.config["cancelled"] is True
    assert received <= len(result.requests) < 400
    assert set(result.requests["status"]) <= {"ok", "cancelled"}
    assert (result.requests["status"] == "cancelled").any()


def assert_same_frames(loaded: BenchResult, result: BenchResult) -> None:
    """What save/load must keep: every value of both frames (``arrival`` is a display column,
    rebuilt from ``arrival_wall_ns``; categories may come back as plain strings)."""
    pd.testing.assert_frame_equal(loaded.requests, result.requests, check_dtype=False)
    pd.testing.assert_frame_equal(
        loaded.events.drop(columns=["arrival"]),
        result.events.drop(columns=["arrival"]),
        check_dtype=False,
        check_categorical=False,
    )


@pytest.mark.parametrize("suffix", [".parquet", ".json"])
def test_save_and_load_losslessly(runtime: ServerHandle, tmp_path: Path, suffix: str) -> None:
    result = bench.run_sync(runtime.url, api_key=runtime.token, concurrency=2, requests=6, sim=SIM)
    paths = result.save(tmp_path / f"run{suffix}")
    assert all(p.exists() for p in paths)
    loaded = BenchResult.load(tmp_path / f"run{suffix}")
    assert_same_frames(loaded, result)
    assert loaded.config["url"] == result.config["url"]
    assert loaded.calibration == pytest.approx(result.calibration, nan_ok=True)


def test_statistics() -> None:
    rng = np.random.default_rng(3)
    sample = rng.normal(100, 10, 2000)
    low, high = bench.bootstrap_ci(sample, 50)
    assert low < np.percentile(sample, 50) < high
    assert high - low < 2
    shifted = sample + 5
    assert bench.permutation_test(sample[:300], shifted[:300], resamples=500) < 0.01
    assert bench.permutation_test(sample[:300], sample[300:600], resamples=500) > 0.05
    described = bench.describe([1, 2, 3, np.nan], ci=False)
    assert described["count"] == 3
    assert described["p50"] == 2


def test_cli_sweep_writes_results(runtime: ServerHandle, tmp_path: Path) -> None:
    out = tmp_path / "results.parquet"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "glm_live",
            "bench",
            runtime.url,
            # One argument: a token may start with "-", which argparse would take for an option.
            f"--token={runtime.token or ''}",
            "--concurrency",
            "1,4",
            "--requests",
            "8",
            "--sim",
            json.dumps(SIM),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "TTFT p50" in completed.stdout
    assert "harness timing error p99" in completed.stdout
    loaded = BenchResult.load(out)
    assert sorted(loaded.requests["concurrency"].unique()) == [1, 4]
    assert len(loaded.requests) == 16
    assert loaded.requests["request"].is_unique


def test_compare_and_plots(runtime: ServerHandle) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fast = bench.run_sync(
        runtime.url,
        api_key=runtime.token,
        concurrency=4,
        requests=30,
        sim={"ttft_ms": 5, "itl_ms": 1, "tokens": 10},
    )
    slow = bench.run_sync(
        runtime.url,
        api_key=runtime.token,
        concurrency=4,
        requests=30,
        sim={"ttft_ms": 60, "itl_ms": 1, "tokens": 10},
    )
    table = bench.compare(fast, slow, "ttft_ms", labels=("fast", "slow"))
    assert list(table.index) == ["p50", "p90", "p95", "p99", "p99.9"]
    assert (table["diff_low"] <= table["diff"]).all()
    assert (table["diff"] <= table["diff_high"]).all()
    assert table.loc["p50", "diff"] > 40  # 55 ms more time to first token, by design
    assert table.attrs["significant"] is True
    same = bench.compare(fast, fast, "ttft_ms")
    assert same.attrs["p_value"] > 0.5
    figures = [
        bench.plots.cdf([fast, slow], labels=["fast", "slow"]),
        bench.plots.percentiles_vs([fast, slow]),
        bench.plots.throughput_latency([fast, slow]),
        bench.plots.timeline(fast),
    ]
    assert len(figures[0].axes[0].lines) == 2
    assert figures[3].axes[0].get_xlabel().startswith("ms since")
    # Every figure says what its lines are, and no label runs over the frame.
    legend = figures[3].axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "queued",
        "waiting for the first token",
        "streaming",
    ]
    assert figures[1].axes[0].get_ylabel() == "TTFT (ms)"
    for figure in figures:
        figure.canvas.draw()
        frame = figure.bbox
        texts = [*figure.axes[0].texts, figure.axes[0].xaxis.label, figure.axes[0].yaxis.label]
        for text in texts:
            box = text.get_window_extent()
            inside = frame.x0 <= box.x0 <= box.x1 <= frame.x1
            assert inside, text.get_text()
            inside = frame.y0 <= box.y0 <= box.y1 <= frame.y1
            assert inside, text.get_text()


def test_progress_widget_follows_the_run(runtime: ServerHandle) -> None:
    from glm_live.notebook.widgets import coalescer
    from glm_live.testing.comm_recorder import record_comms

    with record_comms() as log:
        result = bench.run_sync(
            runtime.url,
            api_key=runtime.token,
            concurrency=2,
            requests=10,
            display=True,
            sim={"ttft_ms": 2, "itl_ms": 20, "tokens": 10},
        )
        coalescer().flush(result.view)
    view = result.view
    assert (view.done, view.total, view.status) == (10, 10, "done")
    assert view.ttft_p50_ms > 0
    assert len(log.updates(view.comm.comm_id)) >= 2  # it moved while the run went


def test_a_load_keeps_its_api_key_out_of_sight() -> None:
    # A sharded run ships the Load to dask workers, and dask logs a failed task's arguments.
    key = "sk-" + secrets.token_hex(16)  # made up here: no credential lives in the source
    run = Benchmark("http://127.0.0.1:1", api_key=key, concurrency=2, requests=4)
    load = run.load
    assert load.headers() == {"Authorization": f"Bearer {key}"}
    shown = [repr(load), str(load), json.dumps(load.config()), json.dumps(run.config)]
    assert not any(key in text for text in shown)
    assert pickle.loads(pickle.dumps(load)) == load  # it travels whole, key included


def test_progress_printer_on_a_terminal_redraws_one_line() -> None:
    import io

    from glm_live.measure.bench.console import ProgressPrinter

    now = [0.0]
    stream = io.StringIO()
    printer = ProgressPrinter(stream, label="concurrency 2", terminal=True, clock=lambda: now[0])
    for done in range(5):
        now[0] = done * 0.25
        printer({"done": done, "total": 4, "errors": 0, "ttft_p50_ms": 10.4, "ttft_p99_ms": 12.0})
    printer.close()
    text = stream.getvalue()
    assert text.count("\r") == 5
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert "TTFT p50 10 ms p99 12 ms" in text
    assert "eta " in text


def test_progress_printer_off_a_terminal_writes_a_line_every_few_seconds() -> None:
    import io

    from glm_live.measure.bench.console import ProgressPrinter, estimate_s, format_duration

    now = [0.0]
    stream = io.StringIO()
    printer = ProgressPrinter(stream, label="rate 5", every_s=3.0, clock=lambda: now[0])
    assert printer.terminal is False  # a StringIO is not a terminal
    for tick in range(41):  # 10 s of snapshots, every 0.25 s
        now[0] = tick * 0.25
        printer({"done": tick, "total": 40, "errors": 1, "ttft_p50_ms": None})
    printer.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "rate 5: 0/40 done, 1 errors, no TTFT yet, 0 s elapsed"
    assert lines[1] == "rate 5: 12/40 done, 1 errors, no TTFT yet, 3 s elapsed, eta 7 s"
    assert len(lines) == 5
    assert lines[-1].startswith("rate 5: 40/40 done")
    printer.close()  # the final line is not written twice
    assert len(stream.getvalue().splitlines()) == 5

    assert estimate_s(2.0, requests=200, concurrency=1) == 400
    assert estimate_s(2.0, requests=198, warmup=2, concurrency=64) == 8  # 4 rounds
    assert estimate_s(2.0, requests=100, rate=10.0) == 12
    assert [format_duration(s) for s in (42, 300, 7200)] == ["42 s", "5.0 min", "2.0 h"]


def test_run_and_sweep_take_a_session_and_use_its_token() -> None:
    import glm_live

    with glm_live.connect(hub=False) as session:
        result = bench.run_sync(session, requests=3, sim=SIM, display=False)
        assert (result.requests["status"] == "ok").all()
        results = session.loop.run(
            bench.sweep(session, concurrency=[1, 2], requests=2, sim=SIM, display=False)
        )
        assert [r.config["concurrency"] for r in results] == [1, 2]
        assert all((r.requests["status"] == "ok").all() for r in results)
        token = session.auth_headers["Authorization"].removeprefix("Bearer ")
        assert token not in json.dumps(result.config, default=str)


def test_monotonic_at_keeps_the_tightest_bracket(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process preempted between reading its two clocks must not shift the common start by
    the length of the preemption (a 0.93 ms shift of one dask worker failed CI once)."""
    from glm_live.measure.bench import load

    # Wall and monotonic advance together (monotonic = wall - 1000 s); the first sample is
    # preempted for 2 ms between its monotonic read and its second wall read.
    state = {"now": 5_000_000_000_000, "reads": 0}

    def wall() -> int:
        state["reads"] += 1
        if state["reads"] == 2:
            state["now"] += 2_000_000  # the preemption
        state["now"] += 1_000
        return state["now"]

    def mono() -> int:
        state["now"] += 1_000
        return state["now"] - 1_000_000_000_000

    monkeypatch.setattr(load.time, "time_ns", wall)
    monkeypatch.setattr(load.time, "perf_counter_ns", mono)
    target = 5_001_000_000_000
    truth = target - 1_000_000_000_000
    # One sample, preempted: about 1 ms off (what a single pair of reads risks).
    assert abs(load.monotonic_at(target, tries=1) - truth) > 900_000
    state["reads"] = 0  # preempted again on the first sample: the next ones are kept
    assert abs(load.monotonic_at(target) - truth) <= 1_000
