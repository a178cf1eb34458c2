"""``make fuzz``: the SSE decoder against the standard's reference, for minutes.

With atheris installed (``make fuzz`` installs it where a wheel exists), coverage-guided
libFuzzer drives it; otherwise hypothesis generates streams until the time is up. Each input
becomes a stream, the points to cut it at, and a pair of limits (tiny ones half of the time),
and :func:`tests.sse_reference.check` must hold: the same events, last event ID and retry as
the reference, fed whole or in pieces, and never more held than the limits between pieces.

Run: ``make fuzz`` (10 minutes) or ``python -m tests.fuzz_sse --seconds 60``.
"""

from __future__ import annotations

import argparse
import sys
import time


def _run_atheris(seconds: int) -> None:
    import atheris

    with atheris.instrument_imports():
        from glm_live.wire import sse  # noqa: F401  (instrumented for coverage)
        from tests.sse_reference import check

    def one_input(data: bytes) -> None:
        provider = atheris.FuzzedDataProvider(data)
        small = provider.ConsumeBool()
        line = provider.ConsumeIntInRange(1, 32) if small else None
        event = provider.ConsumeIntInRange(1, 32) if small else None
        cuts = [provider.ConsumeIntInRange(0, 512) for _ in range(provider.ConsumeIntInRange(0, 8))]
        stream = provider.ConsumeBytes(provider.remaining_bytes())
        check(stream, cuts, max_line_size=line, max_event_size=event)

    atheris.Setup([sys.argv[0], f"-max_total_time={seconds}", "-print_final_stats=1"], one_input)
    atheris.Fuzz()


def _run_hypothesis(seconds: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.sse_reference import ATOMS, check

    streams = st.one_of(
        st.lists(st.sampled_from(ATOMS), max_size=200).map(b"".join),
        st.binary(max_size=1000),
    )
    limits = st.one_of(st.none(), st.integers(min_value=1, max_value=32))
    runs = 0

    @settings(
        max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(
        stream=streams,
        cuts=st.lists(st.integers(0, 1200), max_size=16),
        line=limits,
        event=limits,
    )
    def one_input(stream: bytes, cuts: list[int], line: int | None, event: int | None) -> None:
        nonlocal runs
        runs += 1
        check(stream, cuts, max_line_size=line, max_event_size=event)

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        one_input()  # a fresh random batch each time; a failure raises, shrunk
    took = time.monotonic() - started
    print(f"hypothesis: {runs:,} inputs in {took:.0f} s ({runs / took:,.0f}/s), no failure")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    args = parser.parse_args()
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "hypothesis"
        else:
            engine = "atheris"
    print(f"fuzzing the SSE decoder with {engine} for {args.seconds} s")
    if engine == "atheris":
        _run_atheris(args.seconds)
    else:
        _run_hypothesis(args.seconds)


if __name__ == "__main__":
    main()
