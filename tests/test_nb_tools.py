"""Frontend tools from the notebook: Python functions given to ``session.run(..., tools=...)``.

Their JSON schema from the signature; the RunState fold of ``TOOL_CALL_*`` and of a run that
ends calling the client's tools; the handle running them and continuing the thread (against a
scripted runtime, then the real one); a tool that raises, one the handle was not given, the
loop guard; the AgentBoard's tool lines.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any, Literal, Optional

import pytest
from ag_ui.core import (
    BaseEvent,
    RunAgentInput,
    RunFinishedEvent,
    RunStartedEvent,
    StateSnapshotEvent,
    SubagentFinishedEvent,
    SubagentStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

import glm_live
from glm_live.notebook.session import RunHandle, Session
from glm_live.notebook.tools import Tool, call_tool, tool, tool_schema, tools_of
from glm_live.notebook.widgets import AgentBoard, coalescer
from glm_live.protocols.agui import RunState, encode_event, tool_line, tool_messages
from glm_live.testing.comm_recorder import record_comms
from tests.byteserver import ByteServer, sse
from tests.test_nb_interrupts import fold

# -- the schema of a function ------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def show_chart(
    metric: Literal["revenue", "churn"],
    months: int = 12,
    title: Optional[str] = None,  # noqa: UP045 (the spelling users write, too)
    tags: list[str] | None = None,
    scale: float = 1.0,
    stacked: bool = False,
    color: Color = Color.RED,
    extra: dict[str, int] | None = None,
    anything: Any = None,
) -> str:
    """Draw a chart of an account metric
    over the last months.

    Not part of the description.
    """
    return "shown"


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    made = tool(show_chart)
    assert made.name == "show_chart"
    assert made.description == "Draw a chart of an account metric over the last months."
    assert made.parameters == {
        "type": "object",
        "properties": {
            "metric": {"type": "string", "enum": ["revenue", "churn"]},
            "months": {"type": "integer", "default": 12},
            "title": {"type": ["string", "null"], "default": None},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}, "default": None},
            "scale": {"type": "number", "default": 1.0},
            "stacked": {"type": "boolean", "default": False},
            "color": {"type": "string", "enum": ["red", "blue"]},
            "extra": {
                "type": ["object", "null"],
                "additionalProperties": {"type": "integer"},
                "default": None,
            },
            "anything": {"default": None},
        },
        "required": ["metric"],
    }
    assert made.wire() == {
        "name": "show_chart",
        "description": made.description,
        "parameters": made.parameters,
    }


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        (str, {"type": "string"}),
        (list, {"type": "array"}),
        (dict, {"type": "object"}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (
            int | str | None,
            {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]},
        ),
        (Literal[1, "a"], {"enum": [1, "a"]}),
        (Literal["a"] | None, {"type": ["string", "null"], "enum": ["a"]}),
        (Any, {}),
        (threading.Event, {}),  # no JSON word for it: any value, the function checks
    ],
)
def test_type_hints_map_to_json_schema(annotation: Any, schema: dict[str, Any]) -> None:
    def f(x):  # type: ignore[no-untyped-def]
        return x

    f.__annotations__ = {"x": annotation}
    assert tool_schema(f)["properties"]["x"] == schema


def test_no_required_args_and_skipped_parameters() -> None:
    def f(a, /, b=2, *args: int, c: str = "x", **kw: Any) -> None:  # type: ignore[no-untyped-def]
        """"""

    assert tool_schema(f) == {
        "type": "object",
        "properties": {"b": {"default": 2}, "c": {"type": "string", "default": "x"}},
    }
    assert tool(f).description == ""


def test_the_wrapper_gives_full_control_and_names_are_checked() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    made = glm_live.tool(
        lambda q: q, name="search", description="Search the CRM.", parameters=schema
    )
    assert (made.name, made.description, made.parameters) == ("search", "Search the CRM.", schema)
    with pytest.raises(ValueError, match="name=") as info:
        glm_live.tool(lambda q: q)
    assert "<lambda>" in str(info.value)
    with pytest.raises(TypeError, match="object schema"):
        tool(show_chart, parameters={"type": "string"})
    with pytest.raises(TypeError, match="a tool is a function"):
        tool(3)  # type: ignore[arg-type]
    by_name = tools_of({"chart": show_chart, "search": made})
    assert list(by_name) == ["chart", "search"]
    assert by_name["chart"].parameters == tool_schema(show_chart)
    with pytest.raises(ValueError, match="two tools are named 'show_chart'"):
        tools_of([show_chart, show_chart])
    assert tools_of(None) == {}
    assert isinstance(by_name["search"], Tool)


async def test_call_tool_runs_sync_in_a_thread_async_here_and_reports_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    here = threading.current_thread()
    seen: list[threading.Thread] = []

    def sync_one(n: int) -> dict[str, int]:
        seen.append(threading.current_thread())
        return {"n": n * 2}

    async def async_one(text: str) -> str:
        seen.append(threading.current_thread())
        return text.upper()

    assert await call_tool(tool(sync_one), '{"n": 2}') == ('{"n": 4}', False)
    assert await call_tool(tool(async_one), '{"text": "é"}') == ("É", False)
    assert seen[0] is not here
    assert seen[1] is here

    def broken() -> None:
        raise ValueError("no such account")

    with caplog.at_level(logging.WARNING, logger="glm_live.tools"):
        assert await call_tool(tool(broken), "") == (
            '{"error": "ValueError: no such account"}',
            True,
        )
    assert "broken" in caplog.text
    assert "no such account" in caplog.text
    content, error = await call_tool(tool(sync_one), '{"m": 1}')
    assert error
    assert json.loads(content)["error"].startswith("TypeError")
    content, error = await call_tool(tool(sync_one), "[1]")
    assert error
    assert "JSON object" in content
    content, error = await call_tool(tool(sync_one), "{nope")
    assert error
    assert "JSONDecodeError" in content


# -- the fold ----------------------------------------------------------------------------------


def calling(
    *calls: tuple[str, str, str], thread: str = "t1", run: str = "r1", parent: str = "m-a"
) -> list[BaseEvent]:
    """A run whose writer calls tools (id, name, arguments) and finishes without results."""
    events: list[BaseEvent] = [
        RunStartedEvent(threadId=thread, runId=run),
        StateSnapshotEvent(snapshot={"account": "Globex"}),
        SubagentStartedEvent(subagentRunId="sub-writer", name="writer"),
    ]
    for call_id, name, arguments in calls:
        half = len(arguments) // 2
        events += [
            ToolCallStartEvent(
                toolCallId=call_id,
                toolCallName=name,
                parentMessageId=parent,
                subagentRunId="sub-writer",
            ),
            ToolCallArgsEvent(toolCallId=call_id, delta=arguments[:half]),
            ToolCallArgsEvent(toolCallId=call_id, delta=arguments[half:]),
            ToolCallEndEvent(toolCallId=call_id),
        ]
    events.append(RunFinishedEvent(threadId=thread, runId=run))
    return events


def finishing(thread: str = "t1", run: str = "r2") -> list[BaseEvent]:
    """The continuation: the writer's report, success."""
    return [
        RunStartedEvent(threadId=thread, runId=run),
        TextMessageStartEvent(messageId="m1", role="assistant", name="writer"),
        TextMessageContentEvent(messageId="m1", delta="# Account review: Globex"),
        TextMessageEndEvent(messageId="m1"),
        SubagentFinishedEvent(subagentRunId="sub-writer"),
        RunFinishedEvent(threadId=thread, runId=run, result="# Account review: Globex"),
    ]


