"""A person answering a run (AG-UI 1.0 interrupts) from the notebook: the RunState fold and its
``waiting`` status, ``RunHandle.resume`` against a scripted runtime, and the AgentBoard's
questions and the message its buttons send."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from ag_ui.core import (
    BaseEvent,
    Interrupt,
    MessagesSnapshotEvent,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunStartedEvent,
    StateSnapshotEvent,
    SubagentFinishedEvent,
    SubagentStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
)

from glm_live.notebook.session import Session
from glm_live.notebook.widgets import AgentBoard, coalescer
from glm_live.protocols.agui import END_STATES, RunState, check_answer, encode_event
from glm_live.testing.comm_recorder import record_comms
from tests.byteserver import ByteServer, sse

APPROVAL = {
    "type": "object",
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
    "required": ["approved"],
}


def asking(thread: str = "t1", run: str = "r1") -> list[BaseEvent]:
    """A run whose writer asks for approval before its report."""
    outcome = RunFinishedInterruptOutcome(
        interrupts=[
            Interrupt(
                id="ask-1",
                reason="approval",
                message="Send the Globex report?",
                responseSchema=APPROVAL,
                expiresAt="2026-12-31T00:00:00Z",
                subagentRunId="sub-writer",
                metadata={"step": "report"},
            )
        ]
    )
    return [
        RunStartedEvent(threadId=thread, runId=run),
        StateSnapshotEvent(snapshot={"account": "Globex"}),
        SubagentStartedEvent(subagentRunId="sub-research", name="research"),
        SubagentFinishedEvent(subagentRunId="sub-research"),
        SubagentStartedEvent(subagentRunId="sub-writer", name="writer"),
        RunFinishedEvent(threadId=thread, runId=run, outcome=outcome),
    ]


def answering(thread: str = "t1", run: str = "r2") -> list[BaseEvent]:
    """The continuation: snapshots, the writer's report, success."""
    return [
        RunStartedEvent(threadId=thread, runId=run),
        MessagesSnapshotEvent(messages=[]),
        StateSnapshotEvent(snapshot={"account": "Globex", "approved": True}),
        TextMessageStartEvent(messageId="m1", role="assistant", name="writer"),
        TextMessageContentEvent(messageId="m1", delta="# Account review: Globex"),
        TextMessageEndEvent(messageId="m1"),
        SubagentFinishedEvent(subagentRunId="sub-writer"),
        RunFinishedEvent(threadId=thread, runId=run, result="# Account review: Globex"),
    ]


def fold(events: list[BaseEvent], run: RunState | None = None) -> RunState:
    run = run or RunState()
    for event in events:
        run.apply(event.model_dump(mode="json", by_alias=True, exclude_none=True))
    return run


# -- the fold ----------------------------------------------------------------------------------


def test_an_interrupt_outcome_folds_into_a_waiting_run_with_its_questions() -> None:
    run = fold(asking())
    assert run.status == "waiting"
    assert run.done
    assert run.waiting
    assert "waiting" in END_STATES
    (question,) = run.interrupts
    assert question.id == "ask-1"
    assert question.reason == "approval"
    assert question.message == "Send the Globex report?"
    assert question.response_schema == APPROVAL
    assert question.expires_at == "2026-12-31T00:00:00Z"
    assert question.agent == "writer"  # its subagentRunId is the writer's
    assert question.metadata == {"step": "report"}
    # The agent that asked waits; the one that had finished stays done, with its clock.
    assert run.agents["writer"].status == "waiting"
    assert run.agents["writer"].finished_at is not None
    assert run.agents["research"].status == "done"
    assert run.result is None
    assert "1 question for a person" in repr(run)
    assert "Send the Globex report?" in run._repr_html_()
    # A waiting run ends once, as every run does: a lost stream afterwards changes nothing.
    assert run.end("interrupted", "gone") is False
    assert run.status == "waiting"


def test_the_continuation_reopens_the_waiting_run_and_finishes_it() -> None:
    run = fold(answering(), fold(asking()))
    assert run.status == "finished"
    assert run.interrupts == []
    assert run.run_id == "r2"
    assert run.run_ids == ["r1", "r2"]
    assert run.agents["writer"].status == "done"
    assert run.state == {"account": "Globex", "approved": True}
    assert run.result == "# Account review: Globex"
    assert run.outcome is None


def test_a_continuation_may_ask_again() -> None:
    run = fold(asking(run="r2"), fold(asking()))
    assert run.status == "waiting"
    assert [i.id for i in run.interrupts] == ["ask-1"]
    assert run.run_ids == ["r1", "r2"]


def test_only_waiting_reopens_other_end_states_keep_their_meaning() -> None:
    cancelled = fold(
        [
            RunStartedEvent(threadId="t", runId="r"),
            RunFinishedEvent(threadId="t", runId="r", outcome={"type": "cancelled"}),
        ]
    )
    assert cancelled.status == "cancelled"
    assert cancelled.interrupts == []
    lost = fold([RunStartedEvent(threadId="t", runId="r")])
    lost.end("interrupted")
    assert lost.status == "interrupted"
    assert not lost.waiting
    with pytest.raises(ValueError, match="waiting"):
        RunState().end("paused")


