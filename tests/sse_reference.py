"""A reference SSE parser written from the standard's text, and the properties the fuzzers check.

The reference follows WHATWG HTML, "Server-sent events", section "Parsing an event stream" and
"Interpreting an event stream", step by step and for clarity only: it decodes the whole stream
at once, splits it into lines, and interprets one line at a time. The real decoder
(:mod:`glm_live.wire.sse`) works incrementally on raw bytes, in bulk where it can; the fuzzers
(``tests/test_sse_fuzz.py`` in ``make test``, ``tests/fuzz_sse.py`` in ``make fuzz``) check
that both agree on every stream, however it is split.

Two rules are glm_live's, not the standard's, and are marked below: the limits (a line longer
than ``max_line_size`` raw bytes, or an event whose data passes ``max_event_size`` characters,
is discarded, its ``id`` still counting), and ``retry`` values beyond 64 bits being ignored (as
Chromium does).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from glm_live.errors import EventTooLarge
from glm_live.wire import sse
from glm_live.wire.sse import Decoder, Event, IdentifiedEvent

_LINE = re.compile(rb"\r\n|\r|\n")


@dataclass
class Outcome:
    """What a parser made of a whole stream."""

    events: list[tuple[str, str, str, bool]]  # type, data, id, and whether the id was its own
    last_event_id: str
    retry: int | None
    errors: list[str] = field(default_factory=list, compare=False)


def reference(
    stream: bytes,
    *,
    last_event_id: str = "",
    max_line_size: int | None = None,
    max_event_size: int | None = None,
) -> Outcome:
    """Parse a complete stream the way the standard's text describes."""
    # "The stream must then be parsed by reading everything line by line": lines end with CRLF,
    # a lone LF or a lone CR; whatever follows the last line break is an incomplete line, and
    # "once the end of the file is reached, any pending data must be discarded".
    if stream.startswith(b"\xef\xbb\xbf"):  # UTF-8 decode drops one leading BOM
        stream = stream[3:]
    raw_lines = _LINE.split(stream)[:-1]

    events: list[tuple[str, str, str, bool]] = []
    data = ""
    event_type = ""
    id_buffer = last_event_id
    own_id = False
    retry: int | None = None
    discarding = False  # glm_live: the event outgrew a limit
    for raw in raw_lines:
        line = raw.decode("utf-8", "replace")
        if max_line_size is not None and len(raw) > max_line_size:  # glm_live's limit
            data, discarding = "", True
            continue
        # "If the line is empty (a blank line): dispatch the event."
        if line == "":
            last_event_id = id_buffer
            if data != "":
                if data.endswith("\n"):
                    data = data[:-1]
                events.append((event_type or "message", data, last_event_id, own_id))
            data, event_type, own_id, discarding = "", "", False, False
            continue
        # "If the line starts with a U+003A COLON character (:): ignore the line."
        if line.startswith(":"):
            continue
        # "If the line contains a U+003A COLON character: collect the characters before it
        # as the field name and after it as the value; if the value starts with a U+0020
        # SPACE, remove it." Otherwise the whole line is the name and the value is empty.
        if ":" in line:
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type = value
        elif name == "data":
            if discarding:
                continue
            data += value + "\n"
            if max_event_size is not None and len(data) > max_event_size:  # glm_live's limit
                data, discarding = "", True
        elif name == "id":
            if "\0" not in value:
                id_buffer, own_id = value, True
        elif name == "retry" and value != "" and all("0" <= c <= "9" for c in value):
            digits = value.lstrip("0") or "0"
            if len(digits) <= 20 and int(digits) < 2**64:  # glm_live: as Chromium
                retry = int(digits)
        # any other field is ignored
    return Outcome(events, last_event_id, retry)


def decode(
    stream: bytes,
    cuts: list[int],
    *,
    max_line_size: int | None = None,
    max_event_size: int | None = None,
    check_bounds: bool = False,
) -> Outcome:
    """Feed ``stream`` to a :class:`Decoder`, cut at the offsets ``cuts`` (any order).

    With ``check_bounds``, also check after every piece that the decoder holds no more than
    its limits: the unfinished line within ``max_line_size`` and the event's data within
    ``max_event_size``.
    """
    limits = {}
    if max_line_size is not None:
        limits["max_line_size"] = max_line_size
    if max_event_size is not None:
        limits["max_event_size"] = max_event_size
    decoder = Decoder(**limits)
    events: list[Event] = []
    errors: list[str] = []
    points = sorted({0, len(stream), *(c for c in cuts if 0 < c < len(stream))})
    for start, end in itertools.pairwise(points):
        try:
            events += decoder.feed(stream[start:end])
        except EventTooLarge as exc:
            events += exc.events
            errors.append(exc.kind)
        if check_bounds:
            assert len(decoder._partial) <= decoder.max_line_size
            assert decoder._event_size <= decoder.max_event_size
    decoder.close()
    return Outcome(
        [(e.event, e.data, e.id, isinstance(e, IdentifiedEvent)) for e in events],
        decoder.last_event_id,
        decoder.retry,
        errors,
    )


@contextlib.contextmanager
def _long_lines_from(size: int) -> Iterator[None]:
    saved = sse._LONG_LINE
    sse._LONG_LINE = size
    try:
        yield
    finally:
        sse._LONG_LINE = saved


def check(
    stream: bytes,
    cuts: list[int],
    *,
    max_line_size: int | None = None,
    max_event_size: int | None = None,
) -> None:
    """The properties: the decoder agrees with the reference, fed whole and fed in pieces,
    and never holds more than its limits between pieces."""
    expected = reference(stream, max_line_size=max_line_size, max_event_size=max_event_size)
    whole = decode(stream, [], max_line_size=max_line_size, max_event_size=max_event_size)
    assert whole == expected, f"fed whole: {whole} != reference {expected} for {stream!r}"
    pieces = decode(
        stream, cuts, max_line_size=max_line_size, max_event_size=max_event_size, check_bounds=True
    )
    assert pieces == expected, f"cut at {cuts}: {pieces} != reference {expected} for {stream!r}"
    # Lines that outgrow a piece take another path once they pass 64 KiB; make it 4 bytes so
    # that short generated streams exercise it too.
    with _long_lines_from(4):
        long = decode(stream, cuts, max_line_size=max_line_size, max_event_size=max_event_size)
    assert long == expected, f"long-line path, cut at {cuts}: {long} != {expected} for {stream!r}"
    # An error is raised whenever something was discarded, however the stream was cut.
    assert bool(pieces.errors) == bool(whole.errors), (stream, cuts, pieces.errors, whole.errors)


#: Pieces that streams are built from: every field name, separator and line break, the BOM,
#: NUL, bytes that are not UTF-8, digits and plain text.
ATOMS = [
    b"data",
    b"data:",
    b"data: ",
    b"event:",
    b"event: ",
    b"id:",
    b"id: ",
    b"retry:",
    b"retry: ",
    b":",
    b": ",
    b" ",
    b"\n",
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\x0b",
    b"\xff",
    b"\xe2\x80",
    b"\xa6",
    "…".encode(),
    "😀".encode(),
    b"0",
    b"7",
    b"12345",
    b"x",
    b"hello",
    b"\t",
]