CHART = ("call-1", "show_chart", '{"metric": "revenue", "months": 6}')


def test_a_run_calling_the_clients_tools_waits_for_their_results() -> None:
    run = fold(calling(CHART), RunState(client_tools=frozenset({"show_chart"})))
    assert run.status == "running"  # the thread is not over: the client runs the tools
    assert not run.done
    (call,) = run.tool_requests
    assert run.tool_calls == [call]
    assert (call.id, call.name, call.agent, call.run_id) == ("call-1", "show_chart", "writer", "r1")
    assert call.args == {"metric": "revenue", "months": 6}
    assert call.ended
    assert call.client
    assert call.result is None
    assert run.agents["writer"].status == "running"
    assert "1 tool call" in repr(run)
    assert "show_chart(" in run._repr_html_()

    run.tool_result("call-1", "shown")
    run = fold(finishing(), run)
    assert run.status == "finished"
    assert run.tool_requests == []
    assert run.run_ids == ["r1", "r2"]
    assert run.agents["writer"].status == "done"
    assert run.tool_calls[0].result == "shown"
    assert run.result == "# Account review: Globex"


def test_calls_with_results_or_without_client_tools_end_the_run_as_before() -> None:
    backend = calling(CHART)
    backend.insert(
        -1, ToolCallResultEvent(messageId="x", toolCallId="call-1", content='{"ok": true}')
    )
    run = fold(backend, RunState(client_tools=frozenset({"show_chart"})))
    assert run.status == "finished"
    assert run.tool_requests == []
    assert run.tool_calls[0].result == '{"ok": true}'
    assert not run.tool_calls[0].client
    assert fold(calling(CHART)).status == "finished"  # the client offered no tools