@pytest.mark.parametrize(
    ("answer", "schema", "problems"),
    [
        ({"approved": True}, APPROVAL, []),
        ({"approved": False, "note": "not yet"}, APPROVAL, []),
        ({"note": "x"}, APPROVAL, ["missing required 'approved'"]),
        ({"approved": "yes"}, APPROVAL, ["'approved' must be of type boolean, not str"]),
        ("yes", APPROVAL, ["the answer must be of type object, not str"]),
        ("anything", None, []),
        (3, {"type": "integer"}, []),
        (True, {"type": "number"}, ["the answer must be of type number, not bool"]),
        (
            {"size": "L"},
            {"properties": {"size": {"enum": ["S", "M"]}}},
            ["'size' must be one of ['S', 'M']"],
        ),
        (
            {"size": "L"},
            {"type": "object", "properties": {"size": {"type": "string", "enum": ["S", "M"]}}},
            ["'size' must be one of ['S', 'M']"],
        ),
    ],
)
def test_answers_are_checked_against_the_response_schema(
    answer: Any, schema: dict[str, Any] | None, problems: list[str]
) -> None:
    assert check_answer(answer, schema) == problems


# -- the board ---------------------------------------------------------------------------------


def test_the_board_shows_the_questions_and_its_answer_calls_back() -> None:
    calls: list[tuple[str, Any, bool]] = []
    run = fold(asking())
    with record_comms():
        board = AgentBoard(title="account-review", on_answer=lambda *a: calls.append(a))
        board.show(run)
        coalescer().flush(board)
        assert board.status == "waiting"
        (shown,) = board.interrupts
        assert shown == {
            "id": "ask-1",
            "reason": "approval",
            "message": "Send the Globex report?",
            "agent": "writer",
            "schema": APPROVAL,
            "expires_at": "2026-12-31T00:00:00Z",
            "answered": "",
            "refused": "",
            "tries": 0,
        }
        # What the Approve button sends (model.send in agent_board.js), as ipywidgets
        # delivers it: {"method": "custom", "content": ...}.
        board._handle_msg(
            {
                "content": {
                    "data": {
                        "method": "custom",
                        "content": {
                            "type": "answer",
                            "id": "ask-1",
                            "status": "resolved",
                            "payload": {"approved": True, "note": "ship it"},
                        },
                    }
                },
                "buffers": [],
            }
        )
        assert calls == [("ask-1", {"approved": True, "note": "ship it"}, False)]
        assert board.interrupts[0]["answered"] == "approved — ship it"
        coalescer().flush(board)  # a value the coalescer held from before does not undo it
        assert board.interrupts[0]["answered"] == "approved — ship it"

        board._handle_custom_msg({"type": "answer", "id": "ask-1", "status": "cancelled"}, [])
        assert calls[-1] == ("ask-1", None, True)
        assert board.interrupts[0]["answered"] == "rejected"

        run = fold(answering(), run)  # the continuation clears the question
        board.show(run)
        coalescer().flush(board)
        assert board.interrupts == []
        assert board.status == "finished"
        assert board.report == "# Account review: Globex"


def test_a_refused_answer_shows_why_and_leaves_the_question_open() -> None:
    def refuse(interrupt_id: str, payload: Any, reject: bool) -> None:
        raise ValueError("missing required 'approved'")

    with record_comms():
        board = AgentBoard(on_answer=refuse)
        board.show(fold(asking()))
        coalescer().flush(board)
        for tries in (1, 2):  # the same refusal twice still redraws the controls
            board._handle_custom_msg(
                {"type": "answer", "id": "ask-1", "status": "resolved", "payload": {}}, []
            )
            (shown,) = board.interrupts
            assert shown["answered"] == ""
            assert shown["refused"] == "missing required 'approved'"
            assert shown["tries"] == tries
        board._handle_custom_msg({"type": "something else"}, [])  # ignored
        assert board.interrupts[0]["tries"] == 2


# -- the handle, against a scripted runtime ----------------------------------------------------


def stream(events: list[BaseEvent], *steps: float) -> Any:
    return sse(*(encode_event(e) for e in events), *steps)


@pytest.fixture
def session_on(server: ByteServer) -> Iterator[Session]:
    session = Session(server.url, hub=False)
    try:
        yield session
    finally:
        session.close()


