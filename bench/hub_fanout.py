"""The hub against raw ``websockets``: round-trip time and fan-out throughput, same run.

Servers, each in its own process: the glm_live runtime's hub (``python -m glm_live serve``)
and ``bench/raw_ws_server.py`` (bare ``websockets``: echo, and ``broadcast`` to everyone).
This process runs the clients.

- Round trip: one client, one message at a time, ``--rtt-messages`` times. Hub: publish to a
  room the client has joined and wait for the message to come back (JSON, sequence number,
  acknowledgement and all). Raw: send and wait for the echo.
- Fan-out: one publisher, ``--subscribers`` subscribers, ``--messages`` messages sent as fast
  as the publisher can; throughput = deliveries to all subscribers / time from the first
  send to the last delivery.

Targets (issue 4): hub RTT p50 within 2x raw websockets; hub throughput >= 50% of raw.

Run: ``make bench`` or ``python bench/hub_fanout.py [--subscribers N] [--messages M]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._servers import free_port, start  # noqa: E402
from glm_live.ws import Connection, Message  # noqa: E402


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


async def hub_rtt(port: int, n: int) -> list[float]:
    times = []
    async with Connection(f"http://127.0.0.1:{port}", heartbeat=60) as conn:
        await conn.join("rtt")
        messages = conn.subscribe("rtt")
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


async def hub_fanout(port: int, subscribers: int, n: int) -> float:
    url = f"http://127.0.0.1:{port}"
    subs = [Connection(url, heartbeat=60) for _ in range(subscribers)]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rtt-messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    config = Path(tempfile.mkdtemp()) / "hub.toml"
    # The bench publishes as fast as it can: lift the per-connection rate limit for it.
    config.write_text(f"[hub]\nrate = 1e9\nburst = 1e9\nsend_queue = {args.messages * 2}\n")
    hub_port, raw_port = free_port(), free_port()
    hub = start(
        [
            sys.executable,
            "-m",
            "glm_live",
            "serve",
            "--port",
            str(hub_port),
            "--config",
            str(config),
        ],
        hub_port,
    )
    raw = start([sys.executable, "bench/raw_ws_server.py", str(raw_port)], raw_port)
    try:
        asyncio.run(hub_rtt(hub_port, 100))  # warm-up
        asyncio.run(raw_rtt(raw_port, 100))
        rtt = {"raw websockets": [], "glm_live hub": []}
        rate = {"raw websockets": [], "glm_live hub": []}
        for _ in range(args.repeat):
            rtt["raw websockets"] += asyncio.run(raw_rtt(raw_port, args.rtt_messages))
            rtt["glm_live hub"] += asyncio.run(hub_rtt(hub_port, args.rtt_messages))
            rate["raw websockets"].append(
                asyncio.run(raw_fanout(raw_port, args.subscribers, args.messages))
            )
            rate["glm_live hub"].append(
                asyncio.run(hub_fanout(hub_port, args.subscribers, args.messages))
            )
    finally:
        hub.terminate()
        raw.terminate()
        hub.wait(10)
        raw.wait(10)
    print(
        f"round trip: {args.rtt_messages} x {args.repeat} sequential messages; fan-out: "
        f"{args.messages} messages to {args.subscribers} subscribers, median of {args.repeat}"
    )
    for name in ("raw websockets", "glm_live hub"):
        times = rtt[name]
        print(
            f"  {name:15s} RTT p50 {_pct(times, 0.5) * 1e3:6.3f} ms  p99 "
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


if __name__ == "__main__":
    main()