def test_tool_messages_group_calls_by_their_assistant_message() -> None:
    run = fold(
        calling(CHART, ("call-2", "lookup", '{"q": "x"}')),
        RunState(client_tools=frozenset({"show_chart", "lookup"})),
    )
    run.tool_result("call-1", "shown")
    run.tool_result("call-2", '{"error": "boom"}', error=True)
    ids = iter(["tm-1", "tm-2"])
    assert tool_messages(run.tool_requests, lambda: next(ids)) == [
        {
            "id": "m-a",
            "role": "assistant",
            "toolCalls": [
                {
                    "id": "call-1",
                    "type": "function",
                    "function": {"name": "show_chart", "arguments": CHART[2]},
                },
                {
                    "id": "call-2",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                },
            ],
        },
        {"id": "tm-1", "role": "tool", "toolCallId": "call-1", "content": "shown"},
        {"id": "tm-2", "role": "tool", "toolCallId": "call-2", "content": '{"error": "boom"}'},
    ]
    assert tool_line(run.tool_calls[0]) == 'show_chart(metric="revenue", months=6) → shown'


# -- the board ---------------------------------------------------------------------------------


def test_the_board_shows_a_line_per_tool_call() -> None:
    run = fold(calling(CHART), RunState(client_tools=frozenset({"show_chart"})))
    with record_comms():
        board = AgentBoard(title="account-review")
        board.show(run)
        coalescer().flush(board)
        assert board.tools == [
            {
                "id": "call-1",
                "line": 'show_chart(metric="revenue", months=6) → …',
                "status": "running",
            }
        ]
        run.tool_result("call-1", '{"error": "ValueError: no"}', error=True)
        board.show(run)
        coalescer().flush(board)
        assert board.tools[0]["status"] == "error"
        assert board.tools[0]["line"].endswith('→ {"error": "ValueError: no"}')


# -- the handle, against a scripted runtime ----------------------------------------------------


def stream(events: list[BaseEvent]) -> Any:
    return sse(*(encode_event(e) for e in events))


@pytest.fixture
def session_on(server: ByteServer) -> Iterator[Session]:
    session = Session(server.url, hub=False)
    try:
        yield session
    finally:
        session.close()


