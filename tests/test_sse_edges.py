"""The SSE decoder and client at the edges a browser's EventSource handles: each test is one
defect found by trying streams from the WHATWG standard and the web-platform-tests against a
byte-exact server on loopback (``tests/byteserver.py``)."""

from __future__ import annotations

import gc
import logging
import random
import tracemalloc
from collections.abc import Callable

import pytest

from glm_live import (
    Backoff,
    ContentTypeError,
    Event,
    EventSource,
    EventTooLarge,
    HTTPStatusError,
    UnsendableRequest,
)
from glm_live.wire.sse import Decoder, IdentifiedEvent
from tests.byteserver import ByteServer, Reply, sse
from tests.test_stream import fast, take


def sent_last_event_id(server: ByteServer, request: int) -> bytes | None:
    """The Last-Event-ID header of a request as the bytes on the wire (the server reads
    headers as Latin-1, which maps bytes to characters one to one)."""
    value = server.requests[request].headers.get("last-event-id")
    return None if value is None else value.encode("latin-1")


# -- 1. A non-ASCII id --------------------------------------------------------------------------


async def test_a_non_ascii_id_is_sent_back_as_utf8(server: ByteServer) -> None:
    # WPT eventsource/format-field-id: "id: …". The reconnect raised UnicodeEncodeError.
    server.play(sse("id: …\ndata: a\n\n", end="drop"), sse("data: b\n\n", end="hang"))
    async with EventSource(server.url, backoff=fast()) as source:
        events = await take(source, 2)
    assert [(e.data, e.id) for e in events] == [("a", "…"), ("b", "…")]
    assert sent_last_event_id(server, 1) == "…".encode()


# -- 2. Ids HTTP cannot carry as they are ---------------------------------------------------------


async def test_an_id_with_outer_spaces_reconnects_without_them(server: ByteServer) -> None:
    # h11 refused " lead" as a header value; the client took that for a network error and
    # retried forever without a request reaching the server.
    server.play(sse("id:  lead \ndata: a\n\n", end="drop"), sse("data: b\n\n", end="hang"))
    async with EventSource(server.url, backoff=fast()) as source:
        events = await take(source, 2)
        assert source.last_event_id == " lead "  # the stream's ID, unchanged
    assert [e.data for e in events] == ["a", "b"]
    assert server.connections == 2
    # HTTP drops outer whitespace from a field's value: the server would read "lead" anyway.
    assert sent_last_event_id(server, 1) == b"lead"


async def test_an_id_with_a_control_character_resumes_from_the_last_sendable_one(
    server: ByteServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.play(
        sse("id: 1\ndata: a\n\nid: x\x0by\ndata: b\n\n", end="drop"),
        # The server replays from id 1: b is already delivered, c is new.
        sse("id: x\x0by\ndata: b\n\nid: 3\ndata: c\n\n", end="hang"),
    )
    with caplog.at_level(logging.WARNING, logger="glm_live.stream"):
        async with EventSource(server.url, backoff=fast()) as source:
            events = await take(source, 3)
            assert source.duplicates_dropped == 1
    assert [e.data for e in events] == ["a", "b", "c"]
    assert sent_last_event_id(server, 1) == b"1"
    assert "cannot be sent as Last-Event-ID" in caplog.text


async def test_an_unsendable_header_fails_at_once_without_showing_it(server: ByteServer) -> None:
    server.play(sse("data: a\n\n"))
    secret = "sk-very-secret"
    source = EventSource(
        server.url, headers={"Authorization": f"Bearer {secret}\x0b"}, backoff=fast()
    )
    with pytest.raises(UnsendableRequest) as info:
        async with source:
            await take(source, 1)
    assert source.attempts == 1
    assert secret not in str(info.value)
    assert secret not in repr(info.value)
    assert "header" in str(info.value)


async def test_a_non_ascii_header_fails_at_once_naming_it(server: ByteServer) -> None:
    source = EventSource(server.url, headers={"X-Note": "café"}, backoff=fast())
    with pytest.raises(UnsendableRequest, match="X-Note"):
        async with source:
            await take(source, 1)
    assert server.connections == 0


def test_an_unsendable_last_event_id_is_refused_when_given() -> None:
    with pytest.raises(UnsendableRequest, match="last_event_id"):
        EventSource("http://127.0.0.1:9/", last_event_id="a\nb")


# -- 3. Events without an id of their own after a reconnect ---------------------------------------


async def test_events_without_their_own_id_are_never_taken_for_replays(
    server: ByteServer,
) -> None:
    # They inherit id 1 from the Last-Event-ID; they were dropped as replays of it.
    server.play(
        sse("id: 1\ndata: a\n\n", end="drop"),
        sse("data: b\n\ndata: c\n\nid: 2\ndata: d\n\n", end="hang"),
    )
    async with EventSource(server.url, backoff=fast()) as source:
        events = await take(source, 4)
        assert source.duplicates_dropped == 0
    assert [e.data for e in events] == ["a", "b", "c", "d"]


async def test_a_replay_is_dropped_but_what_follows_it_without_an_id_is_not(
    server: ByteServer,
) -> None:
    server.play(
        sse("id: 1\ndata: a\n\n", end="drop"),
        sse("id: 1\ndata: a\n\ndata: x\n\nid: 2\ndata: y\n\n", end="hang"),
    )
    async with EventSource(server.url, backoff=fast()) as source:
        events = await take(source, 3)
        assert source.duplicates_dropped == 1
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("x", "1"), ("y", "2")]


