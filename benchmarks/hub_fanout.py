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

Targets (issue 4): hub RTT p50 within 2x raw websockets; hub throughput >= 50% of raw.

When ``redis-server`` is installed, the same measurements run on two more runtimes whose rooms
live in one Redis (``--redis``, issue 8): round trips published on one runtime and received on
the other, and fan-out with the subscribers split between both. No target: the figures show
what sharing rooms across processes costs (every message goes through Redis).

Run: ``make bench`` or ``python benchmarks/hub_fanout.py [--subscribers N] [--messages M]``.
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

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._servers import free_port, start  # noqa: E402
from glm_live.transport.hub_client import Connection, Message  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def raw_rtt(port: int, n: int) -> list[float]:
    times = []
    async with connect(f"ws://127.0.0.1:{port}", ping_interval=None) as ws:
        for i in range(n):
            start = time.perf_counter()
            await ws.send(f"E{i}")
            await ws.recv()
            times.append(time.perf_counter() - start)
    return times


async def hub_rtt(port: int, n: int, other: int | None = None) -> list[float]:
    """Publish on the runtime at ``port``, receive on the one at ``other`` (default: same)."""
    times = []
    async with contextlib.AsyncExitStack() as stack:
        conn = await stack.enter_async_context(Connection(f"http://127.0.0.1:{port}", heartbeat=60))
        reader = conn
        if other is not None:
            reader = await stack.enter_async_context(
                Connection(f"http://127.0.0.1:{other}", heartbeat=60)
            )
        await reader.join("rtt")
        messages = reader.subscribe("rtt")
        for i in range(n):
            start = time.perf_counter()
            await conn.publish("rtt", i)
            item = await messages.__anext__()
            assert isinstance(item, Message)
            assert item.data == i
            times.append(time.perf_counter() - start)
    return times


async def raw_fanout(port: int, subscribers: int, n: int) -> float:
    url = f"ws://127.0.0.1:{port}"
    subs = [await connect(url, ping_interval=None, max_queue=None) for _ in range(subscribers)]
    publisher = await connect(url, ping_interval=None)
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


async def hub_fanout(port: int, subscribers: int, n: int, other: int | None = None) -> float:
    """Publish on the runtime at ``port``; subscribers alternate between it and ``other``."""
    url = f"http://127.0.0.1:{port}"
    urls = [url, f"http://127.0.0.1:{other or port}"]
    subs = [Connection(urls[i % 2], heartbeat=60) for i in range(subscribers)]
    for sub in subs:
        await sub.__aenter__()
        await sub.join("fanout")
    last: list[float] = []

    async def receive(conn: Connection) -> None:
        count = 0
        async for item in conn.subscribe("fanout"):
            if isinstance(item, Message):
                count += 1
                if count == n:
                    last.append(time.perf_counter())
                    return

    readers = [asyncio.ensure_future(receive(c)) for c in subs]
    async with Connection(url, heartbeat=60, outbox_limit=n + 1) as publisher:
        await publisher.wait_open(10)
        start = time.perf_counter()
        for i in range(n):
            await publisher.publish("fanout", {"i": i})
        await asyncio.wait_for(asyncio.gather(*readers), 120)
    for sub in subs:
        await sub.aclose()
    return subscribers * n / (max(last) - start)


def _serve(port: int, config: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "glm_live", "serve", "--port", str(port)]
    return start([*command, "--config", str(config), *extra], port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rtt-messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
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
    hub_port, raw_port = free_port(), free_port()
    processes = [
        _serve(hub_port, config),
        start([sys.executable, "benchmarks/raw_ws_server.py", str(raw_port)], raw_port),
    ]
    # name → (the publisher's port, the subscribers' port: None for the same)
    setups: dict[str, tuple[int, int | None]] = {"glm_live hub": (hub_port, None)}
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
        processes.append(_serve(a_port, config, "--redis", url))
        processes.append(_serve(b_port, config, "--redis", url))
        setups["redis hub, 1 runtime"] = (a_port, None)
        setups["redis hub, A -> B"] = (a_port, b_port)
    names = ["raw websockets", *setups]
    rtt: dict[str, list[float]] = {name: [] for name in names}
    rate: dict[str, list[float]] = {name: [] for name in names}
    try:
        asyncio.run(raw_rtt(raw_port, 100))  # warm-up
        for port, other in setups.values():
            asyncio.run(hub_rtt(port, 100, other))
        for _ in range(args.repeat):
            rtt["raw websockets"] += asyncio.run(raw_rtt(raw_port, args.rtt_messages))
            rate["raw websockets"].append(
                asyncio.run(raw_fanout(raw_port, args.subscribers, args.messages))
            )
            for name, (port, other) in setups.items():
                rtt[name] += asyncio.run(hub_rtt(port, args.rtt_messages, other))
                rate[name].append(
                    asyncio.run(hub_fanout(port, args.subscribers, args.messages, other))
                )
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
    print(
        f"hub RTT p50 / raw: {rtt_ratio:.2f}x (target <= 2x); hub throughput / raw: "
        f"{rate_ratio:.0%} (target >= 50%)"
    )
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
    else:
        print("redis-server is not installed: the Redis hub was not measured")


if __name__ == "__main__":
    main()
