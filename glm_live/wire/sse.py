"""Server-sent events as the WHATWG HTML standard defines them: a decoder and an encoder, no I/O.

Theory of operation
-------------------
The standard ("Server-sent events", section "Parsing an event stream") reads the stream as UTF-8
(whatever a ``charset`` parameter says), drops one leading byte order mark, splits it into lines
on CRLF, LF or CR, and interprets each line as a field. A blank line dispatches the event being
built. The end of the stream discards whatever event was still being built.

:class:`Decoder` does this incrementally, bytes in and events out:

- Line breaks are normalised to LF on the raw bytes of each piece, before anything is decoded.
  A CR that ends a piece may be the first half of a CRLF, so the decoder remembers it and drops
  an LF that starts the next piece.
- Only complete lines are decoded, all the complete lines of a piece in one call, with
  ``errors="replace"``. Line breaks are ASCII and never part of a multi-byte sequence, so this
  gives exactly the U+FFFD replacements that decoding the whole stream at once would give.
- The unfinished last line is kept in a :class:`bytearray` and only new bytes are searched for a
  line break, so one huge event fed in small pieces costs linear, not quadratic, time.
- Limits are enforced the same way however the stream is split: a line longer than
  ``max_line_size`` bytes (measured on the raw bytes, before decoding) or an event whose data
  grows past ``max_event_size`` characters is discarded (its ``id`` still counts), decoding goes
  on after it, and :meth:`Decoder.feed` raises :class:`~glm_live.errors.EventTooLarge` carrying
  every event the same piece completed (``.events``), so nothing else received is lost.
- Memory stays within about twice the larger limit, plus the piece being fed: a line that grew
  past 64 KiB is decoded on its own, straight from its bytes to its value (no copy of the whole
  line as text), and an event's data lines are joined every 1,024 lines, so a flood of short
  lines costs their characters rather than a Python object each.
- A ``retry`` value too large for 64 bits is ignored, as Chromium does.
- An event whose own block carried an ``id`` field comes out as an :class:`IdentifiedEvent` (a
  subclass, equal to the plain :class:`Event` with the same fields). A reconnecting client may
  drop such an event as a replay; an event that only inherited its ID never is one.

:func:`encode` writes events that this decoder (and every conformant one) reads back unchanged,
up to line-break normalisation inside ``data``.
"""

from __future__ import annotations

import re
from itertools import repeat as _repeat
from operator import itemgetter
from typing import NamedTuple

from ..errors import EventTooLarge

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_SIZE",
    "Decoder",
    "Event",
    "IdentifiedEvent",
    "encode",
]

#: Default ceiling for one line of the stream, in bytes.
DEFAULT_MAX_LINE_SIZE = 32 * 1024 * 1024
#: Default ceiling for the data of one event, in characters.
DEFAULT_MAX_EVENT_SIZE = 32 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_AFTER_DATA_PREFIX = itemgetter(slice(len("data: "), None))
#: A partial line this long (bytes) is decoded on its own when it ends, without extra copies.
_LONG_LINE = 64 * 1024
#: An event's data lines are joined into one string every this many lines.
_COMPACT_AT = 1024
#: The largest ``retry`` kept; a larger value is ignored, as Chromium ignores one that
#: overflows 64 bits.
_MAX_RETRY = 2**64 - 1
_FIELDS = frozenset(("data", "event", "id", "retry"))
_new_tuple = tuple.__new__


class Event(NamedTuple):
    """One dispatched server-sent event.

    A named tuple rather than a dataclass: the decoder makes one per event, and building a
    tuple is the cheapest immutable value Python has.

    Attributes:
        event: The event type; ``"message"`` when the stream gave none.
        data: The data lines joined with LF.
        id: The last event ID at the moment of dispatch (it persists across events).
    """

    event: str = "message"
    data: str = ""
    id: str = ""


class IdentifiedEvent(Event):
    """An :class:`Event` whose own block carried an ``id`` field.

    Equal to the plain :class:`Event` with the same fields; the type alone says that the ID was
    the server's word for this event, not one it inherited from an earlier event (or from the
    ``Last-Event-ID`` a reconnecting client sent). Only such an event can be recognised as a
    replay of one already delivered.
    """

    __slots__ = ()


