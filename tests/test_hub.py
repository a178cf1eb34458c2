"""The hub and the WebSocket client: delivery exactly once, in order, through faults."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from glm_live.server import ServerHandle, serve
from glm_live.server.hub.service import HubLimits
from glm_live.testing.chaos import ChaosProxy
from glm_live.transport.hub_client import (
    Connection,
    Gap,
    HubForbidden,
    HubRefused,
    Message,
    OutboxFull,
    hub_url,
)
from glm_live.wire.auth import TokenSigner
from glm_live.wire.retry import Backoff

#: The admin token of the runtimes these tests start.
TOKEN = "hub-tests-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(token=TOKEN) as handle:
        yield handle


def quick() -> Backoff:
    return Backoff(initial=0.02, maximum=0.2, stable_after=1.0, rng=random.Random(1))


async def collect(conn: Connection, room: str, n: int, timeout: float = 30) -> list[Message | Gap]:
    items: list[Message | Gap] = []

    async def run() -> None:
        async for item in conn.subscribe(room):
            items.append(item)
            if sum(1 for i in items if isinstance(i, Message)) == n:
                return

    await asyncio.wait_for(run(), timeout)
    return items


def test_hub_url() -> None:
    assert hub_url("http://127.0.0.1:8765") == "ws://127.0.0.1:8765/ws"
    assert hub_url("https://example.org/") == "wss://example.org/ws"
    assert hub_url("ws://h:1/ws") == "ws://h:1/ws"


def scoped(name: str, read: tuple[str, ...] = ("*",), write: tuple[str, ...] = ("*",)) -> str:
    """A scoped token for ``name``, signed under the test runtimes' admin token."""
    return TokenSigner(TOKEN).issue(name, read, write, now=time.time())[0]


async def test_publish_subscribe_and_direct(runtime: ServerHandle) -> None:
    async with (
        Connection(runtime.url, token=scoped("alice")) as alice,
        Connection(runtime.url, token=scoped("bob"), kind="agent") as bob,
    ):
        await bob.join("room-1")
        for i in range(20):
            await alice.publish("room-1", {"i": i})
        await alice.flush()
        got = await collect(bob, "room-1", 20)
        assert [m.data["i"] for m in got if isinstance(m, Message)] == list(range(20))
        seqs = [m.seq for m in got if isinstance(m, Message)]
        assert seqs == list(range(seqs[0], seqs[0] + 20))
        assert all(m.sender == "alice" for m in got if isinstance(m, Message))
        await alice.send_direct("bob", {"command": "pause"})
        (direct,) = [m async for m in _first(bob.subscribe("@bob"))]
        assert direct.data == {"command": "pause"}
        assert direct.name == "alice"
        presence = runtime.runtime.hub.clients
        assert {"name": "bob", "kind": "agent"} in [
            {"name": c["name"], "kind": c["kind"]} for c in presence
        ]


async def _first(iterator):  # type: ignore[no-untyped-def]
    async for item in iterator:
        yield item
        return


async def test_exactly_once_in_order_through_a_proxy_that_keeps_cutting(
    runtime: ServerHandle,
) -> None:
    proxy = ChaosProxy(runtime.port, lifetime=(0.05, 0.4), seed=4)
    await proxy.start()
    url = f"http://127.0.0.1:{proxy.port}"
    n = 400
    try:
        async with (
            Connection(url, token=TOKEN, backoff=quick(), heartbeat=0.5) as left,
            Connection(url, token=TOKEN, backoff=quick(), heartbeat=0.5) as right,
        ):
            # Each side joins the room it reads before anyone publishes.
            await asyncio.wait_for(right.join("left-to-right"), 30)
            await asyncio.wait_for(left.join("right-to-left"), 30)

            async def send(conn: Connection, room: str) -> None:
                for i in range(n):
                    await conn.publish(room, i)
                    await asyncio.sleep(0.002)
                await conn.flush(60)

            received = await asyncio.gather(
                collect(right, "left-to-right", n, 60),
                collect(left, "right-to-left", n, 60),
                send(left, "left-to-right"),
                send(right, "right-to-left"),
            )
            for items in received[:2]:
                values = [m.data for m in items if isinstance(m, Message)]
                assert values == list(range(n))  # every message exactly once, in order
                assert not [g for g in items if isinstance(g, Gap)]
            assert left.reconnects + right.reconnects >= 3
            assert left.dropped == right.dropped == 0
    finally:
        await proxy.stop()
    assert proxy.cuts >= 3


