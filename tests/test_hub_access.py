"""Who may do what on the hub, tried as an outsider: raw ``websockets`` clients written from
``docs/hub-protocol.md`` (no glm_live client code), against the in-memory hub and the Redis one.

Each rule of issue 13 has its test: unauthenticated clients refused (saying how), identity from
credentials (a spoofed ``hello`` is attributed to its real identity), inboxes read by their
owner only, runs commanded by their owner only (the run still finishes), the runtime's rooms
written by the runtime only, exactly once for a restarted client with a stable id and for a
resumed session, revocation and expiry closing live connections.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from glm_live.server import ServerHandle, serve
from glm_live.server.config import RuntimeConfig
from glm_live.wire.auth import TokenSigner
from tests.agui_checker import run_input
from tests.test_redis_hub import _free_port, start_redis

ADMIN = "admin-" + secrets.token_hex(16)
SIGNER = TokenSigner(ADMIN)
FAST = {"ttft_ms": 1, "itl_ms": 1, "tokens": 4}


@pytest.fixture(scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def runtime(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    """A runtime with an admin token, its rooms in memory or in a real Redis."""
    if request.param == "memory":
        with serve(token=ADMIN) as handle:
            yield handle
        return
    port = _free_port()
    process = start_redis(port)
    try:
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        config = RuntimeConfig(redis=f"redis://127.0.0.1:{port}/0", redis_prefix=prefix)
        with serve(token=ADMIN, config=config) as handle:
            yield handle
    finally:
        process.terminate()
        process.wait(10)


def token(name: str, read: list[str], write: list[str], ttl_s: float = 600) -> str:
    """A scoped token, as ``POST /auth/tokens`` issues (signed under the admin token)."""
    return SIGNER.issue(name, read, write, ttl_s=ttl_s, now=time.time())[0]


def ws_url(runtime: ServerHandle) -> str:
    return runtime.url.replace("http://", "ws://") + "/ws"


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def until(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    """The next frame of type ``kind`` (others, like presence or acks, are skipped)."""
    while True:
        frame = await recv(ws, timeout)
        if frame["type"] == kind:
            return frame


async def hello(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    """Say hello; return the welcome (the inbox's ``joined`` that follows is read too)."""
    await ws.send(json.dumps({"type": "hello", **fields}))
    welcome = await recv(ws)
    assert welcome["type"] == "welcome", welcome
    joined = await recv(ws)
    assert (joined["type"], joined["room"]) == ("joined", "@" + welcome["name"]), joined
    return welcome


async def join(ws: ClientConnection, room: str, since: int | None = None) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "join", "room": room, "since": since, "epoch": None}))
    return await recv(ws)


async def publish(ws: ClientConnection, room: str, msg_id: int, data: Any) -> dict[str, Any]:
    """Publish and return the hub's answer to it: its ack or its error."""
    await ws.send(json.dumps({"type": "publish", "room": room, "id": msg_id, "data": data}))
    while True:
        frame = await recv(ws)
        if frame["type"] in ("ack", "error") and frame.get("id") == msg_id:
            return frame


