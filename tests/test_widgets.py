"""The widgets' model side, without a browser: what they send, how often, and resync."""

from __future__ import annotations

import time
from typing import Any

import pytest

import glm_live
from glm_live.notebook.widgets import (
    AgentBoard,
    Coalescer,
    ConnectionIndicator,
    StreamView,
    coalescer,
)
from glm_live.protocols.agui import AgentStatus, RunState
from glm_live.testing.comm_recorder import record_comms
from glm_live.transport.sse_client import ConnectionEvent, ConnectionState


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_stream_view_coalesces_and_deltas_rebuild_the_text() -> None:
    with record_comms() as log:
        view = StreamView(title="t")
        parts = [f"word{i} " for i in range(3000)]
        started = time.monotonic()
        for i, part in enumerate(parts):
            view.feed(part)
            if i % 100 == 0:
                time.sleep(0.01)
        elapsed = time.monotonic() - started
        view.finish()
    updates = log.updates(view.comm.comm_id)
    assert len(updates) <= elapsed * 20 + 3  # at most ~20 flushes a second, plus the end
    seqs = [u["_delta"]["seq"] for u in updates if "_delta" in u]
    assert seqs == list(range(1, len(seqs) + 1))  # in order, no gap
    assert "".join(u["_delta"]["text"] for u in updates if "_delta" in u) == "".join(parts)
    last = updates[-1]
    assert last["text"] == "".join(parts)
    assert last["text_seq"] == seqs[-1]
    assert last["status"] == "done"
    assert view.tokens == 3000


def test_resync_sends_the_full_text_with_its_seq() -> None:
    with record_comms() as log:
        view = StreamView()
        view.feed("alpha ")
        coalescer().flush(view)
        view.feed("beta ")  # pending, not yet flushed
        view._handle_custom_msg({"type": "resync", "have": 0, "got": 1}, [])
        view.feed("gamma")
        coalescer().flush(view)
    updates = log.updates(view.comm.comm_id)
    full = next(u for u in updates if "text_seq" in u)
    assert full["text"] == "alpha beta "
    assert full["text_seq"] == 1
    after = [u["_delta"] for u in updates if "_delta" in u][-1]
    assert after == {"seq": 2, "text": "gamma"}  # continues from the resync, no repeat


def test_stop_button_calls_back() -> None:
    stopped = []
    with record_comms():
        view = StreamView(on_stop=lambda: stopped.append(True))
        view._handle_custom_msg({"type": "stop"}, [])
    assert stopped == [True]


def test_error_state_keeps_partial_text() -> None:
    with record_comms():
        view = StreamView()
        view.feed("partial answer")
        view.finish("error", RuntimeError("connection dropped"))
    assert view.status == "error"
    assert view.text == "partial answer"
    assert view.error == "RuntimeError: connection dropped"


def test_global_budget_caps_all_widgets_together() -> None:
    hub = Coalescer(per_widget_hz=1000, budget=50)
    with record_comms() as log:
        views = [StreamView() for _ in range(20)]
        started = time.monotonic()
        while time.monotonic() - started < 1.0:
            for view in views:
                hub.set(view, tokens=int(time.monotonic() * 1000))
            time.sleep(0.002)
        elapsed = time.monotonic() - started
    sent = sum(log.count(v.comm.comm_id) for v in views)
    assert sent <= 50 * elapsed + 50 + 1  # the bucket's burst, then the rate


def test_agent_board_64_parallel_agents_is_one_update_stream() -> None:
    run = RunState(status="running")
    with record_comms() as log:
        board = AgentBoard(title="big")
        started = time.monotonic()
        for step in range(200):
            for n in range(64):
                status = run.agents.setdefault(f"agent-{n}", AgentStatus(f"agent-{n}"))
                status.status, status.progress = "running", step / 200
            board.show(run)
            time.sleep(0.002)
        elapsed = time.monotonic() - started
        coalescer().flush(board)
    updates = log.updates(board.comm.comm_id)
    assert len(updates) <= elapsed * 20 + 3
    assert len(updates[-1]["agents"]) == 64
    assert updates[-1]["agents"][0]["progress"] == pytest.approx(199 / 200)


def test_connection_indicator_follows_observer_events() -> None:
    with record_comms():
        indicator = ConnectionIndicator()
        change = ConnectionEvent("heartbeat", ConnectionState.OPEN, 0, 1, 2, delay=0.0042)
        indicator.observe_connection(change)
        coalescer().flush(indicator)
    assert indicator.state == "open"
    assert indicator.rtt_ms == 4.2
    assert indicator.reconnects == 2


def test_finished_stream_view_exports_its_full_text(tmp_path: Any) -> None:
    from ipywidgets.embed import embed_minimal_html

    with record_comms():
        view = StreamView(title="export")
        for part in ["# Title\n", "Some ", "text ", "| a |\n"]:
            view.feed(part)
        view.finish()
        embed_minimal_html(str(tmp_path / "out.html"), views=[view])
    html = (tmp_path / "out.html").read_text()
    assert "# Title\\nSome text | a |\\n" in html


def test_session_chat_displays_and_feeds_its_view() -> None:
    with record_comms(), glm_live.connect(hub=False) as session:
        handle = session.chat(
            "Review Globex", display=True, sim={"ttft_ms": 1, "itl_ms": 1, "tokens": 40}
        )
        completion = handle.wait(30)
        view = handle.view
    assert view is not None
    assert view.text == completion.text
    assert view.status == "done"
    assert view.tokens == 40
    assert view.model == "glm-4.6-sim"
    assert view.simulated is True


def test_script_mode_displays_nothing() -> None:
    with glm_live.connect(hub=False) as session:
        handle = session.chat("x", sim={"ttft_ms": 1, "itl_ms": 1, "tokens": 3})
        handle.wait(30)
    assert handle.view is None


def test_stop_button_cancels_the_request_and_the_server_sees_it() -> None:
    with record_comms(), glm_live.connect(hub=False) as session:
        runtime = session.embedded.runtime
        handle = session.chat("x", display=True, sim={"ttft_ms": 1, "itl_ms": 20, "tokens": 2000})
        wait_for(lambda: len(handle.items) > 5)
        assert runtime.requests_in_flight == 1
        handle.view._handle_custom_msg({"type": "stop"}, [])  # what the Stop button sends
        with pytest.raises(glm_live.Cancelled):
            handle.wait(10)
        wait_for(lambda: runtime.requests_in_flight == 0)
        wait_for(lambda: handle.view.status == "cancelled")
    assert handle.view.text  # the partial answer stays
