"""What does scraping the server's ``/metrics`` during a run cost the measured requests?

The runtime runs in its own process; the harness drives N streams of 64 tokens at 20 ms
against it, alternately without and with ``metrics_url=True`` (every ``--interval`` s), and
we compare the harness's own calibration: its event loop's lag (p50/p99) and its timing error
(arrival minus the server's ``x_sent_ns``, p50/p99), median over ``--repeat`` runs of each.

Run: ``python benchmarks/telemetry_cost.py [--streams 256] [--interval 0.1] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._servers import free_port, runtime_token, start  # noqa: E402

SIM = {"tokens": 64, "ttft_ms": 20, "itl_ms": 20, "capacity": 0}
KEYS = ("loop_lag_p50_ms", "loop_lag_p99_ms", "timing_error_p50_ms", "timing_error_p99_ms")


async def one(port: int, streams: int, interval: float | None) -> dict[str, float]:
    from glm_live.measure import bench

    options = {} if interval is None else {"metrics_url": True, "metrics_interval": interval}
    result = await bench.run(
        f"http://127.0.0.1:{port}",
        api_key=runtime_token(),
        concurrency=streams,
        requests=streams * 3,
        sim=SIM,
        **options,
    )
    out = {key: float(result.calibration[key]) for key in KEYS}
    if interval is not None:
        info = result.calibration["telemetry"]
        out["scrapes"] = info["scrapes"]
        out["scrape_errors"] = info["scrape_errors"]
        out["scrape_ms_p50"] = info["scrape_ms_p50"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runtime_token()
    port = free_port()
    server = start([sys.executable, "-m", "glm_live", "serve", "--port", str(port)], port)
    try:
        runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        for _ in range(args.repeat):
            runs["off"].append(asyncio.run(one(port, args.streams, None)))
            runs["on"].append(asyncio.run(one(port, args.streams, args.interval)))
    finally:
        server.terminate()
        server.wait()
    print(f"{args.streams} streams, scrape every {args.interval:g} s, {args.repeat} runs each")
    for name, rows in runs.items():
        medians = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
        print(f"  metrics {name:3}: " + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
        for row in rows:
            print("      run: " + ", ".join(f"{row[k]:.2f}" for k in KEYS))


if __name__ == "__main__":
    main()
