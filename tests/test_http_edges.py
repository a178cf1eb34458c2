"""The runtime's HTTP edges, over real sockets: CORS preflights and headers, cross-site writes
refused (also with authentication off), 415 for bodies that are not JSON, 404/405 as GLM-shaped
JSON, and SSE keep-alive comments on quiet chat streams, agent runs and proxied streams."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from glm_live.agents.core import AgentContext, Workflow
from glm_live.server import ServerHandle, serve
from glm_live.server.config import ConfigError, RuntimeConfig
from glm_live.wire.sse import Decoder
from tests.agui_checker import check_run, run_input
from tests.byteserver import ByteServer, sse
from tests.test_cli import _fails, running

APP = "http://app.example"
EVIL = "http://evil.example"
FAST = {"ttft_ms": 1, "itl_ms": 1}
KEEPALIVE = b": keep-alive\n\n"


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(cors_origins=[APP], sse_keepalive_s=0.1) as handle:
        yield handle


@pytest.fixture(scope="module")
def open_runtime() -> Iterator[ServerHandle]:
    """Authentication off: only the origin rules stand between a web page and the runtime."""
    with serve(auth=False, cors_origins=[APP]) as handle:
        yield handle


def chat(prompt: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": prompt}],
        "sim": {**FAST, "tokens": 5, **extra.pop("sim", {})},
        **extra,
    }


def served(handle: ServerHandle) -> float:
    """Chat requests served so far (every status), from the runtime's own counter."""
    requests = handle.runtime.metrics.requests
    return sum(s.value for m in requests.collect() for s in m.samples if s.name.endswith("_total"))


# --- preflights -------------------------------------------------------------------------------


def test_a_preflight_from_an_allowed_origin_is_answered_before_auth(
    runtime: ServerHandle,
) -> None:
    r = httpx.options(
        runtime.base_url + "/chat/completions",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
        },
    )
    assert r.status_code == 204
    cors = {k: v for k, v in r.headers.items() if k.startswith("access-control-") or k == "vary"}
    assert cors == {
        "access-control-allow-origin": APP,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": "authorization, content-type, x-stainless-os",
        "access-control-max-age": "600",
        "vary": "Origin",
    }
    assert r.content == b""


def test_a_preflight_from_a_foreign_origin_is_refused_with_a_reason(
    runtime: ServerHandle,
) -> None:
    r = httpx.options(
        runtime.url + "/agents/account-review",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 403
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["vary"] == "Origin"
    error = r.json()["error"]
    assert error["code"] == "1220"
    assert EVIL in error["message"]
    assert f"--cors-origin {EVIL}" in error["message"]


def test_a_private_network_preflight_is_allowed_for_a_listed_origin(
    runtime: ServerHandle,
) -> None:
    asked = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Private-Network": "true",
    }
    r = httpx.options(runtime.base_url + "/chat/completions", headers={"Origin": APP, **asked})
    assert (r.status_code, r.headers["access-control-allow-private-network"]) == (204, "true")
    r = httpx.options(runtime.base_url + "/chat/completions", headers={"Origin": EVIL, **asked})
    assert r.status_code == 403
    assert "access-control-allow-private-network" not in r.headers


def test_a_preflight_asking_for_a_header_not_allowed_is_refused(runtime: ServerHandle) -> None:
    r = httpx.options(
        runtime.base_url + "/chat/completions",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, x-forwarded-for",
        },
    )
    assert r.status_code == 403
    assert "x-forwarded-for" in r.json()["error"]["message"]


def test_responses_to_an_allowed_origin_carry_cors_headers(runtime: ServerHandle) -> None:
    r = httpx.post(
        runtime.base_url + "/chat/completions",
        json=chat(),
        headers={"Origin": APP, **runtime.headers},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    assert r.headers["vary"] == "Origin"
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "retry-after"} <= exposed
    assert "access-control-allow-credentials" not in r.headers
    plain = httpx.post(runtime.base_url + "/chat/completions", json=chat(), headers=runtime.headers)
    assert "access-control-allow-origin" not in plain.headers


def test_config_refuses_a_wildcard_and_normalises_origins() -> None:
    with pytest.raises(ConfigError, match="Authorization"):
        RuntimeConfig(cors_origins=("*",))
    with pytest.raises(ConfigError, match="no path"):
        RuntimeConfig(cors_origins=("https://app.example/page",))
    config = RuntimeConfig(
        cors_origins=("HTTPS://App.Example:443/",), allowed_origins=("http://localhost:3000",)
    )
    assert config.cors_origins == ("https://app.example", "http://localhost:3000")


