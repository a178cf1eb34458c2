"""Frontend tools, context and inputs over AG-UI 1.0, against a real runtime on loopback, raw
HTTP: a model that calls one of the client's tools ends the run with the call pending
(``TOOL_CALL_*``, no result, outcome ``success`` with ``pendingToolCallIds``); a run on the
same thread with the ``tool`` message continues the agent with the result. Every event is
parsed with :func:`glm_live.protocols.agui.parse_event` and the runs checked for order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from glm_live.agents.core import AgentContext, Run, Workflow
from glm_live.agents.interrupts import Questions, Suspended, tool_result_errors
from glm_live.protocols.agui import RunState
from glm_live.protocols.glm import GLMClient
from glm_live.server import ServerHandle, serve
from tests.test_agui_interrupts import post

FAST = {"ttft_ms": 1, "itl_ms": 1}
AGENTS = {"data-analyzer", "risk-assessor", "report-writer"}
SHOW_CHART = {
    "name": "show_chart",
    "description": "Show a chart of figures to the reader; returns what was shown.",
    "parameters": {
        "type": "object",
        "properties": {"title": {"type": "string"}, "points": {"type": "integer"}},
        "required": ["title"],
    },
}
NOTIFY = {
    "name": "notify",
    "description": "Notify the reader.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
}
CHART_RESULT = "chart-42 drawn for the reader"


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(sim=FAST) as handle:
        yield handle


def body(
    run_id: str,
    thread: str,
    messages: list[dict[str, Any]] | None = None,
    props: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "threadId": thread,
        "runId": run_id,
        "state": {},
        "messages": messages
        if messages is not None
        else [{"id": "u1", "role": "user", "content": "Review the Initech account"}],
        "tools": [],
        "context": [],
        "forwardedProps": {"sim": FAST, **(props or {})},
        **extra,
    }


def texts(events: list[dict[str, Any]]) -> dict[str, str]:
    """Each agent's text, by agent name (the subagent run that sent it)."""
    names = {e["subagentRunId"]: e["name"] for e in events if e["type"] == "SUBAGENT_STARTED"}
    by_message: dict[str, str] = {}
    owner: dict[str, str] = {}
    for e in events:
        if e["type"] == "TEXT_MESSAGE_START" and e.get("subagentRunId"):
            owner[e["messageId"]] = names[e["subagentRunId"]]
        elif e["type"] == "TEXT_MESSAGE_CONTENT" and e["messageId"] in owner:
            name = owner[e["messageId"]]
            by_message[name] = by_message.get(name, "") + e["delta"]
    return by_message