async def close_code(ws: ClientConnection, timeout: float = 10) -> tuple[int, str]:
    """Wait for the hub to close ``ws``; its close code and reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


# -- authentication ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("not-the-token"), bearer(ADMIN[:-1]), {"Authorization": f"Basic {ADMIN}"}],
    ids=["none", "wrong", "almost", "not-bearer"],
)
async def test_an_unauthenticated_client_is_closed_4401_saying_how(
    runtime: ServerHandle, headers: dict[str, str]
) -> None:
    async with connect(ws_url(runtime), additional_headers=headers) as ws:
        code, reason = await close_code(ws)
    assert code == 4401
    assert "Authorization: Bearer <token>" in reason
    assert ADMIN not in reason


async def test_an_expired_or_foreign_token_is_refused(runtime: ServerHandle) -> None:
    expired = SIGNER.issue("bob", ["*"], ["*"], ttl_s=10, now=time.time() - 60)[0]
    foreign = TokenSigner("another-runtime").issue("bob", ["*"], ["*"], now=time.time())[0]
    for value, why in [(expired, "expired"), (foreign, "refused")]:
        async with connect(ws_url(runtime), additional_headers=bearer(value)) as ws:
            code, reason = await close_code(ws)
        assert code == 4401
        assert why in reason


async def test_a_browser_authenticates_by_subprotocol_and_a_ticket_opens_one_connection(
    runtime: ServerHandle,
) -> None:
    bob = token("bob", ["chat:*"], ["chat:*"])
    offered = ["glm-live.v1", f"glm-live.bearer.{bob}"]
    async with connect(ws_url(runtime), subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "glm-live.v1"  # the token is not echoed back
        assert (await hello(ws))["name"] == "bob"
    ticket = SIGNER.ticket_for(SIGNER.verify(bob, time.time()), time.time())[0]
    async with connect(ws_url(runtime) + f"?ticket={ticket}") as ws:
        assert (await hello(ws))["name"] == "bob"
    async with connect(ws_url(runtime) + f"?ticket={ticket}") as ws:
        code, reason = await close_code(ws)
    assert (code, "revoked" in reason or "refused" in reason) == (4401, True)
    async with connect(ws_url(runtime) + f"?token={bob}") as ws:  # documented, with its risk
        assert (await hello(ws))["name"] == "bob"
    async with connect(ws_url(runtime), additional_headers=bearer(ticket)) as ws:
        code, _ = await close_code(ws)
    assert code == 4401  # a ticket is for ?ticket= only


# -- identity ------------------------------------------------------------------------------------


async def test_a_spoofed_hello_is_attributed_to_its_real_identity(runtime: ServerHandle) -> None:
    room = f"chat:{uuid.uuid4().hex[:6]}"
    alice_token = token("alice", ["chat:*"], ["chat:*"])
    mallory_token = token("mallory", ["chat:*"], ["chat:*"])
    async with (
        connect(ws_url(runtime), additional_headers=bearer(alice_token)) as alice,
        connect(ws_url(runtime), additional_headers=bearer(mallory_token)) as mallory,
        connect(ws_url(runtime), additional_headers=bearer(ADMIN)) as reader,
    ):
        await hello(reader)
        assert (await join(reader, room))["type"] == "joined"
        welcome = await hello(alice, id="alice-laptop", name="alice")
        assert welcome["name"] == "alice"
        spoof = await hello(mallory, id="alice-laptop", name="alice", session=welcome["session"])
        assert spoof["name"] == "mallory"  # the name comes from the token, not the hello
        assert spoof["resumed"] is False  # alice's session is not mallory's to resume
        assert (await publish(mallory, room, 1, "from mallory"))["type"] == "ack"
        # Alice's own publication 1 is hers, not a duplicate of mallory's.
        ack = await publish(alice, room, 1, "from alice")
        assert (ack["type"], ack["duplicate"]) == ("ack", False)
        first, second = await until(reader, "msg"), await until(reader, "msg")
    assert [(m["from"], m["name"], m["data"]) for m in (first, second)] == [
        ("mallory", "mallory", "from mallory"),
        ("alice", "alice", "from alice"),
    ]


async def test_an_inbox_is_read_by_its_owner_only_and_joined_for_it(
    runtime: ServerHandle,
) -> None:
    bob_token = token("bob", ["chat:*"], ["chat:*"])
    mallory_token = token("mallory", ["*", "@*"], ["@*"])  # patterns cannot open an inbox
    alice_token = token("alice", [], ["@*"])
    async with (
        connect(ws_url(runtime), additional_headers=bearer(bob_token)) as bob,
        connect(ws_url(runtime), additional_headers=bearer(mallory_token)) as mallory,
        connect(ws_url(runtime), additional_headers=bearer(alice_token)) as alice,
    ):
        await hello(bob)  # joins @bob for him
        await hello(mallory)
        await hello(alice)
        refused = await join(mallory, "@bob")
        assert refused["type"] == "error"
        assert (refused["code"], refused["room"]) == ("forbidden", "@bob")
        assert "only bob" in refused["message"]
        assert (await publish(alice, "@bob", 1, {"secret": "for bob"}))["type"] == "ack"
        direct = await until(bob, "msg")
        assert (direct["room"], direct["from"], direct["data"]) == (
            "@bob",
            "alice",
            {"secret": "for bob"},
        )
        # Mallory received nothing of it.
        with pytest.raises(TimeoutError):
            await until(mallory, "msg", timeout=0.5)


async def test_a_token_reads_and_writes_only_its_patterns(runtime: ServerHandle) -> None:
    carol = token("carol", ["news:*"], ["chat:*"])
    async with connect(ws_url(runtime), additional_headers=bearer(carol)) as ws:
        await hello(ws)
        assert (await join(ws, "news:today"))["type"] == "joined"
        refused = await join(ws, "chat:lobby")
        assert (refused["type"], refused["code"]) == ("error", "forbidden")
        assert "news:*" in refused["message"]
        assert (await publish(ws, "chat:lobby", 1, "hi"))["type"] == "ack"
        refused = await publish(ws, "news:today", 2, "fake news")
        assert (refused["type"], refused["code"], refused["room"]) == (
            "error",
            "forbidden",
            "news:today",
        )


@pytest.mark.parametrize("room", ["presence", "agents", "run:r-1", "_auth"])
async def test_the_runtimes_rooms_are_written_by_the_runtime_only(
    runtime: ServerHandle, room: str
) -> None:
    everything = token("eve", ["*"], ["*"])
    async with connect(ws_url(runtime), additional_headers=bearer(everything)) as ws:
        await hello(ws)
        refused = await publish(ws, room, 1, {"event": "join", "name": "admin"})
    assert (refused["type"], refused["code"]) == ("error", "forbidden")


# -- runs ----------------------------------------------------------------------------------------


async def run_events(runtime: ServerHandle, who: str, run_id: str) -> AsyncIterator[str]:
    """The AG-UI event types of a run started by ``who``'s token, as they stream."""
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream(
            "POST",
            f"{runtime.url}/agents/account-review",
            json=run_input(run_id, FAST),
            headers=bearer(who),
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                yield json.loads(line[5:])["type"]


async def test_a_run_is_commanded_by_its_owner_only_and_finishes_normally(
    runtime: ServerHandle,
) -> None:
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    bob = token("bob", ["chat:*"], ["chat:*"])
    mallory = token("mallory", ["*"], ["*"])
    events: list[str] = []
    async with connect(ws_url(runtime), additional_headers=bearer(mallory)) as ws:
        await hello(ws)
        async for kind in run_events(runtime, bob, run_id):
            events.append(kind)
            if kind == "RUN_STARTED":
                refused = await publish(ws, f"control:{run_id}", 1, {"command": "cancel"})
                assert (refused["type"], refused["code"]) == ("error", "forbidden")
                assert "started" in refused["message"]
                # Reading the run's events takes a read pattern (mallory's "*" has it).
    assert events[0] == "RUN_STARTED"
    assert events[-1] == "RUN_FINISHED"  # mallory's cancel never reached it
    # The owner may command it (and read its rooms whatever his patterns say).
    async with connect(ws_url(runtime), additional_headers=bearer(bob)) as ws:
        await hello(ws)
        assert (await join(ws, f"run:{run_id}"))["type"] == "joined"
        ack = await publish(ws, f"control:{run_id}", 1, {"command": "noop"})
        assert ack["type"] == "ack"


# -- exactly once --------------------------------------------------------------------------------


async def test_a_restarted_client_with_a_stable_id_delivers_everything(
    runtime: ServerHandle,
) -> None:
    room = f"chat:{uuid.uuid4().hex[:6]}"
    nb = token("nb", ["chat:*"], ["chat:*"])
    async with connect(ws_url(runtime), additional_headers=bearer(ADMIN)) as reader:
        await hello(reader)
        await join(reader, room)
        for life in range(2):  # the same notebook, restarted: same client id, ids from 1
            async with connect(ws_url(runtime), additional_headers=bearer(nb)) as ws:
                welcome = await hello(ws, id="nb-1")
                assert (welcome["resumed"], welcome["last_id"]) == (False, 0)
                for msg_id in (1, 2, 3):
                    ack = await publish(ws, room, msg_id, f"{life}-{msg_id}")
                    assert (ack["type"], ack["duplicate"]) == ("ack", False)
        got = [(await until(reader, "msg"))["data"] for _ in range(6)]
    assert got == ["0-1", "0-2", "0-3", "1-1", "1-2", "1-3"]


async def test_a_resumed_session_recognises_resends_and_refuses_an_id_reused_elsewhere(
    runtime: ServerHandle,
) -> None:
    room = f"chat:{uuid.uuid4().hex[:6]}"
    nb = token("nb", ["chat:*"], ["chat:*"])
    async with connect(ws_url(runtime), additional_headers=bearer(ADMIN)) as reader:
        await hello(reader)
        await join(reader, room)
        ws = await connect(ws_url(runtime), additional_headers=bearer(nb))
        welcome = await hello(ws, id="nb-1")
        first = [await publish(ws, room, i, i) for i in (1, 2)]
        ws.transport.abort()  # the connection is cut: no close handshake
        async with connect(ws_url(runtime), additional_headers=bearer(nb)) as ws:
            again = await hello(ws, id="nb-1", session=welcome["session"])
            assert (again["session"], again["resumed"], again["last_id"]) == (
                welcome["session"],
                True,
                2,
            )
            resent = await publish(ws, room, 2, 2)  # the client did not see its ack
            assert (resent["duplicate"], resent["seq"]) == (True, first[1]["seq"])
            reused = await publish(ws, f"{room}-other", 2, "not 2")
            assert (reused["type"], reused["code"]) == ("error", "id_reused")
            assert (await publish(ws, room, 3, 3))["duplicate"] is False
        got = [(await until(reader, "msg"))["data"] for _ in range(3)]
        assert got == [1, 2, 3]
        with pytest.raises(TimeoutError):
            await until(reader, "msg", timeout=0.5)


# -- revocation and expiry -----------------------------------------------------------------------


async def test_revoking_a_token_closes_its_connections_and_refuses_it_after(
    runtime: ServerHandle,
) -> None:
    dave = token("dave", ["chat:*"], ["chat:*"])
    async with connect(ws_url(runtime), additional_headers=bearer(dave)) as ws:
        await hello(ws)
        response = httpx.post(
            runtime.url + "/auth/revoke", json={"token": dave}, headers=bearer(ADMIN)
        )
        assert response.status_code == 200, response.text
        code, reason = await close_code(ws)
    assert (code, "revoked" in reason) == (4401, True)
    async with connect(ws_url(runtime), additional_headers=bearer(dave)) as ws:
        code, reason = await close_code(ws)
    assert (code, "revoked" in reason) == (4401, True)


async def test_a_token_that_expires_closes_its_connection(runtime: ServerHandle) -> None:
    brief = token("brief", ["chat:*"], ["chat:*"], ttl_s=2)
    async with connect(ws_url(runtime), additional_headers=bearer(brief)) as ws:
        await hello(ws)
        code, reason = await close_code(ws, timeout=15)
    assert (code, "expired" in reason) == (4401, True)
