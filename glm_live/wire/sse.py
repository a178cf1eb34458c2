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
- Memory is bounded: a line longer than ``max_line_size`` bytes, or an event whose data grows
  past ``max_event_size`` characters, is discarded (its ``id`` still counts), decoding goes on
  after it, and :meth:`Decoder.feed` raises :class:`~glm_live.errors.EventTooLarge` carrying every
  event the same piece completed (``.events``), so nothing else received is lost.

:func:`encode` writes events that this decoder (and every conformant one) reads back unchanged,
up to line-break normalisation inside ``data``.
"""

from __future__ import annotations

import re
from itertools import repeat as _repeat
from operator import itemgetter
from typing import NamedTuple

from ..errors import EventTooLarge

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "DEFAULT_MAX_LINE_SIZE", "Decoder", "Event", "encode"]

#: Default ceiling for one line of the stream, in bytes.
DEFAULT_MAX_LINE_SIZE = 32 * 1024 * 1024
#: Default ceiling for the data of one event, in characters.
DEFAULT_MAX_EVENT_SIZE = 32 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_AFTER_DATA_PREFIX = itemgetter(slice(len("data: "), None))


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


class Decoder:
    """Incremental, conformant SSE decoder: :meth:`feed` bytes, get :class:`Event` values back.

    Args:
        last_event_id: The last event ID to start from; a reconnecting client passes the one the
            previous connection ended with, as the standard keeps it across connections.
        max_line_size: Largest line accepted, in bytes, line break excluded.
        max_event_size: Largest accumulated ``data`` of one event, in characters.

    Attributes:
        last_event_id: The event source's last event ID string, updated at each blank line.
        retry: The reconnection time the stream asked for, in milliseconds, or ``None``.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_discarding",
        "_event_size",
        "_event_type",
        "_head",
        "_id_buffer",
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
        self._discarding = False  # dropping the data of an oversized event
        self._partial = bytearray()  # the unfinished last line
        self._id_buffer = last_event_id
        self._event_type = ""
        self._data: list[str] = []
        self._event_size = 0

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

        last = data.rfind(b"\n")
        partial = self._partial
        if last < 0:
            partial += data
            if len(partial) > self.max_line_size:
                raise self._overflowing_line(len(partial), [])
            return []
        view = memoryview(data)  # slices of a view copy nothing
        if partial:
            partial += view[:last]
            raw: bytearray | memoryview = partial
        else:
            raw = view[:last]
        events, error = self._interpret(
            str(raw, "utf-8", "replace").split("\n"), len(raw) > self.max_line_size
        )
        self._partial = bytearray(view[last + 1 :])
        if error is None and len(self._partial) > self.max_line_size:
            error = self._overflowing_line(len(self._partial), events)
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
        self._data = []
        self._event_size = 0
        self._event_type = ""
        self._id_buffer = self.last_event_id
        self._skip_lf = False
        self._skip_line = False
        self._discarding = False
        self._at_start = True
        self._head = b""
        return []

    def _interpret(
        self, lines: list[str], check_lines: bool
    ) -> tuple[list[Event], EventTooLarge | None]:
        events: list[Event] = []
        if check_lines:
            return events, self._interpret_lines(lines, events, check_lines)
        start = 0
        error = None
        if self._data or self._event_type or self._discarding:
            # Finish the event the previous piece left open, the general way.
            start = lines.index("") + 1 if "" in lines else len(lines)
            error = self._interpret_lines(lines[:start], events, False)
        start += self._interpret_simple(lines, start, events)
        if start < len(lines):
            error = self._interpret_lines(lines[start:], events, False) or error
        return events, error

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

    def _interpret_lines(
        self, lines: list[str], events: list[Event], check_lines: bool
    ) -> EventTooLarge | None:
        """The standard's line-by-line interpretation, for everything not in bulk."""
        error: EventTooLarge | None = None
        data = self._data
        size = self._event_size
        event_type = self._event_type
        id_buffer = self._id_buffer
        discarding = self._discarding
        max_event = self.max_event_size
        for line in lines:
            if not line:
                # A blank line: dispatch. The last event ID is updated even when no event goes
                # out (a block with only an id field still moves it).
                self.last_event_id = id_buffer
                if data:
                    events.append(Event(event_type or "message", "\n".join(data), id_buffer))
                    data = []
                    size = 0
                event_type = ""
                discarding = False
                continue
            if check_lines and len(line.encode()) > self.max_line_size:
                if error is None:
                    error = self._too_large("line", len(line.encode()), events)
                data, size, discarding = [], 0, True
                continue
            if line.startswith("data:"):
                # The hot path: LLM streams are almost nothing but data lines.
                value = line[6:] if line.startswith("data: ") else line[5:]
            else:
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "event":
                    event_type = value
                    continue
                if name == "id":
                    if "\0" not in value:
                        id_buffer = value
                    continue
                if name == "retry":
                    if value.isascii() and value.isdigit():
                        self.retry = int(value)
                    continue
                if name != "data":
                    continue  # a comment (empty name) or an unknown field: ignored
            if discarding:
                continue
            size += len(value) + 1
            if size > max_event:
                if error is None:
                    error = self._too_large("event", size, events)
                data, size, discarding = [], 0, True
                continue
            data.append(value)
        self._data = data
        self._event_size = size
        self._event_type = event_type
        self._id_buffer = id_buffer
        self._discarding = discarding
        return error

    def _overflowing_line(self, size: int, events: list[Event]) -> EventTooLarge:
        # Drop what we hold of the line, skip the rest of it as it arrives, and drop the event
        # it belongs to: dispatching that event without one of its lines would be a lie.
        self._partial = bytearray()
        self._skip_line = True
        self._data, self._event_size, self._discarding = [], 0, True
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