async def test_the_handle_runs_sync_and_async_tools_and_continues_the_thread(
    server: ByteServer, session_on: Session
) -> None:
    threads: list[threading.Thread] = []

    def lookup(q: str) -> dict[str, Any]:
        """Look up an account."""
        threads.append(threading.current_thread())
        return {"account": q, "arr": 1.5}

    async def chart(metric: str, months: int = 12) -> str:
        """Draw a chart."""
        threads.append(threading.current_thread())
        await asyncio.sleep(0.01)
        return f"{metric} over {months} months"

    server.play(
        stream(calling(("call-1", "chart", '{"metric": "revenue", "months": 6}'))),
        stream(calling(("call-2", "lookup", '{"q": "Globex"}'), run="r2", parent="m-b")),
        stream(finishing(run="r3")),
    )
    run = session_on.run(
        "account-review", account="Globex", tools={"chart": chart, "lookup": lookup},
        display=False,
    )  # fmt: skip
    first_run = run.run_id
    state = await asyncio.wait_for(run, 10)
    assert run.status == "done"
    assert state.status == "finished"
    assert state.result == "# Account review: Globex"
    assert state.run_ids == ["r1", "r2", "r3"]
    assert [(c.name, c.result) for c in run.tool_calls] == [
        ("chart", "revenue over 6 months"),
        ("lookup", '{"account": "Globex", "arr": 1.5}'),
    ]
    assert threads[0] is session_on.loop.thread  # async: on the background loop
    assert threads[1] is not session_on.loop.thread  # sync: in a worker thread

    first, second, third = (r.json() for r in server.requests)
    for body in (first, second, third):
        RunAgentInput.model_validate(body)  # what the ag_ui types accept
        assert body["threadId"] == run.thread_id
        assert body["forwardedProps"] == first["forwardedProps"]
        assert body["tools"] == [tool(chart).wire(), tool(lookup).wire()]
    assert first["tools"][0]["parameters"]["required"] == ["metric"]
    assert first["runId"] == first_run
    assert "parentRunId" not in first
    assert len({first["runId"], second["runId"], third["runId"]}) == 3
    assert third["runId"] == run.run_id
    assert second["parentRunId"] == "r1"  # the run as the runtime named it
    assert "resume" not in second

    user = first["messages"]
    assert [m["role"] for m in user] == ["user"]
    assert second["messages"][:1] == user  # the user message as first sent
    assistant, result = second["messages"][1:]
    assert assistant == {
        "id": "m-a",
        "role": "assistant",
        "toolCalls": [
            {
                "id": "call-1",
                "type": "function",
                "function": {"name": "chart", "arguments": '{"metric": "revenue", "months": 6}'},
            }
        ],
    }
    assert result["role"] == "tool"
    assert result["toolCallId"] == "call-1"
    assert result["content"] == "revenue over 6 months"
    assert result["id"] not in ("m-a", user[0]["id"])
    assert second["state"] == {"account": "Globex"}
    # The second continuation carries the whole thread: both rounds.
    assert third["messages"][:3] == second["messages"]
    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "tool"] * 1 + [
        "assistant",
        "tool",
    ]
    assert third["messages"][4]["content"] == '{"account": "Globex", "arr": 1.5}'


async def test_a_tool_that_raises_sends_its_error_and_the_run_goes_on(
    server: ByteServer, session_on: Session, caplog: pytest.LogCaptureFixture
) -> None:
    def chart(metric: str) -> str:
        raise KeyError(metric)

    server.play(stream(calling(("call-1", "chart", '{"metric": "churn"}'))), stream(finishing()))
    with caplog.at_level(logging.WARNING, logger="glm_live.tools"):
        run = session_on.run("account-review", tools=[chart], display=False)
        state = await asyncio.wait_for(run, 10)
    assert state.status == "finished"
    (call,) = run.tool_calls
    assert call.error
    assert json.loads(call.result or "") == {"error": "KeyError: 'churn'"}
    assert server.requests[1].json()["messages"][-1]["content"] == call.result
    assert "chart" in caplog.text