@pytest.mark.parametrize("piece", [None, 1, 4])
def test_the_decoder_marks_which_events_carried_their_own_id(piece: int | None) -> None:
    raw = b"data: a\n\nid: 7\ndata: b\n\ndata: c\n\nid: 8\n\ndata: d\n\n"
    decoder = Decoder(last_event_id="6")
    events: list[Event] = []
    step = piece or len(raw)
    for i in range(0, len(raw), step):
        events += decoder.feed(raw[i : i + step])
    assert [(e.data, e.id, isinstance(e, IdentifiedEvent)) for e in events] == [
        ("a", "6", False),
        ("b", "7", True),
        ("c", "7", False),
        ("d", "8", False),
    ]
    assert events[1] == Event("message", "b", "7")  # equal to the plain event


# -- 4. Enormous retry values ---------------------------------------------------------------------


@pytest.mark.parametrize("digits", [309, 5000])
@pytest.mark.parametrize("piece", [None, 7])
def test_a_huge_retry_is_ignored_and_decoding_goes_on(digits: int, piece: int | None) -> None:
    # 309 digits overflowed a float in the client; over 4,300 made int() raise ValueError in
    # feed(), and the next event came out as "before\nnext".
    raw = b"retry: 100\n\ndata: before\nretry: " + b"9" * digits + b"\n\ndata: next\n\n"
    decoder = Decoder()
    events: list[Event] = []
    step = piece or len(raw)
    for i in range(0, len(raw), step):
        events += decoder.feed(raw[i : i + step])
    assert [e.data for e in events] == ["before", "next"]
    assert decoder.retry == 100  # the value that fits stays


def test_retry_keeps_any_value_within_64_bits() -> None:
    decoder = Decoder()
    decoder.feed(b"retry: " + b"0" * 5000 + b"18446744073709551615\n\n")
    assert decoder.retry == 2**64 - 1
    decoder.feed(b"retry: 18446744073709551616\n\n")
    assert decoder.retry == 2**64 - 1  # one more is ignored


async def test_a_huge_retry_never_breaks_the_client(server: ByteServer) -> None:
    server.play(
        sse("retry: " + "9" * 400 + "\ndata: a\n\n", end="drop"),
        sse("retry: 99999999999999999\ndata: b\n\n", end="drop"),
        sse("data: c\n\n", end="hang"),
    )
    backoff = Backoff(initial=0.01, maximum=0.05, max_floor=0.05, rng=random.Random(0))
    delays: list[float] = []
    source = EventSource(server.url, backoff=backoff)
    source.add_observer(lambda c: delays.append(c.delay) if c.delay is not None else None)
    async with source:
        events = await take(source, 3)
    assert [e.data for e in events] == ["a", "b", "c"]
    # The first retry was ignored; the second (3 million years) was cut to max_floor.
    assert source.retry == 99999999999999999
    assert delays[1] == 0.05


# -- 5. A wrong answer on a connection the server holds open -------------------------------------


async def test_a_wrong_content_type_held_open_is_reported_without_the_watchdog(
    server: ByteServer,
) -> None:
    server.play(Reply(headers={"content-type": "text/html"}, steps=[b"<h1>login</h1>"], end="hang"))
    source = EventSource(server.url, idle_timeout=None, backoff=fast())
    with pytest.raises(ContentTypeError) as info:
        async with source:
            # The guard only turns a hang into a failure: with idle_timeout=None this waited
            # forever.
            await take(source, 1)
    assert info.value.body == "<h1>login</h1>"


async def test_a_5xx_held_open_is_retried_without_the_watchdog(server: ByteServer) -> None:
    server.play(
        Reply(status=503, headers={"content-type": "text/plain"}, steps=[b"busy"], end="hang"),
        sse("data: a\n\n", end="hang"),
    )
    async with EventSource(server.url, idle_timeout=None, backoff=fast()) as source:
        events = await take(source, 1)
        assert isinstance(source.last_error, HTTPStatusError)
        assert source.last_error.status == 503
        assert source.last_error.body == "busy"
    assert [e.data for e in events] == ["a"]


