"""The uvicorn fast path and the plain-ASGI path serve the same streams.

The simulator writes its streams' chunks straight to uvicorn's httptools transport
(``glm_live/server/_uvicorn_fast.py``) unless ``RuntimeConfig(uvicorn_fast_path=False)`` keeps
them on ASGI ``send``. Both runtimes run on loopback; a raw socket with h11 reads the HTTP
response, so chunk framing, the end of the body and a cut connection are seen as they are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h11
import httpx
import pytest
import uvicorn

from glm_live import GLMClient, StreamInterrupted
from glm_live.server import ServerHandle, serve
from glm_live.server._uvicorn_fast import direct_sink
from glm_live.server.asgi import Receive, Scope, Send
from glm_live.server.config import ConfigError, RuntimeConfig, config_from_mapping
from glm_live.server.runner import bind_socket

PATHS = ("fast", "plain")
FAST = {"ttft_ms": 1, "itl_ms": 1}


@pytest.fixture(scope="module")
def runtimes() -> Iterator[dict[str, ServerHandle]]:
    fast = RuntimeConfig(uvicorn_fast_path=True)
    plain = RuntimeConfig(uvicorn_fast_path=False)
    with serve(config=fast, seed=7) as one, serve(config=plain, seed=7) as other:
        yield {"fast": one, "plain": other}


@dataclass(frozen=True)
class Reply:
    """An HTTP response as h11 read it off the socket."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes
    complete: bool  # the body ended properly (False: the connection was cut mid-body)


def exchange(handle: ServerHandle, body: dict[str, Any], rcvbuf: int | None = None) -> Reply:
    """POST ``body`` to the chat path over a raw socket; read the whole reply with h11."""
    payload = json.dumps(body).encode()
    client = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", handle.port), timeout=20) as sock:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        request = h11.Request(
            method="POST",
            target="/v1/chat/completions",
            headers=[
                ("host", "x"),
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
                *handle.headers.items(),
            ],
        )
        sock.sendall(client.send(request) + client.send(h11.Data(data=payload)))
        sock.sendall(client.send(h11.EndOfMessage()))
        if rcvbuf is not None:
            time.sleep(0.5)  # a slow reader: the server fills the buffers and must wait...
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # ...then catches up
        status, headers, parts = 0, {}, []
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError:  # the peer closed mid-body
                return Reply(status, headers, b"".join(parts), complete=False)
            if event is h11.NEED_DATA:
                client.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return Reply(status, headers, b"".join(parts), complete=True)


def meaning(body: bytes) -> list[Any]:
    """The SSE data fields, JSON decoded, without what differs per request (id, times)."""
    out: list[Any] = []
    for frame in body.split(b"\n\n"):
        if not frame:
            continue
        assert frame.startswith(b"data: "), frame
        data = frame[6:]
        if data == b"[DONE]":
            out.append("[DONE]")
            continue
        chunk = json.loads(data)
        for volatile in ("id", "created", "x_sent_ns"):
            assert volatile in chunk, (volatile, chunk)
            del chunk[volatile]
        out.append(chunk)
    return out


def stream_body(**sim: Any) -> dict[str, Any]:
    return {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": "quarterly churn by segment"}],
        "stream": True,
        "sim": {**FAST, **sim},
    }


def in_flight(handle: ServerHandle) -> int:
    return int(
        httpx.get(handle.url + "/health", headers=handle.headers).json()["requests_in_flight"]
    )


def wait_idle(handle: ServerHandle) -> None:
    deadline = time.monotonic() + 5
    while in_flight(handle):
        assert time.monotonic() < deadline, "the stream was not let go"
        time.sleep(0.05)


# --- the same stream on both paths ---------------------------------------------------------------


def test_both_paths_send_the_same_chunks_and_done(runtimes: dict[str, ServerHandle]) -> None:
    replies = {path: exchange(h, stream_body(tokens=30)) for path, h in runtimes.items()}
    fast, plain = replies["fast"], replies["plain"]
    for reply in (fast, plain):
        assert reply.status == 200
        assert reply.complete
        assert reply.headers[b"transfer-encoding"] == b"chunked"
        assert reply.headers[b"content-type"].startswith(b"text/event-stream")
    assert meaning(fast.body) == meaning(plain.body)
    events = meaning(fast.body)
    assert events[-1] == "[DONE]"
    assert len(events) == 30 + 2  # the tokens, the finishing chunk, [DONE]
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-2]["usage"]["completion_tokens"] == 30