async def test_exactly_once_across_client_process_restarts_with_a_stable_id(
    runtime: ServerHandle,
) -> None:
    """A notebook restarted three times (the same ``client_id``, publish ids from 1 each time)
    publishing through a proxy that keeps cutting: the reader gets every message once, in
    order, each from a session of its own."""
    import os
    import subprocess
    import sys

    proxy = ChaosProxy(runtime.port, lifetime=(0.05, 0.4), seed=7)
    await proxy.start()
    url = f"http://127.0.0.1:{proxy.port}"
    room, n, lives = f"restarts-{secrets.token_hex(3)}", 150, 3
    publisher = scoped("nb", ("restarts-*",), ("restarts-*",))
    try:
        async with Connection(url, token=TOKEN, backoff=quick(), heartbeat=0.5) as reader:
            await asyncio.wait_for(reader.join(room), 30)
            for life in range(lives):
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.hub_publisher", url, room, str(life * n), str(n),
                    "nb-1", env={**os.environ, "GLM_LIVE_TOKEN": publisher},
                    stdout=subprocess.PIPE,
                )  # fmt: skip
                out, _ = await asyncio.wait_for(process.communicate(), 120)
                assert process.returncode == 0, out
            items = await collect(reader, room, n * lives, 60)
    finally:
        await proxy.stop()
    values = [m.data for m in items if isinstance(m, Message)]
    assert values == list(range(n * lives))  # every message once, in order
    assert not [g for g in items if isinstance(g, Gap)]
    assert {m.sender for m in items if isinstance(m, Message)} == {"nb"}
    assert len({m.session for m in items if isinstance(m, Message)}) == lives
    assert proxy.cuts >= 3


async def test_refused_joins_and_publications_raise_typed_errors(runtime: ServerHandle) -> None:
    async with Connection(runtime.url, token=scoped("carol", ("chat:*",), ("chat:*",))) as carol:
        await carol.join("chat:lobby")
        with pytest.raises(HubForbidden, match="only dave reads the inbox @dave") as refused:
            await carol.join("@dave")
        assert (refused.value.refusal.code, refused.value.refusal.room) == ("forbidden", "@dave")
        await carol.publish("chat:lobby", "fine")
        refused_id = await carol.publish("news", "not allowed")
        with pytest.raises(HubForbidden, match="carol may not write to news") as refused:
            await carol.flush()
        assert refused.value.refusal.id == refused_id
        assert carol.outbox_depth == 0
        assert [r.room for r in carol.refusals] == ["@dave", "news"]
        assert carol.identity == "carol"
        await carol.flush()  # reported once


async def test_outbox_overflow_policies(unused_tcp_port: int) -> None:
    url = f"ws://127.0.0.1:{unused_tcp_port}/ws"  # nothing listens: everything waits
    raising = Connection(url, token=TOKEN, outbox_limit=3, overflow="raise")
    for i in range(3):
        await raising.publish("r", i)
    with pytest.raises(OutboxFull, match="outbox full"):
        await raising.publish("r", 3)
    oldest = Connection(url, token=TOKEN, outbox_limit=3, overflow="drop_oldest")
    newest = Connection(url, token=TOKEN, outbox_limit=3, overflow="drop_newest")
    for i in range(5):
        await oldest.publish("r", i)
        await newest.publish("r", i)
    assert [json.loads(p.frame)["data"] for p in oldest._outbox] == [2, 3, 4]
    assert [json.loads(p.frame)["data"] for p in newest._outbox] == [0, 1, 2]
    assert oldest.dropped == newest.dropped == 2
    assert oldest.outbox_depth == 3
    with pytest.raises(ValueError, match="overflow"):
        Connection(url, overflow="explode")  # type: ignore[arg-type]


