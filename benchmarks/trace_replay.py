"""How close to its timestamps does a trace replay send each request?

The simulator runs in its own process (``glm-live serve``); this process replays the shipped
Mooncake trace (``glm_live/measure/bench/traces/example.jsonl``: 200 requests over 17.6 s) a
few times and prints each run's send error: each request's actual send (``sent_ns``, when
its bytes were written) minus its scheduled send (the trace's timestamp after the common
start), p50/p99/max in ms, and the event loop's lag.

Target (issue 18): p99 <= 1 ms on this machine at the trace's own rate.

The server runs on a core of its own and this process on the others (``_servers.split_cpus``
says why: on one machine, the scheduler otherwise runs the server on the sender's core at
each request, and a send waits out the server's parse). ``--no-pin`` leaves both to the
scheduler, to see that.

This process also asks for real-time scheduling (``SCHED_FIFO``, priority 1; root or
CAP_SYS_NICE): on a VM, kernel threads (``kdamond``, ``kworker``) preempt a normal-priority
process for 1-5 ms a few dozen times a run, and a send that falls in one of those is that
late. Each run prints how often the process was preempted (involuntary context switches), so
the cause of a late tail is on the line. The harness idles between sends, so the threads
still get the core then. ``--no-realtime`` runs at normal priority, to see that.

Run: ``python benchmarks/trace_replay.py [--runs 3] [--speed 1] [--no-pin] [--no-realtime]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._servers import free_port, runtime_token, split_cpus, start  # noqa: E402
from glm_live.measure import bench  # noqa: E402
from glm_live.measure.bench.workloads import EXAMPLE_TRACE  # noqa: E402


def preemptions() -> int:
    """Involuntary context switches of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def realtime() -> str:
    """Ask for ``SCHED_FIFO`` at priority 1; says what this process runs at."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (AttributeError, OSError) as exc:
        return f"normal priority (real-time scheduling refused: {exc})"
    return "real-time priority (SCHED_FIFO 1)"


async def replay(url: str, runs: int, speed: float) -> None:
    for run in range(runs):
        before = preemptions()
        result = await bench.run(
            url,
            api_key=runtime_token(),
            trace=EXAMPLE_TRACE,
            trace_speed=speed,
            sim={"ttft_ms": 20, "itl_ms": 5},
        )
        error = result.send_error_ms
        ok = int((result.requests["status"] == "ok").sum())
        print(
            f"run {run + 1}: {ok}/{len(result.requests)} ok, send error p50 {error['p50']:.3f} ms"
            f" p99 {error['p99']:.3f} ms max {error['max']:.3f} ms; loop lag p99 "
            f"{result.calibration['loop_lag_p99_ms']:.2f} ms; preempted {preemptions() - before}"
            " times",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument(
        "--no-pin", action="store_true", help="leave the server and this process unpinned"
    )
    parser.add_argument(
        "--no-realtime", action="store_true", help="run this process at normal priority"
    )
    args = parser.parse_args()
    runtime_token()
    port = free_port()
    split = None if args.no_pin else split_cpus()
    if split is not None:
        os.sched_setaffinity(0, split[1])
    placed = (
        "server and harness unpinned"
        if split is None
        else f"server on CPU {sorted(split[0])}, harness on CPU {sorted(split[1])}"
    )
    server = start(
        [sys.executable, "-m", "glm_live", "serve", "--port", str(port), "--log-level", "warning"],
        port,
        cpus=None if split is None else split[0],
    )
    # Only now: a child forked after it would inherit the real-time policy; the server
    # runs at normal priority, as a server does.
    priority = "normal priority" if args.no_realtime else realtime()
    print(f"{placed}; harness at {priority}", flush=True)
    try:
        asyncio.run(replay(f"http://127.0.0.1:{port}", args.runs, args.speed))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