def tool_run(run_id: str, thread: str, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return body(run_id, thread, props={"useTools": True}, tools=tools or [SHOW_CHART, NOTIFY])


def called(runtime: ServerHandle, thread: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A first run on ``thread`` that calls ``show_chart``: its events and its tool call
    (``id``, ``name``, ``arguments``, ``parentMessageId``)."""
    status, events, error = post(runtime, tool_run(f"{thread}-1", thread))
    assert status == 200, error
    (start,) = [e for e in events if e["type"] == "TOOL_CALL_START" and e.get("parentMessageId")]
    args = "".join(
        e["delta"]
        for e in events
        if e["type"] == "TOOL_CALL_ARGS" and e["toolCallId"] == start["toolCallId"]
    )
    call = {
        "id": start["toolCallId"],
        "name": start["toolCallName"],
        "arguments": args,
        "parentMessageId": start["parentMessageId"],
    }
    return events, call


def continuation(
    run_id: str, thread: str, call: dict[str, Any], result: str | None = CHART_RESULT, **kw: Any
) -> dict[str, Any]:
    """The next run, as an AG-UI client sends it: the conversation, the assistant message with
    the call, and the tool's result."""
    messages = [
        {"id": "u1", "role": "user", "content": "Review the Initech account"},
        {
            "id": call["parentMessageId"],
            "role": "assistant",
            "toolCalls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
    ]
    if result is not None:
        messages.append(
            {
                "id": f"tool-{call['id']}",
                "role": "tool",
                "toolCallId": call["id"],
                "content": result,
            }
        )
    return body(run_id, thread, messages, props={"useTools": True}, **kw)


# --- a frontend tool call ends the run ------------------------------------------------------


def test_a_frontend_tool_call_ends_the_run_with_the_call_pending(runtime: ServerHandle) -> None:
    events, call = called(runtime, "fe")
    assert call["name"] == "show_chart"  # the one the writer's prompt names
    assert json.loads(call["arguments"])["title"]  # arguments from its JSON schema
    start = next(e for e in events if e.get("toolCallId") == call["id"])
    writer = next(
        e["subagentRunId"]
        for e in events
        if e["type"] == "SUBAGENT_STARTED" and e["name"] == "report-writer"
    )
    assert start["subagentRunId"] == writer
    kinds = [e["type"] for e in events if e.get("toolCallId") == call["id"]]
    assert kinds[0] == "TOOL_CALL_START"
    assert kinds[-1] == "TOOL_CALL_END"
    assert "TOOL_CALL_RESULT" not in kinds  # the client runs it: the server has no result
    # The analysts' own tool (risk_score) runs on the server, with its result.
    assert any(e["type"] == "TOOL_CALL_RESULT" for e in events)
    last = events[-1]
    assert last["type"] == "RUN_FINISHED"
    assert last["outcome"] == {"type": "success", "pendingToolCallIds": [call["id"]]}
    assert "result" not in last
    suspended = [e for e in events if e["type"] == "SUBAGENT_FINISHED" and e.get("outcome")]
    assert [e["subagentRunId"] for e in suspended] == [writer]
    assert suspended[0]["outcome"] == {"type": "suspended"}
    # Folded by a client that does not run the tool (and by the runtime's own record of the
    # run): it waits, it has not finished.
    folded = RunState()
    for event in events:
        folded.apply(event)
    assert folded.status == "waiting"
    assert folded.agents["report-writer"].status == "waiting"
    record = httpx.get(f"{runtime.url}/runs/fe-1", headers=runtime.headers, timeout=10)
    assert record.status_code == 200
    assert record.json()["status"] == "waiting"
    # Only the writer offers the client's tools; nobody without useTools.
    status, plain, _ = post(runtime, body("fe-plain", "fe-plain", tools=[SHOW_CHART]))
    assert status == 200
    assert not [e for e in plain if e["type"] == "TOOL_CALL_START" and "show" in e["toolCallName"]]
    assert plain[-1]["outcome"] == {"type": "success"}


def test_the_continuation_gives_the_agent_the_result(runtime: ServerHandle) -> None:
    first, call = called(runtime, "cont")
    writer_before = next(
        e["subagentRunId"]
        for e in first
        if e["type"] == "SUBAGENT_STARTED" and e["name"] == "report-writer"
    )
    status, events, error = post(runtime, continuation("cont-2", "cont", call))
    assert status == 200, error
    assert events[0]["runId"] == "cont-2"
    started = [e for e in events if e["type"] == "SUBAGENT_STARTED"]
    # Only the suspended agent runs again, under its invocation's id; the analysts are done.
    assert [(e["name"], e["subagentRunId"]) for e in started] == [("report-writer", writer_before)]
    report = texts(events)["report-writer"]
    assert CHART_RESULT in report  # the model got the tool's result, and used it
    assert "Initech" in report
    assert not [e for e in events if e["type"] == "TOOL_CALL_START"]  # the analysts are done
    last = events[-1]
    assert last["outcome"] == {"type": "success"}
    assert set(last["result"]) == AGENTS
    assert CHART_RESULT in last["result"]["report-writer"]
    snapshot = next(e for e in events if e["type"] == "MESSAGES_SNAPSHOT")["messages"]
    # The thread's messages, as a client folds them: each call in its assistant message, and
    # its result (the analysts' risk_score from the server, show_chart from the client).
    holder = next(m for m in snapshot if m["id"] == call["parentMessageId"])
    assert holder["role"] == "assistant"
    assert [c["id"] for c in holder["toolCalls"]] == [call["id"]]
    assert holder["toolCalls"][0]["function"] == {
        "name": "show_chart",
        "arguments": call["arguments"],
    }
    server_side = next(m for m in snapshot if m.get("toolCalls") and m is not holder)
    assert server_side["toolCalls"][0]["function"]["name"] == "risk_score"
    assert any(
        m["role"] == "tool" and m["toolCallId"] == server_side["toolCalls"][0]["id"]
        for m in snapshot
    )
    assert any(m["role"] == "tool" and m["toolCallId"] == call["id"] for m in snapshot)

    # The conversation goes on: the next run repeats it all, tool messages included.
    again = continuation("cont-3", "cont", call)
    again["messages"].append({"id": "u2", "role": "user", "content": "Review the Initech account"})
    again["forwardedProps"] = {"sim": FAST}
    status, events, error = post(runtime, again)
    assert status == 200, error
    assert {e["name"] for e in events if e["type"] == "SUBAGENT_STARTED"} == AGENTS


def test_bad_continuations_are_refused_before_the_run(runtime: ServerHandle) -> None:
    _, call = called(runtime, "bad")
    # Without the result: the call is still pending.
    status, _, error = post(runtime, continuation("bad-2", "bad", call, result=None))
    assert status == 409
    assert "waiting for the results" in error
    assert call["id"] in error
    # A run that forgets the conversation altogether is refused too.
    status, _, error = post(runtime, body("bad-2b", "bad"))
    assert status == 409, error
    assert call["id"] in error
    # A tool message for a call that is not pending.
    wrong = continuation("bad-3", "bad", call)
    wrong["messages"].append(
        {"id": "tool-x", "role": "tool", "toolCallId": "call_nobody", "content": "?"}
    )
    status, _, error = post(runtime, wrong)
    assert status == 422
    assert "call_nobody" in error
    assert "no frontend tool call with that id is pending" in error
    # Nothing changed: the right continuation still works, once.
    status, events, error = post(runtime, continuation("bad-4", "bad", call))
    assert status == 200, error
    assert events[-1]["outcome"] == {"type": "success"}
    # Results for a call that is no longer pending (the thread has nothing waiting).
    late = continuation("bad-5", "bad", call)
    late["messages"][-1]["id"] = "tool-again"
    late["messages"][-1]["toolCallId"] = "call_late"
    status, _, error = post(runtime, late)
    assert status == 409
    assert "no frontend tool call waiting" in error
    # A thread this runtime never saw, continued: refused, it has nothing to continue.
    status, _, error = post(runtime, continuation("bad-6", "never", call))
    assert status == 409
    assert "no frontend tool call waiting" in error


def test_a_custom_agent_chats_through_a_frontend_tool(runtime: ServerHandle) -> None:
    """Any workflow's ``ctx.chat`` offers the client's tools by default."""
    flow = Workflow("fe-custom")

    @flow.agent()
    async def helper(ctx: AgentContext) -> dict[str, Any]:
        completion = await ctx.chat("Call notify to tell the reader hello.", sim=FAST)
        return {"text": completion.text, "tools": [t["name"] for t in ctx.frontend_tools]}

    runtime.runtime.register(flow)
    first = body("cu-1", "cu", tools=[SHOW_CHART, NOTIFY])
    status, events, error = post(runtime, first, "fe-custom")
    assert status == 200, error
    (start,) = [e for e in events if e["type"] == "TOOL_CALL_START"]
    assert start["toolCallName"] == "notify"  # the one the prompt names
    assert events[-1]["outcome"]["pendingToolCallIds"] == [start["toolCallId"]]
    call = {
        "id": start["toolCallId"],
        "name": "notify",
        "arguments": "{}",
        "parentMessageId": start["parentMessageId"],
    }
    cont = continuation("cu-2", "cu", call, result="notified 3 readers")
    cont["tools"] = []  # the thread keeps the tools of the run that called them
    status, events, error = post(runtime, cont, "fe-custom")
    assert status == 200, error
    result = events[-1]["result"]["helper"]
    assert "notified 3 readers" in result["text"]
    assert result["tools"] == ["show_chart", "notify"]


# --- context and inputs -----------------------------------------------------------------------


def test_context_reaches_the_prompt(runtime: ServerHandle) -> None:
    flow = Workflow("fe-context")

    @flow.agent()
    async def echo(ctx: AgentContext) -> Any:
        return {
            "context": ctx.context,
            "messages": ctx.prompt_messages("hi"),
            "with_system": ctx.prompt_messages(
                [
                    {"role": "system", "content": "You review accounts."},
                    {"role": "user", "content": "hi"},
                ]
            ),
        }

    runtime.runtime.register(flow)
    context = [
        {"description": "The account open in the CRM", "value": "Initech"},
        {"description": "Reader", "value": "the sales lead"},
    ]
    status, events, error = post(runtime, body("cx-1", "cx", context=context), "fe-context")
    assert status == 200, error
    got = events[-1]["result"]["echo"]
    assert got["context"] == context
    system, user = got["messages"]
    assert system["role"] == "system"
    assert "- The account open in the CRM: Initech" in system["content"]
    assert "- Reader: the sales lead" in system["content"]
    assert user == {"role": "user", "content": "hi"}
    first = got["with_system"][0]
    assert first["content"].startswith("You review accounts.\n\nContext from the client:")
    assert len(got["with_system"]) == 2


async def test_chat_sends_the_context_and_the_tools_to_the_model() -> None:
    """What goes over the wire to GLM: the context in the system prompt, the client's tools as
    functions; an agent's own tools are offered alone unless it asks for the client's."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        chunk = {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}
        sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    flow = Workflow("wire")
    own = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}

    @flow.agent()
    async def talk(ctx: AgentContext) -> None:
        await ctx.chat("hello")
        await ctx.chat("again", tools=[own])
        await ctx.chat("both", tools=[own], frontend_tools=True)
        await ctx.chat("none", frontend_tools=False)

    async with GLMClient(
        base_url="http://glm.test", api_key="", transport=httpx.MockTransport(handler)
    ) as client:
        run = Run(flow, client, tools=[SHOW_CHART], context=[{"description": "d", "value": "v"}])
        await run.execute()
    assert [b["messages"][0] for b in bodies] == [
        {"role": "system", "content": "Context from the client:\n- d: v"}
    ] * 4
    assert [[t["function"]["name"] for t in b.get("tools", [])] for b in bodies] == [
        ["show_chart"],
        ["lookup"],
        ["lookup", "show_chart"],
        [],
    ]
    assert bodies[0]["tools"][0]["function"]["parameters"] == SHOW_CHART["parameters"]


def test_a_plain_client_reviews_the_account_its_message_names(runtime: ServerHandle) -> None:
    """No inputs, only a user message (a plain ``HttpAgent``): the account it names."""
    plain = body("acc-1", "acc", props={})
    plain["forwardedProps"] = {}
    status, events, error = post(runtime, plain)
    assert status == 200, error
    assert events[-1]["outcome"] == {"type": "success"}
    state = next(e for e in events if e["type"] == "STATE_SNAPSHOT")["snapshot"]
    deltas = [op for e in events if e["type"] == "STATE_DELTA" for op in e["delta"]]
    assert state["account"] is None
    assert {"op": "replace", "path": "/account", "value": "Initech"} in deltas
    by_agent = texts(events)
    assert set(by_agent) == AGENTS
    for name, text in by_agent.items():
        assert "Initech" in text, name
    assert "Initech" in events[-1]["result"]["report-writer"]


def test_inputs_come_from_forwarded_props_top_level(runtime: ServerHandle) -> None:
    messages = [{"id": "u1", "role": "user", "content": "Review the Globex account"}]
    status, events, error = post(runtime, body("top-1", "top", messages, {"account": "Initech"}))
    assert status == 200, error
    assert "Initech" in events[-1]["result"]["report-writer"]
    # forwardedProps.inputs wins over the top level.
    props = {"account": "Initech", "inputs": {"account": "Umbrella"}}
    status, events, error = post(runtime, body("top-2", "top2", messages, props))
    assert status == 200, error
    assert "Umbrella" in events[-1]["result"]["report-writer"]


# --- the bookkeeping ----------------------------------------------------------------------------


def test_tool_rounds_replay_by_chat_order() -> None:
    book = Questions()
    assert book.next_chat("a") == (0, [])
    assistant = {"role": "assistant", "content": "", "tool_calls": [{"id": "c1"}]}
    with pytest.raises(Suspended) as caught:
        book.call_tools("a", "sub-1", 1, assistant, [("c1", "show_chart")])
    assert caught.value.tool_call_ids == ["c1"]
    assert caught.value.interrupt is None
    assert book.calls == {"c1": {"agent": "a", "chat": 1, "name": "show_chart"}}
    assert book.called == ["c1"]
    assert tool_result_errors(book.calls, {}) == [
        "no tool message for the pending call(s) c1 (show_chart): send the assistant message "
        "with the calls and one tool message (role tool, toolCallId, content) each"
    ]
    assert tool_result_errors(book.calls, {"c1": "x", "c9": "y"}) == [
        "tool message for 'c9': no frontend tool call with that id is pending"
    ]
    again = Questions.from_json(json.loads(json.dumps(book.to_json())))
    again.deliver({"c1": "drawn"})
    assert again.calls == {}
    assert again.next_chat("a") == (0, [])
    n, rounds = again.next_chat("a")
    assert n == 1
    assert rounds == [{"assistant": assistant, "calls": ["c1"], "results": {"c1": "drawn"}}]


def test_an_approval_then_a_frontend_tool_on_one_thread(runtime: ServerHandle) -> None:
    """Both kinds of waiting in one review: the person approves, the writer calls the tool,
    the client's result comes back; the replay keeps the approval (asked once)."""
    first = tool_run("both-1", "both")
    first["forwardedProps"]["approval"] = True
    status, events, error = post(runtime, first)
    assert status == 200, error
    (interrupt,) = events[-1]["outcome"]["interrupts"]
    answer = {"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
    status, events, error = post(runtime, tool_run("both-2", "both") | {"resume": [answer]})
    assert status == 200, error
    (start,) = [e for e in events if e["type"] == "TOOL_CALL_START"]
    assert events[-1]["outcome"] == {"type": "success", "pendingToolCallIds": [start["toolCallId"]]}
    call = {
        "id": start["toolCallId"],
        "name": start["toolCallName"],
        "arguments": "{}",
        "parentMessageId": start["parentMessageId"],
    }
    status, events, error = post(runtime, continuation("both-3", "both", call))
    assert status == 200, error
    assert events[-1]["outcome"] == {"type": "success"}
    assert CHART_RESULT in events[-1]["result"]["report-writer"]
