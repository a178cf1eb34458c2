"""The embedded runtime, over real sockets: a simulated GLM-4.6 served by uvicorn on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from glm_live import (
    AuthenticationError,
    GLMClient,
    InsufficientBalanceError,
    RateLimitError,
    ServerError,
    StreamInterrupted,
)
from glm_live.server import InsecureBindError, ServerHandle, serve
from glm_live.wire.sse import Decoder

FAST = {"ttft_ms": 1, "itl_ms": 1}


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(seed=7) as handle:
        yield handle


def chat_body(prompt: str = "hello", **extra: Any) -> dict[str, Any]:
    sim = {**FAST, **extra.pop("sim", {})}
    return {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": prompt}],
        "sim": sim,
        **extra,
    }


def metric(handle: ServerHandle, name: str, **labels: str) -> float:
    text = httpx.get(handle.url + "/metrics", headers=handle.headers).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def raw_stream(handle: ServerHandle, body: dict[str, Any]) -> list[str]:
    """The data fields of a streamed response, decoded by our own SSE decoder."""
    decoder = Decoder()
    events = []
    url = handle.url + "/v1/chat/completions"
    with httpx.stream("POST", url, json={**body, "stream": True}, headers=handle.headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for piece in r.iter_bytes():
            events += decoder.feed(piece)
    return [e.data for e in events]


# --- the wire format --------------------------------------------------------------------------


def test_stream_is_glm_wire_format_with_send_stamps(runtime: ServerHandle) -> None:
    data = raw_stream(runtime, chat_body("Summarise the quarter", sim={"tokens": 30}))
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert len(chunks) == 31  # one chunk per token, then the finishing chunk
    stamps = [c["x_sent_ns"] for c in chunks]
    assert all(isinstance(s, int) for s in stamps)
    assert stamps == sorted(stamps)
    assert abs(stamps[-1] - time.time_ns()) < 60e9  # wall clock, nanoseconds
    for c in chunks[:-1]:
        assert c["model"] == "glm-4.6-sim"
        assert c["id"].startswith("chatcmpl-sim-")
        assert c["choices"][0]["finish_reason"] is None
        assert "usage" not in c
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert last["usage"]["completion_tokens"] == 30
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 30
    assert len({c["id"] for c in chunks}) == 1


@pytest.mark.parametrize("base", ["/api/paas/v4", "/v1"])
async def test_glm_client_on_both_paths(runtime: ServerHandle, base: str) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.url + base) as client:
        stream = client.stream("Write an account review for Globex", sim={**FAST, "tokens": 120})
        chunks = [c async for c in stream]
    completion = stream.completion
    assert completion.model == "glm-4.6-sim"
    assert completion.finish_reason == "stop"
    content_chunks = sum(1 for c in chunks if c.content)
    assert completion.usage is not None
    assert completion.usage["completion_tokens"] == content_chunks == 120
    assert "Account review: Globex" in completion.text


async def test_text_is_deterministic_topical_and_markdown(runtime: ServerHandle) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url) as client:
        params = {"sim": {**FAST, "tokens": 400, "seed": 3}}
        first = await client.complete("Review the Initech account", **params)
        again = await client.complete("Review the Initech account", **params)
        other_seed = await client.complete(
            "Review the Initech account", sim={**FAST, "tokens": 400, "seed": 4}
        )
        latency = await client.complete("What is our p99 latency?", **params)
    assert first.text == again.text
    assert first.id != again.id  # the same answer, but a new completion
    assert first.text != other_seed.text
    assert "Account review: Initech" in first.text
    for marker in ("## ", "| ", "|---", "```", "\n- ", "**"):
        assert marker in first.text, marker
    assert "TTFT" in latency.text


async def test_thinking_streams_reasoning_first(runtime: ServerHandle) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url) as client:
        stream = client.stream(
            "Plan a migration", thinking=True, sim={**FAST, "tokens": 20, "reasoning_tokens": 12}
        )
        kinds = [("r" if c.reasoning else "c" if c.content else "-") async for c in stream]
        plain = await client.complete("Plan a migration", thinking=False, sim=FAST)
    assert kinds[:12] == ["r"] * 12
    assert kinds[12:32] == ["c"] * 20
    completion = stream.completion
    assert completion.usage is not None
    assert completion.usage["completion_tokens_details"]["reasoning_tokens"] == 12
    assert completion.usage["completion_tokens"] == 32
    assert plain.reasoning == ""


WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]


async def test_tool_call_streamed_in_fragments(runtime: ServerHandle) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url) as client:
        stream = client.stream(
            "What's the weather in Paris?", tools=WEATHER, tool_stream=True, sim=FAST
        )
        chunks = [c async for c in stream]
    fragments = [c for c in chunks if c.tool_calls]
    assert len(fragments) > 3
    assert fragments[0].tool_calls[0].name == "get_weather"
    (call,) = stream.completion.tool_calls
    assert call.parsed_arguments()["city"] == "Paris"
    assert stream.completion.finish_reason == "tool_calls"


def test_tool_call_whole_in_the_finishing_chunk(runtime: ServerHandle) -> None:
    data = raw_stream(runtime, chat_body("Weather in Oslo?", tools=WEATHER))
    chunks = [json.loads(d) for d in data[:-1]]
    assert len(chunks) == 1
    choice = chunks[0]["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["delta"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"])["city"] == "Oslo"


async def test_tool_result_gets_a_text_answer(runtime: ServerHandle) -> None:
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "4 degrees and rain"},
    ]
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url) as client:
        completion = await client.complete(messages, tools=WEATHER, sim=FAST)
    assert completion.finish_reason == "stop"
    assert completion.tool_calls == []
    assert completion.text


async def test_max_tokens_cuts_with_length(runtime: ServerHandle) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url) as client:
        completion = await client.complete("x", max_tokens=9, sim={**FAST, "tokens": 50})
    assert completion.finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage["completion_tokens"] == 9


def test_non_stream_response(runtime: ServerHandle) -> None:
    r = httpx.post(
        runtime.url + "/api/paas/v4/chat/completions",
        json=chat_body("Review the Contoso account", sim={"tokens": 25}),
        headers=runtime.headers,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "glm-4.6-sim"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] == 25


async def test_official_openai_sdk_streams_and_parses(runtime: ServerHandle) -> None:
    client = openai.AsyncOpenAI(base_url=runtime.base_url, api_key=runtime.token)
    stream = await client.chat.completions.create(
        model="glm-4.6",
        messages=[{"role": "user", "content": "Analyse the churn data"}],
        stream=True,
        extra_body={"sim": {**FAST, "tokens": 40}},
    )
    content_chunks = 0
    usage = None
    text = []
    async for chunk in stream:
        assert chunk.model == "glm-4.6-sim"
        if chunk.choices and chunk.choices[0].delta.content:
            content_chunks += 1
            text.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None
    assert usage.completion_tokens == content_chunks == 40
    whole = await client.chat.completions.create(
        model="glm-4.6",
        messages=[{"role": "user", "content": "Analyse the churn data"}],
        extra_body={"sim": {**FAST, "tokens": 40}},
    )
    assert whole.choices[0].message.content == "".join(text)
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 40
    await client.close()


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "status", "code"),
    [
        ("rate_limit", RateLimitError, 429, "1302"),
        ("balance", InsufficientBalanceError, 429, "1113"),
        ("auth", AuthenticationError, 401, "1002"),
        ("server_error", ServerError, 500, "500"),
    ],
)
async def test_http_faults(
    runtime: ServerHandle, fault: str, error: type[Exception], status: int, code: str
) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url, max_retries=0) as client:
        with pytest.raises(error) as info:
            await client.complete("x", sim={**FAST, "fault": fault, "retry_after": 2})
    assert info.value.status == status  # type: ignore[attr-defined]
    assert info.value.code == code  # type: ignore[attr-defined]
    if fault == "rate_limit":
        assert info.value.retry_after == 2.0  # type: ignore[attr-defined]


async def test_drop_fault_cuts_connection_after_n_tokens(runtime: ServerHandle) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url, max_retries=0) as client:
        with pytest.raises(StreamInterrupted) as info:
            await client.complete(
                "x", sim={**FAST, "tokens": 40, "fault": "drop", "fault_after": 15}
            )
    assert info.value.partial.chunks == 15
    assert info.value.partial.finish_reason is None


async def test_network_error_fault(runtime: ServerHandle) -> None:
    async with GLMClient(api_key=runtime.token, base_url=runtime.base_url) as client:
        with pytest.raises(StreamInterrupted, match="network_error") as info:
            await client.complete(
                "x", sim={**FAST, "tokens": 40, "fault": "network_error", "fault_after": 10}
            )
    partial = info.value.partial
    assert partial.finish_reason == "network_error"
    assert partial.usage["completion_tokens"] == 10


async def test_stall_fault_keeps_connection_silent(runtime: ServerHandle) -> None:
    async with GLMClient(
        api_key=runtime.token, base_url=runtime.base_url, idle_timeout=0.3, max_retries=0
    ) as client:
        with pytest.raises(StreamInterrupted, match="no bytes") as info:
            await client.complete(
                "x", sim={**FAST, "tokens": 40, "fault": "stall", "fault_after": 5}
            )
    assert info.value.partial.chunks == 5


def test_rate_limit_fault_headers(runtime: ServerHandle) -> None:
    r = httpx.post(
        runtime.base_url + "/chat/completions",
        json=chat_body(sim={"fault": "rate_limit", "retry_after": 3}),
        headers=runtime.headers,
    )
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.json()["error"]["code"] == "1302"


# --- bad input --------------------------------------------------------------------------------

BAD = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"", "empty"),
    (json.dumps({"model": "glm-4.6"}).encode(), "messages is required"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model is required"),
    (json.dumps({"model": "glm-4.6", "messages": "hi"}).encode(), "non-empty list"),
    (
        json.dumps({"model": "glm-4.6", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
        "role must be one of",
    ),
    (
        json.dumps({"model": "glm-4.6", "messages": [{"role": "user", "content": 5}]}).encode(),
        "content must be a string",
    ),
    (
        json.dumps(
            {
                "model": "glm-4.6",
                "messages": [{"role": "user", "content": "x"}],
                "temperature": "hot",
            }
        ).encode(),
        "temperature must be a number",
    ),
    (
        json.dumps(
            {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}
        ).encode(),
        "max_tokens",
    ),
    (
        json.dumps(
            {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}
        ).encode(),
        "stream must be",
    ),
    (
        json.dumps(
            {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}], "thinking": True}
        ).encode(),
        "thinking must be",
    ),
    (
        json.dumps(
            {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}], "sim": {"warp": 9}}
        ).encode(),
        "unknown keys ['warp']",
    ),
    (
        json.dumps(
            {
                "model": "glm-4.6",
                "messages": [{"role": "user", "content": "x"}],
                "sim": {"fault": "meteor"},
            }
        ).encode(),
        "sim.fault must be one of",
    ),
    (
        json.dumps(
            {
                "model": "glm-4.6",
                "messages": [{"role": "user", "content": "x"}],
                "sim": {"itl_ms": {"dist": "normal", "mean": 5}},
            }
        ).encode(),
        "needs sd",
    ),
]


@pytest.mark.parametrize(("body", "fragment"), BAD)
def test_bad_input_is_a_glm_style_400(runtime: ServerHandle, body: bytes, fragment: str) -> None:
    r = httpx.post(
        runtime.base_url + "/chat/completions",
        content=body,
        headers={"content-type": "application/json", **runtime.headers},
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert isinstance(error["code"], str)
    assert fragment in error["message"]


def test_unknown_model_and_oversized_body(runtime: ServerHandle) -> None:
    r = httpx.post(
        runtime.base_url + "/chat/completions",
        json={"model": "gpt-99", "messages": [{"role": "user", "content": "x"}]},
        headers=runtime.headers,
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "1211"
    assert "gpt-99" in r.json()["error"]["message"]
    huge = "x" * (5 * 1024 * 1024)
    r = httpx.post(
        runtime.base_url + "/chat/completions",
        json={"model": "glm-4.6", "messages": [{"role": "user", "content": huge}]},
        headers=runtime.headers,
    )
    assert r.status_code == 400
    assert "exceeds the limit" in r.json()["error"]["message"]
    # ...and the server keeps serving.
    ok = httpx.post(
        runtime.base_url + "/chat/completions", json=chat_body(), headers=runtime.headers
    )
    assert ok.status_code == 200


async def test_disconnect_frees_resources_at_once(runtime: ServerHandle) -> None:
    body = {**chat_body(sim={"tokens": 5000, "ttft_ms": 1, "itl_ms": 5}), "stream": True}
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST", runtime.base_url + "/chat/completions", json=body, headers=runtime.headers
        ) as r,
    ):
        async for _ in r.aiter_bytes():
            break
        assert metric(runtime, "glm_live_requests_in_flight") >= 1
    # The stream would last 25 s; after the disconnect the server lets go within moments.
    deadline = time.monotonic() + 5
    while metric(runtime, "glm_live_requests_in_flight") > 0:
        assert time.monotonic() < deadline, "in-flight count did not return to 0"
        await asyncio.sleep(0.05)
    assert (
        httpx.get(runtime.url + "/health", headers=runtime.headers).json()["requests_in_flight"]
        == 0
    )


async def test_slow_reader_does_not_hold_back_others(runtime: ServerHandle) -> None:
    body = json.dumps(
        {**chat_body(sim={"tokens": 60000, "ttft_ms": 0, "itl_ms": 0.01}), "stream": True}
    ).encode()
    sock = socket.create_connection(("127.0.0.1", runtime.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
        b"application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
        % ((runtime.token or "").encode(), len(body), body)
    )
    try:
        await asyncio.sleep(0.5)  # the server fills the socket buffers and must wait
        async with GLMClient(api_key=runtime.token, base_url=runtime.base_url) as client:
            completion = await asyncio.wait_for(client.complete("x", sim=FAST), 10)
        assert completion.finish_reason == "stop"
    finally:
        sock.close()
    deadline = time.monotonic() + 5
    while metric(runtime, "glm_live_requests_in_flight") > 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


# --- health, metrics, security ----------------------------------------------------------------


def test_health_and_metrics(runtime: ServerHandle) -> None:
    httpx.post(runtime.base_url + "/chat/completions", json=chat_body(), headers=runtime.headers)
    health = httpx.get(runtime.url + "/health", headers=runtime.headers).json()
    assert health["status"] == "ok"
    assert health["simulated"] is True
    assert health["model"] == "glm-4.6-sim"
    r = httpx.get(runtime.url + "/metrics", headers=runtime.headers)
    assert r.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(r.text)}
    for name in (
        "glm_live_requests_in_flight",
        "glm_live_requests",
        "glm_live_tokens_served",
        "glm_live_errors",
        "glm_live_request_duration_seconds",
        "glm_live_time_to_first_chunk_seconds",
        "glm_live_sim_send_lag_seconds",
    ):
        assert name in names, name
    assert (
        metric(runtime, "glm_live_requests_total", route="/v1/chat/completions", status="200") >= 1
    )
    assert metric(runtime, "glm_live_tokens_served_total", kind="content") > 0


def test_token_required_when_configured() -> None:
    token = secrets.token_hex(12)
    with serve(token=token, sim=FAST) as handle:
        assert token not in repr(handle)
        assert token not in repr(handle.runtime.config)
        r = httpx.post(handle.base_url + "/chat/completions", json=chat_body())
        assert r.status_code == 401
        assert "Authorization: Bearer" in r.json()["error"]["message"]
        assert token not in r.text
        wrong = httpx.post(
            handle.base_url + "/chat/completions",
            json=chat_body(),
            headers={"authorization": "Bearer nope"},
        )
        assert wrong.status_code == 401
        assert httpx.get(handle.url + "/metrics").status_code == 401
        assert httpx.get(handle.url + "/health").status_code == 200
        ok = httpx.post(
            handle.base_url + "/chat/completions",
            json=chat_body(),
            headers={"authorization": f"Bearer {token}"},
        )
        assert ok.status_code == 200


def test_refuses_network_bind_with_authentication_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLM_LIVE_TOKEN", raising=False)
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.org"):
        with pytest.raises(InsecureBindError, match="with authentication off"):
            serve(host=host, auth=False)


# --- start-up: a pre-bound socket, and clear errors when it fails ----------------------------


def _listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_port_in_use_is_a_clear_error() -> None:
    with _listening() as taken:
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}") as info:
            serve(port=port)
        assert isinstance(info.value.__cause__, OSError)
        # glm-live serve says the same, and exits.
        result = subprocess.run(
            [sys.executable, "-m", "glm_live", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "GLM_LIVE_TOKEN"},
        )
    assert result.returncode == 1
    assert f"glm-live serve: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_bad_tls_file_fails_start_up_and_frees_the_port(tmp_path: Path) -> None:
    with _listening() as probe:
        port = probe.getsockname()[1]
    missing = str(tmp_path / "missing.pem")
    started = time.monotonic()
    with pytest.raises(
        RuntimeError, match=r"failed to start on https://127\.0\.0\.1:\d+: FileNotFoundError"
    ) as info:
        serve(port=port, ssl_certfile=missing, ssl_keyfile=missing)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert time.monotonic() - started < 5  # said at once, not after the start-up timeout
    with socket.socket() as again:  # the socket bound for it was closed
        again.bind(("127.0.0.1", port))


def test_app_start_up_failure_is_chained_without_the_password() -> None:
    from glm_live import HubStoreError

    with _listening() as probe:
        port = probe.getsockname()[1]
    password = secrets.token_hex(8)
    with pytest.raises(RuntimeError, match="cannot use Redis") as info:
        serve(redis=f"redis://:{password}@127.0.0.1:{port}/0")
    assert isinstance(info.value.__cause__, HubStoreError)
    assert password not in str(info.value)


def test_start_up_timeout_is_a_clear_error() -> None:
    # A "Redis" that accepts and never answers holds the app's start-up.
    with _listening() as silent:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RuntimeError, match=r"did not start within 0.5 s"):
            serve(redis=f"redis://127.0.0.1:{port}/0", startup_timeout=0.5)
        assert time.monotonic() - started < 5
    # Closing the silent server ends that start-up attempt (its thread exits on its own).


def test_latency_knee_from_capacity() -> None:
    from glm_live.server.chatreq import parse_chat_request
    from glm_live.server.config import SimConfig
    from glm_live.server.sim.engine import Simulator

    sim = Simulator(SimConfig())
    request = parse_chat_request(
        chat_body(sim={"ttft_ms": 100, "itl_ms": 10, "tokens": 5, "capacity": 4}), sim.config
    )
    answer = sim.answer(request)
    alone = sim._gaps(request, answer, answer.pieces, active=1)
    at_capacity = sim._gaps(request, answer, answer.pieces, active=4)
    crowded = sim._gaps(request, answer, answer.pieces, active=16)
    assert alone == at_capacity == [0.1] + [0.01] * 4
    assert crowded == pytest.approx([0.4] + [0.04] * 4)
