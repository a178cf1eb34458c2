"""The hub with its rooms in Redis: several runtime processes share rooms, sequence numbers,
history and the epoch. A real ``redis-server`` (Debian's package) runs on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from glm_live import HubStoreError
from glm_live.server import serve
from glm_live.server.config import RuntimeConfig
from glm_live.server.hub.redis import RedisHub
from glm_live.server.hub.service import HubLimits
from glm_live.transport.hub_client import Connection, Gap, Message
from glm_live.wire.sse import Decoder
from tests.agui_checker import check_run, run_input
from tests.test_hub import collect, quick

pytestmark = pytest.mark.redis

FAST = {"ttft_ms": 1, "itl_ms": 1}
#: The admin token of every runtime these tests start (runtimes sharing rooms share one).
TOKEN = "redis-tests-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """redis-server on ``port`` (loopback, no persistence), once it answers."""
    executable = shutil.which("redis-server")
    assert executable, (
        "redis-server is not installed: apt-get install redis-server "
        "(make test leaves these tests out when it is missing; .ci/run installs it)"
    )
    process = subprocess.Popen(
        [
            executable,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            client.close()
            return process
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.02)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port, without persistence."""
    port = _free_port()
    process = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


class RuntimeProcess:
    """``glm-live serve --redis URL`` in a process of its own."""

    def __init__(self, redis_url: str, prefix: str, port: int | None = None) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RuntimeProcess:
        command = [sys.executable, "-m", "glm_live", "serve", "--port", str(self.port)]
        command += ["--redis", self.redis_url, "--redis-prefix", self.prefix, "--token", TOKEN]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the runtime exited during start-up"
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.process.kill()
        raise AssertionError("the runtime did not start")

    def hub(self) -> dict[str, Any]:
        hub: dict[str, Any] = httpx.get(self.url + "/health", headers=AUTH).json()["hub"]
        return hub

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)