async def test_resume_continues_the_same_handle_on_the_same_thread(
    server: ByteServer, session_on: Session
) -> None:
    run = session_on.run("account-review", account="Globex", approval=True, display=False)
    thread = run.thread_id
    # The continuation is slow to finish, so "already resumed" can be seen while it runs.
    server.play(stream(asking(thread, run.run_id)), sse(0.3, *_continuation(thread)))
    state = await asyncio.wait_for(run, 10)
    assert state.status == "waiting"
    assert run.status == "waiting"
    assert run.done
    (question,) = run.interrupts
    assert question.agent == "writer"
    assert "waiting for 1 answer" in repr(run)
    first = server.requests[0].json()
    assert first["forwardedProps"]["inputs"] == {"account": "Globex", "approval": True}
    assert first["forwardedProps"]["approval"] is True
    assert "resume" not in first

    with pytest.raises(ValueError, match="missing required 'approved'"):
        run.resume({"note": "x"})
    with pytest.raises(ValueError, match="'approved' must be of type boolean"):
        run.resume({"approved": "yes"})
    with pytest.raises(ValueError, match="is not asked"):
        run.resume({"approved": True}, interrupt_id="nope")
    assert run.status == "waiting"  # nothing was sent
    assert len(server.requests) == 1

    first_run = run.run_id
    assert run.resume({"approved": True, "note": "ok"}) is run
    assert run.status == "running"
    assert run.run_id != first_run
    with pytest.raises(RuntimeError, match="already resumed"):
        run.resume({"approved": True})
    state = await asyncio.wait_for(run, 10)
    assert state is run.folded
    assert run.status == "done"
    assert state.status == "finished"
    assert state.result == "# Account review: Globex"
    assert state.run_ids == [first_run, "continuation"]  # what the script echoes
    assert run.interrupts == []
    second = server.requests[1].json()
    assert second["threadId"] == thread
    assert second["runId"] == run.run_id
    assert second["parentRunId"] == first_run
    assert second["resume"] == [
        {"interruptId": "ask-1", "status": "resolved", "payload": {"approved": True, "note": "ok"}}
    ]
    assert second["messages"] == first["messages"]  # the same thread, the same question
    assert second["state"] == {"account": "Globex"}
    with pytest.raises(RuntimeError, match="ended 'done'"):
        run.resume({"approved": True})


def _continuation(thread: str) -> list[bytes]:
    # The runId of the continuation is the client's; the runtime echoes it. The scripted
    # server cannot know it in advance, and RunState takes RUN_STARTED's: any id will do.
    return [encode_event(e) for e in answering(thread, "continuation")]


async def test_the_board_answers_a_run_and_follows_its_continuation(
    server: ByteServer, session_on: Session
) -> None:
    run = session_on.run("account-review", account="Globex", approval=True, display=False)
    server.play(stream(asking(run.thread_id, run.run_id)), sse(*_continuation(run.thread_id)))
    await asyncio.wait_for(run, 10)
    with record_comms():
        board = session_on._run_view(run)
        await asyncio.sleep(0.05)  # follow() attaches on the background loop
        coalescer().flush(board)
        assert board.status == "waiting"
        assert [q["id"] for q in board.interrupts] == ["ask-1"]
        board._handle_custom_msg(
            {"type": "answer", "id": "ask-1", "status": "resolved", "payload": {"approved": True}},
            [],
        )
        assert board.interrupts[0]["answered"] == "approved"
        state = await asyncio.wait_for(run, 10)
        assert state.status == "finished"
        await asyncio.sleep(0.05)
        coalescer().flush(board)
        assert board.status == "finished"
        assert board.interrupts == []
        assert board.report == "# Account review: Globex"
    assert server.requests[1].json()["resume"][0]["payload"] == {"approved": True}


async def test_several_questions_are_answered_one_by_one_then_sent_together(
    server: ByteServer, session_on: Session
) -> None:
    run = session_on.run("triage", display=False)
    two = RunFinishedInterruptOutcome(
        interrupts=[
            Interrupt(id="a", reason="confirm", message="Delete?"),
            Interrupt(
                id="b",
                reason="choose",
                responseSchema={
                    "type": "object",
                    "properties": {"size": {"type": "string", "enum": ["S", "M"]}},
                },
            ),
        ]
    )
    events = [
        RunStartedEvent(threadId=run.thread_id, runId=run.run_id),
        RunFinishedEvent(threadId=run.thread_id, runId=run.run_id, outcome=two),
    ]
    server.play(stream(events), sse(*_continuation(run.thread_id)))
    await asyncio.wait_for(run, 10)
    assert [i.id for i in run.interrupts] == ["a", "b"]
    with pytest.raises(ValueError, match="2 questions wait"):
        run.resume("yes")
    with pytest.raises(ValueError, match="one of"):
        run.resume({"size": "L"}, interrupt_id="b")
    run.resume(reject=True, interrupt_id="a")
    assert run.status == "waiting"  # one answer is missing: nothing sent yet
    assert [i.id for i in run.interrupts] == ["b"]
    assert len(server.requests) == 1
    with pytest.raises(ValueError, match="was answered already"):
        run.resume("again", interrupt_id="a")
    run.resume(answers={"b": {"size": "M"}})
    state = await asyncio.wait_for(run, 10)
    assert state.status == "finished"
    assert server.requests[1].json()["resume"] == [
        {"interruptId": "a", "status": "cancelled"},
        {"interruptId": "b", "status": "resolved", "payload": {"size": "M"}},
    ]


async def test_nothing_to_resume(server: ByteServer, session_on: Session) -> None:
    run = session_on.run("account-review", display=False)
    server.play(stream(answering(run.thread_id, run.run_id)))
    state = await asyncio.wait_for(run, 10)
    assert state.status == "finished"
    assert run.interrupts == []
    with pytest.raises(RuntimeError, match="nothing to resume"):
        run.resume({"approved": True})
