"""``glm-live serve`` as a user runs it: a real process, a real port, Ctrl-C."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from glm_live.cli import main
from glm_live.measure.bench import BenchResult
from glm_live.measure.bench.workloads import EXAMPLE_TRACE, read_trace

CHAT = {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}]}


def _popen(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLM_LIVE_TOKEN"}
    # Runtime files go to a directory of their own, not the user's.
    env["GLM_LIVE_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="glm-live-runtime-")
    return subprocess.Popen(
        [sys.executable, "-m", "glm_live", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@contextlib.contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, dict[str, str]]]:
    """The command running, the URL it printed, and the header carrying the token it printed;
    killed (if still alive) afterwards."""
    with _popen(*args) as process:
        try:
            url, token = _url_and_token(process)
            yield process, url, {"Authorization": f"Bearer {token}"}
        finally:
            if process.poll() is None:
                process.kill()


def _url_and_token(process: subprocess.Popen[str], timeout: float = 20.0) -> tuple[str, str]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    lines = []
    url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            url = match.group(1)
        match = re.match(r"token: (\S+)", line)
        if match and url is not None:
            return url, match.group(1)
        if process.poll() is not None:
            break
    raise AssertionError(f"no URL and token printed: {lines!r}")


def _fails(*args: str) -> tuple[int, str]:
    with _popen(*args) as process:
        _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr


def test_serve_prints_url_serves_and_stops_on_ctrl_c() -> None:
    args = ("--port", "0", "--seed", "3", "--tokens", "12", "--ttft-ms", "1", "--itl-ms", "1")
    with running(*args) as (process, url, headers):
        assert httpx.get(url + "/health").json()["simulated"] is True
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers)
        assert r.json()["usage"]["completion_tokens"] == 12
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0


def test_serve_refuses_network_bind_with_authentication_off() -> None:
    code, stderr = _fails("--host", "0.0.0.0", "--port", "0", "--no-auth")
    assert code == 2
    assert "refusing to listen on 0.0.0.0 with authentication off" in stderr


def test_serve_refuses_a_token_with_authentication_off() -> None:
    code, stderr = _fails("--port", "0", "--no-auth", "--token", "abcdefgh")
    assert code == 2
    assert "authentication off" in stderr
    assert "abcdefgh" not in stderr


def test_serve_reads_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "runtime.toml"
    config.write_text(
        'port = 0\n[sim]\ntokens = 7\nttft_ms = 1\nitl_ms = { dist = "uniform", low = 0, '
        "high = 2 }\n"
    )
    with running("--config", str(config)) as (process, url, headers):
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers)
        assert r.json()["usage"]["completion_tokens"] == 7
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[sim]\ntokens = 'many'\n")
    code, stderr = _fails("--config", str(config))
    assert code == 2
    assert "[sim].tokens must be a whole number" in stderr


def test_bench_estimates_first_and_writes_plain_lines_to_a_pipe(tmp_path: Path) -> None:
    # Each request takes about 0.2 s: 12 at concurrency 1 and 12 at 4 take about 3 s, and
    # progress lines come every 0.5 s instead of 3.
    args = ("--port", "0", "--tokens", "10", "--ttft-ms", "50", "--itl-ms", "15")
    with running(*args) as (process, url, headers):
        token = headers["Authorization"].removeprefix("Bearer ")
        env = {k: v for k, v in os.environ.items() if k != "GLM_LIVE_RUNTIME_DIR"}
        env.update(GLM_LIVE_TOKEN=token, GLM_LIVE_BENCH_PROGRESS_S="0.5")
        out = tmp_path / "r.json"
        bench = subprocess.run(
            [
                sys.executable,
                "-m",
                "glm_live",
                "bench",
                url,
                "--concurrency",
                "1,4",
                "--requests",
                "12",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert bench.returncode == 0, bench.stderr
    err = bench.stderr
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0].startswith("estimate: one request took 0.")
    assert "(simulated GLM-4.6)" in lines[0]
    assert "concurrency 1: " in lines[0]
    assert "concurrency 4: " in lines[0]
    assert lines[1].startswith("shorter: fewer --requests")
    progress = [line for line in lines if re.match(r"concurrency \d+: \d+/12 done", line)]
    # Periodic: several lines for the 2.5-second level, each with errors, TTFT and time left.
    level_1 = [line for line in progress if line.startswith("concurrency 1:")]
    assert len(level_1) >= 3, err
    assert level_1[-1].startswith("concurrency 1: 12/12 done, 0 errors, TTFT p50 ")
    assert any(", eta " in line for line in level_1)
    assert progress[-1].startswith("concurrency 4: 12/12 done")
    assert "concurrency 1: TTFT p50" in bench.stdout
    assert out.exists()


def test_bench_with_a_wrong_token_says_the_estimate_is_unknown() -> None:
    args = ("--port", "0", "--tokens", "4", "--ttft-ms", "1", "--itl-ms", "1")
    with running(*args) as (process, url, _):
        env = {k: v for k, v in os.environ.items() if k != "GLM_LIVE_RUNTIME_DIR"}
        env["GLM_LIVE_TOKEN"] = "not-the-token"
        bench = subprocess.run(
            [sys.executable, "-m", "glm_live", "bench", url, "--requests", "2"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    first = bench.stderr.splitlines()[0]
    assert first.startswith("estimate: unknown; the first request failed (")
    assert "Check the URL and the token" in first
    assert "not-the-token" not in bench.stderr


def _bench(
    url: str, token: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLM_LIVE_RUNTIME_DIR"}
    env["GLM_LIVE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "glm_live", "bench", url, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_bench_replays_a_trace_against_an_slo_with_telemetry(tmp_path: Path) -> None:
    args = ("--port", "0", "--ttft-ms", "5", "--itl-ms", "1")
    with running(*args) as (process, url, headers):
        token = headers["Authorization"].removeprefix("Bearer ")
        out, report = tmp_path / "trace.json", tmp_path / "trace.html"
        bench = _bench(
            url,
            token,
            "--trace",
            "example",
            "--trace-speed",
            "8,16",
            "--slo",
            "ttft_ms=2000,percentile=90",
            "--metrics-url",
            "target",
            "--shared-prefix-tokens",
            "64",
            "--out",
            str(out),
            "--report",
            str(report),
        )
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert bench.returncode == 0, bench.stderr
    err = bench.stderr
    assert "200 requests at each of 2 trace speed levels" in err.splitlines()[0]
    assert "trace speed 8: TTFT p50" in bench.stdout
    assert "trace speed 16: TTFT p50" in bench.stdout
    verdicts = re.findall(
        r"SLO: goodput .*: (\d+)/(\d+) requests meet p90 TTFT ≤ 2000 ms", bench.stdout
    )
    assert len(verdicts) == 2
    assert all(total == "200" for _, total in verdicts)
    result = BenchResult.load(out)
    trace = read_trace(EXAMPLE_TRACE)
    requests = result.requests
    assert sorted(set(requests["trace_speed"])) == [8.0, 16.0]
    for speed, run in requests.groupby("trace_speed"):
        # Each level is the trace at its speed: its requests' offsets are the timestamps / speed.
        offsets = ((run["scheduled_ns"] - run["scheduled_ns"].min()) / 1e6).round(3).tolist()
        first = trace.requests[0].timestamp
        assert offsets == [round((q.timestamp - first) / speed, 3) for q in trace.requests]
        assert list(run["completion_tokens"]) == [q.output_length for q in trace.requests]
    assert [run["shared_prefix_tokens"] for run in result.config["runs"]] == [64, 64]
    # The runtime's own /metrics were scraped during both levels, with the token, which is
    # nowhere in what was written.
    assert not result.telemetry.empty
    assert set(result.telemetry["trace_speed"]) == {8.0, 16.0}
    for path in tmp_path.iterdir():
        assert token not in path.read_text(errors="replace"), path
    page = report.read_text()
    assert "trace speed 16" in page
    # The report judges each level by the SLO given, as the command's lines did.
    assert "Goodput against SLOs" in page
    for met, total in verdicts:
        assert f"{met}/{total} requests meet p90 TTFT ≤ 2000 ms" in page


def test_bench_searches_for_the_capacity_that_meets_an_slo(tmp_path: Path) -> None:
    # A knee at 4 streams: beyond it the simulator slows every stream, and a TTFT of 150 ms
    # grows past the 200 ms target before 16 (tests/test_search.py checks where the knee is
    # found; here, that the command bisects to an interval of one and keeps every level).
    with running("--port", "0") as (process, url, headers):
        token = headers["Authorization"].removeprefix("Bearer ")
        out = tmp_path / "search.json"
        bench = _bench(
            url,
            token,
            "--search",
            "concurrency",
            "--slo",
            "ttft_ms=200",
            "--low",
            "2",
            "--high",
            "16",
            "--requests",
            "24",
            "--sim",
            '{"capacity": 4, "ttft_ms": 150, "itl_ms": 1, "tokens": 4}',
            "--out",
            str(out),
        )
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert bench.returncode == 0, bench.stderr
    lines = bench.stdout.splitlines()
    assert lines[0].startswith("concurrency 2: passes")
    found = [line for line in lines if line.startswith("capacity for p99 TTFT ≤ 200 ms")]
    assert len(found) == 1
    match = re.search(r"between (\d+) \(passes\) and (\d+) \(fails\)", found[0])
    assert match, found[0]
    passed, failed = int(match.group(1)), int(match.group(2))
    assert failed == passed + 1
    assert 2 <= passed < 16
    levels = set(BenchResult.load(out).requests["concurrency"])
    assert {2, passed, failed} <= levels


def test_bench_refuses_options_that_do_not_go_together() -> None:
    cases = {
        ("--trace", "example", "--rate", "5"): "cannot take a --rate too",
        ("--search", "rate"): "--search needs an --slo",
        ("--search", "concurrency", "--concurrency", "4", "--slo", "ttft_ms=1"): "give --low",
        ("--search", "concurrency", "--trace", "example", "--slo", "ttft_ms=1"): "not a trace",
        ("--slo", "ttft=5"): "unknown SLO keys ['ttft']",
        ("--slo", "fast"): "expected name=value pairs",
        ("--trace", "example", "--trace-speed", "0"): "numbers above 0",
        ("--trace", "example", "--concurrency", "1,2"): "one cap",
        ("--rate", "a,b"): "--rate takes comma-separated numbers",
    }
    for args, says in cases.items():
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = main(["bench", "http://127.0.0.1:9", *args])
        assert code == 2, args
        assert says in stderr.getvalue(), (args, stderr.getvalue())
