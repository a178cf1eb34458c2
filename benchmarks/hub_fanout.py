"""The hub against raw ``websockets``: round-trip time and fan-out throughput, same run.

Servers, each in its own process: the glm_live runtime's hub (``python -m glm_live serve``)
and ``benchmarks/raw_ws_server.py`` (bare ``websockets``: echo, and ``broadcast`` to everyone).
This process runs the clients.

- Round trip: one client, one message at a time, ``--rtt-messages`` times. Hub: publish to a
  room the client has joined and wait for the message to come back (JSON, sequence number,
  acknowledgement and all). Raw: send and wait for the echo.
- Fan-out: one publisher, ``--subscribers`` subscribers, ``--messages`` messages sent as fast
  as the publisher can; throughput = deliveries to all subscribers / time from the first
  send to the last delivery.

The clients that measure the hub against the baseline are the same library, ``websockets``,
speaking the hub's protocol from ``docs/hub-protocol.md`` (hello, join, publish, counting
``msg`` frames) where the baseline's send and count bare frames: the difference is the
server's. Neither side negotiates compression (the hub does not by default; the baseline is
told not to), so both put the same bytes on the wire. A second row measures the hub through
``glm_live.ws.Connection`` (sequence tracking, dedupe, the outbox, a queue per subscriber):
what a Python user of the hub sees, client costs included; it has no target.

Authentication and access checks are on, as in production (issue 13): every runtime is started
with an admin token (``--token``), and every benchmark client connects with its own *scoped*
token, minted offline with :class:`~glm_live.wire.auth.TokenSigner` (as any runtime holding the
admin token would), reading and writing ``bench:*``. The admin token is not used by clients: it
skips the checks. Before measuring, a raw WebSocket client checks that the hub does refuse a
scoped token's publish outside its patterns (so the checks are really running).

Targets (issue 13, checks on): hub RTT p50 <= 1.5x raw websockets; hub fan-out >= 70% of raw
deliveries/s; each printed with PASS or FAIL.

When ``redis-server`` is installed, the same measurements run on two more runtimes whose rooms
live in one Redis (``--redis``, issue 8): round trips published on one runtime and received on
the other, and fan-out with the subscribers split between both. No target: the figures show
what sharing rooms across processes costs (every message goes through Redis).

Run: ``make bench`` or ``python benchmarks/hub_fanout.py [--subscribers N] [--messages M]``.
Every figure is measured in the run that prints it; ratios compare figures of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._servers import free_port, runtime_token, start  # noqa: E402
from glm_live.transport.hub_client import Connection, Message  # noqa: E402
from glm_live.wire.auth import TokenSigner  # noqa: E402

#: The rooms the benchmark uses, and the patterns its scoped tokens read and write.
RTT_ROOM, FANOUT_ROOM, PATTERNS = "bench:rtt", "bench:fanout", ["bench:*"]
#: The row measured through glm_live's own client (no target: client costs included).
CONNECTION_ROW = "hub via ws.Connection"


class Tokens:
    """Scoped tokens minted offline from the runtimes' admin token, one name per client."""

    def __init__(self, admin: str) -> None:
        self._signer = TokenSigner(admin)

    def __call__(self, name: str) -> str:
        token, grant = self._signer.issue(
            name, read=PATTERNS, write=PATTERNS, ttl_s=3600, now=time.time()
        )
        assert not grant.admin
        return token


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def raw_rtt(port: int, n: int) -> list[float]:
    times = []
    async with connect(f"ws://127.0.0.1:{port}", ping_interval=None, compression=None) as ws:
        for i in range(n):
            start = time.perf_counter()
            await ws.send(f"E{i}")
            await ws.recv()
            times.append(time.perf_counter() - start)
    return times


async def _protocol_client(port: int, token: str, rooms: list[str]) -> ClientConnection:
    """A bare ``websockets`` client of the hub: authenticated, said hello, joined ``rooms``."""
    ws = await connect(
        f"ws://127.0.0.1:{port}/ws",
        additional_headers={"Authorization": f"Bearer {token}"},
        ping_interval=None,
        max_queue=None,
        compression=None,
    )
    await ws.send(json.dumps({"type": "hello"}))
    await _until(ws, "joined")  # its inbox, joined for it after the welcome
    for room in rooms:
        await ws.send(json.dumps({"type": "join", "room": room, "since": None}))
        await _until(ws, "joined")
    return ws


