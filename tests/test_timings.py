"""The one timing schema (glm_live.wire.chat.Timings) and the recorder built on it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from glm_live.measure.recorder import Recorder
from glm_live.wire.chat import STAMPS, Completion, Timings, parse_chunk


def chunk(arrival: int, **delta: object) -> object:
    return parse_chunk({"choices": [{"delta": delta}]}, 0, arrival, {})


def test_observe_stamps_each_first_and_the_last_token() -> None:
    timings = Timings(request_start_ns=0)
    timings.observe(100, chunk(100, role="assistant"))  # no token: only the first event
    timings.observe(200, chunk(200, reasoning_content="think"))
    timings.observe(300, chunk(300, content="Hi"))
    timings.observe(350, chunk(350, content=" there"))
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    timings.observe(400, chunk(400, tool_calls=[call]))
    timings.observe(450, chunk(450))  # an empty delta (usage chunk): not a token
    timings.observe(500)  # [DONE]
    assert timings.first_event_ns == 100
    assert timings.first_reasoning_ns == 200
    assert timings.first_content_ns == 300
    assert timings.first_tool_call_ns == 400
    assert timings.first_token_ns == 200
    assert timings.last_token_ns == 400
    assert timings.event_arrivals_ns.tolist() == [100, 200, 300, 350, 400, 450, 500]


def test_latency_columns_in_milliseconds() -> None:
    timings = Timings(
        request_start_ns=1_000_000,
        first_byte_ns=3_000_000,
        first_event_ns=4_000_000,
        first_content_ns=6_000_000,
        end_ns=26_000_000,
    )
    assert timings.latencies_ms(completion_tokens=5) == {
        "ttft_first_byte_ms": 2.0,
        "ttft_first_event_ms": 3.0,
        "ttft_reasoning_ms": None,
        "ttft_content_ms": 5.0,
        "ttft_tool_ms": None,
        "ttft_ms": 5.0,
        "tpot_ms": 5.0,  # (26 - 6) ms over 4 tokens after the first
        "e2e_ms": 25.0,
    }
    assert timings.latencies_ms(completion_tokens=1)["tpot_ms"] is None
    assert timings.ttft == pytest.approx(0.005)


def test_stamps_round_trip_and_ignore_other_names() -> None:
    timings = Timings(request_start_ns=5, first_content_ns=9, end_ns=12)
    stamps = timings.stamps()
    assert tuple(stamps) == STAMPS
    again = Timings.from_stamps({**stamps, "not_a_stamp": 1})
    assert again.stamps() == stamps


def test_completion_feed_assembles_and_stamps() -> None:
    completion = Completion()
    completion.feed({"choices": [{"delta": {"content": "He"}}]}, 10, size=30)
    completion.feed({"choices": [{"delta": {"content": "llo"}}]}, 20, size=31)
    completion.feed(
        {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"completion_tokens": 2}},
        30,
    )
    assert completion.text == "Hello"
    assert completion.chunks == 3
    assert completion.finish_reason == "stop"
    assert completion.timings.first_content_ns == 10
    assert completion.timings.last_token_ns == 20


def test_recorder_columns_come_from_the_timings() -> None:
    recorder = Recorder()
    number = recorder.begin("one")
    timings = Timings(request_start_ns=0, first_reasoning_ns=2_000_000, end_ns=12_000_000)
    recorder.end(number, timings=timings, usage={"completion_tokens": 3})
    row = recorder.requests_frame().iloc[0]
    assert row["ttft_ms"] == 2.0
    assert row["ttft_reasoning_ms"] == 2.0
    assert row["tpot_ms"] == 5.0
    assert row["e2e_ms"] == 12.0
    assert "stamps" not in recorder.requests_frame().columns


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Threads switch every microsecond instead of every 5 ms, so interleavings show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_frames_read_while_another_thread_records_hold_whole_rows() -> None:
    recorder = Recorder()
    stop = threading.Event()
    written = 0

    def write() -> None:
        nonlocal written
        while not stop.is_set() and written < 2_000_000:
            # Every column of a row carries the same number, so a torn row shows.
            recorder.event(written, written, written, written, "content", written, written)
            written += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        reads = 0
        while reads < 200 and writer.is_alive():
            frame = recorder.events_frame()
            reads += 1
            assert (frame["request"] == frame["index"]).all()
            assert (frame["arrival_ns"] == frame["index"]).all()
            assert (frame["chars"] == frame["index"]).all()
            assert (frame["sent_ns"].fillna(0) == frame["index"]).all()
    finally:
        stop.set()
        writer.join(timeout=10)
    assert reads > 0
    assert len(recorder.events_frame()) == written
