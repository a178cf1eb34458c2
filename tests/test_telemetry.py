"""Telemetry on the run's timeline: HTTP phases per request, the server's /metrics scraped."""

from __future__ import annotations

import itertools
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glm_live import bench
from glm_live.measure.bench import Benchmark, BenchResult
from glm_live.measure.bench._http import Response, StreamClient
from glm_live.server import ServerHandle, serve

SIM = {"ttft_ms": 5, "itl_ms": 2, "tokens": 20}
PHASES = ["connect_start_ms", "connect_ms", "request_written_ms", "headers_ms"]
REQUESTS = '{"route": "/v1/chat/completions", "status": "200"}'


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_ordered(r: pd.DataFrame) -> None:
    """Every request has every phase, each no earlier than the one before."""
    columns = [*PHASES, "first_body_byte_ms"]
    assert r[columns].notna().all().all()
    for earlier, later in itertools.pairwise(columns):
        assert (r[earlier] <= r[later]).all(), (earlier, later)
    assert (r["connect_start_ms"] >= 0).all()


async def test_phases_are_ordered_and_present_for_every_request(runtime: ServerHandle) -> None:
    result = await bench.run(
        runtime.url, api_key=runtime.token, concurrency=3, requests=12, sim=SIM
    )
    r = result.requests
    assert (r["status"] == "ok").all()
    assert_ordered(r)
    assert r["tls_ms"].isna().all()  # plain HTTP: no handshake
    # The first body byte comes no later than the first event, which it carries (the
    # latencies count from the write's start, no later than its end).
    first_event = r["ttft_first_event_ms"] - r["queue_ms"]
    assert (r["first_body_byte_ms"] - r["request_written_ms"] <= first_event + 1e-6).all()
    new = r[~r["reused"]]
    assert len(new) == 3  # one connection per worker, the rest kept alive
    assert (new["connect_ms"] > new["connect_start_ms"]).all()


async def test_a_reused_connection_has_no_connect_time(runtime: ServerHandle) -> None:
    result = await bench.run(runtime.url, api_key=runtime.token, concurrency=1, requests=4, sim=SIM)
    r = result.requests
    assert list(r["reused"]) == [False, True, True, True]
    assert r.loc[0, "connect_ms"] > 0
    assert (r.loc[1:, ["connect_start_ms", "connect_ms"]] == 0).all().all()
    assert_ordered(r)


async def test_phases_over_tls(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem")
    )
    pem = str(tmp_path / "server.pem")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with serve(ssl_certfile=pem, ssl_keyfile=pem) as handle:
        client = StreamClient(
            bench.chat_url(handle.url),
            headers={"Authorization": f"Bearer {handle.token}"},
            verify=context,
        )
        body = json.dumps(
            {
                "model": "glm-4.6",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
                "sim": SIM,
            }
        ).encode()
        first = await client.post(body, Response())
        second = await client.post(body, Response())
        client.close()
    one, two = first.phases(), second.phases()
    assert not one["reused"]
    assert one["connect_start_ms"] <= one["connect_ms"] < one["tls_ms"]
    assert one["tls_ms"] <= one["request_written_ms"] <= one["headers_ms"]
    assert one["headers_ms"] <= one["first_body_byte_ms"]
    assert two["reused"]
    assert two["connect_ms"] == two["tls_ms"] == 0.0
    for response in (first, second):
        response.decode()
        assert response.events[-1] == "[DONE]"