async def _until(ws: ClientConnection, kind: str) -> dict[str, object]:
    while True:
        frame: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame["type"] == kind:
            return frame


async def protocol_rtt(port: int, n: int, tokens: Tokens, other: int | None = None) -> list[float]:
    """The round trip through the hub, with bare ``websockets`` clients speaking its protocol."""
    times = []
    conn = await _protocol_client(port, tokens("rtt"), [RTT_ROOM] if other is None else [])
    reader = conn
    if other is not None:
        reader = await _protocol_client(other, tokens("rtt-reader"), [RTT_ROOM])
    drain = None if other is None else asyncio.ensure_future(_drain(conn))
    for i in range(n):
        start = time.perf_counter()
        await conn.send(json.dumps({"type": "publish", "room": RTT_ROOM, "id": i + 1, "data": i}))
        while True:  # the acks of the publisher's own connection are skipped
            frame = json.loads(await reader.recv())
            if frame["type"] == "msg":
                assert frame["data"] == i
                break
        times.append(time.perf_counter() - start)
    if drain is not None:
        drain.cancel()
    for ws in {conn, reader}:
        await ws.close()
    return times


async def _drain(ws: ClientConnection) -> None:
    async for _ in ws:
        pass


async def protocol_fanout(
    port: int, subscribers: int, n: int, tokens: Tokens, other: int | None = None
) -> float:
    """Fan-out through the hub, with bare ``websockets`` clients speaking its protocol:
    subscribers count ``msg`` frames as the baseline's count frames."""
    ports = [port, other or port]
    subs = [
        await _protocol_client(ports[i % 2], tokens(f"sub-{i}"), [FANOUT_ROOM])
        for i in range(subscribers)
    ]
    publisher = await _protocol_client(port, tokens("pub"), [])
    await asyncio.sleep(0.2)
    last: list[float] = []

    async def receive(ws: ClientConnection) -> None:
        count = 0
        async for frame in ws:
            if isinstance(frame, str) and frame.startswith('{"type": "msg"'):
                count += 1
                if count == n:
                    last.append(time.perf_counter())
                    return

    readers = [asyncio.ensure_future(receive(ws)) for ws in subs]
    acks = asyncio.ensure_future(_drain(publisher))
    start = time.perf_counter()
    for i in range(n):
        frame = {"type": "publish", "room": FANOUT_ROOM, "id": i + 1, "data": {"i": i}}
        await publisher.send(json.dumps(frame))
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    acks.cancel()
    for ws in [*subs, publisher]:
        await ws.close()
    return subscribers * n / (max(last) - start)


async def hub_rtt(port: int, n: int, tokens: Tokens, other: int | None = None) -> list[float]:
    """Publish on the runtime at ``port``, receive on the one at ``other`` (default: same)."""
    times = []
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(
            Connection(f"http://127.0.0.1:{port}", token=tokens("rtt"), heartbeat=60)
        )
        reader = conn
        if other is not None:
            reader = await stack.enter_async_context(
                Connection(f"http://127.0.0.1:{other}", token=tokens("rtt-reader"), heartbeat=60)
            )
        await reader.join(RTT_ROOM)
        messages = reader.subscribe(RTT_ROOM)
        for i in range(n):
            start = time.perf_counter()
            await conn.publish(RTT_ROOM, i)
            item = await messages.__anext__()
            assert isinstance(item, Message)
            assert item.data == i
            times.append(time.perf_counter() - start)
    return times


async def raw_fanout(port: int, subscribers: int, n: int) -> float:
    url = f"ws://127.0.0.1:{port}"
    subs = [
        await connect(url, ping_interval=None, max_queue=None, compression=None)
        for _ in range(subscribers)
    ]
    publisher = await connect(url, ping_interval=None, compression=None)
    await asyncio.sleep(0.2)
    last: list[float] = []

    async def receive(ws) -> None:  # type: ignore[no-untyped-def]
        count = 0
        async for _ in ws:
            count += 1
            if count == n:
                last.append(time.perf_counter())
                return

    readers = [asyncio.ensure_future(receive(ws)) for ws in subs]
    start = time.perf_counter()
    for i in range(n):
        await publisher.send(json.dumps({"i": i}))
    publisher_reader = asyncio.ensure_future(receive(publisher))
    await asyncio.wait_for(asyncio.gather(*readers), 120)
    publisher_reader.cancel()
    for ws in [*subs, publisher]:
        await ws.close()
    return subscribers * n / (max(last) - start)