async def test_outbox_is_sent_after_connecting_and_ttl_drops_stale(
    runtime: ServerHandle,
) -> None:
    async with Connection(runtime.url, token=TOKEN) as reader:
        await reader.join("late")
        writer = Connection(runtime.url, token=TOKEN, ttl=0.2)
        await writer.publish("late", "stale")
        await asyncio.sleep(0.3)
        writer.ttl = 10
        await writer.publish("late", "fresh")
        writer.ttl = 0.2  # "stale" is now 0.3 s old, "fresh" 0 s
        async with writer:
            await writer.flush()
        got = await collect(reader, "late", 1)
    assert [m.data for m in got if isinstance(m, Message)] == ["fresh"]
    assert writer.dropped == 1


async def test_resume_after_outage_replays_history_or_signals_trimmed_gap() -> None:
    with serve(token=TOKEN) as handle:
        handle.runtime.hub.limits = HubLimits(history=5)
        proxy = ChaosProxy(handle.port)
        await proxy.start()
        try:
            async with (
                Connection(handle.url, token=TOKEN) as publisher,
                Connection(
                    f"http://127.0.0.1:{proxy.port}", token=TOKEN, backoff=quick()
                ) as reader,
            ):
                await reader.join("small")
                await publisher.publish("small", 0)
                await publisher.publish("small", 1)
                first = await collect(reader, "small", 2)
                proxy.enabled = False
                proxy.cut_all()  # the reader is offline while 12 more go out...
                for i in range(2, 14):
                    await publisher.publish("small", i)
                await publisher.flush()
                proxy.enabled = True  # ...and history keeps only the last 5
                rest = await collect(reader, "small", 5)
        finally:
            await proxy.stop()
    assert [m.data for m in first if isinstance(m, Message)] == [0, 1]
    gap = rest[0]
    assert isinstance(gap, Gap)
    assert (gap.reason, gap.lost_from, gap.lost_to) == ("trimmed", 3, 9)
    assert [m.data for m in rest[1:] if isinstance(m, Message)] == [9, 10, 11, 12, 13]


async def test_bad_input_gets_error_replies_and_close_codes(runtime: ServerHandle) -> None:
    url = hub_url(runtime.url)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with connect(url, additional_headers=auth) as ws:
        await ws.send("{nope")
        assert json.loads(await ws.recv())["code"] == "bad_json"
        await ws.send(json.dumps({"type": "teleport"}))
        reply = json.loads(await ws.recv())
        assert reply["code"] == "unknown_type"
        assert "publish" in reply["message"]
        await ws.send(json.dumps({"type": "publish", "room": "x"}))
        assert json.loads(await ws.recv())["code"] == "bad_request"
        await ws.send(b"\x00binary")
        assert json.loads(await ws.recv())["code"] == "bad_frame"
        await ws.send(json.dumps({"type": "ping", "t": 1.0}))
        assert json.loads(await ws.recv()) == {"type": "pong", "t": 1.0}
    async with connect(url, max_size=None, additional_headers=auth) as ws:
        # The hub may close (1009) while the 2 MiB frame is still going out: then the send
        # itself raises, having received the close.
        with pytest.raises(ConnectionClosed) as info:
            await ws.send("x" * (2 << 20))
            await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1009
    async with connect(url, additional_headers={"Origin": "https://evil.example"}) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 4403
    # Flooding: the flooder is cut off, a well-behaved client carries on.
    async with (
        Connection(runtime.url, token=TOKEN) as calm,
        connect(url, additional_headers=auth) as flood,
    ):
        await calm.join("calm")
        with pytest.raises(ConnectionClosed) as info:
            for i in range(5000):
                await flood.send(
                    json.dumps({"type": "publish", "room": "spam", "id": i + 1, "data": i})
                )
            while True:
                await flood.recv()
        assert info.value.rcvd is not None
        assert info.value.rcvd.code == 1008
        await calm.publish("calm", "still here")
        got = await collect(calm, "calm", 1)
        assert [m.data for m in got if isinstance(m, Message)] == ["still here"]