# --- cross-site writes ------------------------------------------------------------------------


def _simple_posts(url: str, body: dict[str, Any]) -> list[httpx.Response]:
    """The three kinds of POST a page on any site may send without a preflight."""
    text = json.dumps(body)
    headers = {"Origin": EVIL}
    return [
        httpx.post(url, content=text, headers={**headers, "content-type": "text/plain"}),
        httpx.post(url, data={"payload": text}, headers=headers),
        httpx.post(url, files={"payload": ("x.json", text.encode())}, headers=headers),
    ]


@pytest.mark.parametrize("which", ["runtime", "open_runtime"])
def test_cross_site_simple_posts_are_refused_and_nothing_is_served(
    which: str, request: pytest.FixtureRequest
) -> None:
    handle: ServerHandle = request.getfixturevalue(which)
    before = served(handle)
    for r in _simple_posts(handle.base_url + "/chat/completions", chat(stream=True)):
        assert r.status_code == 403, r.request.headers["content-type"]
        assert r.json()["error"]["code"] == "1220"
        assert EVIL in r.json()["error"]["message"]
    for r in _simple_posts(handle.url + "/agents/account-review", run_input("evil-run", FAST)):
        assert r.status_code == 403
    assert served(handle) == before  # no completion was started
    assert "evil-run" not in handle.runtime.runs.states  # no run was recorded
    assert not handle.runtime.runs.runs


def test_a_json_post_from_a_foreign_origin_is_refused_even_with_auth_off(
    open_runtime: ServerHandle,
) -> None:
    before = served(open_runtime)
    r = httpx.post(
        open_runtime.base_url + "/chat/completions", json=chat(), headers={"Origin": EVIL}
    )
    assert r.status_code == 403
    r = httpx.post(
        open_runtime.base_url + "/chat/completions",
        json=chat(),
        headers={"Sec-Fetch-Site": "cross-site"},  # a browser that left Origin out
    )
    assert r.status_code == 403
    assert "Sec-Fetch-Site" in r.json()["error"]["message"]
    assert served(open_runtime) == before


def test_with_auth_off_a_rebound_name_is_refused_whatever_the_method(
    open_runtime: ServerHandle,
) -> None:
    """DNS rebinding: evil.example now resolves to 127.0.0.1, so its page is "same origin"."""
    before = served(open_runtime)
    port = open_runtime.port
    rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
    r = httpx.post(open_runtime.base_url + "/chat/completions", json=chat(), headers=rebound)
    assert r.status_code == 403
    assert "loopback" in r.json()["error"]["message"]
    r = httpx.get(open_runtime.url + "/metrics", headers={"Host": f"evil.example:{port}"})
    assert r.status_code == 403
    assert served(open_runtime) == before
    assert httpx.get(
        open_runtime.url + "/metrics", headers={"Host": f"localhost:{port}"}
    ).is_success


def test_same_origin_and_allowed_origin_posts_are_served(open_runtime: ServerHandle) -> None:
    for origin in (open_runtime.url, APP):
        r = httpx.post(
            open_runtime.base_url + "/chat/completions",
            json=chat(),
            headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
        )
        assert r.status_code == 200, (origin, r.text)
        assert r.json()["choices"][0]["message"]["content"]


def test_a_body_that_is_not_json_gets_415_and_is_not_served(runtime: ServerHandle) -> None:
    before = served(runtime)
    url = runtime.base_url + "/chat/completions"
    text = json.dumps(chat())
    for headers in ({"content-type": "text/plain"}, {}):
        r = httpx.post(url, content=text, headers={**headers, **runtime.headers})
        assert r.status_code == 415
        error = r.json()["error"]
        assert "application/json" in error["message"]
    form = httpx.post(url, data={"a": "b"}, headers=runtime.headers)
    assert form.status_code == 415
    assert "application/x-www-form-urlencoded" in form.json()["error"]["message"]
    agents = httpx.post(
        runtime.url + "/agents/account-review",
        content=json.dumps(run_input("plain-text-run", FAST)),
        headers={"content-type": "text/plain", **runtime.headers},
    )
    assert agents.status_code == 415
    assert "plain-text-run" not in runtime.runtime.runs.states
    assert served(runtime) == before