async def hub_fanout(
    port: int, subscribers: int, n: int, tokens: Tokens, other: int | None = None
) -> float:
    """Publish on the runtime at ``port``; subscribers alternate between it and ``other``."""
    url = f"http://127.0.0.1:{port}"
    urls = [url, f"http://127.0.0.1:{other or port}"]
    subs = [
        Connection(urls[i % 2], token=tokens(f"sub-{i}"), heartbeat=60) for i in range(subscribers)
    ]
    for sub in subs:
        await sub.__aenter__()
        await sub.join(FANOUT_ROOM)
    last: list[float] = []

    async def receive(conn: Connection) -> None:
        count = 0
        async for item in conn.subscribe(FANOUT_ROOM):
            if isinstance(item, Message):
                count += 1
                if count == n:
                    last.append(time.perf_counter())
                    return

    readers = [asyncio.ensure_future(receive(c)) for c in subs]
    publisher = Connection(url, token=tokens("pub"), heartbeat=60, outbox_limit=n + 1)
    async with publisher:
        await publisher.wait_open(10)
        start = time.perf_counter()
        for i in range(n):
            await publisher.publish(FANOUT_ROOM, {"i": i})
        await asyncio.wait_for(asyncio.gather(*readers), 120)
    for sub in subs:
        await sub.aclose()
    return subscribers * n / (max(last) - start)


