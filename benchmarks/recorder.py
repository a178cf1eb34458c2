"""Recording cost: nanoseconds and bytes per recorded event, at one million events.

Baseline in the same run: appending one small dict per event to a list, the obvious way to
keep events. Target (issue 6): <= 1 us and <= 64 bytes per event.

Run: ``make bench`` or ``python benchmarks/recorder.py [--events N]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glm_live.measure.recorder import Recorder


def record(n: int) -> tuple[float, int]:
    recorder = Recorder()
    request = recorder.begin("bench")
    event = recorder.event
    now = time.perf_counter_ns()
    tracemalloc.start()
    start = time.perf_counter_ns()
    for i in range(n):
        event(request, i, now + i, 230, "content", 4)
    elapsed = time.perf_counter_ns() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(recorder) == n
    return elapsed / n, peak


def dicts(n: int) -> tuple[float, int]:
    events: list[dict[str, object]] = []
    append = events.append
    now = time.perf_counter_ns()
    tracemalloc.start()
    start = time.perf_counter_ns()
    for i in range(n):
        append(
            {
                "request": 0,
                "index": i,
                "arrival_ns": now + i,
                "bytes": 230,
                "kind": "content",
                "chars": 4,
            }
        )
    elapsed = time.perf_counter_ns() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed / n, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.events
    ours = [record(n) for _ in range(args.repeat)]
    base = [dicts(n) for _ in range(args.repeat)]
    ns, memory = min(r[0] for r in ours), min(r[1] for r in ours)
    base_ns, base_memory = min(r[0] for r in base), min(r[1] for r in base)
    # tracemalloc slows both loops alike; time without it too, for the absolute figure.
    recorder = Recorder()
    event = recorder.event
    start = time.perf_counter_ns()
    for i in range(n):
        event(0, i, i, 230, "content", 4)
    plain_ns = (time.perf_counter_ns() - start) / n
    print(f"{n:,} events, best of {args.repeat}")
    print(
        f"  Recorder.event     {plain_ns:6.0f} ns/event (untraced), {memory / n:6.1f} bytes/event "
        f"(columns: {recorder.nbytes / n:.1f})"
    )
    print(
        f"  dict per event     {base_ns:6.0f} ns/event (traced),   {base_memory / n:6.1f} "
        "bytes/event"
    )
    print(
        f"  traced Recorder    {ns:6.0f} ns/event; vs dicts: {base_ns / ns:.1f}x faster, "
        f"{base_memory / memory:.1f}x smaller"
    )
    print("targets: <= 1000 ns and <= 64 bytes per event")


if __name__ == "__main__":
    main()
