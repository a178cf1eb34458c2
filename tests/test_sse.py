"""The SSE decoder and encoder: pure, no I/O, tested directly."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glm_live.errors import EventTooLarge
from glm_live.wire.sse import Decoder, Event, encode

CASES = json.loads((Path(__file__).parent / "sse-cases.json").read_text())["cases"]


def decode(raw: bytes, piece: int | None = None, **kwargs: int) -> tuple[list[Event], Decoder]:
    decoder = Decoder(**kwargs)  # type: ignore[arg-type]
    size = piece or max(1, len(raw))
    events: list[Event] = []
    for i in range(0, len(raw), size):
        events += decoder.feed(raw[i : i + size])
    events += decoder.close()
    return events, decoder


def as_dicts(events: list[Event]) -> list[dict[str, str]]:
    return [{"event": e.event, "data": e.data, "id": e.id} for e in events]


@pytest.mark.parametrize("piece", [None, 1, 3, 7])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_cases(case: dict, piece: int | None) -> None:
    events, decoder = decode(base64.b64decode(case["input_b64"]), piece)
    assert as_dicts(events) == case["events"]
    assert decoder.last_event_id == case["last_event_id"]
    assert decoder.retry == case["retry_ms"]


PIECES = [None, 1, 2, 3, 5, 7]


@pytest.mark.parametrize("piece", PIECES)
def test_leading_bom_is_dropped_once(piece: int | None) -> None:
    raw = b"\xef\xbb\xbfdata: a\n\n\xef\xbb\xbfdata: b\n\ndata: c\n\n"
    events, _ = decode(raw, piece)
    # The second BOM is not at the start: "\ufeffdata" is an unknown field, ignored.
    assert [e.data for e in events] == ["a", "c"]


@pytest.mark.parametrize("piece", PIECES)
def test_only_one_bom_is_dropped(piece: int | None) -> None:
    events, _ = decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n", piece)
    assert [e.data for e in events] == ["y"]


@pytest.mark.parametrize("piece", PIECES)
def test_partial_bom_then_other_bytes(piece: int | None) -> None:
    events, _ = decode(b"\xef\xbbdata: x\n\ndata: y\n\n", piece)
    # Not a BOM: the first line is U+FFFD + "data: x", an unknown field.
    assert [e.data for e in events] == ["y"]


@pytest.mark.parametrize("piece", PIECES)
def test_nul_in_id_is_ignored(piece: int | None) -> None:
    events, decoder = decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", piece)
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1")]
    assert decoder.last_event_id == "1"


@pytest.mark.parametrize("piece", PIECES)
def test_nul_in_data_is_kept(piece: int | None) -> None:
    events, _ = decode(b"data: a\x00b\n\n", piece)
    assert events[0].data == "a\x00b"


@pytest.mark.parametrize("piece", PIECES)
def test_invalid_utf8_becomes_replacement_characters(piece: int | None) -> None:
    raw = (
        b"data: a\xffb\n\ndata: \xe2\x82\n\ndata: \xf0\x9f\x98\x80 ok\n\nevent: \xc3(\ndata: t\n\n"
    )
    events, _ = decode(raw, piece)
    assert [e.data for e in events] == ["a\ufffdb", "\ufffd", "\U0001f600 ok", "t"]
    assert events[-1].event == "\ufffd("


@pytest.mark.parametrize("piece", PIECES)
def test_multibyte_characters_split_across_pieces(piece: int | None) -> None:
    text = "données: 日本語 😀 — ok"
    events, _ = decode(f"data: {text}\n\n".encode(), piece)
    assert events == [Event("message", text, "")]


@pytest.mark.parametrize("split", range(1, 12))
def test_cr_at_piece_boundary(split: int) -> None:
    raw = b"data: a\r\ndata: b\r\r\ndata: c\r\n\r\n"
    decoder = Decoder()
    events = decoder.feed(raw[:split]) + decoder.feed(raw[split:])
    # "a\r\n", "b\r", "\r\n" (blank: dispatch), "c\r\n", "\r\n" (blank: dispatch).
    assert [e.data for e in events] == ["a\nb", "c"]


def test_cr_then_lf_in_separate_pieces_is_one_line_break() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes the CRLF: not a blank line
    assert decoder.feed(b"\r\n") == [Event("message", "a", "")]


def test_lf_after_cr_is_dropped_only_once() -> None:
    decoder = Decoder()
    decoder.feed(b"data: a\r")
    assert decoder.feed(b"\n\n") == [Event("message", "a", "")]


def test_unicode_line_separators_are_not_line_breaks() -> None:
    # httpx-sse 0.4.2 split on U+2028; the standard splits on CR and LF only.
    events, _ = decode("data: a\u2028b\u0085c\x0bd\x0ce\n\n".encode())
    assert events[0].data == "a\u2028b\u0085c\x0bd\x0ce"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"1000", 1000),
        (b"0", 0),
        (b"+5", None),
        (b" 7", 7),  # the one leading space after the colon is not part of the value
        (b"  7", None),
        (b"1_000", None),
        (b"-1", None),
        ("١٢٣".encode(), None),  # Arabic-Indic digits are digits, but not ASCII ones
        ("²".encode(), None),
        (b"", None),
        (b"12a", None),
        (b"1.5", None),
    ],
)
def test_retry_takes_ascii_digits_only(value: bytes, expected: int | None) -> None:
    _, decoder = decode(b"retry:" + value + b"\n\n")
    assert decoder.retry == expected


def test_invalid_retry_keeps_previous_value() -> None:
    _, decoder = decode(b"retry: 300\n\nretry: x\n\n")
    assert decoder.retry == 300


def test_id_only_block_moves_last_event_id_without_dispatch() -> None:
    events, decoder = decode(b"id: 7\n\nretry: 5\n\nevent: x\n\n")
    assert events == []
    assert decoder.last_event_id == "7"


def test_id_without_blank_line_does_not_move_last_event_id() -> None:
    _, decoder = decode(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert decoder.last_event_id == "1"


def test_event_type_resets_after_dispatch() -> None:
    events, _ = decode(b"event: a\ndata: 1\n\ndata: 2\n\nevent: b\n\ndata: 3\n\n")
    assert [e.event for e in events] == ["a", "message", "message"]


def test_field_without_colon_and_unknown_fields() -> None:
    events, _ = decode(b"data\nfoo: bar\nDATA: no\nid\n\n")
    assert events == [Event("message", "", "")]


def test_starting_last_event_id_is_used() -> None:
    decoder = Decoder(last_event_id="41")
    assert decoder.feed(b"data: x\n\n") == [Event("message", "x", "41")]


def test_close_drops_unterminated_event_and_resets() -> None:
    decoder = Decoder()
    assert decoder.feed(b"id: 3\n\ndata: half\n") == []
    assert decoder.close() == []
    # A new stream on the same decoder starts clean but keeps the last event ID.
    assert decoder.feed(b"data: new\n\n") == [Event("message", "new", "3")]


def test_simple_and_general_paths_interleave() -> None:
    raw = b"data: 1\n\ndata: 2\n\nid: x\ndata: 3\n\ndata: 4\n\nevent: e\ndata: 5\n\ndata: 6\n\n"
    for piece in range(1, len(raw) + 1):
        events, _ = decode(raw, piece)
        assert [(e.event, e.data, e.id) for e in events] == [
            ("message", "1", ""),
            ("message", "2", ""),
            ("message", "3", "x"),
            ("message", "4", "x"),
            ("e", "5", "x"),
            ("message", "6", "x"),
        ], piece


# --- limits ---------------------------------------------------------------------------------


def test_line_limit_raises_and_keeps_earlier_events() -> None:
    decoder = Decoder(max_line_size=64)
    with pytest.raises(EventTooLarge) as info:
        decoder.feed(b"data: ok\n\ndata: " + b"x" * 100)
    assert info.value.kind == "line"
    assert info.value.limit == 64
    assert info.value.events == [Event("message", "ok", "")]
    assert "max_line_size=64" in str(info.value)


def test_line_limit_counts_partial_line_across_pieces_without_growing() -> None:
    decoder = Decoder(max_line_size=1000)
    decoder.feed(b"data: ")
    for _ in range(9):
        decoder.feed(b"y" * 100)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"y" * 100)
    # The rest of the oversized line and its event are skipped; decoding goes on after it.
    assert decoder.feed(b"y" * 5000) == []
    assert decoder.feed(b"\ndata: more\n\ndata: next\n\n") == [Event("message", "next", "")]


def test_line_limit_inside_one_piece() -> None:
    decoder = Decoder(max_line_size=10)
    with pytest.raises(EventTooLarge) as info:
        decoder.feed(b"data: a\n\ndata: " + b"z" * 20 + b"\n\ndata: b\n\n")
    assert [e.data for e in info.value.events] == ["a", "b"]


def test_line_limit_counts_bytes_not_characters() -> None:
    decoder = Decoder(max_line_size=20)
    with pytest.raises(EventTooLarge):
        decoder.feed(("data: " + "é" * 10 + "\n\n").encode())  # 10 characters, 26 bytes


def test_event_limit_discards_event_and_continues() -> None:
    decoder = Decoder(max_event_size=10)
    with pytest.raises(EventTooLarge) as info:
        decoder.feed(b"data: 12345\ndata: 67890\nid: 9\n\ndata: small\n\n")
    assert info.value.kind == "event"
    assert info.value.events == [Event("message", "small", "9")]
    assert decoder.last_event_id == "9"


def test_event_limit_across_pieces() -> None:
    decoder = Decoder(max_event_size=100)
    decoder.feed(b"data: " + b"a" * 60 + b"\n")
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: " + b"b" * 60 + b"\n")
    assert decoder.feed(b"data: c\n\ndata: d\n\n") == [Event("message", "d", "")]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Decoder(max_line_size=0)


def test_large_event_in_small_pieces_is_complete() -> None:
    payload = b"q" * (3 * 1024 * 1024 + 17)
    decoder = Decoder()
    raw = b"data: " + payload + b"\n\n"
    events = []
    for i in range(0, len(raw), 4096):
        events += decoder.feed(raw[i : i + 4096])
    assert len(events) == 1
    assert events[0].data == payload.decode()


# --- encoder ---------------------------------------------------------------------------------


def test_encode_examples() -> None:
    assert encode("hi") == b"data: hi\n\n"
    assert encode("a\nb", event="e", id="1") == b"event: e\nid: 1\ndata: a\ndata: b\n\n"
    assert encode(" lead") == b"data:  lead\n\n"
    assert encode(retry=1500) == b"retry: 1500\n\n"
    assert encode(comment="ping") == b":ping\n\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "x", "event": "a\nb"},
        {"data": "x", "id": "1\r2"},
        {"data": "x", "id": "a\0b"},
        {"retry": -1},
        {"retry": True},
        {},
    ],
)
def test_encode_rejects_what_cannot_be_represented(kwargs: dict) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        encode(**kwargs)


no_breaks = st.text().filter(lambda s: "\r" not in s and "\n" not in s)


@settings(max_examples=300, deadline=None)
@given(
    data=st.text(),
    event=no_breaks,
    event_id=st.none() | no_breaks.filter(lambda s: "\0" not in s),
    piece=st.integers(min_value=1, max_value=64),
)
def test_encode_round_trips_through_decoder(
    data: str, event: str, event_id: str | None, piece: int
) -> None:
    raw = encode(data, event=event, id=event_id) + encode("after")
    events, _ = decode(raw, piece)
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    expected_id = event_id or ""
    assert events == [
        Event(event or "message", normalised, expected_id),
        Event("message", "after", expected_id),
    ]