async def test_token_is_required_and_refusal_says_why() -> None:
    token = secrets.token_hex(12)
    with serve(token=token) as handle:
        refused = Connection(handle.url, token=secrets.token_hex(12))
        async with refused:
            with pytest.raises(TimeoutError):
                await refused.join("r", timeout=2)
        assert isinstance(refused.last_error, HubRefused)
        assert refused.last_error.code == 4401
        assert refused.state.value == "closed"
        async with Connection(handle.url, token=token) as ok:
            await ok.join("r", timeout=5)
            assert ok.state.value == "open"


async def test_runtime_restart_reconnects_and_signals_the_lost_history(
    unused_tcp_port: int,
) -> None:
    import subprocess
    import sys
    import time

    import httpx

    port = unused_tcp_port
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "glm_live", "serve", "--port", str(port), "--token", TOKEN],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    return process
            except httpx.HTTPError:
                time.sleep(0.05)
        process.kill()
        raise AssertionError("runtime did not start")

    first = start()
    second = None
    try:
        async with (
            Connection(url, token=TOKEN, backoff=quick(), heartbeat=0.5) as publisher,
            Connection(url, token=TOKEN, backoff=quick(), heartbeat=0.5) as reader,
        ):
            await reader.join("run")
            for i in range(3):
                await publisher.publish("run", i)
            before = await collect(reader, "run", 3)
            old_epoch = reader.hub_epoch
            first.terminate()
            first.wait(10)
            await publisher.publish("run", "queued while the runtime was down")
            second = start()
            after = await collect(reader, "run", 1, timeout=30)
            assert reader.reconnects >= 1
            assert publisher.reconnects >= 1
            assert reader.hub_epoch != old_epoch
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
    assert [m.data for m in before if isinstance(m, Message)] == [0, 1, 2]
    gap = after[0]
    assert isinstance(gap, Gap)  # the history went with the old process: said, not hidden
    assert gap.reason == "epoch"
    assert gap.old_epoch == old_epoch
    assert [m.data for m in after[1:] if isinstance(m, Message)] == [
        "queued while the runtime was down"
    ]


async def test_tls_with_a_self_signed_ca(tmp_path: object) -> None:
    import ssl
    from pathlib import Path

    import trustme

    from glm_live import GLMClient

    folder = Path(str(tmp_path))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(folder / "server.pem")
    )
    pem = str(folder / "server.pem")
    with serve(ssl_certfile=pem, ssl_keyfile=pem, sim={"ttft_ms": 1, "itl_ms": 1}) as handle:
        assert handle.url.startswith("https://")
        async with Connection(
            handle.url, token=handle.token, cafile=str(folder / "ca.pem")
        ) as conn:
            assert conn.url.startswith("wss://")
            await conn.join("secure")
            await conn.publish("secure", "over TLS")
            got = await collect(conn, "secure", 1)
            assert [m.data for m in got if isinstance(m, Message)] == ["over TLS"]
        untrusting = Connection(handle.url, token=handle.token, backoff=quick())
        async with untrusting:
            with pytest.raises(TimeoutError):
                await untrusting.wait_open(timeout=1)
        assert isinstance(untrusting.last_error, ssl.SSLCertVerificationError)
        async with GLMClient(
            base_url=handle.base_url, api_key=handle.token, verify=str(folder / "ca.pem")
        ) as client:
            completion = await client.complete("x", sim={"tokens": 3})
        assert completion.usage is not None
        assert completion.usage["completion_tokens"] == 3