@pytest.fixture
def pair(redis_url: str) -> Iterator[tuple[RuntimeProcess, RuntimeProcess]]:
    """Two runtime processes on different ports sharing rooms (their own key prefix)."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    a = RuntimeProcess(redis_url, prefix)
    b = RuntimeProcess(redis_url, prefix)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def messages(items: list[Message | Gap]) -> list[Message]:
    return [i for i in items if isinstance(i, Message)]


async def test_two_runtimes_share_rooms_exactly_once_and_in_one_order(
    pair: tuple[RuntimeProcess, RuntimeProcess],
) -> None:
    a, b = pair
    assert a.hub()["backend"] == "redis"
    assert a.hub()["epoch"] == b.hub()["epoch"]
    assert a.hub()["instance"] != b.hub()["instance"]
    n = 300
    async with (
        Connection(a.url, token=TOKEN, backoff=quick()) as on_a,
        Connection(b.url, token=TOKEN, backoff=quick()) as on_b,
        Connection(a.url, token=TOKEN, backoff=quick()) as pub_a,
        Connection(b.url, token=TOKEN, backoff=quick()) as pub_b,
    ):
        await on_a.join("news")
        await on_b.join("news")

        async def send(conn: Connection, tag: str) -> None:
            for i in range(n):
                await conn.publish("news", [tag, i])
                if i % 50 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(send(pub_a, "a"), send(pub_b, "b"))
        seen_a, seen_b = await asyncio.gather(
            collect(on_a, "news", 2 * n), collect(on_b, "news", 2 * n)
        )
        await pub_a.flush()
        await pub_b.flush()
    got_a, got_b = messages(seen_a), messages(seen_b)
    assert [(m.seq, m.data) for m in got_a] == [(m.seq, m.data) for m in got_b]  # one order
    assert [m.seq for m in got_b] == list(range(1, 2 * n + 1))  # numbered by Redis, no holes
    for tag in ("a", "b"):  # each publisher's messages once, in its order
        assert [m.data[1] for m in got_b if m.data[0] == tag] == list(range(n))
    assert len({m.epoch for m in got_b}) == 1
    assert not any(isinstance(i, Gap) for i in seen_a + seen_b)


async def test_an_agent_run_on_one_runtime_reaches_a_client_of_the_other(
    pair: tuple[RuntimeProcess, RuntimeProcess],
) -> None:
    a, b = pair
    run_id = f"run-{uuid.uuid4().hex[:6]}"
    body = run_input(run_id, FAST)
    async with Connection(b.url, token=TOKEN, backoff=quick()) as watcher:
        await watcher.join(f"run:{run_id}")
        await watcher.join("agents")
        decoder = Decoder()
        async with (
            httpx.AsyncClient(timeout=60, headers=AUTH) as http,
            http.stream("POST", a.url + "/agents/account-review", json=body) as response,
        ):
            assert response.status_code == 200
            streamed = [
                json.loads(e.data) async for p in response.aiter_bytes() for e in decoder.feed(p)
            ]
        received = messages(await collect(watcher, f"run:{run_id}", len(streamed)))
        statuses = messages(await collect(watcher, "agents", 1))
    check_run(streamed)
    # What the agents on A published, as the client on B received it: all of it, once, in order.
    assert [m.data for m in received] == streamed
    assert [m.seq for m in received] == list(range(1, len(streamed) + 1))
    assert statuses[0].data["run"] == run_id


async def test_control_published_on_one_runtime_reaches_a_run_on_the_other(
    pair: tuple[RuntimeProcess, RuntimeProcess],
) -> None:
    a, b = pair
    run_id = f"run-{uuid.uuid4().hex[:6]}"
    body = run_input(run_id, {"ttft_ms": 5, "itl_ms": 30})
    decoder = Decoder()
    events: list[dict[str, Any]] = []
    async with (
        Connection(b.url, token=TOKEN, backoff=quick()) as operator,
        httpx.AsyncClient(timeout=60, headers=AUTH) as http,
        http.stream("POST", a.url + "/agents/account-review", json=body) as response,
    ):
        async for piece in response.aiter_bytes():
            for event in decoder.feed(piece):
                events.append(json.loads(event.data))
                if [e["type"] for e in events].count("TEXT_MESSAGE_CONTENT") == 3:
                    await operator.publish(f"control:{run_id}", {"command": "cancel"})
    check_run(events)
    # Cancelled from the other runtime, through Redis: the run ends early, saying so.
    assert events[-1]["type"] == "RUN_FINISHED"
    assert events[-1]["outcome"]["type"] == "cancelled"
    assert "result" not in events[-1] or events[-1]["result"] is None


async def test_a_publication_re_sent_to_the_other_runtime_is_not_delivered_twice(
    pair: tuple[RuntimeProcess, RuntimeProcess],
) -> None:
    from websockets.asyncio.client import connect

    a, b = pair

    session: list[str] = []

    async def publish_as(url: str, ids: list[int]) -> list[dict[str, Any]]:
        async with connect(url.replace("http", "ws") + "/ws", additional_headers=AUTH) as ws:
            # The second connection resumes the first's session, as the welcome told it.
            resume = {"session": session[-1]} if session else {}
            await ws.send(json.dumps({"type": "hello", "id": "client-x", **resume}))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert welcome["resumed"] == bool(session)
            session.append(welcome["session"])
            for msg_id in ids:
                frame = {"type": "publish", "room": "once", "id": msg_id, "data": msg_id}
                await ws.send(json.dumps(frame))
            acks = []
            while len(acks) < len(ids):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["type"] == "ack":
                    acks.append(frame)
            ws.transport.abort()  # cut, not closed: a normal close would end the session
            return acks

    async with Connection(b.url, token=TOKEN, backoff=quick()) as reader:
        await reader.join("once")
        first = await publish_as(a.url, [1, 2])
        # The ack of 2 was "lost": the client re-sends 2, then 3, to the other runtime.
        again = await publish_as(b.url, [2, 3])
        got = messages(await collect(reader, "once", 3))
    assert [(f["id"], f["seq"], f["duplicate"]) for f in first] == [(1, 1, False), (2, 2, False)]
    assert [(f["id"], f["seq"], f["duplicate"]) for f in again] == [(2, 2, True), (3, 3, False)]
    assert [(m.seq, m.data) for m in got] == [(1, 1), (2, 2), (3, 3)]
    assert b.hub()["stats"]["duplicates"] == 1


async def test_a_client_resumes_on_the_other_runtime_when_its_own_dies(
    pair: tuple[RuntimeProcess, RuntimeProcess],
) -> None:
    a, b = pair
    n = 400
    received: list[Message | Gap] = []
    async with (
        Connection([b.url, a.url], token=TOKEN, backoff=quick(), heartbeat=0.5) as reader,
        Connection([b.url, a.url], token=TOKEN, backoff=quick(), heartbeat=0.5) as publisher,
    ):
        await reader.join("feed")
        first_epoch = reader.hub_epoch

        async def publish_all() -> None:
            for i in range(n):
                await publisher.publish("feed", i)
                await asyncio.sleep(0.002)

        async def read_all() -> None:
            async for item in reader.subscribe("feed"):
                received.append(item)
                if len(messages(received)) == 100:
                    b.stop(signal.SIGKILL)  # no goodbye: both clients lose B mid-stream
                if len(messages(received)) == n:
                    return

        await asyncio.wait_for(asyncio.gather(publish_all(), read_all()), 60)
        await publisher.flush()
        assert reader.url == publisher.url == a.url.replace("http://", "ws://") + "/ws"
        assert reader.reconnects >= 1
        assert publisher.reconnects >= 1
        assert reader.hub_epoch == first_epoch  # same rooms, same epoch: nothing to report
    assert not any(isinstance(i, Gap) for i in received)
    got = messages(received)
    assert [m.data for m in got] == list(range(n))  # re-sends to A were not appended twice
    assert [m.seq for m in got] == list(range(1, n + 1))


async def test_restarting_a_runtime_keeps_rooms_and_epoch(redis_url: str) -> None:
    # The in-memory hub loses its history on restart (an epoch gap); here Redis keeps it.
    runtime = RuntimeProcess(redis_url, f"test-{uuid.uuid4().hex[:8]}").start()
    try:
        async with (
            Connection(runtime.url, token=TOKEN, backoff=quick(), heartbeat=0.5) as publisher,
            Connection(runtime.url, token=TOKEN, backoff=quick(), heartbeat=0.5) as reader,
        ):
            await reader.join("log")
            for i in range(3):
                await publisher.publish("log", i)
            before = messages(await collect(reader, "log", 3))
            epoch = reader.hub_epoch
            runtime.stop()
            await publisher.publish("log", "while it was down")
            runtime.start()
            after = await collect(reader, "log", 1)
            assert reader.hub_epoch == epoch
            late = Connection(runtime.url, token=TOKEN, backoff=quick())
            async with late:
                await late.join("log", replay=True)
                history = messages(await collect(late, "log", 4))
    finally:
        runtime.stop()
    assert [m.data for m in before] == [0, 1, 2]
    assert [(type(i).__name__, getattr(i, "data", None)) for i in after] == [
        ("Message", "while it was down")
    ]
    assert [m.data for m in history] == [0, 1, 2, "while it was down"]


async def test_redis_losing_its_data_is_an_epoch_gap_on_every_runtime(
    redis_url: str, pair: tuple[RuntimeProcess, RuntimeProcess]
) -> None:
    a, b = pair
    async with (
        Connection(a.url, token=TOKEN, backoff=quick(), heartbeat=0.5) as publisher,
        Connection(b.url, token=TOKEN, backoff=quick(), heartbeat=0.5) as reader,
    ):
        await reader.join("room")
        await publisher.publish("room", "before")
        await collect(reader, "room", 1)
        old_epoch = reader.hub_epoch
        redis.Redis.from_url(redis_url).flushall()
        deadline = time.monotonic() + 15
        while a.hub()["epoch"] == old_epoch or b.hub()["epoch"] == old_epoch:
            assert time.monotonic() < deadline, "the runtimes did not notice the lost data"
            await asyncio.sleep(0.1)
        assert a.hub()["epoch"] == b.hub()["epoch"]
        await publisher.publish("room", "after")
        after = await collect(reader, "room", 1)
    gap = after[0]
    assert isinstance(gap, Gap)
    assert gap.reason == "epoch"
    assert gap.old_epoch == old_epoch
    assert [m.data for m in messages(after)] == ["after"]


async def test_a_redis_restart_is_survived_and_reported_as_an_epoch_gap() -> None:
    port = _free_port()
    server = start_redis(port)
    runtime = RuntimeProcess(f"redis://127.0.0.1:{port}/0", "restart").start()
    try:
        async with (
            Connection(runtime.url, token=TOKEN, backoff=quick(), heartbeat=0.5) as publisher,
            Connection(runtime.url, token=TOKEN, backoff=quick(), heartbeat=0.5) as reader,
        ):
            await reader.join("room")
            await publisher.publish("room", "before")
            assert [m.data for m in messages(await collect(reader, "room", 1))] == ["before"]
            old_epoch = reader.hub_epoch
            server.terminate()
            server.wait(10)
            await publisher.publish("room", "while Redis was down")  # waits in the runtime
            await asyncio.sleep(0.5)
            server = start_redis(port)
            after = await collect(reader, "room", 1)
            await publisher.flush()
            assert reader.hub_epoch != old_epoch
    finally:
        runtime.stop()
        server.terminate()
        server.wait(10)
    gap = after[0]
    assert isinstance(gap, Gap)  # Redis came back empty: said, not hidden
    assert gap.reason == "epoch"
    assert [m.data for m in messages(after)] == ["while Redis was down"]


async def test_trimmed_history_is_a_gap_across_runtimes(redis_url: str) -> None:
    from websockets.asyncio.client import connect

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    config = RuntimeConfig(hub=HubLimits(history=5), redis=redis_url, redis_prefix=prefix)
    with serve(token=TOKEN, config=config) as one, serve(token=TOKEN, config=config) as other:
        async with Connection(one.url, token=TOKEN, backoff=quick()) as publisher:
            for i in range(500):
                await publisher.publish("busy", i)
            await publisher.flush()
            epoch = publisher.hub_epoch
        # A client that saw message 1 on one runtime comes back to the other.
        async with connect(other.url.replace("http", "ws") + "/ws", additional_headers=AUTH) as ws:
            await ws.send(json.dumps({"type": "join", "room": "busy", "since": 1, "epoch": epoch}))
            joined = json.loads(await asyncio.wait_for(ws.recv(), 10))
            replayed = [json.loads(await asyncio.wait_for(ws.recv(), 10))]
            while replayed[-1]["seq"] < joined["last"]:
                replayed.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    assert joined["type"] == "joined"
    assert joined["last"] == 500
    first_kept = replayed[0]["seq"]
    assert 1 < first_kept <= 500 - 5 + 1  # history is bounded (MAXLEN ~ keeps at least 5)
    assert joined["gap"] == {"reason": "trimmed", "lost_from": 2, "lost_to": first_kept - 1}
    assert [m["seq"] for m in replayed] == list(range(first_kept, 501))
    assert [m["data"] for m in replayed] == list(range(first_kept - 1, 500))


async def test_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    port = _free_port()
    password = secrets.token_hex(8)  # made up here: no credential lives in the source
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    hub = RedisHub(url)
    with pytest.raises(HubStoreError, match=f"Redis at redis://127.0.0.1:{port}") as caught:
        await asyncio.wait_for(hub.start(), 20)
    assert password not in str(caught.value)
    assert password not in repr(hub)
    assert password not in repr(RuntimeConfig(redis=url))


def test_serve_with_unreachable_redis_exits_saying_why_without_the_password() -> None:
    port = _free_port()
    password = secrets.token_hex(8)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    result = subprocess.run(
        [sys.executable, "-m", "glm_live", "serve", "--port", "0", "--redis", url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "cannot use Redis" in output
    assert password not in output


async def test_in_memory_hub_stays_the_default() -> None:
    with serve(token=TOKEN) as runtime:
        health = httpx.get(runtime.url + "/health", headers=AUTH).json()
    assert health["hub"]["backend"] == "memory"


async def test_the_documented_frames_on_the_redis_hub(redis_url: str) -> None:
    from tests.test_hub import doc_token, documented_session

    config = RuntimeConfig(redis=redis_url, redis_prefix=f"test-{uuid.uuid4().hex[:8]}")
    admin = secrets.token_urlsafe(16)
    with serve(token=admin, config=config) as runtime:
        await documented_session(runtime.url, doc_token(admin))


async def test_a_runtime_that_falls_behind_the_trimmed_history_says_so(redis_url: str) -> None:
    """Runtime B's loop stalls while A publishes far more than the history keeps: B's reader
    finds the trimmed hole, closes its clients in that room (1013), and they rejoin and hear of
    the gap. Before, they silently lost the trimmed messages."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    config = RuntimeConfig(hub=HubLimits(history=5), redis=redis_url, redis_prefix=prefix)
    n = 600
    with serve(token=TOKEN, config=config) as a, serve(token=TOKEN, config=config) as b:
        store = b.runtime.hub.store
        loop = store._tasks[0].get_loop()  # type: ignore[attr-defined]
        async with (
            Connection(b.url, token=TOKEN, backoff=quick(), heartbeat=5) as reader,
            Connection(a.url, token=TOKEN, backoff=quick()) as publisher,
        ):
            await reader.join("burst")
            await publisher.publish("burst", 0)
            first = await collect(reader, "burst", 1)
            # Stall B's loop (a blocking call on it) while A publishes the rest.
            stalled = asyncio.Event()
            loop.call_soon_threadsafe(lambda: (stalled.set(), time.sleep(1.5)))  # type: ignore[func-returns-value]
            await asyncio.sleep(0.05)
            for i in range(1, n):
                await publisher.publish("burst", i)
            await publisher.flush(30)
            items: list[Message | Gap] = list(first)

            async def until_last() -> None:
                async for item in reader.subscribe("burst"):
                    items.append(item)
                    if isinstance(item, Message) and item.data == n - 1:
                        return

            await asyncio.wait_for(until_last(), 30)
    gaps = [i for i in items if isinstance(i, Gap)]
    assert gaps, "the trimmed messages were lost silently"
    assert {g.reason for g in gaps} == {"trimmed"}
    assert reader.reconnects >= 1
    # Every message was either delivered, once and in order, or inside a reported gap.
    covered: list[int] = []
    for item in items:
        if isinstance(item, Gap):
            assert item.lost_from is not None
            assert item.lost_to is not None
            covered += range(item.lost_from, item.lost_to + 1)
        else:
            covered.append(item.seq)
    assert covered == list(range(1, n + 1))
