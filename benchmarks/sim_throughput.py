"""Can the simulator keep up? Chunks per second and send lag at high concurrency.

Each server runs in its own process; this process is the client (a bare asyncio Protocol on
uvloop, the cheapest reader there is, so that the client is not what limits the run). Workload:
``--streams`` concurrent requests (default 1024), each ``--tokens`` tokens (64) at ``--itl-ms``
(20 ms) after a first token at ``--itl-ms`` too. Servers, measured in the same run:

- ``glm_live sim``: ``python -m glm_live serve`` (uvicorn with uvloop and httptools, the pacer);
- ``plain (uvicorn defaults)``: ``benchmarks/plain_server.py``, a Starlette ``StreamingResponse``
  generator sleeping between chunks, on uvicorn's plain defaults (asyncio loop, h11);
- ``plain (uvloop+httptools)``: the same generator server on the same fast stack as the sim.

Reported per server (median of ``--repeat`` runs, after a warm-up):

- chunks/s delivered: token chunks received / (last arrival - first request sent);
- send lag: each chunk's ``x_sent_ns`` minus its scheduled time, the schedule anchored at the
  stream's first chunk (``sent_0 + k * itl``): p50/p99;
- first-chunk lag: first chunk's ``x_sent_ns`` minus (request sent + ttft): p50/p99; this one
  includes the time the server took to read 1024 simultaneous requests;
- delivery: arrival minus ``x_sent_ns`` (client-side timing error) p99;
- server CPU seconds, from /proc.

Targets (issue 3): sim chunks/s >= 3x the plain server's, send lag p99 <= 5 ms at 1024 streams.

Run: ``make bench`` or ``python benchmarks/sim_throughput.py [--streams N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._servers import auth_line, free_port, runtime_token, start  # noqa: E402

_STAMP = re.compile(rb'"x_sent_ns": ?(\d+)')


@dataclass
class Result:
    chunks: int
    rate: float
    lag_p50: float
    lag_p99: float
    first_p50: float
    first_p99: float
    delivery_p99: float
    cpu: float


class _Reader(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.sent: list[int] = []
        self.arrived: list[int] = []
        self.tail = b""
        self.started = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> None:
        self.started = time.time_ns()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        data = self.tail + data
        for match in _STAMP.findall(data):
            self.sent.append(int(match))
            self.arrived.append(now)
        cut = data.rfind(b"\n\n")
        self.tail = data[cut + 2 :] if cut >= 0 else data
        if b"data: [DONE]" in data:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _drive(port: int, streams: int, tokens: int, itl_ms: float) -> tuple[list[_Reader], int]:
    body = json.dumps(
        {
            "model": "glm-4.6",
            "messages": [{"role": "user", "content": "benchmark the latency"}],
            "stream": True,
            "sim": {"tokens": tokens, "ttft_ms": itl_ms, "itl_ms": itl_ms, "capacity": 0},
        }
    ).encode()
    # Every server gets the same bytes: glm_live's runtime checks the token (its fast path is
    # part of what is measured), the plain servers ignore it.
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n%s"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (auth_line(), len(body), body)
    )
    loop = asyncio.get_running_loop()
    readers: list[_Reader] = []
    finished: list[asyncio.Future[None]] = []

    async def connect() -> None:
        done: asyncio.Future[None] = loop.create_future()
        _, reader = await loop.create_connection(lambda: _Reader(done), "127.0.0.1", port)
        readers.append(reader)
        finished.append(done)

    # Connections first, then every request at once: the run measures streaming, not how
    # fast a server accepts a thousand sockets (clients keep warm connection pools).
    await asyncio.gather(*(connect() for _ in range(streams)))
    begun = time.time_ns()
    for reader in readers:
        reader.send(request)
    await asyncio.wait_for(asyncio.gather(*finished), 120)
    return readers, begun


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, pid: int, streams: int, tokens: int, itl_ms: float) -> Result:
    cpu_before = _cpu_seconds(pid)
    readers, begun = _run(_drive(port, streams, tokens, itl_ms))
    cpu = _cpu_seconds(pid) - cpu_before
    itl_ns = itl_ms * 1e6
    lags, firsts, deliveries = [], [], []
    chunks = 0
    last_arrival = begun
    for reader in readers:
        sent = reader.sent[:tokens]  # token chunks (the sim's finishing chunk is extra)
        arrived = reader.arrived[:tokens]
        chunks += len(sent)
        if not sent:
            continue
        last_arrival = max(last_arrival, arrived[-1])
        firsts.append((sent[0] - reader.started - itl_ns) / 1e6)
        lags += [(s - sent[0] - k * itl_ns) / 1e6 for k, s in enumerate(sent)]
        deliveries += [(a - s) / 1e6 for s, a in zip(sent, arrived, strict=True)]
    return Result(
        chunks=chunks,
        rate=chunks / ((last_arrival - begun) / 1e9),
        lag_p50=_quantile(lags, 0.5),
        lag_p99=_quantile(lags, 0.99),
        first_p50=_quantile(firsts, 0.5),
        first_p99=_quantile(firsts, 0.99),
        delivery_p99=_quantile(deliveries, 0.99),
        cpu=cpu,
    )


def _run(coro: object) -> tuple[list[_Reader], int]:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type,no-any-return]
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coro)  # type: ignore[arg-type,no-any-return]


def servers(port: int) -> dict[str, list[str]]:
    py = sys.executable
    plain = [
        py,
        "-m",
        "uvicorn",
        "benchmarks.plain_server:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return {
        "glm_live sim": [py, "-m", "glm_live", "serve", "--port", str(port)],
        "plain (uvicorn defaults)": [*plain, "--loop", "asyncio", "--http", "h11"],
        "plain (uvloop+httptools)": [*plain, "--loop", "uvloop", "--http", "httptools"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(
        f"workload: {args.streams} concurrent streams x {args.tokens} tokens at "
        f"{args.itl_ms:g} ms; median of {args.repeat} runs after a warm-up"
    )
    runtime_token()  # in GLM_LIVE_TOKEN from here on: glm-live serve requires it
    results: dict[str, Result] = {}
    for name, command in servers(free_port()).items():
        port = int(command[command.index("--port") + 1])
        process = start(command, port)
        try:
            measure(port, process.pid, min(64, args.streams), 8, args.itl_ms)  # warm-up
            runs = [
                measure(port, process.pid, args.streams, args.tokens, args.itl_ms)
                for _ in range(args.repeat)
            ]
        finally:
            process.terminate()
            process.wait(10)
        median = {
            field: statistics.median(getattr(r, field) for r in runs)
            for field in Result.__dataclass_fields__
        }
        results[name] = result = Result(**median)  # type: ignore[arg-type]
        print(
            f"  {name:26s} {result.rate:8.0f} chunks/s  send lag p50 {result.lag_p50:6.2f} "
            f"p99 {result.lag_p99:7.2f} ms  first-chunk lag p50 {result.first_p50:6.1f} "
            f"p99 {result.first_p99:6.1f} ms  delivery p99 {result.delivery_p99:5.2f} ms  "
            f"server CPU {result.cpu:4.2f} s"
        )
        print(
            f"  {'':26s} runs: " + ", ".join(f"{r.rate:.0f}/s p99 {r.lag_p99:.2f} ms" for r in runs)
        )
    sim = results["glm_live sim"]
    for name in ("plain (uvicorn defaults)", "plain (uvloop+httptools)"):
        print(f"sim / {name}: {sim.rate / results[name].rate:.2f}x chunks/s")
    print(
        f"targets: >= 3x the plain server's chunks/s; sim send lag p99 {sim.lag_p99:.2f} ms "
        "(target <= 5 ms)"
    )


if __name__ == "__main__":
    main()