async def documented_session(url: str, token: str) -> None:
    """The frames of ``docs/hub-protocol.md``, as a client in another language sees them, over
    a raw WebSocket: every field name and value the document promises. ``token`` is a scoped
    token for ``alice`` that reads and writes ``doc-*`` and reads ``presence``."""
    room = f"doc-{secrets.token_hex(4)}"
    client_id = f"a-{secrets.token_hex(4)}"
    auth = {"Authorization": f"Bearer {token}"}

    async with connect(hub_url(url), additional_headers=auth) as ws:

        async def receive(n: int) -> list[dict[str, object]]:
            return [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]

        await ws.send(
            json.dumps({"type": "hello", "id": client_id, "name": "ignored", "kind": "notebook"})
        )
        welcome, inbox = await receive(2)
        assert set(welcome) == {
            "type", "id", "epoch", "server_time_ns", "name", "session", "resumed", "last_id",
            "grant"}  # fmt: skip
        assert (welcome["type"], welcome["id"], welcome["name"]) == ("welcome", client_id, "alice")
        assert (welcome["resumed"], welcome["last_id"]) == (False, 0)
        assert isinstance(welcome["session"], str)
        assert welcome["grant"] == {
            "name": "alice",
            "read": ["doc-*", "presence"],
            "write": ["doc-*"],
            "admin": False,
            "expires_at": welcome["grant"]["expires_at"],  # type: ignore[index]
        }
        epoch = welcome["epoch"]
        assert isinstance(epoch, str)
        assert isinstance(welcome["server_time_ns"], int)
        # The inbox is joined for the client, live from now.
        assert inbox == {"type": "joined", "room": "@alice", "epoch": epoch, "last": 0,
                         "gap": None}  # fmt: skip

        await ws.send(json.dumps({"type": "join", "room": room, "since": None, "epoch": None}))
        assert await receive(1) == [
            {"type": "joined", "room": room, "epoch": epoch, "last": 0, "gap": None}
        ]
        await ws.send(json.dumps({"type": "publish", "room": room, "id": 1, "data": {"t": "hi"}}))
        # The ack and the publisher's own copy: in memory the copy first, via Redis either.
        msg, ack = sorted(await receive(2), key=lambda f: f["type"] != "msg")
        assert ack == {"type": "ack", "id": 1, "room": room, "seq": 1, "duplicate": False}
        assert isinstance(msg["ts_ns"], int)
        assert {**msg, "ts_ns": 0} == {
            "type": "msg",
            "room": room,
            "seq": 1,
            "epoch": epoch,
            "from": "alice",
            "name": "alice",
            "id": 1,
            "session": welcome["session"],
            "data": {"t": "hi"},
            "ts_ns": 0,
        }
        # A re-send: acknowledged again with its first number, not delivered again.
        await ws.send(json.dumps({"type": "publish", "room": room, "id": 1, "data": {"t": "hi"}}))
        await ws.send(json.dumps({"type": "ping", "t": "after"}))
        # (Via Redis, the ack waits for Redis, and the pong may overtake it.)
        assert sorted(await receive(2), key=lambda f: f["type"]) == [
            {"type": "ack", "id": 1, "room": room, "seq": 1, "duplicate": True},
            {"type": "pong", "t": "after"},
        ]
        # Refusals name the rule: another's inbox, a room outside the token's patterns.
        await ws.send(json.dumps({"type": "join", "room": "@bob", "since": None}))
        assert await receive(1) == [
            {"type": "error", "code": "forbidden", "room": "@bob",
             "message": "only bob reads the inbox @bob; yours is @alice"}]  # fmt: skip
        await ws.send(json.dumps({"type": "publish", "room": "chat", "id": 2, "data": 0}))
        assert await receive(1) == [
            {"type": "error", "code": "forbidden", "room": "chat", "id": 2,
             "message": "alice may not write to chat: its token writes doc-*"}]  # fmt: skip
        await ws.send(json.dumps({"type": "leave", "room": room}))
        assert await receive(1) == [{"type": "left", "room": room}]
        # Rejoin from the start of this epoch: the joined, then the replay.
        await ws.send(json.dumps({"type": "join", "room": room, "since": 0, "epoch": epoch}))
        joined, replayed = await receive(2)
        assert joined == {"type": "joined", "room": room, "epoch": epoch, "last": 1, "gap": None}
        assert replayed == msg
        # Joining a room joined already resumes from what this connection was sent: nothing.
        await ws.send(json.dumps({"type": "join", "room": room, "since": 0, "epoch": epoch}))
        assert await receive(1) == [joined]
        await ws.send(json.dumps({"type": "leave", "room": room}))
        assert await receive(1) == [{"type": "left", "room": room}]
        # A join with an epoch that is not the room's: an epoch gap, and all that is kept.
        await ws.send(json.dumps({"type": "join", "room": room, "since": 9, "epoch": "gone"}))
        joined, replayed = await receive(2)
        assert joined["gap"] == {"reason": "epoch", "old_epoch": "gone"}
        assert replayed == msg
        # Presence: the hello was published by the runtime in the room presence.
        await ws.send(json.dumps({"type": "join", "room": "presence", "since": 0}))
        (joined,) = await receive(1)
        assert joined["type"] == "joined"
        assert isinstance(joined["last"], int)
        presence = await receive(int(joined["last"]))
        hello = {"event": "join", "id": client_id, "name": "alice", "kind": "notebook"}
        mine = [p for p in presence if p["data"] == hello]
        assert len(mine) == 1
        assert (mine[0]["from"], mine[0]["id"], mine[0]["name"]) == ("runtime", None, "")