# -- 6. The line limit is measured on the raw bytes, however the stream is split --------------


@pytest.mark.parametrize("piece", [None, 1, 2, 3])
def test_the_line_limit_counts_raw_bytes_however_split(piece: int | None) -> None:
    def run(raw: bytes) -> tuple[list[str], list[str]]:
        decoder = Decoder(max_line_size=6)
        events: list[str] = []
        errors: list[str] = []
        step = piece or len(raw)
        for i in range(0, len(raw), step):
            try:
                events += [e.data for e in decoder.feed(raw[i : i + step])]
            except EventTooLarge as exc:
                events += [e.data for e in exc.events]
                errors.append(exc.kind)
        return events, errors

    # "data:\xff" is 6 bytes (within the limit) but 8 once U+FFFD replaces the bad byte.
    assert run(b"data:\xff\n\n") == (["\ufffd"], [])
    assert run(b"data:\xff\xff\n\ndata:o\n\n") == (["o"], ["line"])


# -- 7. Memory within twice the limits ------------------------------------------------------------

LIMIT = 4 * 1024 * 1024
PIECE = 64 * 1024
SHORT = 1024 * 1024  # the event limit for floods of short lines (tracemalloc slows each line)
SLACK = 1024 * 1024  # the piece being fed, the events list, the interpreter's own allocations


def peak_while(feed: Callable[[Decoder], None], decoder: Decoder) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        feed(decoder)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def feed_pieces(decoder: Decoder, stream: bytes) -> list[str]:
    errors = []
    for i in range(0, len(stream), PIECE):
        try:
            decoder.feed(stream[i : i + PIECE])
        except EventTooLarge as exc:
            errors.append(exc.kind)
    return errors


def test_short_data_lines_without_a_blank_line_stay_within_twice_the_event_limit() -> None:
    # 772 MiB for the default 32 Mi-character limit (24x): a Python string per line.
    errors: list[str] = []
    # Two characters per line: a string object each (one-character strings are shared).
    stream = b"data: ab\n" * (SHORT // 3 + 1000)  # each line adds 3 characters ("ab\n")
    decoder = Decoder(max_event_size=SHORT)
    peak = peak_while(lambda d: errors.extend(feed_pieces(d, stream)), decoder)
    assert errors == ["event"]
    assert peak <= 2 * SHORT + SLACK, f"peak {peak / 2**20:.1f} MiB for a {SHORT >> 20} MiB limit"


def test_an_event_just_within_the_limit_is_delivered_within_twice_it() -> None:
    lines = SHORT // 3 - 10
    stream = b"data: ab\n" * lines + b"\n"
    out: list[str] = []

    def feed(decoder: Decoder) -> None:
        for i in range(0, len(stream), PIECE):
            out.extend(e.data for e in decoder.feed(stream[i : i + PIECE]))

    peak = peak_while(feed, Decoder(max_event_size=SHORT))
    assert len(out) == 1
    assert len(out[0]) == 3 * lines - 1
    assert peak <= 2 * SHORT + SLACK, f"peak {peak / 2**20:.1f} MiB for a {SHORT >> 20} MiB limit"


@pytest.mark.parametrize(("field", "count"), [(b"event: ", 3), (b": ", 3), (b"data: ", 1)])
def test_long_lines_stay_within_twice_the_line_limit(field: bytes, count: int) -> None:
    # Three 30 MB event lines took 209 MiB (7x max_line_size).
    stream = (field + b"y" * (LIMIT - 100) + b"\n") * count + b"\n"
    out: list[Event] = []

    def feed(decoder: Decoder) -> None:
        for i in range(0, len(stream), PIECE):
            out.extend(decoder.feed(stream[i : i + PIECE]))

    peak = peak_while(feed, Decoder(max_line_size=LIMIT, max_event_size=LIMIT))
    assert peak <= 2 * LIMIT + SLACK, f"peak {peak / 2**20:.1f} MiB for a {LIMIT >> 20} MiB limit"
    if field == b"data: ":
        assert len(out) == 1
        assert len(out[0].data) == LIMIT - 100
    else:
        assert out == []  # no data: nothing to dispatch


def test_an_overlong_line_is_dropped_within_its_limit() -> None:
    stream = b"data: " + b"z" * (3 * LIMIT) + b"\n\ndata: after\n\n"
    errors: list[str] = []
    decoder = Decoder(max_line_size=LIMIT)
    peak = peak_while(lambda d: errors.extend(feed_pieces(d, stream)), decoder)
    assert errors == ["line"]
    assert peak <= LIMIT + SLACK