async def test_scraping_the_runtimes_metrics_during_a_run(tmp_path: Path) -> None:
    with serve() as handle:  # its own: the requests counter counts this run only
        result = await bench.run(
            handle.url,
            api_key=handle.token,
            concurrency=2,
            requests=40,
            sim=SIM,
            metrics_url=True,
            metrics_interval=0.05,
        )
    assert (result.requests["status"] == "ok").all()
    info = result.calibration["telemetry"]
    assert info["scrape_errors"] == 0
    assert info["scrapes"] >= 4
    assert result.config["metrics_url"] == handle.url + "/metrics"
    t = result.telemetry
    served = t[(t["metric"] == "glm_live_requests_total") & (t["labels"] == REQUESTS)]
    served = served.sort_values("time_ns")
    # On the run's timeline: stamped on the requests' clock, increasing with the run's
    # progress, ending with every request of the run counted (the last scrape follows it).
    assert served["scrape"].is_monotonic_increasing
    assert served["value"].is_monotonic_increasing
    assert served["value"].nunique() >= 3
    assert served["value"].iloc[-1] == 40
    r = result.requests
    assert (served["t"] >= 0).all()
    assert served["time_ns"].iloc[0] >= r["scheduled_ns"].min()
    ended = (r["sent_ns"] + (r["e2e_ms"] - r["queue_ms"]) * 1e6).max()
    before = served[served["time_ns"] < ended - 50e6]
    assert len(before) >= 2  # scraped mid-run...
    assert before["value"].max() < 40  # ...before the run was over
    assert set(t["type"]) >= {"counter", "gauge", "histogram"}
    # Saved and loaded with the result.
    for suffix in (".parquet", ".json"):
        paths = result.save(tmp_path / f"run{suffix}")
        assert paths[-1].name == f"run.telemetry{suffix}"
        loaded = BenchResult.load(tmp_path / f"run{suffix}")
        pd.testing.assert_frame_equal(loaded.telemetry, t, check_dtype=False)
        assert loaded.calibration["telemetry"] == info


async def test_an_unreachable_metrics_url_does_not_fail_the_run(runtime: ServerHandle) -> None:
    result = await bench.run(
        runtime.url,
        api_key=runtime.token,
        concurrency=2,
        requests=6,
        sim=SIM,
        metrics_url=f"http://127.0.0.1:{free_port()}/metrics",
        metrics_interval=0.05,
    )
    assert (result.requests["status"] == "ok").all()
    info = result.calibration["telemetry"]
    assert info["scrapes"] == 0
    assert info["scrape_errors"] >= 1
    assert "ConnectionRefused" in info["scrape_last_error"]
    assert result.telemetry.empty
    assert list(result.telemetry.columns)[:2] == ["scrape", "time_ns"]


async def test_the_token_is_nowhere_in_the_result(runtime: ServerHandle, tmp_path: Path) -> None:
    token = runtime.token
    assert token
    run = Benchmark(
        runtime.url,
        api_key=token,
        concurrency=2,
        requests=6,
        sim=SIM,
        metrics_url=True,
        metrics_interval=0.05,
    )
    result = await run.run()
    assert not result.telemetry.empty
    assert result.calibration["telemetry"]["scrape_errors"] == 0
    # A wrong token: refused, and the refusal kept without the token sent.
    wrong = "not-the-token-" + "x" * 20
    refused = await bench.run(
        runtime.url,
        api_key=token,
        concurrency=1,
        requests=2,
        sim=SIM,
        metrics_url=runtime.url + "/metrics",
        metrics_token=wrong,
        metrics_interval=0.05,
    )
    assert refused.calibration["telemetry"]["scrape_errors"] >= 1
    assert "401" in refused.calibration["telemetry"]["scrape_last_error"]
    for secret, res in ((token, result), (wrong, refused)):
        texts = [
            repr(res),
            repr(run),
            repr(run.scraper),
            json.dumps(res.config, default=str),
            json.dumps(res.calibration, default=str),
            res.requests.to_csv(),
            res.events.to_csv(),
            res.telemetry.to_csv(),
            str(res._repr_mimebundle_()),
        ]
        assert not any(secret in text for text in texts)
        for suffix in (".parquet", ".json", ".csv"):
            for path in res.save(tmp_path / f"{len(secret)}{suffix}"):
                assert secret.encode() not in path.read_bytes(), path


def test_a_scraper_refuses_bad_options() -> None:
    with pytest.raises(ValueError, match="positive"):
        Benchmark("http://127.0.0.1:1", metrics_url=True, metrics_interval=0)
    with pytest.raises(ValueError, match="http") as refused:
        Benchmark("http://127.0.0.1:1", metrics_url="ftp://user:secret@h/metrics")
    assert "secret" not in str(refused.value)
    assert np.isnan(Response().phases()["headers_ms"])