def doc_token(admin: str) -> str:
    """The scoped token :func:`documented_session` uses, signed under ``admin``."""
    return TokenSigner(admin).issue("alice", ["doc-*", "presence"], ["doc-*"], now=time.time())[0]


async def test_the_documented_frames_on_the_in_memory_hub() -> None:
    admin = secrets.token_urlsafe(16)
    with serve(token=admin) as runtime:
        await documented_session(runtime.url, doc_token(admin))


async def test_flush_returns_when_a_resumed_welcome_acknowledges_the_whole_outbox() -> None:
    """The acks were lost with the connection; the resumed session's welcome says the hub has
    every publication: ``flush`` must not wait for acks that will never come."""
    conn = Connection("http://127.0.0.1:9", token="t")  # never started: frames are fed in
    for i in range(3):
        await conn.publish("r", i)
    assert conn.outbox_depth == 3
    welcome = {"type": "welcome", "id": "c", "epoch": "e", "server_time_ns": 0, "name": "n",
               "session": "s", "resumed": True, "last_id": 3, "grant": None}  # fmt: skip
    waiting = asyncio.ensure_future(conn.flush(timeout=5))  # flushing when the cut came
    await asyncio.sleep(0.01)
    conn._handle(json.dumps(welcome))
    assert conn.outbox_depth == 0
    await asyncio.wait_for(waiting, 1)


async def test_the_hub_negotiates_compression_only_when_configured() -> None:
    from glm_live.server.config import RuntimeConfig

    for compression, expected in [(False, None), (True, "permessage-deflate")]:
        with serve(config=RuntimeConfig(ws_compression=compression)) as handle:
            async with connect(hub_url(handle.url), additional_headers=handle.headers) as ws:
                offered = ws.response.headers.get("Sec-WebSocket-Extensions")
        extension = offered.split(";")[0] if offered else None
        assert extension == expected


@pytest.mark.parametrize("direct", [True, False], ids=["direct-writes", "asgi-send"])
async def test_a_slow_consumer_is_cut_off_and_the_others_get_everything(direct: bool) -> None:
    """A client that stops reading while a room carries 24 MB: the hub cuts it (1013, or an
    aborted connection when even the close frame cannot be written) instead of buffering
    without bound or slowing the others, and a client that reads gets every message."""
    from glm_live.server.config import RuntimeConfig

    limits = HubLimits(send_queue=200, rate=1e9, burst=1e9, history=5000)
    config = RuntimeConfig(uvicorn_fast_path=direct, hub=limits)
    n, payload = 3000, "x" * 8000
    with serve(token=TOKEN, config=config) as handle:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        slow = await connect(hub_url(handle.url), additional_headers=auth, max_queue=4)
        await slow.send(json.dumps({"type": "hello", "id": "slow"}))
        await slow.send(json.dumps({"type": "join", "room": "flood", "since": None}))
        await asyncio.sleep(0.2)  # joined; from now on it reads nothing
        async with (
            Connection(handle.url, token=TOKEN) as good,
            Connection(handle.url, token=TOKEN) as publisher,
        ):
            await good.join("flood")
            reading = asyncio.ensure_future(collect(good, "flood", n, 60))
            for batch in range(n // 100):  # as fast as a reader can follow
                for i in range(batch * 100, batch * 100 + 100):
                    await publisher.publish("flood", {"i": i, "pad": payload})
                await publisher.flush(30)
            got = await reading
            assert [m.data["i"] for m in got if isinstance(m, Message)] == list(range(n))
            assert good.reconnects == 0
            # The slow client was dropped: the hub holds nothing for it any more.
            deadline = asyncio.get_running_loop().time() + 15
            while len(handle.runtime.hub.clients) > 2:
                assert asyncio.get_running_loop().time() < deadline, "the slow client stayed"
                await asyncio.sleep(0.05)
        assert handle.runtime.hub.stats["dropped_clients"] == 1
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), 15)
        code = closed.value.rcvd.code if closed.value.rcvd is not None else 1006
        assert code in (1013, 1006)  # 1006: aborted, the close frame could not be written


