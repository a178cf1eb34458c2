"""Handles and runs end one way, everywhere: the handle's status and repr, what awaiting a
cancelled handle raises, the widgets' final state, the run's agents; results display as short
summaries; ``connect()`` reuses the process's embedded runtime.

Real runtime on loopback; widgets through the comm recorder (no browser). The kernel side
(display once per cell, the README's block, nest_asyncio) is in test_kernel.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

import glm_live
from glm_live import AgentStatus, Cancelled, Completion, RunState, Workflow
from glm_live.testing.chaos import ChaosProxy
from glm_live.testing.comm_recorder import record_comms

SLOW = {"ttft_ms": 1, "itl_ms": 20, "tokens": 2000}
FAST = {"ttft_ms": 1, "itl_ms": 1, "tokens": 12}
SLOW_RUN = {"ttft_ms": 5, "itl_ms": 40}


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- RunState.end: pure --------------------------------------------------------------------------


def _running(*names: str) -> RunState:
    run = RunState(status="running")
    for name in names:
        run.agents[name] = AgentStatus(name, status="running", started_at=time.time() - 2)
    return run


@pytest.mark.parametrize(
    ("status", "agent_status"),
    [
        ("finished", "done"),
        ("cancelled", "cancelled"),
        ("error", "error"),
        ("interrupted", "interrupted"),
    ],
)
def test_end_closes_every_unfinished_agent_and_stops_its_clock(
    status: str, agent_status: str
) -> None:
    run = _running("a", "b")
    run.agents["c"] = AgentStatus("c")  # never started
    run.agents["d"] = AgentStatus("d", status="done", started_at=1.0, finished_at=2.0)
    assert run.end(status, "why" if status == "error" else None)
    assert run.status == status
    assert run.done
    for name in ("a", "b", "c"):
        assert run.agents[name].status == agent_status
        assert run.agents[name].finished_at is not None
    assert run.agents["d"].status == "done"
    assert run.agents["d"].finished_at == 2.0
    elapsed = run.agents["a"].elapsed
    time.sleep(0.02)
    assert run.agents["a"].elapsed == elapsed  # the clock stopped
    assert run.agents["c"].elapsed is None  # it never ran
    if status == "error":
        assert run.error == "why"


def test_a_run_ends_once() -> None:
    run = _running("a")
    run.apply({"type": "RUN_FINISHED", "threadId": "t", "runId": "r", "result": {"x": 1}})
    assert run.status == "finished"
    assert run.agents["a"].status == "done"
    assert not run.end("interrupted", "the stream dropped after the end")
    run.apply({"type": "RUN_ERROR", "message": "late"})
    assert run.status == "finished"
    assert run.error is None
    with pytest.raises(ValueError, match="interrupted"):
        _running().end("stopped")


def test_run_error_and_cancelled_outcome_end_the_agents() -> None:
    run = _running("a")
    run.apply({"type": "RUN_ERROR", "message": "boom"})
    assert (run.status, run.error, run.agents["a"].status) == ("error", "boom", "error")
    run = _running("a")
    run.apply(
        {"type": "RUN_FINISHED", "threadId": "t", "runId": "r", "outcome": {"type": "cancelled"}}
    )
    assert (run.status, run.agents["a"].status) == ("cancelled", "cancelled")


# -- rich display of results ----------------------------------------------------------------------

EVIL = "<script>alert('x')</script> & <b>"


def test_completion_repr_is_one_line_and_its_html_is_escaped() -> None:
    completion = Completion()
    completion.feed({"choices": [{"delta": {"content": EVIL + "\nline two"}}]}, 10)
    completion.feed(
        {
            "model": "<glm>",
            "choices": [{"delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 7},
        },
        20,
    )
    text = repr(completion)
    assert "\n" not in text
    assert "finish_reason=stop" in text
    assert "7 tokens" in text
    assert EVIL not in text  # the answer is on .text, not in the repr
    html = completion._repr_html_()
    assert "<script>" not in html
    assert "<b>" not in html.replace("<b>Completion</b>", "")
    assert "&lt;script&gt;" in html
    assert "&lt;glm&gt;" in html
    assert "&amp;" in html
    assert "stop" in html
    assert "7 out" in html


def test_run_state_repr_is_one_line_and_its_html_is_escaped() -> None:
    run = _running(EVIL)
    run.agents[EVIL].message = EVIL
    run.messages.append({"id": "m", "role": "assistant", "name": "w", "content": "# " + EVIL})
    run.end("error", EVIL)
    text = repr(run)
    assert "\n" not in text
    assert text.startswith("<RunState error, 1 agents (1 error)")
    html = run._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert html.count("&lt;script&gt;") >= 3  # the agent's name, the error, the report


# -- cancelling: the handle, its error, the widgets -----------------------------------------------


def test_cancelled_chat_everywhere_says_cancelled() -> None:
    with record_comms() as log, glm_live.connect(hub=False) as session:
        handle = session.chat("x", display=True, sim=SLOW)
        wait_for(lambda: len(handle.items) > 5)
        assert handle.status == "running"
        assert "streaming" in repr(handle)
        handle.cancel()
        with pytest.raises(Cancelled) as caught:
            handle.wait(10)
        message = str(caught.value)
        assert "cancelled" in message
        assert ".partial" in message
        assert "new chat" in message
        assert isinstance(caught.value.partial, Completion)
        assert caught.value.partial.chunks >= 5
        assert caught.value.partial is handle.completion
        assert handle.status == "cancelled"
        assert repr(handle).startswith(f"<ChatHandle cancelled after {handle.completion.chunks}")
        assert repr(handle).endswith(" s>")
        assert "\n" not in repr(handle)

        async def awaited() -> None:
            with pytest.raises(Cancelled, match="cancelled"):
                await handle
            with pytest.raises(Cancelled):
                async for _ in handle:
                    pass

        asyncio.run(awaited())
        wait_for(lambda: handle.view.status == "cancelled")
        requests = session.recorder.to_pandas()[1]
        assert requests["status"].tolist() == ["cancelled"]
    states = log.updates(handle.view.comm.comm_id)
    assert [s["status"] for s in states if "status" in s][-1] == "cancelled"


def test_cancelled_run_everywhere_says_cancelled() -> None:
    with record_comms() as log, glm_live.connect(hub=False, sim=SLOW_RUN) as session:
        handle = session.run("account-review", account="Globex", display=True)
        wait_for(lambda: any(a.status == "running" for a in handle.agents.values()))
        handle.cancel()
        with pytest.raises(Cancelled) as caught:
            handle.wait(10)
        assert caught.value.partial is handle.folded
        assert "run 'account-review' was cancelled" in str(caught.value)
        assert handle.status == "cancelled"
        assert handle.folded.status == "cancelled"
        assert repr(handle).startswith("<RunHandle account-review cancelled after ")
        assert handle.agents
        for agent in handle.agents.values():
            assert agent.status in ("cancelled", "done"), agent
            assert agent.finished_at is not None
        board = handle.view
        wait_for(lambda: board.status == "cancelled")
        wait_for(lambda: all(card["status"] != "running" for card in board.agents))
        for card in board.agents:
            assert card["status"] in ("cancelled", "done")
            assert card["finished"] is not None
        assert session.recorder.to_pandas()[1]["status"].tolist() == ["cancelled"]
    sent = [s for s in log.updates(board.comm.comm_id) if "agents" in s]
    assert sent[-1]["status"] == "cancelled"
    assert all(card["finished"] is not None for card in sent[-1]["agents"])


def test_a_run_whose_stream_is_cut_is_interrupted() -> None:
    with glm_live.connect(hub=False, sim=SLOW_RUN) as session:
        assert session.runtime is not None
        proxy = ChaosProxy(session.runtime.port)
        session.loop.run(proxy.start())
        url = f"http://127.0.0.1:{proxy.port}"
        try:
            with glm_live.connect(url, session.runtime.token, hub=False) as remote:
                handle = remote.run("account-review", display=False)
                wait_for(lambda: any(a.status == "running" for a in handle.agents.values()))
                session.loop.loop.call_soon_threadsafe(proxy.cut_all)
                with pytest.raises(glm_live.GlmLiveError):
                    handle.wait(15)
                assert handle.status == "interrupted"
                assert handle.folded.status == "interrupted"
                assert "interrupted after" in repr(handle)
                for agent in handle.agents.values():
                    assert agent.status in ("interrupted", "done"), agent
                    assert agent.finished_at is not None
                assert remote.recorder.to_pandas()[1]["status"].tolist() == ["interrupted"]
        finally:
            session.loop.run(proxy.stop())


def test_a_timeout_of_the_awaiting_code_leaves_the_work_running() -> None:
    with glm_live.connect(hub=False) as session:
        handle = session.chat("x", display=False, sim={"ttft_ms": 1, "itl_ms": 5, "tokens": 60})

        async def impatient() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(handle, 0.05)

        asyncio.run(impatient())
        assert handle.wait(30).finish_reason == "stop"
        assert handle.status == "done"


# -- handles as values --------------------------------------------------------------------------


def test_repr_of_a_finished_chat_and_run() -> None:
    with glm_live.connect(hub=False) as session:
        chat = session.chat("x", sim=FAST, display=False)
        completion = chat.wait(30)
        assert repr(chat).startswith("<ChatHandle done after 13 chunks, ")
        assert repr(completion).startswith("<Completion finish_reason=stop, 12 tokens")
        run = session.run("account-review", display=False, sim={"ttft_ms": 1, "itl_ms": 1})
        state = run.wait(30)
        assert run.status == "done"
        assert state.status == "finished"
        assert repr(run).startswith("<RunHandle account-review done after ")
        assert repr(state).startswith("<RunState finished, 3 agents (3 done)")


# -- connect() reuses the process's embedded runtime ---------------------------------------------


def test_connect_reuses_the_runtime_and_the_last_close_stops_it() -> None:
    options = {"seed": 1515, "hub": False}
    first = glm_live.connect(**options)  # type: ignore[arg-type]
    second = glm_live.connect(**options)  # type: ignore[arg-type]
    other = glm_live.connect(hub=False, seed=1516)
    try:
        assert first.runtime is not None
        assert first.runtime is second.runtime
        assert first.url == second.url != other.url
        assert first.embedded is first.runtime  # the earlier name
        url = first.url
        first.close()
        assert first.runtime is None
        assert second.chat("x", sim=FAST, display=False).wait(30).finish_reason == "stop"
        second.close()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health")
        assert httpx.get(other.url + "/health").status_code == 200
        third = glm_live.connect(**options)  # type: ignore[arg-type]
        assert third.url != url  # a new runtime once the last one stopped
        third.close()
    finally:
        for session in (first, second, other):
            session.close()


def test_register_serves_a_workflow_and_a_remote_session_says_why_it_cannot() -> None:
    flow = Workflow("hello-register")

    async def greeter(ctx: Any) -> str:
        return "hi"

    flow.add("greeter", greeter)
    with glm_live.connect(hub=False) as session:
        session.register(flow)
        assert session.run("hello-register", display=False).wait(30).result == {"greeter": "hi"}
        assert session.runtime is not None
        with glm_live.connect(session.url, session.runtime.token, hub=False) as remote:
            assert remote.runtime is None
            with pytest.raises(RuntimeError, match="embedded runtime") as caught:
                remote.register(flow)
            token = session.runtime.token
            assert token
            assert token not in str(caught.value)
            assert token not in repr(remote)
            assert token not in repr(session.runtime)


def test_allow_nested_loops_is_explicit_and_says_what_to_install(monkeypatch: Any) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "nest_asyncio", None)  # as if the extra were missing
    with pytest.raises(ImportError, match=r"glm_live\[nest\]"):
        glm_live.allow_nested_loops()


# -- the dashboard reads the recorder (needs the widget helper's MetricsDashboard.follow) ---------


def test_dashboard_counts_requests_made_before_the_panel_and_without_display() -> None:
    with record_comms(), glm_live.connect(hub=False) as session:
        for _ in range(3):
            session.chat("x", sim=FAST, display=False).wait(30)
        panel = session.panel()  # late: three requests already made, none displayed
        session.chat("x", sim=FAST, display=False).wait(30)
        session.chat("x", sim=FAST, display=True).wait(30)
        wait_for(lambda: panel.dashboard.summary.get("requests") == 5)


def test_a_runtime_closed_directly_is_replaced_not_reused() -> None:
    first = glm_live.connect(hub=False, seed=4242)
    runtime = first.runtime
    assert runtime is not None
    assert runtime.running
    runtime.close()
    assert not runtime.running
    second = glm_live.connect(hub=False, seed=4242)
    try:
        assert second.runtime is not None
        assert second.runtime is not runtime
        assert second.runtime.running
        completion = second.chat("hello", sim={"ttft_ms": 1, "itl_ms": 1, "tokens": 4}).wait(30)
        assert completion.finish_reason == "stop"
    finally:
        second.close()
        first.close()