async def checks_are_on(port: int, tokens: Tokens) -> None:
    """Fail unless the runtime at ``port`` refuses a scoped token's publish outside its
    patterns: figures measured with the checks off would not be the ones asked for."""
    headers = {"Authorization": f"Bearer {tokens('probe')}"}
    url = f"ws://127.0.0.1:{port}/ws"
    async with connect(url, additional_headers=headers, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "hello", "id": "probe"}))
        await ws.send(json.dumps({"type": "publish", "room": "elsewhere", "id": 1, "data": 0}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("type") == "ack":
                msg = f"runtime on port {port} accepted a publish outside the token's rooms"
                raise RuntimeError(msg)
            if frame.get("type") == "error":
                if frame.get("code") != "forbidden":
                    msg = f"expected a 'forbidden' error, got {frame}"
                    raise RuntimeError(msg)
                return


def _serve(port: int, config: Path, admin: str, *extra: str) -> subprocess.Popen[bytes]:
    # --token=...: a token may start with "-", which argparse would take for an option
    command = [sys.executable, "-m", "glm_live", "serve", "--port", str(port), f"--token={admin}"]
    return start([*command, "--config", str(config), *extra], port)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rtt-messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()
    config = Path(tempfile.mkdtemp()) / "hub.toml"
    # The bench publishes as fast as it can: lift the per-connection rate limit for it, and
    # keep more history than one burst. With Redis, a runtime whose reader falls more than
    # `history` messages behind loses the trimmed ones (docs/hub-protocol.md, 5.2): a burst of
    # 2000 at the default 1000 made about 1 run in 25 hang on a subscriber short of messages.
    config.write_text(
        f"[hub]\nrate = 1e9\nburst = 1e9\nsend_queue = {args.messages * 2}\n"
        f"history = {args.messages * 2}\n"
    )
    admin = runtime_token()  # the runtimes' admin token: clients never use it
    tokens = Tokens(admin)
    hub_port, raw_port = free_port(), free_port()
    processes = [
        _serve(hub_port, config, admin),
        start([sys.executable, "benchmarks/raw_ws_server.py", str(raw_port)], raw_port),
    ]
    # name → (the publisher's port, the subscribers' port: None for the same)
    setups: dict[str, tuple[int, int | None]] = {
        "glm_live hub": (hub_port, None),
        CONNECTION_ROW: (hub_port, None),
    }
    redis_server = shutil.which("redis-server")
    if redis_server is not None:
        redis_port, a_port, b_port = free_port(), free_port(), free_port()
        processes.append(
            start(
                [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
                redis_port,
            )
        )
        url = f"redis://127.0.0.1:{redis_port}/0"
        processes.append(_serve(a_port, config, admin, "--redis", url))
        processes.append(_serve(b_port, config, admin, "--redis", url))
        setups["redis hub, 1 runtime"] = (a_port, None)
        setups["redis hub, A -> B"] = (a_port, b_port)
    unusable: dict[str, str] = {}  # a Redis setup that failed its check -> why
    try:
        for name, (port, other) in list(setups.items()):
            try:
                for checked in {port, other or port}:
                    asyncio.run(checks_are_on(checked, tokens))
            except Exception as exc:
                if name == "glm_live hub":
                    raise  # the targets are about this one: no figures without it
                unusable[name] = f"{type(exc).__name__}: {exc}"
                del setups[name]
        names = ["raw websockets", *setups]
        rtt: dict[str, list[float]] = {name: [] for name in names}
        rate: dict[str, list[float]] = {name: [] for name in names}
        asyncio.run(raw_rtt(raw_port, 100))  # warm-up
        for port, other in setups.values():
            asyncio.run(hub_rtt(port, 100, tokens, other))
            asyncio.run(protocol_rtt(port, 100, tokens, other))

        def measure(name: str) -> None:
            if name == "raw websockets":
                rtt[name] += asyncio.run(raw_rtt(raw_port, args.rtt_messages))
                rate[name].append(
                    asyncio.run(raw_fanout(raw_port, args.subscribers, args.messages))
                )
                return
            port, other = setups[name]
            if name == CONNECTION_ROW:
                rtt[name] += asyncio.run(hub_rtt(port, args.rtt_messages, tokens, other))
                rate[name].append(
                    asyncio.run(hub_fanout(port, args.subscribers, args.messages, tokens, other))
                )
                return
            rtt[name] += asyncio.run(protocol_rtt(port, args.rtt_messages, tokens, other))
            rate[name].append(
                asyncio.run(protocol_fanout(port, args.subscribers, args.messages, tokens, other))
            )

        for repeat in range(args.repeat):
            # The baseline and the hub it is compared with run back to back, first one then
            # the other, so that a shared machine whose speed drifts slows both alike.
            pair = ["raw websockets", "glm_live hub"]
            for name in pair[:: -1 if repeat % 2 else 1] + names[2:]:
                measure(name)
    finally:
        for process in reversed(processes):  # the runtimes before their Redis
            process.terminate()
            process.wait(10)
    print(
        f"round trip: {args.rtt_messages} x {args.repeat} sequential messages; fan-out: "
        f"{args.messages} messages to {args.subscribers} subscribers, median of {args.repeat}"
    )
    for name in names:
        times = rtt[name]
        print(
            f"  {name:22s} RTT p50 {_pct(times, 0.5) * 1e3:6.3f} ms  p99 "
            f"{_pct(times, 0.99) * 1e3:6.3f} ms   fan-out "
            f"{statistics.median(rate[name]):9.0f} deliveries/s  (runs: "
            + ", ".join(f"{r:.0f}" for r in rate[name])
            + ")"
        )
    rtt_ratio = _pct(rtt["glm_live hub"], 0.5) / _pct(rtt["raw websockets"], 0.5)
    rate_ratio = statistics.median(rate["glm_live hub"]) / statistics.median(rate["raw websockets"])
    rtt_ok, rate_ok = _verdict(rtt_ratio <= 1.5), _verdict(rate_ratio >= 0.7)
    print("with authentication and access checks on (scoped tokens), websockets clients:")
    print(f"  hub RTT p50 / raw: {rtt_ratio:5.2f}x (target <= 1.5x)  {rtt_ok}")
    print(f"  hub fan-out / raw: {rate_ratio:5.0%} (target >= 70%)   {rate_ok}")
    for name, why in unusable.items():
        print(f"  {name}: NOT MEASURED: its runtime failed the access check ({why})")
    if "redis hub, A -> B" in rtt:
        memory = _pct(rtt["glm_live hub"], 0.5)
        across = _pct(rtt["redis hub, A -> B"], 0.5)
        share = statistics.median(rate["redis hub, A -> B"]) / statistics.median(
            rate["glm_live hub"]
        )
        print(
            f"rooms in Redis, across two runtimes: RTT p50 {across / memory:.2f}x the in-memory "
            f"hub's; fan-out {share:.0%} of it"
        )
    elif redis_server is None:
        print("redis-server is not installed: the Redis hub was not measured")


if __name__ == "__main__":
    main()