@pytest.mark.parametrize("path", PATHS)
def test_slow_reader_gets_every_chunk_in_order(
    runtimes: dict[str, ServerHandle], path: str
) -> None:
    # Some megabytes, to fill the socket buffers: the fast path must notice the back-pressure,
    # go through send (which waits), and come back, losing and reordering nothing. (The
    # kernel's buffers decide whether it pauses at all; tests/test_pacer.py drives the switch
    # between direct writes and send deterministically.)
    handle = runtimes[path]
    body = stream_body(tokens=40000, ttft_ms=0, itl_ms=0.01)
    reply = exchange(handle, body, rcvbuf=4096)
    assert reply.complete
    events = meaning(reply.body)
    assert events[-1] == "[DONE]"
    tokens = events[-2]["usage"]["completion_tokens"]
    assert tokens > 39000  # the text's pieces end near the asked-for length
    assert len(events) == tokens + 2  # every token chunk, the finishing chunk, [DONE]
    assert events == meaning(exchange(handle, body).body)  # as read by a fast reader
    wait_idle(handle)


# --- faults and disconnects ------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("path", PATHS)
def test_drop_mid_stream_cuts_the_connection(runtimes: dict[str, ServerHandle], path: str) -> None:
    handle = runtimes[path]
    records = _Records()
    server_log = logging.getLogger("uvicorn.error")
    server_log.addHandler(records)
    try:
        reply = exchange(handle, stream_body(tokens=40, fault="drop", fault_after=15))
    finally:
        server_log.removeHandler(records)
    assert reply.status == 200
    assert not reply.complete  # cut: no last chunk, no [DONE]
    events = meaning(reply.body)
    assert len(events) == 15
    assert all(e["choices"][0]["finish_reason"] is None for e in events)
    full = meaning(exchange(handle, stream_body(tokens=40)).body)
    assert events == full[:15]
    # Who cut it: on the fast path the pacer closes the connection itself; on the plain path
    # the runtime raises ConnectionCut and uvicorn, as any server would, closes it and logs.
    server_cut = any("Exception in ASGI application" in m for m in records.messages)
    assert server_cut == (path == "plain")
    wait_idle(handle)


@pytest.mark.parametrize("path", PATHS)
async def test_glm_client_sees_the_drop_on_both_paths(
    runtimes: dict[str, ServerHandle], path: str
) -> None:
    handle = runtimes[path]
    async with GLMClient(base_url=handle.base_url, api_key=handle.token, max_retries=0) as client:
        with pytest.raises(StreamInterrupted) as info:
            await client.complete(
                "x", sim={**FAST, "tokens": 40, "fault": "drop", "fault_after": 9}
            )
    assert info.value.partial.chunks == 9
    assert info.value.partial.finish_reason is None


@pytest.mark.parametrize("path", PATHS)
async def test_client_disconnect_frees_the_stream(
    runtimes: dict[str, ServerHandle], path: str
) -> None:
    handle = runtimes[path]
    body = stream_body(tokens=5000, itl_ms=5)
    async with (
        httpx.AsyncClient() as client,
        client.stream(
            "POST", handle.base_url + "/chat/completions", json=body, headers=handle.headers
        ) as r,
    ):
        async for _ in r.aiter_bytes():
            break
        assert in_flight(handle) >= 1
    # The stream would last 25 s; after the disconnect the server lets go within moments.
    deadline = time.monotonic() + 5
    while in_flight(handle):
        assert time.monotonic() < deadline, "in-flight count did not return to 0"
        await asyncio.sleep(0.05)


def test_the_switch_is_a_checked_setting() -> None:
    assert RuntimeConfig().uvicorn_fast_path is True
    assert config_from_mapping({"uvicorn_fast_path": False}).uvicorn_fast_path is False
    with pytest.raises(ConfigError, match="uvicorn_fast_path must be true or false"):
        config_from_mapping({"uvicorn_fast_path": "no"})


# --- the seam itself, under real uvicorn servers ----------------------------------------------


class _Probe:
    """An ASGI app that asks the seam for a direct sink before and after starting a reply."""

    def __init__(self) -> None:
        self.found: dict[str, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunked = scope["path"] == "/chunked"
        self.found["before start"] = direct_sink(send) is not None
        headers = [] if chunked else [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sink = direct_sink(send)
        self.found["chunked" if chunked else "content-length"] = sink is not None
        if sink is not None:
            assert not sink.paused
            assert not sink.disconnected
            assert sink.try_write(b"hel")
            assert sink.try_write(b"lo")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await send({"type": "http.response.body", "body": b"hello", "more_body": False})


@pytest.fixture(params=["httptools", "h11"])
def probe_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, _Probe]]:
    probe = _Probe()
    sock = bind_socket("127.0.0.1", 0)
    config = uvicorn.Config(probe, http=request.param, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield request.param, f"http://127.0.0.1:{sock.getsockname()[1]}", probe
    finally:
        server.should_exit = True
        thread.join(10)


def test_direct_sink_only_for_a_started_chunked_httptools_reply(
    probe_server: tuple[str, str, _Probe],
) -> None:
    http, url, probe = probe_server
    assert httpx.get(url + "/chunked").text == "hello"
    assert httpx.get(url + "/sized").text == "hello"
    assert probe.found == {
        "before start": False,  # the framing is not known yet
        "chunked": http == "httptools",  # h11 keeps its framing to itself: plain send
        "content-length": False,  # only chunked bodies are written directly
    }
