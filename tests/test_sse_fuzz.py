"""The SSE decoder against a reference written from the standard, on generated streams.

A few seconds of what ``make fuzz`` does for minutes (``tests/fuzz_sse.py``): streams are
built from the atoms that matter (field names, colons, spaces, every line break, the BOM, NUL,
bytes that are not UTF-8, digits) or drawn as raw bytes, cut at random points, and decoded
with default and with tiny limits. Every stream must give the reference's events, last event
ID and retry, however it is cut, and the decoder must never hold more than its limits.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.sse_reference import ATOMS, check

streams = st.one_of(
    st.lists(st.sampled_from(ATOMS), max_size=60).map(b"".join),
    st.binary(max_size=200),
)
cuts = st.lists(st.integers(min_value=0, max_value=400), max_size=12)
fuzz = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(stream=streams, cuts=cuts)
# Found by atheris: a line that is only a field name ("data") taking the long-line path.
@example(stream=b"''\x00ii\ndata\n$\xb2@\n\n\nR$id\n$\n\n\n\ndata\ni\ndta:\n", cuts=[10])
def test_agrees_with_the_reference_however_cut(stream: bytes, cuts: list[int]) -> None:
    check(stream, cuts)


@fuzz
@given(
    stream=streams,
    cuts=cuts,
    max_line_size=st.integers(min_value=1, max_value=24),
    max_event_size=st.integers(min_value=1, max_value=24),
)
def test_limits_hold_the_same_however_cut(
    stream: bytes, cuts: list[int], max_line_size: int, max_event_size: int
) -> None:
    check(stream, cuts, max_line_size=max_line_size, max_event_size=max_event_size)
