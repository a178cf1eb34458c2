"""Peak memory of the SSE decoder on pathological streams, against its configured limits.

Each case runs in a fresh process (so that one case's freed memory cannot hide the next one's
peak) and feeds the decoder 64 KiB pieces at the default limits (32 MiB per line, 32 Mi
characters per event). The figure is the growth of the process's peak RSS over its size just
before feeding; the target is at most twice the limit the case pushes against, plus 16 MiB
(the interpreter's own allocations and the piece being fed).

- ``short data lines``: ``data: ab`` lines and no blank line, until the event limit trips
  (772 MiB before the fix: a Python string per line);
- ``three 30 MB event lines``: ``event:`` lines just under the line limit (209 MiB before);
- ``one 30 MB data line``: an event of one data line just under the line limit, dispatched;
- ``a 100 MB line``: a line three times the line limit, dropped.

Run: ``make bench`` or ``python benchmarks/sse_memory.py``.
"""

from __future__ import annotations

import multiprocessing
import resource
from collections.abc import Iterator

from glm_live.errors import EventTooLarge
from glm_live.wire.sse import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_SIZE, Decoder

PIECE = 64 * 1024
MIB = 1024 * 1024
SLACK = 16 * MIB


def _repeat(unit: bytes, total: int) -> Iterator[bytes]:
    """``total`` bytes of ``unit`` repeated, in pieces of about PIECE (never all at once)."""
    piece = unit * (PIECE // len(unit))
    sent = 0
    while sent < total:
        yield piece
        sent += len(piece)


def _short_data_lines() -> Iterator[bytes]:
    yield from _repeat(b"data: ab\n", 3 * DEFAULT_MAX_EVENT_SIZE + PIECE)


def _event_lines() -> Iterator[bytes]:
    for _ in range(3):
        yield b"event: "
        yield from _repeat(b"y" * 64, 30_000_000)
        yield b"\n"
    yield b"\n"


def _one_data_line() -> Iterator[bytes]:
    yield b"data: "
    yield from _repeat(b"z" * 64, 30_000_000)
    yield b"\n\n"


def _huge_line() -> Iterator[bytes]:
    yield b"data: "
    yield from _repeat(b"w" * 64, 100_000_000)
    yield b"\n\ndata: after\n\n"


CASES = {
    "short data lines": (_short_data_lines, DEFAULT_MAX_EVENT_SIZE),
    "three 30 MB event lines": (_event_lines, DEFAULT_MAX_LINE_SIZE),
    "one 30 MB data line": (_one_data_line, DEFAULT_MAX_LINE_SIZE),
    "a 100 MB line": (_huge_line, DEFAULT_MAX_LINE_SIZE),
}


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _measure(name: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    make, _ = CASES[name]
    pieces = make()
    decoder = Decoder()
    before = _peak_rss()
    events = errors = 0
    for piece in pieces:
        try:
            events += len(decoder.feed(piece))
        except EventTooLarge as exc:
            events += len(exc.events)
            errors += 1
    out.put((_peak_rss() - before, events, errors))


def main() -> None:
    context = multiprocessing.get_context("spawn")
    failed = False
    print("SSE decoder peak memory, 64 KiB pieces, default limits (target <= 2x limit + 16 MiB)")
    for name, (_, limit) in CASES.items():
        queue = context.Queue()
        process = context.Process(target=_measure, args=(name, queue))
        process.start()
        grown, events, errors = queue.get(timeout=600)
        process.join()
        ratio = grown / limit
        ok = grown <= 2 * limit + SLACK
        failed |= not ok
        print(
            f"  {name:26} +{grown / MIB:7.1f} MiB = {ratio:4.2f}x its {limit // MIB} MiB limit "
            f"({events} events, {errors} refused)  {'PASS' if ok else 'FAIL'}"
        )
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