def test_the_openai_sdk_still_works(runtime: ServerHandle) -> None:
    client = openai.OpenAI(base_url=runtime.base_url, api_key=runtime.token, max_retries=0)
    stream = client.chat.completions.create(
        model="glm-4.6",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_body={"sim": {**FAST, "tokens": 8}},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
    client.close()


# --- 404 and 405 ------------------------------------------------------------------------------


def test_404_is_json_and_lists_the_routes(runtime: ServerHandle) -> None:
    r = httpx.get(runtime.url + "/v2/nothing", headers=runtime.headers)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert error["code"] == "404"
    assert "GET /v2/nothing" in error["message"]
    for route in (
        "POST /v1/chat/completions",
        "GET/POST /agents/{name}",
        "GET /agents",
        "GET /health",
        "/ws",
    ):
        assert route in error["message"]


def test_405_is_json_with_allow(runtime: ServerHandle) -> None:
    # GET describes an agent, POST runs it: nothing else.
    r = httpx.delete(runtime.url + "/agents/account-review", headers=runtime.headers)
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
    assert r.json()["error"]["code"] == "405"
    assert "POST" in r.json()["error"]["message"]
    r = httpx.get(runtime.base_url + "/chat/completions", headers=runtime.headers)
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    assert r.json()["error"]["code"] == "405"
    r = httpx.delete(runtime.url + "/health", headers=runtime.headers)
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


# --- SSE keep-alives --------------------------------------------------------------------------


def raw(
    handle: ServerHandle, path: str, body: dict[str, Any], cut: bool = False
) -> tuple[bytes, list[float]]:
    """The raw bytes of a streamed response, and when each keep-alive arrived (seconds);
    ``cut``: the stream is expected to end with the connection cut (a stall's end)."""
    chunks = []
    seen: list[float] = []
    start = time.monotonic()
    with httpx.stream("POST", handle.url + path, json=body, headers=handle.headers) as r:
        assert r.status_code == 200
        try:
            for piece in r.iter_raw():
                chunks.append(piece)
                seen += [time.monotonic() - start] * piece.count(KEEPALIVE)
        except httpx.RemoteProtocolError:
            if not cut:
                raise
        else:
            assert not cut, "the stream was expected to be cut"
    return b"".join(chunks), seen


def frames(data: bytes) -> list[bytes]:
    return [part for part in data.split(b"\n\n") if part]


def test_a_stalled_chat_stream_gets_keepalive_comments_between_frames(
    runtime: ServerHandle,
) -> None:
    body = chat(stream=True, sim={"tokens": 10, "fault": "stall", "fault_after": 3, "stall_s": 0.7})
    # A stall holds the connection, then cuts it (as a dead upstream would).
    data, seen = raw(runtime, "/v1/chat/completions", body, cut=True)
    parts = frames(data)
    assert all(p.startswith(b"data: ") or p == b": keep-alive" for p in parts), parts
    comments = [i for i, p in enumerate(parts) if p == b": keep-alive"]
    data_frames = [i for i, p in enumerate(parts) if p.startswith(b"data: ")]
    assert len(comments) >= 4, seen  # 0.7 s of stall at 0.1 s
    assert min(comments) > max(data_frames)  # while it streamed, nothing was idle
    events = Decoder().feed(data)
    assert [json.loads(e.data)["object"] for e in events] == ["chat.completion.chunk"] * len(
        data_frames
    )
    assert seen[0] >= 0.09


def test_a_quick_stream_gets_no_keepalive_and_keeps_its_frames(runtime: ServerHandle) -> None:
    data, seen = raw(runtime, "/v1/chat/completions", chat(stream=True, sim={"tokens": 20}))
    assert seen == []
    assert frames(data)[-1] == b"data: [DONE]"


def test_a_long_wait_for_the_first_token_gets_keepalives(runtime: ServerHandle) -> None:
    body = chat(stream=True, sim={"ttft_ms": 450, "tokens": 3})
    data, _ = raw(runtime, "/v1/chat/completions", body)
    parts = frames(data)
    first = next(i for i, p in enumerate(parts) if p.startswith(b"data: "))
    assert first >= 3, parts[:5]  # 450 ms of silence at 0.1 s
    assert parts[:first] == [b": keep-alive"] * first
    assert b": keep-alive" not in parts[first:]  # then the answer flows at its own pace
    assert parts[-1] == b"data: [DONE]"


def test_an_idle_agent_run_gets_keepalive_comments(runtime: ServerHandle) -> None:
    flow = Workflow("idle-edges")

    @flow.agent()
    async def sleeper(ctx: AgentContext) -> Any:
        await ctx.progress(0.1, "waiting")
        await asyncio.sleep(0.6)
        return "rested"

    runtime.runtime.register(flow)
    data, seen = raw(runtime, "/agents/idle-edges", run_input("idle-run", FAST))
    parts = frames(data)
    assert all(p.startswith(b"data: ") or p == b": keep-alive" for p in parts), parts
    assert len(seen) >= 3
    events = [json.loads(e.data) for e in Decoder().feed(data)]
    check_run(events)
    assert events[-1]["type"] == "RUN_FINISHED"


async def test_a_quiet_proxied_stream_gets_keepalives_only_between_events(
    server: ByteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = 'data: {"id":"1","object":"chat.completion.chunk","choices":[]}\n\n'
    server.play(sse(first, 0.35, 'data: {"id":"2",', 0.35, '"choices":[]}\n\n', "data: [DONE]\n\n"))
    monkeypatch.setenv("OPENAI_API_KEY", "upstream-key")
    relay = serve(backend="openai", upstream=server.url + "/v1", sse_keepalive_s=0.1)
    try:
        async with (
            httpx.AsyncClient() as client,
            client.stream(
                "POST",
                relay.base_url + "/chat/completions",
                json={"model": "m", "messages": [], "stream": True},
                headers=relay.headers,
            ) as r,
        ):
            data = b"".join([piece async for piece in r.aiter_raw()])
    finally:
        relay.close()
    parts = frames(data)
    assert parts[0] == first.encode().strip()
    assert parts[-1] == b"data: [DONE]"
    assert parts[-2] == b'data: {"id":"2","choices":[]}'  # nothing inside the split event
    assert 2 <= parts.count(b": keep-alive") <= 4, parts


# --- the hub uses the same origin rule --------------------------------------------------------


async def hub_origin(handle: ServerHandle, origin: str) -> tuple[str, int | None, str]:
    """Open the hub with ``Origin: origin`` and say hello: the welcome, or how it closed."""
    url = handle.url.replace("http://", "ws://") + "/ws"
    headers = {"Origin": origin, **handle.headers}
    async with connect(url, additional_headers=headers) as ws:
        try:
            await ws.send(json.dumps({"type": "hello", "id": "edges"}))
            return json.loads(await ws.recv())["type"], None, ""
        except ConnectionClosed as exc:
            if exc.rcvd is None:
                return "closed", None, ""
            return "closed", exc.rcvd.code, exc.rcvd.reason


async def test_the_hub_follows_the_same_origin_rule(runtime: ServerHandle) -> None:
    assert (await hub_origin(runtime, APP))[0] == "welcome"
    assert (await hub_origin(runtime, runtime.url))[0] == "welcome"  # the runtime's own pages
    kind, code, reason = await hub_origin(runtime, EVIL)
    assert (kind, code) == ("closed", 4403)
    assert f"--cors-origin {EVIL}" in reason
    # Another loopback origin is not the runtime's own: any local user may serve pages there.
    kind, code, _ = await hub_origin(runtime, "http://localhost:3000")
    assert (kind, code) == ("closed", 4403)


# --- the command line and the config file -----------------------------------------------------


def test_serve_refuses_a_wildcard_origin() -> None:
    code, stderr = _fails("--port", "0", "--cors-origin", "*")
    assert code == 2
    assert "'*' cannot be an allowed origin" in stderr


def test_serve_takes_cors_origins_from_flags_and_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "runtime.toml"
    config.write_text('port = 0\nallowed_origins = ["https://old.example"]\n')
    preflight = {"Access-Control-Request-Method": "POST"}
    args = ("--config", str(config), "--cors-origin", APP, "--cors-origin", "http://b.example:81")
    with running(*args) as (process, url, _):
        for origin in (APP, "http://b.example:81", "https://old.example"):
            r = httpx.options(url + "/v1/chat/completions", headers={"Origin": origin, **preflight})
            assert (r.status_code, r.headers.get("access-control-allow-origin")) == (204, origin)
        r = httpx.options(url + "/v1/chat/completions", headers={"Origin": EVIL, **preflight})
        assert r.status_code == 403
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