async def test_a_client_closing_during_a_fan_out_does_not_stop_delivery_to_the_others(
    runtime: ServerHandle,
) -> None:
    """Subscribers' close frames and a publication reach the runtime in the same turn of its
    loop (held still meanwhile): the fan-out meets connections that are closing, and still
    acknowledges the publication and delivers it to the subscriber that joined after them."""
    import time as clock

    auth = {"Authorization": f"Bearer {TOKEN}"}
    server_loop = runtime._loop
    assert server_loop is not None

    async def frame_of(ws: Any, kind: str) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == kind:
                return frame

    for attempt in range(4):
        room = f"closing-{attempt}"
        sockets = [await connect(hub_url(runtime.url), additional_headers=auth) for _ in range(5)]
        *closers, reader, publisher = sockets
        for ws in sockets:
            await ws.send(json.dumps({"type": "hello"}))
        for ws in (*closers, reader):  # the reader joins last: it is served last
            await ws.send(json.dumps({"type": "join", "room": room, "since": None}))
            await frame_of(ws, "joined")
            await frame_of(ws, "joined")  # the inbox's, then the room's
        server_loop.call_soon_threadsafe(clock.sleep, 0.2)  # hold the runtime's loop
        await asyncio.sleep(0.02)
        await publisher.send(json.dumps({"type": "publish", "room": room, "id": 1, "data": 7}))
        closing = [asyncio.ensure_future(ws.close()) for ws in closers]
        assert (await frame_of(publisher, "ack"))["seq"] == 1
        assert (await frame_of(reader, "msg"))["data"] == 7
        await asyncio.gather(*closing)
        for ws in (reader, publisher):
            await ws.close()


async def test_a_join_made_while_the_connection_is_being_welcomed_is_sent(
    runtime: ServerHandle,
) -> None:
    """``join`` called after the hello went out but before the welcome came back: the frames
    that open the connection were computed without the room, so the join must be sent once the
    connection is ready (it was dropped, and ``join`` timed out; CI saw it against Redis, whose
    slower welcome widens the window)."""
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve

    welcome_held = asyncio.Event()
    release = asyncio.Event()

    async def relay(client: ServerConnection) -> None:
        headers = {"Authorization": client.request.headers["Authorization"]}
        async with connect(hub_url(runtime.url), additional_headers=headers) as upstream:

            async def down() -> None:
                async for text in upstream:
                    if json.loads(text)["type"] == "welcome":
                        welcome_held.set()
                        await release.wait()
                    await client.send(text)

            async def up() -> None:
                async for text in client:
                    await upstream.send(text)

            pumps = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in pumps:
                pump.cancel()

    async with ws_serve(relay, "127.0.0.1", 0) as relay_server:
        port = relay_server.sockets[0].getsockname()[1]
        async with Connection(f"http://127.0.0.1:{port}", token=TOKEN, backoff=quick()) as conn:
            await asyncio.wait_for(welcome_held.wait(), 10)
            joining = asyncio.ensure_future(conn.join("held-welcome", timeout=5))
            await asyncio.sleep(0.05)
            release.set()
            await joining
            async with Connection(runtime.url, token=TOKEN, backoff=quick()) as publisher:
                await publisher.publish("held-welcome", "after")
                await publisher.flush()
            got = messages_of(await collect(conn, "held-welcome", 1, timeout=10))
    assert [m.data for m in got] == ["after"]


def messages_of(items: list[Message | Gap]) -> list[Message]:
    return [i for i in items if isinstance(i, Message)]
