"""Proxy backends, tested with a second runtime instance as the upstream."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from glm_live import GLMClient, InsufficientBalanceError, RateLimitError, StreamInterrupted
from glm_live.server import ConfigError, ServerHandle, serve
from glm_live.wire.sse import Decoder
from tests.byteserver import ByteServer, error, sse

FAST = {"ttft_ms": 1, "itl_ms": 1}


def relay_to(upstream: ServerHandle) -> ServerHandle:
    """A proxy runtime in front of ``upstream``, whose token is its upstream key
    (``OPENAI_API_KEY``, read when the proxy is built)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", upstream.token or "")
        return serve(backend="openai", upstream=upstream.base_url)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServerHandle]:
    with serve(sim={**FAST, "tokens": 30}) as handle:
        yield handle


@pytest.fixture(scope="module")
def proxy(upstream: ServerHandle) -> Iterator[ServerHandle]:
    with relay_to(upstream) as handle:
        yield handle


def test_stream_passes_through_unchanged(proxy: ServerHandle, upstream: ServerHandle) -> None:
    # "sim" is the simulator's extension: the proxy does not pass it on (a real upstream
    # would reject it), so the upstream's own defaults (30 tokens) apply.
    body = {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "sim": {"tokens": 3},
    }
    decoder = Decoder()
    with httpx.stream(
        "POST", proxy.base_url + "/chat/completions", json=body, headers=proxy.headers
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for piece in r.iter_bytes() for e in decoder.feed(piece)]
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert events[-1].data == "[DONE]"
    assert len(chunks) == 31
    assert all(c["model"] == "glm-4.6-sim" for c in chunks)
    assert all("x_sent_ns" in c for c in chunks)  # the upstream's own stamps, untouched


async def test_chunks_are_relayed_as_they_come(proxy: ServerHandle, upstream: ServerHandle) -> None:
    # The upstream takes 4 s for this answer; the first chunk arrives through the proxy while
    # the upstream is still streaming, so the proxy cannot be buffering the response.
    body = {"model": "glm-4.6", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    slow = serve(sim={"ttft_ms": 1, "itl_ms": 100, "tokens": 40})
    relay = relay_to(slow)
    try:
        async with (
            httpx.AsyncClient() as client,
            client.stream(
                "POST", relay.base_url + "/chat/completions", json=body, headers=relay.headers
            ) as r,
        ):
            async for piece in r.aiter_bytes():
                assert b"x_sent_ns" in piece
                upstream_busy = (
                    await client.get(slow.url + "/health", headers=slow.headers)
                ).json()
                assert upstream_busy["requests_in_flight"] == 1
                break
    finally:
        relay.close()
        slow.close()


async def test_glm_client_through_proxy(proxy: ServerHandle) -> None:
    async with GLMClient(base_url=proxy.base_url, api_key=proxy.token) as client:
        completion = await client.complete("Review the Globex account")
    assert completion.usage is not None
    assert completion.usage["completion_tokens"] == 30
    assert completion.text


def test_non_stream_and_bad_input_pass_through(proxy: ServerHandle) -> None:
    r = httpx.post(
        proxy.base_url + "/chat/completions",
        json={"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}]},
        headers=proxy.headers,
    )
    assert r.status_code == 200
    assert r.json()["object"] == "chat.completion"
    bad = httpx.post(
        proxy.base_url + "/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
        headers=proxy.headers,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "1211"
    malformed = httpx.post(
        proxy.base_url + "/chat/completions",
        content=b"{oops",
        headers={"content-type": "application/json", **proxy.headers},
    )
    assert malformed.status_code == 400


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [("rate_limit", RateLimitError, "1302"), ("balance", InsufficientBalanceError, "1113")],
)
async def test_errors_pass_through_with_glm_bodies(
    fault: str, error: type[Exception], code: str
) -> None:
    with (
        serve(sim={**FAST, "fault": fault, "retry_after": 7}) as failing,
        relay_to(failing) as relay,
    ):
        r = httpx.post(
            relay.base_url + "/chat/completions",
            json={"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}]},
            headers=relay.headers,
        )
        assert (
            r.json()
            == httpx.post(
                failing.base_url + "/chat/completions",
                json={"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}]},
                headers=failing.headers,
            ).json()
        )
        async with GLMClient(base_url=relay.base_url, api_key=relay.token, max_retries=0) as client:
            with pytest.raises(error) as info:
                await client.complete("x")
    assert info.value.code == code  # type: ignore[attr-defined]
    if fault == "rate_limit":
        assert info.value.retry_after == 7.0  # type: ignore[attr-defined]


async def test_upstream_drop_is_relayed_as_a_drop() -> None:
    with (
        serve(sim={**FAST, "tokens": 40, "fault": "drop", "fault_after": 12}) as failing,
        relay_to(failing) as relay,
    ):
        async with GLMClient(base_url=relay.base_url, api_key=relay.token, max_retries=0) as client:
            with pytest.raises(StreamInterrupted) as info:
                await client.complete("x")
    assert info.value.partial.chunks == 12


def test_unreachable_upstream_is_a_502(unused_tcp_port: int) -> None:
    with serve(backend="openai", upstream=f"http://127.0.0.1:{unused_tcp_port}/v1") as relay:
        r = httpx.post(
            relay.base_url + "/chat/completions",
            json={"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}]},
            headers=relay.headers,
        )
    assert r.status_code == 502
    assert "could not be reached" in r.json()["error"]["message"]


async def test_glm_backend_sends_the_key_upstream_and_nowhere_else(
    server: ByteServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = "zai-test-key-0123456789abcdef"
    monkeypatch.setenv("ZAI_API_KEY", key)
    server.play(
        error(401, {"error": {"code": "1002", "message": f"bad token {key}"}}),
        sse(
            'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\n',
            "data: [DONE]\n\n",
        ),
    )
    with caplog.at_level(logging.DEBUG):
        relay = serve(backend="glm", upstream=server.url + "/api/paas/v4")
        try:
            assert key not in repr(relay.runtime.proxy)
            async with httpx.AsyncClient() as client:
                body = {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}]}
                # The client's Authorization is the runtime's token: it must not go upstream.
                first = await client.post(
                    relay.url + "/api/paas/v4/chat/completions", json=body, headers=relay.headers
                )
                second = await client.post(
                    relay.url + "/api/paas/v4/chat/completions",
                    json={**body, "stream": True},
                    headers=relay.headers,
                )
        finally:
            relay.close()
    # GLM's own error body comes back as it was sent: echoing the key is the upstream's doing.
    assert first.status_code == 401
    assert first.json()["error"]["code"] == "1002"
    assert second.status_code == 200
    assert b"ok" in second.content
    upstream_saw = [r.headers.get("authorization") for r in server.requests]
    assert upstream_saw == [f"Bearer {key}", f"Bearer {key}"]
    assert server.requests[0].path == "/api/paas/v4/chat/completions"
    assert key not in caplog.text


def test_glm_backend_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZAI_API_KEY", raising=False)
    monkeypatch.delenv("ZHIPUAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ZAI_API_KEY"):
        serve(backend="glm")


def test_openai_backend_needs_an_upstream() -> None:
    with pytest.raises(ConfigError, match="upstream"):
        serve(backend="openai")
