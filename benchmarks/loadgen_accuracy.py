"""How accurately does each load generator timestamp what it receives?

The simulator runs in its own process and stamps every chunk with ``x_sent_ns`` (wall clock).
Each client runs in a process of its own, one after another, driving N concurrent streams of
64 tokens at 20 ms, and we measure its timing error: arrival (its wall-clock stamp) minus
``x_sent_ns``. Clients:

- ``glm_live``: the harness (``glm_live.bench.run``);
- ``vllm-style``: aiohttp, reading ``response.content`` line by line and parsing each JSON
  chunk as it comes, as vLLM's ``bench serve`` does;
- ``floor``: a bare ``asyncio.Protocol`` that only finds the stamps in each read.

Target (issue 6) at 1024 streams: glm_live p99 within 1.5x the floor, and >= 5x better than
the vLLM-style client, in the same run.

Run: ``make bench`` or ``python benchmarks/loadgen_accuracy.py [--streams 256,1024]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENS = 64
ITL_MS = 20
BODY = {
    "model": "glm-4.6",
    "messages": [{"role": "user", "content": "measure the timing error"}],
    "stream": True,
    "sim": {"tokens": TOKENS, "ttft_ms": ITL_MS, "itl_ms": ITL_MS, "capacity": 0},
}
sys.path.insert(0, str(ROOT))

from benchmarks._servers import auth_line, runtime_token  # noqa: E402

_STAMP = re.compile(rb'"x_sent_ns": ?(\d+)')


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def glm_live_client(port: int, streams: int) -> list[float]:
    sys.path.insert(0, str(ROOT))
    from glm_live import bench

    result = await bench.run(
        f"http://127.0.0.1:{port}",
        api_key=runtime_token(),
        concurrency=streams,
        requests=streams,
        sim=BODY["sim"],
        prompts=["measure the timing error"],
    )
    stamped = result.events.dropna(subset=["sent_ns"])
    errors = (stamped["arrival_wall_ns"] - stamped["sent_ns"].astype("int64")) / 1e6
    return [float(e) for e in errors]


async def vllm_style_client(port: int, streams: int) -> list[float]:
    import aiohttp

    errors: list[float] = []
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    connector = aiohttp.TCPConnector(limit=streams)
    timeout = aiohttp.ClientTimeout(total=6 * 60 * 60)
    headers = {"Authorization": f"Bearer {runtime_token()}"}
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            async with session.post(url, json=BODY, headers=headers) as response:
                async for line in response.content:
                    line = line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    now = time.time_ns()
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        continue
                    chunk = json.loads(data)
                    if "x_sent_ns" in chunk:
                        errors.append((now - chunk["x_sent_ns"]) / 1e6)

        await asyncio.gather(*(one() for _ in range(streams)))
    return errors


async def floor_client(port: int, streams: int) -> list[float]:
    body = json.dumps(BODY).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: "
        b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (auth_line(), len(body), body)
    )
    errors: list[float] = []
    loop = asyncio.get_running_loop()

    class Reader(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.done = done
            self.tail = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            transport.write(request)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            now = time.time_ns()
            data = self.tail + data
            cut = data.rfind(b"\n\n")
            complete, self.tail = (data[: cut + 2], data[cut + 2 :]) if cut >= 0 else (b"", data)
            errors.extend((now - int(m)) / 1e6 for m in _STAMP.findall(complete))
            if b"[DONE]" in complete:
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.done.done():
                self.done.set_result(None)

    async def one() -> None:
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(lambda: Reader(done), "127.0.0.1", port)
        await done

    await asyncio.gather(*(one() for _ in range(streams)))
    return errors


CLIENTS = {"glm_live": glm_live_client, "vllm-style": vllm_style_client, "floor": floor_client}


def _child(client: str, port: int, streams: int) -> None:
    errors = asyncio.run(CLIENTS[client](port, streams))
    print(json.dumps({"n": len(errors), "p50": _pct(errors, 0.5), "p99": _pct(errors, 0.99)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="256,1024")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.port, args.n)
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime_token()  # in GLM_LIVE_TOKEN from here on: the server and the clients share it
    server = subprocess.Popen(
        [sys.executable, "-m", "glm_live", "serve", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        print(
            f"timing error = client arrival - server x_sent_ns; {TOKENS} tokens at {ITL_MS} ms "
            "per stream; each client in its own process"
        )
        for streams in [int(s) for s in args.streams.split(",")]:
            row = {}
            for client in CLIENTS:
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        client,
                        "--port",
                        str(port),
                        "--n",
                        str(streams),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    cwd=ROOT,
                    check=True,
                )
                row[client] = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"  {streams:5d} streams  {client:11s} p50 {row[client]['p50']:8.2f} ms  "
                    f"p99 {row[client]['p99']:8.2f} ms  ({row[client]['n']:,} chunks)"
                )
            ours, floor, vllm = (
                row["glm_live"]["p99"],
                row["floor"]["p99"],
                row["vllm-style"]["p99"],
            )
            print(
                f"  {streams:5d} streams: glm_live p99 = {ours / floor:.2f}x the floor "
                f"(target <= 1.5x), {vllm / ours:.1f}x better than vllm-style (target >= 5x)"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
