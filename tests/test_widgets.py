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


# -- end states, summaries, the dashboard following a recorder (issue 15) ----------------------


def test_plain_summary_strips_markdown_to_one_line() -> None:
    from glm_live.notebook.widgets.agent_board import plain_summary

    text = (
        "## Account review: Globex\n\n**Summary.** Globex is a *growing* account, see "
        "[the notes](https://example.com) and `arr.csv`.\n\n| Metric | Value |\n|---|---|\n"
        "| ARR | $779k |\n\n- one\n> quoted\n```py\nx = 1\n```\n---\ncut mid-bold ** here **"
    )
    summary = plain_summary(text)
    assert summary == (
        "Account review: Globex — Summary. Globex is a growing account, see the notes and "
        "arr.csv. Metric, Value; ARR, $779k; one quoted x = 1 cut mid-bold here"
    )
    assert "\n" not in summary
    assert plain_summary("snake_case_name and 5 * 3") == "snake_case_name and 5 * 3"
    assert plain_summary("### Title only") == "Title only"
    # a heading cut by streaming before its text (the stream stopped at "##")
    assert plain_summary("Seven open tickets.\n\n##") == "Seven open tickets."
    assert plain_summary("Seven open tickets.\n#") == "Seven open tickets."
    assert plain_summary("word " * 100, limit=20) == "word word word word…"
    assert plain_summary("") == ""


@pytest.mark.parametrize(
    ("status", "detail", "traits"),
    [
        ("done", None, {"status": "done", "error": "", "detail": ""}),
        ("cancelled", "stopped", {"status": "cancelled", "error": "", "detail": "stopped"}),
        (
            "error",
            RuntimeError("boom"),
            {"status": "error", "error": "RuntimeError: boom", "detail": ""},
        ),
        (
            "interrupted",
            ConnectionError("dropped"),
            {"status": "interrupted", "error": "", "detail": "ConnectionError: dropped"},
        ),
    ],
)
def test_finish_sets_each_end_state(status: str, detail: Any, traits: dict[str, Any]) -> None:
    with record_comms():
        view = StreamView()
        view.feed("| a | b |\n|---|---|\n| 1 ")
        view.finish(status, detail, usage_tokens=7)
    assert {name: getattr(view, name) for name in traits} == traits
    assert view.text == "| a | b |\n|---|---|\n| 1 "  # the partial text stays
    assert view.tokens == 7


def test_finish_keeps_the_old_keyword_and_refuses_unknown_states() -> None:
    with record_comms():
        view = StreamView()
        view.finish("error", error="old keyword")
        assert view.error == "old keyword"
        with pytest.raises(ValueError, match="unknown end status"):
            StreamView().finish("exploded")


def _agent(name: str, status: str, started: float, finished: float | None, **kw: Any) -> Any:
    agent = AgentStatus(name, status=status, started_at=started, finished_at=finished, **kw)
    return agent


def test_agent_board_shows_ended_agents_with_stopped_clocks_and_the_report() -> None:
    run = RunState(status="running")
    run.agents = {
        "a": _agent("a", "done", 100.0, 112.34, progress=1.0, message="## Done\n**All** good"),
        "b": _agent("b", "cancelled", 100.0, 104.0, progress=0.4, message="half **way"),
        "c": _agent("c", "error", 100.0, 101.5, progress=0.2, error="GLMError: boom"),
        "d": _agent("d", "running", 100.0, None, progress=0.4),  # left open by the runtime
    }
    run.end("cancelled")  # ends the agent the runtime left open too
    with record_comms():
        board = AgentBoard()
        board.show(run)
        coalescer().flush(board)
        cards = {c["name"]: c for c in board.agents}
        assert board.status == "cancelled"
        assert [cards[n]["status"] for n in "abcd"] == ["done", "cancelled", "error", "cancelled"]
        assert cards["a"]["elapsed"] == 12.3
        assert cards["a"]["finished"] == 112.34
        assert cards["a"]["summary"] == "Done — All good"
        assert cards["b"]["elapsed"] == 4.0
        assert cards["b"]["summary"] == "half way"
        assert cards["c"]["summary"] == "GLMError: boom"
        assert cards["d"]["elapsed"] is not None  # frozen, not counting
        assert board.report == ""  # only a finished run has a report

        run.status, run.result = "finished", {"score": 0.123456, "text": "x"}
        board.show(run)
        coalescer().flush(board)
        assert board.report == '```json\n{\n "score": 0.123,\n "text": "x"\n}\n```'
        run.result = "## Report\nAll done."
        board.show(run)
        coalescer().flush(board)
        assert board.report == "## Report\nAll done."


def _end(recorder: Any, status: str = "ok", ttft_ms: float = 20.0, tokens: int = 5) -> int:
    """A real begin/event/end sequence on ``recorder``, with stamps ``ttft_ms`` apart."""
    from glm_live.wire.chat import Timings

    request = recorder.begin("r")
    start = time.perf_counter_ns()
    arrival = start + int(ttft_ms * 1e6)
    for index in range(tokens):
        recorder.event(request, index, arrival + index * 2_000_000, 10, "content", 1)
    timings = Timings(
        request_start_ns=start,
        request_sent_ns=start,
        first_event_ns=arrival,
        first_content_ns=arrival,
        end_ns=arrival + tokens * 2_000_000,
    )
    recorder.end(request, status=status, timings=timings, usage={"completion_tokens": tokens})
    return request


