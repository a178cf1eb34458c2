"""The recorder: columnar events in, tidy DataFrames out, fed by a real session."""

from __future__ import annotations

import time

import pandas as pd
import pytest

import glm_live
from glm_live.measure.recorder import KINDS, Recorder


def test_recorder_frames_from_hand_fed_events() -> None:
    recorder = Recorder()
    a = recorder.begin("first", scheduled_ns=recorder.anchor_ns)
    b = recorder.begin("second", kind="run")
    base = recorder.anchor_ns + 1_000_000
    for i, kind in enumerate(["role", "reasoning", "content", "content", "usage"]):
        recorder.event(a, i, base + i * 1000, 100 + i, kind, i)
    recorder.event(b, 0, base + 5000, 7, "agui")
    recorder.end(a, status="ok")
    recorder.end(b, status="error", error=ValueError("bad things"))
    events, requests = recorder.to_pandas()
    assert len(events) == len(recorder) == 6
    assert list(events["kind"]) == ["role", "reasoning", "content", "content", "usage", "agui"]
    assert list(events["kind"].cat.categories) == list(KINDS)
    assert list(events["bytes"][:5]) == [100, 101, 102, 103, 104]
    assert list(events["arrival_ns"][:2]) == [base, base + 1000]
    assert events["t"].iloc[0] == pytest.approx(0.001)
    wall = events["arrival"].iloc[0]
    assert abs(wall.value - (recorder.anchor_wall_ns + 1_000_000)) < 1000
    assert list(requests["status"]) == ["ok", "error"]
    assert requests.loc[1, "error_type"] == "ValueError"
    assert requests.loc[1, "error"] == "bad things"
    assert requests.loc[0, "queue_ms"] >= 0
    assert pd.isna(requests.loc[1, "queue_ms"])
    assert recorder.nbytes / len(recorder) < 64 * 4  # small arrays over-allocate


def test_session_records_chats_runs_and_hub_round_trips() -> None:
    with glm_live.connect(heartbeat=0.1) as session:
        fast = {"ttft_ms": 5, "itl_ms": 1, "tokens": 20, "reasoning_tokens": 8}
        completion = session.chat("Review Globex", thinking=True, sim=fast).wait(30)
        state = session.run("account-review", sim={"ttft_ms": 1, "itl_ms": 1}).wait(60)
        deadline = time.monotonic() + 5
        while session.recorder.samples_frame().empty:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        events, requests = session.recorder.to_pandas()
        samples = session.recorder.samples_frame()
    chat = events[events["request"] == 0]
    assert len(chat) == completion.chunks == 29  # 8 reasoning, 20 content, the finishing chunk
    assert (chat["kind"] == "reasoning").sum() == 8
    assert (chat["kind"] == "content").sum() == 20
    assert chat["arrival_ns"].is_monotonic_increasing
    row = requests.loc[0]
    assert row["kind"] == "chat"
    assert row["model"] == "glm-4.6-sim"
    assert row["completion_tokens"] == 28
    assert row["reasoning_tokens"] == 8
    assert row["ttft_reasoning_ms"] == row["ttft_ms"] < row["ttft_content_ms"] < row["e2e_ms"]
    assert row["ttft_first_byte_ms"] <= row["ttft_first_event_ms"]
    assert row["tpot_ms"] > 0
    run_row = requests.loc[1]
    assert run_row["kind"] == "run"
    assert run_row["status"] == "ok"
    assert run_row["run_id"] == state.run_id
    assert (events[events["request"] == 1]["kind"] == "agui").sum() == state.events
    assert (samples["name"] == "hub_rtt_s").any()
    assert (samples["value"] > 0).all()


def test_errors_land_in_the_requests_frame() -> None:
    with glm_live.connect(hub=False) as session:
        handle = session.chat("x", sim={"fault": "auth"})
        with pytest.raises(glm_live.AuthenticationError):
            handle.wait(30)
        requests = session.recorder.requests_frame()
    assert requests.loc[0, "status"] == "error"
    assert requests.loc[0, "error_type"] == "AuthenticationError"
