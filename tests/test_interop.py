"""Other tools' result files: export to vLLM's and GuideLLM's JSON, load them back (ours and
a real GuideLLM report), and compare a foreign run beside a glm_live one."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from glm_live import bench
from glm_live.measure.bench import BenchResult
from glm_live.measure.bench.stats import dialect_samples
from glm_live.server import ServerHandle, serve

DATA = Path(__file__).parent / "data"
GUIDELLM = DATA / "guidellm-0.8.1-sim-concurrent4.json"
VLLM = DATA / "vllm-0.33.0-sim-concurrent4.json"
SIM = {"ttft_ms": 5, "itl_ms": 1, "tokens": 12}


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


@pytest.fixture(scope="module")
def result(runtime: ServerHandle) -> BenchResult:
    run = bench.run_sync(
        runtime.url, api_key=runtime.token, concurrency=3, requests=15, warmup=2, sim=SIM
    )
    failed = bench.run_sync(
        runtime.url,
        api_key=runtime.token,
        concurrency=1,
        requests=1,
        sim={**SIM, "fault": "rate_limit"},
    )
    # One run with a failed request among the successes, as the tools' files have them.
    return BenchResult.combine([run, failed], by="concurrency")


# -- vLLM ---------------------------------------------------------------------------------------

#: The top-level fields ``vllm bench serve --save-result --save-detailed`` writes and their
#: types (vllm/benchmarks/serve.py, main_async and benchmark).
VLLM_FIELDS: dict[str, type | tuple[type, ...]] = {
    "date": str,
    "endpoint_type": str,
    "backend": str,
    "model_id": str,
    "tokenizer_id": str,
    "num_prompts": int,
    "request_rate": (float, str),
    "burstiness": float,
    "max_concurrency": (int, type(None)),
    "duration": float,
    "completed": int,
    "failed": int,
    "total_input_tokens": int,
    "total_output_tokens": int,
    "request_throughput": float,
    "request_goodput": type(None),
    "output_throughput": float,
    "total_token_throughput": float,
    "input_lens": list,
    "output_lens": list,
    "ttfts": list,
    "itls": list,
    "generated_texts": list,
    "errors": list,
    **{
        f"{stat}_{metric}_ms": float
        for stat in ("mean", "median", "std", "p99")
        for metric in ("ttft", "tpot", "itl", "e2el")
    },
}


def test_vllm_export_has_the_tools_fields_and_types(result: BenchResult, tmp_path: Path) -> None:
    path = result.export(tmp_path / "vllm.json", "vllm")
    data = json.loads(path.read_text())  # strict JSON: no NaN
    for field, kind in VLLM_FIELDS.items():
        assert isinstance(data[field], kind), (field, data[field])
    n = data["num_prompts"]
    assert n == 16  # the warm-up is not part of what vLLM reports
    assert data["completed"] == 15
    assert data["failed"] == 1
    assert len(data["ttfts"]) == len(data["itls"]) == len(data["output_lens"]) == n
    assert all(isinstance(t, float) for t in data["ttfts"])
    assert all(isinstance(g, float) for gaps in data["itls"] for g in gaps)
    assert sum(1 for e in data["errors"] if e) == 1
    assert data["request_rate"] == "inf"
    assert data["max_concurrency"] == 3
    # Seconds in the lists, milliseconds in the statistics, as vLLM writes them.
    ok = [t for t, e in zip(data["ttfts"], data["errors"], strict=True) if not e]
    assert data["mean_ttft_ms"] == pytest.approx(np.mean(ok) * 1000)
    # vLLM's TTFT rule (from the actual send, the role chunk counts), not glm_live's.
    vllm_ttft = dialect_samples(result.requests, result.events)["vLLM", "ttft_ms"]
    assert sorted(np.asarray(ok) * 1000) == pytest.approx(sorted(vllm_ttft))


def test_vllm_export_matches_the_real_files_fields(result: BenchResult, tmp_path: Path) -> None:
    real = json.loads(VLLM.read_text())
    ours = json.loads(result.export(tmp_path / "vllm.json", "vllm").read_text())

    def fields(data: dict) -> set[str]:  # percentiles follow --metric-percentiles
        return {k for k in data if not re.match(r"p[0-9.]+_", k)}

    assert fields(ours) - {"glm_live"} <= fields(real), fields(ours) - fields(real)
    missing = fields(real) - fields(ours)
    # rtfx is for speech; server_* come from a vLLM server's own metrics.
    assert missing <= {"rtfx", "server_queue_times", "server_ttfts"}, missing
    for key in fields(ours) & fields(real):
        if ours[key] is not None and real[key] is not None:
            assert type(ours[key]) is type(real[key]), key
    assert type(ours["itls"][0][0]) is type(real["itls"][0][0])


def test_vllm_round_trip_gives_the_same_numbers(result: BenchResult, tmp_path: Path) -> None:
    data = json.loads(result.export(tmp_path / "vllm.json", "vllm").read_text())
    back = bench.load_foreign(tmp_path / "vllm.json")
    assert isinstance(back, BenchResult)
    assert back.source == "vLLM bench serve"
    assert (back.requests["status"] == "error").sum() == 1
    measured = back.measured
    assert len(measured) == 15
    ok = [t for t, e in zip(data["ttfts"], data["errors"], strict=True) if not e]
    assert measured["ttft_ms"].to_numpy() == pytest.approx(np.asarray(ok) * 1000)
    for metric, column in (("ttft", "ttft_ms"), ("tpot", "tpot_ms"), ("e2el", "e2e_ms")):
        values = measured[column].to_numpy(dtype=float)
        assert np.mean(values) == pytest.approx(data[f"mean_{metric}_ms"], rel=1e-6), metric
        assert np.median(values) == pytest.approx(data[f"median_{metric}_ms"], rel=1e-6)
        assert np.percentile(values, 99) == pytest.approx(data[f"p99_{metric}_ms"], rel=1e-6)
    # ITLs come back as arrival gaps: pooled, they are the file's ITL statistics.
    gaps = back.events.sort_values(["request", "index"]).groupby("request")["arrival_ns"].diff()
    assert np.mean(gaps.dropna()) / 1e6 == pytest.approx(data["mean_itl_ms"], rel=1e-6)
    assert back.measured["completion_tokens"].sum() == data["total_output_tokens"]


def test_the_real_vllm_file_loads() -> None:
    real = json.loads(VLLM.read_text())
    loaded = bench.load_foreign(VLLM)
    assert isinstance(loaded, BenchResult)
    assert loaded.source == "vLLM bench serve"
    assert loaded.config["concurrency"] == 4
    measured = loaded.measured
    assert len(measured) == 20
    for metric, column in (("ttft", "ttft_ms"), ("tpot", "tpot_ms"), ("e2el", "e2e_ms")):
        values = measured[column].to_numpy(dtype=float)
        assert np.mean(values) == pytest.approx(real[f"mean_{metric}_ms"]), metric
        assert np.percentile(values, 99) == pytest.approx(real[f"p99_{metric}_ms"]), metric
    gaps = loaded.events.sort_values(["request", "index"]).groupby("request")["arrival_ns"].diff()
    assert np.mean(gaps.dropna()) / 1e6 == pytest.approx(real["mean_itl_ms"], rel=1e-6)
    assert (measured["queue_ms"] >= 0).all()
    assert 200 <= measured["ttft_ms"].median() < 215  # the simulator's configured 200 ms


def test_a_pre_0_33_vllm_file_loads() -> None:
    # Before vLLM 0.33 there were no latencies/start_times/queue_times: written by hand from
    # benchmarks/benchmark_serving.py's result_json, three requests, one failed (ttft 0.0,
    # output_len 0, an error string), as vLLM records them.
    data = {
        "date": "20260101-120000",
        "endpoint_type": "openai-chat",
        "backend": "openai-chat",
        "label": None,
        "model_id": "m",
        "tokenizer_id": "m",
        "num_prompts": 3,
        "request_rate": 2.0,
        "burstiness": 1.0,
        "max_concurrency": None,
        "duration": 1.5,
        "completed": 2,
        "failed": 1,
        "ttfts": [0.1, 0.2, 0.0],
        "itls": [[0.01, 0.01, 0.01], [0.02, 0.02], []],
        "input_lens": [10, 12, 11],
        "output_lens": [4, 3, 0],
        "errors": ["", "", "ClientError: refused"],
        "mean_ttft_ms": 150.0,
    }
    loaded = bench.load_vllm(data)
    assert loaded.config["rate"] == 2.0
    assert loaded.measured["ttft_ms"].to_list() == pytest.approx([100.0, 200.0])
    assert loaded.measured["e2e_ms"].to_list() == pytest.approx([130.0, 240.0])
    assert loaded.measured["tpot_ms"].to_list() == pytest.approx([10.0, 20.0])
    assert loaded.config["reported"]["mean_ttft_ms"] == 150.0


# -- GuideLLM -----------------------------------------------------------------------------------


def _keys(report: dict, status: str = "successful") -> tuple[set[str], set[str], set[str]]:
    benchmark = report["benchmarks"][0]
    request = benchmark["requests"][status][0]
    summary = benchmark["metrics"]["time_to_first_token_ms"]["successful"]
    return set(request), set(request["info"]["timings"]), set(summary)


def test_guidellm_export_uses_the_real_reports_fields(result: BenchResult, tmp_path: Path) -> None:
    real = json.loads(GUIDELLM.read_text())
    ours = json.loads(result.export(tmp_path / "g.json", "guidellm").read_text())
    assert ours["metadata"]["version"] == real["metadata"]["version"] == 2
    request, timings, summary = _keys(ours)
    real_request, real_timings, real_summary = _keys(real)
    assert request <= real_request, request - real_request
    assert timings <= real_timings, timings - real_timings
    assert summary <= real_summary, summary - real_summary
    assert set(ours["benchmarks"][0]["metrics"]) <= set(real["benchmarks"][0]["metrics"])
    real_first = real["benchmarks"][0]["requests"]["successful"][0]
    ours_first = ours["benchmarks"][0]["requests"]["successful"][0]
    for key in request & {"time_to_first_token_ms", "output_tokens", "request_latency"}:
        assert type(ours_first[key]) is type(real_first[key]), key
    assert len(ours["benchmarks"][0]["requests"]["errored"]) == 1


def test_guidellm_round_trip_gives_the_same_numbers(result: BenchResult, tmp_path: Path) -> None:
    data = json.loads(result.export(tmp_path / "g.json", "guidellm").read_text())
    (back,) = bench.load_foreign(tmp_path / "g.json")  # type: ignore[misc]
    assert back.source == "GuideLLM"
    samples = dialect_samples(result.requests, result.events)
    measured = back.measured
    assert sorted(measured["ttft_ms"]) == pytest.approx(sorted(samples["GuideLLM", "ttft_ms"]))
    assert sorted(measured["tpot_ms"]) == pytest.approx(sorted(samples["GuideLLM", "itl_ms"]))
    assert sorted(measured["guidellm_tpot_ms"]) == pytest.approx(
        sorted(samples["GuideLLM", "tpot_ms"])
    )
    summary = data["benchmarks"][0]["metrics"]["time_to_first_token_ms"]["successful"]
    assert measured["ttft_ms"].mean() == pytest.approx(summary["mean"])
    assert measured["ttft_ms"].median() == pytest.approx(summary["median"])
    assert back.config["concurrency"] == 3


def test_the_real_guidellm_report_loads() -> None:
    (loaded,) = bench.load_guidellm(GUIDELLM)
    real = json.loads(GUIDELLM.read_text())["benchmarks"][0]
    assert loaded.config["source"] == "GuideLLM"
    assert loaded.config["source_version"] == "0.8.1"
    assert loaded.config["concurrency"] == 4
    assert loaded.config["strategy"] == "concurrent"
    measured = loaded.measured
    assert len(measured) == 20
    assert (measured["completion_tokens"] == 32).all()
    ttft = real["metrics"]["time_to_first_token_ms"]["successful"]
    assert measured["ttft_ms"].mean() == pytest.approx(ttft["mean"])
    # GuideLLM's percentiles are observations (not numpy's interpolation): one of ours.
    assert ttft["median"] in measured["ttft_ms"].to_list()
    assert abs(measured["ttft_ms"].median() - ttft["median"]) < 1
    itl = real["metrics"]["inter_token_latency_ms"]["successful"]
    assert measured["tpot_ms"].mean() == pytest.approx(itl["mean"])
    latency = real["metrics"]["request_latency"]["successful"]
    assert measured["e2e_ms"].max() == pytest.approx(latency["max"] * 1000)
    # The simulator was configured for a 200 ms TTFT and 20 ms between tokens.
    assert 200 <= measured["ttft_ms"].median() < 215
    assert 19.5 < measured["tpot_ms"].median() < 21
    with pytest.raises(ValueError, match="schema version 99"):
        bench.load_guidellm({"metadata": {"version": 99}, "benchmarks": []})


def test_compare_sets_guidellm_beside_glm_live(runtime: ServerHandle, tmp_path: Path) -> None:
    # The settings GuideLLM's fixture run used, measured by glm_live.
    ours = bench.run_sync(
        runtime.url,
        api_key=runtime.token,
        concurrency=4,
        requests=20,
        sim={"ttft_ms": 200, "itl_ms": 20, "tokens": 32},
    )
    theirs = bench.load_guidellm(GUIDELLM, 0)
    vllm = bench.load_vllm(VLLM)
    by_vllm = bench.compare(ours, vllm)
    assert list(by_vllm.columns[:2]) == ["glm_live", "vLLM bench serve"]
    assert "role chunk" in by_vllm.attrs["measured_by"]["vLLM bench serve"]
    assert math.isfinite(by_vllm.loc["p50", "diff"])
    table = bench.compare(ours, theirs)
    assert list(table.columns[:2]) == ["glm_live", "GuideLLM"]
    by = table.attrs["measured_by"]
    assert "scheduled send" in by["glm_live"]
    assert by["GuideLLM"].startswith("GuideLLM 0.8.1: ")
    assert "request start" in by["GuideLLM"]
    # The configured 200 ms is a floor for both (how close they come is the benchmark's
    # business, on a machine this test does not know the load of).
    assert table.loc["p50", "glm_live"] >= 200
    assert table.loc["p50", "GuideLLM"] >= 200
    tpot = bench.compare(ours, theirs, "tpot_ms")
    assert tpot.loc["p50", "glm_live"] >= 20
    assert tpot.loc["p50", "GuideLLM"] >= 20
    html = bench.write_report([ours, theirs, vllm], tmp_path / "side.html").read_text()
    assert "vLLM bench serve" in html
    assert "GuideLLM 0.8.1" in html
    assert "measured by" in html
    with pytest.raises(ValueError, match="no measured"):
        bench.compare(ours, theirs, "ttft_content_ms")
    # A foreign run's own report: its tool's definitions, no calibration of its own.
    alone = vllm.report(tmp_path / "vllm.html").read_text()
    assert "measured by vLLM bench serve" in alone
    assert "role chunk" in alone