def test_dashboard_follows_a_recorder_before_and_after() -> None:
    from glm_live.measure.recorder import Recorder
    from glm_live.notebook.widgets import MetricsDashboard

    recorder = Recorder()
    _end(recorder)
    _end(recorder, status="error")
    running = recorder.begin("still running")
    with record_comms():
        dashboard = MetricsDashboard().follow(recorder)
        assert dashboard.follow(recorder) is dashboard  # again: no double count
        coalescer().flush(dashboard)
        assert dashboard.summary["requests"] == 2
        assert dashboard.summary["errors"] == 1
        assert len(dashboard.series) == 2
        dashboard.record(object())  # ignored while following: the recorder counts
        dashboard.fail()
        _end(recorder, ttft_ms=40.0)
        recorder.end(running, status="cancelled")
        recorder.sample("hub_reconnects", 3)
        coalescer().flush(dashboard)
        summary = dashboard.summary
    assert summary["requests"] == 4
    assert summary["errors"] == 1
    assert summary["cancelled"] == 1
    assert summary["reconnects"] == 3
    assert summary["ttft_ms"]["p50"] == 20.0
    assert summary["ttft_ms"]["p99"] == 40.0
    assert summary["itl_ms"]["p50"] == 2.0
    assert [p[1] for p in dashboard.series] == [20.0, 20.0, 40.0]
    assert dashboard.series[0][2] == pytest.approx(400.0)  # 4 more tokens in 10 ms


def test_dashboard_by_hand_still_counts() -> None:
    from glm_live.notebook.widgets import MetricsDashboard

    with record_comms():
        dashboard = MetricsDashboard()
        dashboard.fail()
        coalescer().flush(dashboard)
    assert dashboard.summary["requests"] == 1
    assert dashboard.summary["errors"] == 1


def test_recorder_listener_is_called_on_end_and_sample_and_survives_errors() -> None:
    import pickle

    from glm_live.measure.recorder import Recorder

    recorder = Recorder()
    heard: list[tuple[str, int | str]] = []

    def broken(what: str, key: int | str) -> None:
        raise RuntimeError("a view's bug")

    recorder.add_listener(broken)
    recorder.add_listener(lambda what, key: heard.append((what, key)))
    request = _end(recorder)
    recorder.sample("hub_rtt_s", 0.01)
    assert heard == [("end", request), ("sample", "hub_rtt_s")]
    recorder.remove_listener(broken)
    assert len(pickle.loads(pickle.dumps(recorder))._listeners) == 0


def test_dashboard_counts_a_sessions_requests_made_before_and_after() -> None:
    from glm_live.notebook.widgets import MetricsDashboard

    fast = {"ttft_ms": 1, "itl_ms": 1, "tokens": 20}
    with record_comms(), glm_live.connect(hub=False) as session:
        for _ in range(2):
            session.chat("before", display=False, sim=fast).wait(30)
        failing = session.chat("x", display=False, sim={**fast, "fault": "server_error"})
        with pytest.raises(glm_live.errors.GLMError):
            failing.wait(30)
        dashboard = MetricsDashboard().follow(session.recorder)
        coalescer().flush(dashboard)
        assert dashboard.summary["requests"] == 3
        assert dashboard.summary["errors"] == 1
        session.chat("after", display=False, sim=fast).wait(30)
        wait_for(lambda: coalescer().flush(dashboard) >= 0 and dashboard.summary["requests"] == 4)
    assert dashboard.summary["ttft_ms"]["p50"] is not None
    assert dashboard.summary["itl_ms"]["p50"] is not None
    assert len(dashboard.series) == 3


def test_agent_card_summarizes_the_whole_message_not_its_streamed_tail() -> None:
    run = RunState(status="running")
    text = "## Account review: Initech\n\n**Summary.** Initech is growing."
    run.agents = {"a": _agent("a", "running", 100.0, None, message=text[-20:])}
    run.messages = [{"id": "1", "role": "assistant", "name": "a", "content": text}]
    with record_comms():
        board = AgentBoard()
        board.show(run)
        coalescer().flush(board)
    assert board.agents[0]["summary"] == "Account review: Initech — Summary. Initech is growing."
    assert board.agents[0]["elapsed"] is None  # running: the page's clock counts


def test_widget_css_colours_come_from_jupyterlab_variables() -> None:
    """Light and dark themes: every colour is a ``--jp-*`` variable (a fallback may follow);
    the one literal is the white text on filled status pills, readable on every state colour."""
    import re

    from glm_live.notebook.widgets._base import static

    css = re.sub(r"/\*.*?\*/", "", static("widgets.css").read_text(), flags=re.S)
    while True:  # drop var(--jp-..., fallback) from the inside out
        stripped = re.sub(r"var\(--jp-[\w-]+(?:,[^()]*(?:\([^()]*\))?[^()]*)?\)", "", css)
        if stripped == css:
            break
        css = stripped
    literals = re.findall(r"#[0-9a-fA-F]{3,8}\b|rgba?\([^)]*\)|hsla?\([^)]*\)", css)
    assert set(literals) <= {"#fff"}, literals


def test_live_panel_dashboard_follows_a_recorder() -> None:
    from glm_live.measure.recorder import Recorder
    from glm_live.notebook.widgets import LivePanel

    recorder = Recorder()
    _end(recorder)
    with record_comms():
        panel = LivePanel(recorder=recorder)
        coalescer().flush(panel.dashboard)
    assert panel.dashboard.summary["requests"] == 1


def test_the_board_shows_the_report_the_last_agent_wrote() -> None:
    from glm_live.notebook.widgets.agent_board import report_markdown

    results = {"analyst": {"score": 3}, "writer": "# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |"}
    assert report_markdown(results, ["analyst", "writer"]) == results["writer"]
    assert report_markdown(results, ["analyst"]).startswith("```json")  # not by agent
    assert report_markdown("plain text") == "plain text"
    assert report_markdown(None) == ""
    assert report_markdown({"analyst": {"score": 3}}, ["analyst"]).startswith("```json")