class Decoder:
    """Incremental, conformant SSE decoder: :meth:`feed` bytes, get :class:`Event` values back.

    Args:
        last_event_id: The last event ID to start from; a reconnecting client passes the one the
            previous connection ended with, as the standard keeps it across connections.
        max_line_size: Largest line accepted, in bytes (raw, before decoding), line break
            excluded.
        max_event_size: Largest accumulated ``data`` of one event, in characters.

    Attributes:
        last_event_id: The event source's last event ID string, updated at each blank line.
        retry: The reconnection time the stream asked for, in milliseconds, or ``None``.
    """

    __slots__ = (
        "_at_start",
        "_chunks",
        "_data",
        "_discarding",
        "_event_size",
        "_event_type",
        "_head",
        "_id_buffer",
        "_own_id",
        "_partial",
        "_skip_lf",
        "_skip_line",
        "last_event_id",
        "max_event_size",
        "max_line_size",
        "retry",
    )

    def __init__(
        self,
        *,
        last_event_id: str = "",
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        if max_line_size < 1 or max_event_size < 1:
            msg = "max_line_size and max_event_size must be positive"
            raise ValueError(msg)
        self.last_event_id = last_event_id
        self.retry: int | None = None
        self.max_line_size = max_line_size
        self.max_event_size = max_event_size
        self._at_start = True  # still deciding whether the stream opens with a BOM
        self._head = b""  # the first bytes, held until the BOM question is settled
        self._skip_lf = False  # the previous piece ended with CR
        self._skip_line = False  # dropping the rest of an oversized line
        self._partial = bytearray()  # the unfinished last line
        self._id_buffer = last_event_id
        self._start_event()

    def _start_event(self) -> None:
        """Forget the event being built (after a dispatch, or to discard it)."""
        self._event_type = ""
        self._data: list[str] = []  # its data lines not yet joined
        self._chunks: list[str] = []  # its earlier data lines, joined _COMPACT_AT at a time
        self._event_size = 0
        self._own_id = False  # its block carried an id field
        self._discarding = False  # it outgrew a limit: dropping its data until the blank line

    def __repr__(self) -> str:
        return (
            f"Decoder(last_event_id={self.last_event_id!r}, retry={self.retry!r}, "
            f"pending={len(self._partial)} bytes)"
        )

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Take the next piece of the stream and return the events it completes.

        Raises:
            EventTooLarge: A line or an event passed its limit. The offending event is
                discarded (its ``id`` still counts) and decoding goes on after it; every event
                this piece completed, before or after it, is on the exception's ``events``.
        """
        if not data:
            return []
        data = bytes(data)
        if self._at_start:
            data = self._head + data
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._head = data
                return []
            self._at_start = False
            self._head = b""
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if not data:
            return []
        if b"\r" in data:
            # A CR at the end of the piece ends a line now; an LF opening the next piece is
            # then the second half of that CRLF and is dropped.
            self._skip_lf = data[-1] == 0x0D
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._skip_line:
            # The rest of a line that already overflowed: drop it up to its line break.
            newline = data.find(b"\n")
            if newline < 0:
                return []
            self._skip_line = False
            data = data[newline + 1 :]

        events: list[Event] = []
        error: EventTooLarge | None = None
        if len(self._partial) >= _LONG_LINE:
            end = data.find(b"\n")
            if end < 0:
                self._partial += data
                if len(self._partial) > self.max_line_size:
                    raise self._overflowing_line(len(self._partial), events)
                return events
            self._partial += memoryview(data)[:end]
            error = self._long_line(events)
            data = data[end + 1 :]
        if data:
            later = self._lines(data, events)
            error = error or later
        if error is not None:
            error.events = events
            raise error
        return events

    def close(self) -> list[Event]:
        """Mark the end of the stream.

        Per the standard, an event not yet terminated by a blank line is discarded, so this
        returns no events; it exists so that callers can treat every decoder alike, and it
        readies the decoder for a new stream (the last event ID and retry are kept).
        """
        self._partial = bytearray()
        self._start_event()
        self._id_buffer = self.last_event_id
        self._skip_lf = False
        self._skip_line = False
        self._at_start = True
        self._head = b""
        return []

    def _lines(self, data: bytes, events: list[Event]) -> EventTooLarge | None:
        """Add a piece (line breaks normalised) to the unfinished line; interpret what ends."""
        last = data.rfind(b"\n")
        partial = self._partial
        if last < 0:
            partial += data
            if len(partial) > self.max_line_size:
                return self._overflowing_line(len(partial), events)
            return None
        view = memoryview(data)  # slices of a view copy nothing
        if partial:
            partial += view[:last]
            raw: bytearray | memoryview = partial
        else:
            raw = view[:last]
        # Sizes are those of the raw lines: decoding may turn one bad byte into three.
        sizes = _line_sizes(raw) if len(raw) > self.max_line_size else None
        lines = str(raw, "utf-8", "replace").split("\n")
        self._partial = bytearray(view[last + 1 :])
        del raw, partial  # the line's bytes are not needed any more: let them go now
        error = self._interpret(lines, sizes, events)
        if len(self._partial) > self.max_line_size:
            overflow = self._overflowing_line(len(self._partial), events)
            error = error or overflow
        return error

    def _long_line(self, events: list[Event]) -> EventTooLarge | None:
        """Interpret the long line now complete in ``_partial``, holding it at most twice
        (as bytes, then as text); a comment or unknown field is skipped without decoding."""
        raw = self._partial
        self._partial = bytearray()
        if len(raw) > self.max_line_size:
            self._start_event()
            self._discarding = True
            return self._too_large("line", len(raw), events)
        # The field names that matter are at most 5 bytes: look no further for the colon.
        colon = raw.find(b":", 0, len("retry:"))
        end = colon if colon >= 0 else len(raw)  # no colon: the line is the name
        name = raw[:end].decode("ascii", "replace") if end <= len("retry") else ""
        if name not in _FIELDS:
            return None  # a comment, or a field nobody knows: its length is all that mattered
        if name == "event":
            # The old type goes before the new one is decoded: this line replaces it, or
            # (if the stream ends first) the whole event is discarded anyway.
            self._event_type = ""
        line = str(raw, "utf-8", "replace")
        del raw
        return self._interpret_lines([line], events)

    def _interpret(
        self, lines: list[str], sizes: list[int] | None, events: list[Event]
    ) -> EventTooLarge | None:
        if sizes is not None:
            return self._interpret_sized(lines, sizes, events)
        start = 0
        error = None
        if self._data or self._chunks or self._event_type or self._discarding or self._own_id:
            # Finish the event the previous piece left open, the general way.
            start = lines.index("") + 1 if "" in lines else len(lines)
            error = self._interpret_lines(lines[:start], events)
        start += self._interpret_simple(lines, start, events)
        if start < len(lines):
            error = self._interpret_lines(lines[start:], events) or error
        return error

    def _interpret_sized(
        self, lines: list[str], sizes: list[int], events: list[Event]
    ) -> EventTooLarge | None:
        """Interpret ``lines`` whose raw sizes in bytes are ``sizes``: a line past
        ``max_line_size`` discards its event (its ``id`` is not read); the runs between such
        lines go through :meth:`_interpret_lines`."""
        error = None
        start = 0
        for i, size in enumerate(sizes):
            if size > self.max_line_size:
                before = self._interpret_lines(lines[start:i], events)
                error = error or before or self._too_large("line", size, events)
                self._start_event()
                self._discarding = True
                start = i + 1
        after = self._interpret_lines(lines[start:], events)
        return error or after

    def _interpret_simple(self, lines: list[str], start: int, events: list[Event]) -> int:
        """Decode a run of the commonest events in bulk; return how many lines it took.

        LLM streams are nothing but one-line ``data: ...`` events, each followed by a blank line.
        When every event from ``start`` on has that shape, the per-line state machine is not
        needed: the data is each line minus its prefix, and list operations running in C check
        the shape. Anything else (0 lines taken) goes through :meth:`_interpret_lines`.
        """
        stop = start + (len(lines) - start) // 2 * 2
        if stop == start:
            return 0
        heads = lines[start:stop:2]
        if (
            any(lines[start + 1 : stop : 2])
            or not all(map(str.startswith, heads, _repeat("data: ")))
            or max(map(len, heads)) - 5 > self.max_event_size
        ):
            return 0
        id_buffer = self._id_buffer
        # Built entirely by C loops: (type, data, id) tuples from zip, made Events by map.
        fields = zip(_repeat("message"), map(_AFTER_DATA_PREFIX, heads), _repeat(id_buffer))
        events += map(tuple.__new__, _repeat(Event), fields)
        self.last_event_id = id_buffer
        return stop - start

    def _interpret_lines(self, lines: list[str], events: list[Event]) -> EventTooLarge | None:
        """The standard's line-by-line interpretation, for everything not in bulk.

        The event being built lives in locals during the loop (this is the decoder's
        second-hottest code) and goes back to the attributes at the end.
        """
        error: EventTooLarge | None = None
        max_event = self.max_event_size
        data = self._data
        chunks = self._chunks
        size = self._event_size
        event_type = self._event_type
        id_buffer = self._id_buffer
        own_id = self._own_id
        discarding = self._discarding
        for line in lines:
            if not line:
                # A blank line: dispatch. The last event ID is updated even when no event goes
                # out (a block with only an id field still moves it).
                self.last_event_id = id_buffer
                if data or chunks:
                    if chunks:
                        if data:
                            chunks.append("\n".join(data))
                        text = "\n".join(chunks)
                        chunks = []
                    else:
                        text = "\n".join(data)
                    data = []
                    # tuple.__new__ skips the named tuple's Python-level __new__.
                    fields = (event_type or "message", text, id_buffer)
                    events.append(_new_tuple(IdentifiedEvent if own_id else Event, fields))
                size = 0
                event_type = ""
                own_id = discarding = False
                continue
            if line.startswith("data:"):
                # The hot path: LLM streams are almost nothing but data lines.
                value = line[6:] if line.startswith("data: ") else line[5:]
            # The other fields by their prefix, like data: one copy of the value, however
            # long, and no split of the line.
            elif line.startswith("id:"):
                value = line[4:] if line.startswith("id: ") else line[3:]
                if "\0" not in value:  # the standard ignores an ID containing NUL
                    id_buffer, own_id = value, True
                continue
            elif line.startswith("event:"):
                event_type = line[7:] if line.startswith("event: ") else line[6:]
                continue
            elif line.startswith("retry:"):
                retry = _retry_value(line[7:] if line.startswith("retry: ") else line[6:])
                if retry is not None:
                    self.retry = retry
                continue
            # A field name alone is that field with an empty value ("retry" then is ignored).
            elif line == "data":
                value = ""
            elif line == "event":
                event_type = ""
                continue
            elif line == "id":
                id_buffer, own_id = "", True
                continue
            else:
                continue  # a comment, or a field nobody knows
            if discarding:
                continue
            size += len(value) + 1
            if size > max_event:
                error = error or self._too_large("event", size, events)
                data, chunks, size, discarding = [], [], 0, True
                continue
            data.append(value)
            if len(data) >= _COMPACT_AT:
                # One string per thousand lines instead of an object per line.
                chunks.append("\n".join(data))
                data = []
        self._data = data
        self._chunks = chunks
        self._event_size = size
        self._event_type = event_type
        self._id_buffer = id_buffer
        self._own_id = own_id
        self._discarding = discarding
        return error

    def _overflowing_line(self, size: int, events: list[Event]) -> EventTooLarge:
        # Drop what we hold of the line, skip the rest of it as it arrives, and drop the event
        # it belongs to: dispatching that event without one of its lines would be a lie.
        self._partial = bytearray()
        self._skip_line = True
        self._start_event()
        self._discarding = True
        return self._too_large("line", size, events)

    def _too_large(self, what: str, size: int, events: list[Event]) -> EventTooLarge:
        limit = self.max_line_size if what == "line" else self.max_event_size
        unit = "bytes" if what == "line" else "characters"
        option = "max_line_size" if what == "line" else "max_event_size"
        return EventTooLarge(
            f"SSE {what} of at least {size} {unit} exceeds {option}={limit}; that event was "
            f"discarded and decoding went on after it. If the server really sends {what}s "
            f"this large, raise {option}.",
            kind=what,
            size=size,
            limit=limit,
            events=events,
        )


def _retry_value(value: str) -> int | None:
    """A ``retry`` field's value in milliseconds, or ``None`` when it is to be ignored: not
    only ASCII digits, or too large for 64 bits (as Chromium). Checked by length first:
    ``int()`` of thousands of digits is slow, then refused."""
    if not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0") or "0"
    if len(digits) > 20:
        return None
    number = int(digits)
    return number if number <= _MAX_RETRY else None


def _line_sizes(raw: bytearray | memoryview) -> list[int]:
    """The size in bytes of each LF-separated line of ``raw``."""
    return [len(line) for line in bytes(raw).split(b"\n")]


def encode(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> bytes:
    """Encode one event (or a comment, or a retry hint) for the wire.

    Every data line is written as ``data: <line>``, so a value that starts with a space survives
    the one space that readers strip. CR, LF and CRLF in ``data`` all become line breaks, which
    a reader returns as LF.

    Args:
        data: The event's data; ``None`` writes no data field (a reader then dispatches nothing,
            but still records ``id``).
        event: The event type; omitted when ``None`` or empty.
        id: The event ID; ``""`` resets the reader's last event ID.
        retry: The reconnection time in milliseconds.
        comment: A comment, e.g. a keep-alive; each of its lines becomes a ``:`` line.

    Raises:
        ValueError: A field that cannot be represented: a line break in ``event`` or ``id``,
            NUL in ``id`` (readers ignore such IDs), or a negative ``retry``.
    """
    lines: list[str] = []
    if comment is not None:
        lines.extend(":" + part for part in _LINE_BREAK.split(comment))
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            msg = f"retry must be a non-negative number of milliseconds, got {retry!r}"
            raise ValueError(msg)
        lines.append(f"retry: {retry}")
    if event:
        if _LINE_BREAK.search(event):
            msg = f"an event type cannot contain a line break: {event!r}"
            raise ValueError(msg)
        lines.append("event: " + event)
    if id is not None:
        if _LINE_BREAK.search(id) or "\0" in id:
            msg = f"an event id cannot contain a line break or NUL: {id!r}"
            raise ValueError(msg)
        lines.append("id: " + id)
    if data is not None:
        lines.extend("data: " + part for part in _LINE_BREAK.split(data))
    if not lines:
        msg = "nothing to encode: give data, event, id, retry or comment"
        raise ValueError(msg)
    return ("\n".join(lines) + "\n\n").encode()