async def test_a_call_to_a_tool_the_handle_lacks_ends_the_run_in_error(
    server: ByteServer, session_on: Session
) -> None:
    server.play(stream(calling(("call-1", "delete_account", "{}"))), stream(finishing()))
    run = session_on.run("account-review", tools=[show_chart], display=False)
    state = await asyncio.wait_for(run, 10)
    assert run.status == "error"
    assert state.status == "error"
    assert "'delete_account'" in (state.error or "")
    assert "'show_chart'" in (state.error or "")
    assert len(server.requests) == 1  # nothing continued
    assert state.agents["writer"].status == "error"


async def test_the_loop_guard_stops_a_model_that_keeps_calling_tools(
    server: ByteServer, session_on: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def chart(metric: str) -> str:
        calls.append(metric)
        return "again"

    monkeypatch.setattr(RunHandle, "max_tool_rounds", 3)
    server.play(stream(calling(("call-1", "chart", '{"metric": "arr"}'))))  # repeats forever
    run = session_on.run("account-review", tools=[chart], display=False)
    state = await asyncio.wait_for(run, 10)
    assert run.status == "error"
    assert "max_tool_rounds (3)" in (state.error or "")
    assert len(server.requests) == 4  # the run and 3 continuations
    assert calls == ["arr"] * 3


async def test_the_board_follows_the_tool_calls_of_a_handle(
    server: ByteServer, session_on: Session
) -> None:
    server.play(stream(calling(CHART)), stream(finishing()))
    run = session_on.run("account-review", tools=[show_chart], display=False)
    await asyncio.wait_for(run, 10)
    with record_comms():
        board = session_on._run_view(run)
        await asyncio.sleep(0.05)  # follow() attaches on the background loop
        coalescer().flush(board)
        assert board.status == "finished"
        assert board.tools == [
            {
                "id": "call-1",
                "line": 'show_chart(metric="revenue", months=6) → shown',
                "status": "done",
            }
        ]


async def test_cancelling_while_a_tool_runs_cancels_the_run(
    server: ByteServer, session_on: Session
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(metric: str) -> str:
        started.set()
        release.wait(5)
        return "late"

    server.play(stream(calling(("call-1", "slow", '{"metric": "arr"}'))), stream(finishing()))
    run = session_on.run("account-review", tools=[slow], display=False)
    assert await asyncio.to_thread(started.wait, 5)
    assert run.status == "running"
    run.cancel()
    with pytest.raises(glm_live.Cancelled):
        await asyncio.wait_for(run, 10)
    release.set()
    assert run.status == "cancelled"
    assert run.folded.status == "cancelled"
    assert len(server.requests) == 1  # the result was not sent


def test_tools_are_for_runs_the_runtime_serves(session_on: Session) -> None:
    from glm_live.agents.core import Workflow

    with pytest.raises(ValueError, match="not a Workflow run here"):
        session_on.run(Workflow("here"), tools=[show_chart], display=False)


# -- end to end, against the real runtime ------------------------------------------------------

FAST = {"ttft_ms": 1, "itl_ms": 1, "tokens": 12}


def test_account_review_calls_a_python_tool_and_finishes_with_its_result() -> None:
    seen: list[dict[str, Any]] = []

    def show_metric(metric: str, months: int = 12) -> dict[str, Any]:
        """Show a chart of an account metric in the notebook."""
        seen.append({"metric": metric, "months": months})
        return {"shown": True, "metric": metric}

    with glm_live.connect(hub=False, sim=FAST) as session:
        run = session.run(
            "account-review", account="Globex", tools=[show_metric], useTools=True, display=False
        )
        state = run.wait(60)
    assert run.status == "done", state.error
    assert seen, "the simulated model did not call the tool (useTools)"
    called = [c for c in state.tool_calls if c.name == "show_metric"]
    assert called
    assert all(c.client and c.result is not None for c in called)
    assert json.loads(called[0].result or "")["shown"] is True
    assert len(state.run_ids) >= 2  # the run, and the continuation with the result
    assert state.result
