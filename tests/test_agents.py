"""Workflows, AG-UI runs over SSE, sessions and their handles, against a real runtime."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ag_ui.core import PROTOCOL_VERSION

from glm_live import (
    AgentContext,
    Cancelled,
    GLMClient,
    Session,
    Workflow,
    WorkflowError,
    connect,
)
from glm_live.agents.core import Run
from glm_live.protocols.agui import RunState, event_dict, parse_event
from glm_live.wire.sse import Decoder
from tests.agui_checker import OrderingError, check_run

FAST = {"ttft_ms": 1, "itl_ms": 1}


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    with connect() as s:
        yield s


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# --- the ordering checker can fail -------------------------------------------------------------


STARTED = {"type": "RUN_STARTED", "threadId": "t", "runId": "r", "protocolVersion": "1.0"}
FINISHED = {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"}


@pytest.mark.parametrize(
    "events",
    [
        [{"type": "STEP_STARTED", "stepName": "a"}],
        [STARTED, {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "x"}],
        [STARTED, {"type": "TEXT_MESSAGE_START", "messageId": "m"}, FINISHED],
        [
            STARTED,
            {"type": "RUN_ERROR", "message": "x"},
            {"type": "STEP_STARTED", "stepName": "a"},
        ],
        [STARTED, {"type": "STEP_FINISHED", "stepName": "a"}],
        [STARTED, {"type": "STATE_DELTA", "delta": []}],
        [STARTED, {"type": "SUBAGENT_FINISHED", "subagentRunId": "s"}],
        [STARTED],
        # AG-UI 1.0: a run declares its protocol version ...
        [{"type": "RUN_STARTED", "threadId": "t", "runId": "r"}, FINISHED],
        # ... an activity delta needs its snapshot ...
        [
            STARTED,
            {"type": "ACTIVITY_DELTA", "messageId": "a", "activityType": "progress", "patch": []},
            FINISHED,
        ],
        # ... a cancelled run has no result ...
        [STARTED, {**FINISHED, "outcome": {"type": "cancelled"}, "result": 1}],
        # ... and what ag_ui.core does not accept is refused.
        [STARTED, {**FINISHED, "usage": [{"inputTokens": -1}]}],
    ],
)
def test_checker_rejects_broken_streams(events: list[dict[str, Any]]) -> None:
    with pytest.raises(OrderingError):
        check_run(events)


# --- the demo workflow on the runtime ---------------------------------------------------------


def test_account_review_over_ag_ui_sse(session: Session) -> None:
    body = {
        "threadId": "thread-1",
        "runId": "run-1",
        "state": {},
        "messages": [{"id": "m1", "role": "user", "content": "Review the Globex account"}],
        "tools": [],
        "context": [],
        "forwardedProps": {"inputs": {"account": "Globex"}, "sim": FAST},
    }
    decoder = Decoder()
    with httpx.stream(
        "POST",
        session.url + "/agents/account-review",
        json=body,
        headers={"accept": "text/event-stream", **session.auth_headers},
        timeout=60,
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(e.data) for p in r.iter_bytes() for e in decoder.feed(p)]
    check_run(events)
    order = kinds(events)
    assert order[:2] == ["RUN_STARTED", "STATE_SNAPSHOT"]
    assert order[-1] == "RUN_FINISHED"
    assert events[0]["runId"] == "run-1"
    assert events[0]["threadId"] == "thread-1"
    for kind in (
        "SUBAGENT_STARTED",
        "SUBAGENT_FINISHED",
        "STEP_STARTED",
        "STEP_FINISHED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "STATE_DELTA",
        "ACTIVITY_SNAPSHOT",
        "ACTIVITY_DELTA",
    ):
        assert kind in order, kind
    assert "CUSTOM" not in order  # progress is activity now: every event is a standard one
    started = {e["name"]: i for i, e in enumerate(events) if e["type"] == "SUBAGENT_STARTED"}
    runs = {e["subagentRunId"]: e["name"] for e in events if e["type"] == "SUBAGENT_STARTED"}
    finished = {
        runs[e["subagentRunId"]]: i
        for i, e in enumerate(events)
        if e["type"] == "SUBAGENT_FINISHED"
    }
    # data-analyzer and risk-assessor run in parallel; report-writer waits for both.
    assert started["risk-assessor"] < finished["data-analyzer"]
    assert started["data-analyzer"] < finished["risk-assessor"]
    assert started["report-writer"] > max(finished["data-analyzer"], finished["risk-assessor"])


def test_unknown_workflow_and_bad_input(session: Session) -> None:
    r = httpx.post(session.url + "/agents/nope", json={}, headers=session.auth_headers)
    assert r.status_code == 404
    assert "account-review" in r.json()["error"]["message"]
    r = httpx.post(
        session.url + "/agents/account-review", json={"runId": "x"}, headers=session.auth_headers
    )
    assert r.status_code == 400
    assert "RunAgentInput" in r.json()["error"]["message"]


async def test_session_run_handle_folds_state_agents_messages(session: Session) -> None:
    handle = session.run("account-review", account="Initech", sim=FAST)
    events = [event_dict(e) async for e in handle]
    result = await handle
    check_run(events)
    assert result is handle.folded
    assert handle.status == "done"
    assert handle.folded.status == "finished"
    assert handle.state["account"] == "Initech"
    # The level is Initech's own (its facts), no longer the same for every account.
    assert handle.state["risk"]["level"] in ("low", "medium", "high")
    assert handle.state["report"]["status"] == "done"
    assert set(handle.agents) == {"data-analyzer", "risk-assessor", "report-writer"}
    for status in handle.agents.values():
        assert status.status == "done"
        assert status.progress == 1.0
        assert status.elapsed is not None
        assert status.elapsed >= 0
    writers = [m for m in handle.messages if m["name"] == "report-writer"]
    assert writers
    assert writers[0]["content"]
    assert any(m["name"] == "orchestrator" for m in handle.messages)


def test_handle_wait_blocks_for_the_result(session: Session) -> None:
    handle = session.chat("Summarise the quarter", sim={**FAST, "tokens": 25})
    completion = handle.wait(timeout=30)
    assert completion.usage is not None
    assert completion.usage["completion_tokens"] == 25
    assert handle.done
    assert len(handle.items) == 26  # replayable after the fact
    with pytest.raises(TimeoutError):
        session.chat("x", sim={"ttft_ms": 5000, "itl_ms": 1}).wait(timeout=0.2)


async def test_chat_handle_iterates_and_awaits(session: Session) -> None:
    handle = session.chat("Analyse the data", sim={**FAST, "tokens": 15})
    text = "".join([c.content async for c in handle])
    completion = await handle
    assert text == completion.text
    assert completion.finish_reason == "stop"


async def test_run_events_and_agent_status_reach_the_hub(session: Session) -> None:
    from glm_live.transport.hub_client import Connection, Message

    assert session.embedded is not None
    async with Connection(session.url, token=session.embedded.token) as watcher:
        await watcher.join("agents")
        handle = session.run("account-review", account="Globex", sim=FAST)
        await handle
        await watcher.join(f"run:{handle.folded.run_id}", replay=True)
        replayed: list[Any] = []
        async for item in watcher.subscribe(f"run:{handle.folded.run_id}"):
            replayed.append(item.data)
            if item.data["type"] == "RUN_FINISHED":
                break
        statuses: list[Any] = []
        async for item in watcher.subscribe("agents"):
            assert isinstance(item, Message)
            statuses.append(item.data)
            if sum(1 for s in statuses if s["status"] == "done") == 3:
                break
    check_run(replayed)  # the hub room holds the whole run, replayable
    assert {s["agent"] for s in statuses} == {"data-analyzer", "risk-assessor", "report-writer"}
    assert any(s.get("progress") == 1.0 for s in statuses)


async def test_cancelled_run_stops_its_agents_on_the_server() -> None:
    with connect(sim={"ttft_ms": 5, "itl_ms": 40}) as session:
        assert session.embedded is not None
        runtime = session.embedded.runtime
        handle = session.run("account-review", account="Globex")
        async for event in handle:
            if event.type == "SUBAGENT_STARTED":
                break
        assert runtime.runs.runs  # the run is going on server-side
        handle.cancel()
        with pytest.raises(Cancelled):
            await handle
        deadline = time.monotonic() + 10
        while runtime.runs.runs or runtime.requests_in_flight:
            assert time.monotonic() < deadline, "the server kept running the cancelled run"
            await asyncio.sleep(0.05)
        # The server's own fold of the run (what GET /runs/{id} and the hub room saw): its
        # RUN_FINISHED says cancelled, and carries no result.
        folded = runtime.runs.states[handle.run_id][0]
        assert folded.status == "cancelled"
        assert folded.outcome == {"type": "cancelled"}
        assert folded.result is None


async def test_human_input_and_pause_reach_server_side_agents() -> None:
    flow = Workflow("ask")

    @flow.agent()
    async def asker(ctx: AgentContext) -> Any:
        await ctx.progress(0.5, "waiting for a person")
        answer = await ctx.receive(timeout=20)
        await ctx.progress(1.0, "got it")
        return answer["data"]

    with connect() as session:
        assert session.embedded is not None
        session.embedded.runtime.register(flow)
        await asyncio.wait_for(session.hub.wait_open(), 10)  # type: ignore[union-attr]
        handle = session.run("ask")
        async for event in handle:
            if event.type == "ACTIVITY_SNAPSHOT":
                break
        handle.control("pause", agent="asker")
        handle.control("resume", agent="asker")
        handle.control("input", agent="asker", data={"approved": True})
        async with asyncio.timeout(20):
            state = await handle
    assert state.result == {"asker": {"approved": True}}


async def test_local_workflow_sequence_parallel_dag_and_failure(session: Session) -> None:
    trace: list[str] = []
    flow = Workflow("local", initial_state={"log": []})

    async def worker(name: str, ctx: AgentContext) -> str:
        trace.append(f"start {name}")
        async with ctx.step("work"):
            await ctx.patch([{"op": "add", "path": "/log/-", "value": name}])
            await asyncio.sleep(0.05)
        trace.append(f"end {name}")
        return name.upper()

    flow.add("a", lambda ctx: worker("a", ctx))
    flow.add("b", lambda ctx: worker("b", ctx), after=["a"])
    flow.add("c", lambda ctx: worker("c", ctx), after=["a"])
    flow.add("d", lambda ctx: worker("d", ctx), after=["b", "c"])
    assert flow.order() == [["a"], ["b", "c"], ["d"]]
    handle = session.run(flow)
    events = [event_dict(e) async for e in handle]
    check_run(events)
    assert handle.folded.result == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert trace[:2] == ["start a", "end a"]
    assert set(trace[2:4]) == {"start b", "start c"}  # b and c in parallel
    assert trace[-2:] == ["start d", "end d"]
    assert sorted(handle.state["log"]) == ["a", "b", "c", "d"]

    broken = Workflow("broken")

    async def fails(ctx: AgentContext) -> None:
        async with ctx.step("doomed"):
            raise RuntimeError("disk on fire")

    broken.add("first", fails)
    broken.add("second", lambda ctx: worker("second", ctx), after=["first"])
    handle = session.run(broken)
    events = [event_dict(e) async for e in handle]
    check_run(events)
    assert events[-1]["type"] == "RUN_ERROR"
    assert "first" in events[-1]["message"]
    assert handle.agents["first"].status == "error"
    assert "disk on fire" in (handle.agents["first"].error or "")
    assert "second" not in handle.agents  # never started: what it needed failed


def test_ready_is_the_rule_behind_the_waves() -> None:
    flow = Workflow("w")

    async def nothing(ctx: AgentContext) -> None:
        return None

    flow.add("a", nothing)
    flow.add("b", nothing, after=["a"])
    flow.add("c", nothing, after=["a"])
    flow.add("d", nothing, after=["b"])
    assert flow.ready(["a", "b", "c", "d"], set()) == ["a"]
    # d needs only b: it may start while c is still running (no waiting for its wave).
    assert flow.ready(["c", "d"], {"a", "b"}) == ["c", "d"]
    assert flow.ready(["d", "c"], {"a"}) == ["c"]  # in the order given
    assert flow.order() == [["a"], ["b", "c"], ["d"]]


async def test_an_agent_starts_when_what_it_needs_is_done_not_its_wave(
    session: Session,
) -> None:
    trace: list[str] = []
    flow = Workflow("eager")
    slow_may_end = asyncio.Event()

    async def first(ctx: AgentContext) -> None:
        trace.append("first")

    async def slow(ctx: AgentContext) -> None:
        await asyncio.wait_for(slow_may_end.wait(), 10)
        trace.append("slow")

    async def eager(ctx: AgentContext) -> None:
        trace.append("eager")  # a wave after slow's, yet slow is still waiting for it
        slow_may_end.set()

    flow.add("first", first)
    flow.add("slow", slow, after=["first"])
    flow.add("quick", first, after=["first"])
    flow.add("eager", eager, after=["quick"])
    assert flow.order() == [["first"], ["slow", "quick"], ["eager"]]
    handle = session.run(flow, display=False)
    events = [event_dict(e) async for e in handle]
    check_run(events)
    assert handle.status == "done"
    assert handle.folded.status == "finished"
    assert trace == ["first", "first", "eager", "slow"]


async def test_cancelled_run_closes_every_step_of_its_agents() -> None:
    flow = Workflow("nested")

    async def sleeper(ctx: AgentContext) -> None:
        async with ctx.step("outer"), ctx.step("inner"):
            await ctx.progress(0.1, "sleeping")
            await asyncio.sleep(30)

    flow.add("sleeper", sleeper)
    client = GLMClient(base_url="http://127.0.0.1:9/v1", api_key="")  # never called
    run = Run(flow, client)
    events: list[dict[str, Any]] = []
    async for event in run.events():
        events.append(event_dict(event))
        if event.type == "ACTIVITY_SNAPSHOT":
            run.cancel()
    await client.aclose()
    check_run(events)  # nothing open at RUN_FINISHED
    tail = [(e["type"], e.get("stepName") or e.get("code")) for e in events[-4:]]
    assert tail == [
        ("STEP_FINISHED", "sleeper: inner"),
        ("STEP_FINISHED", "sleeper: outer"),
        ("SUBAGENT_ERROR", "cancelled"),
        ("RUN_FINISHED", None),
    ]
    assert events[-1]["outcome"]["type"] == "cancelled"
    assert run.finished


async def test_agents_message_each_other_and_not_strangers(session: Session) -> None:
    flow = Workflow("mail")

    async def sender(ctx: AgentContext) -> None:
        await ctx.send("reader", {"n": 1})

    async def reader(ctx: AgentContext) -> Any:
        return await ctx.receive(timeout=10)

    flow.add("sender", sender)
    flow.add("reader", reader)
    state = await session.run(flow, display=False)
    assert state.result == {"reader": {"from": "sender", "data": {"n": 1}}, "sender": None}

    lost = Workflow("lost")

    async def to_ghost(ctx: AgentContext) -> None:
        await ctx.send("ghost", 1)

    lost.add("writer", to_ghost)
    handle = session.run(lost, display=False)
    events = [event_dict(e) async for e in handle]
    check_run(events)
    error = next(e for e in events if e["type"] == "SUBAGENT_ERROR")
    assert error["code"] == "WorkflowError"
    assert "no agent 'ghost'" in error["message"]
    assert events[-1]["type"] == "RUN_ERROR"


def test_session_embedded_is_the_runtime_it_started() -> None:
    flow = Workflow("hello")

    async def greeter(ctx: AgentContext) -> str:
        return "hi"

    flow.add("greeter", greeter)
    # Options no other session of this process uses: a runtime of its own (see test_handles
    # for the sharing of one runtime by sessions with the same options).
    with connect(hub=False, seed=408) as session:
        embedded = session.embedded
        assert embedded is not None
        assert embedded.url == session.url
        assert httpx.URL(session.url).port == embedded.port
        embedded.runtime.register(flow)  # served at once by the runtime the session talks to
        assert session.run("hello", display=False).wait(30).result == {"greeter": "hi"}
        with connect(session.url, embedded.token, hub=False) as remote:
            assert remote.embedded is None  # connected by URL: no runtime of its own
            assert remote.run("hello", display=False).wait(30).result == {"greeter": "hi"}
        # Closing the remote session left the runtime running; closing its owner stops it.
        assert httpx.get(session.url + "/health").status_code == 200
    assert session.embedded is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(session.url + "/health")


def test_workflow_errors() -> None:
    flow = Workflow("w")

    async def nothing(ctx: AgentContext) -> None:
        return None

    flow.add("a", nothing, after=["b"])
    flow.add("b", nothing, after=["a"])
    with pytest.raises(WorkflowError, match="cycle"):
        flow.order()
    with pytest.raises(WorkflowError, match="already has"):
        flow.add("a", nothing)
    lonely = Workflow("x")
    lonely.add("a", nothing, after=["ghost"])
    with pytest.raises(WorkflowError, match="unknown agents"):
        lonely.order()


def test_run_status_endpoint_for_polling_clients(session: Session) -> None:
    handle = session.run("account-review", account="Globex", sim=FAST, display=False)
    state = handle.wait(60)
    r = httpx.get(f"{session.url}/runs/{state.run_id}", headers=session.auth_headers)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "finished"
    assert set(body["agents"]) == {"data-analyzer", "risk-assessor", "report-writer"}
    assert body["agents"]["report-writer"]["progress"] == 1.0
    assert body["state"]["report"]["status"] == "done"
    assert httpx.get(f"{session.url}/runs/nope", headers=session.auth_headers).status_code == 404


# --- AG-UI 1.0: the lifecycle, usage, activity ---------------------------------------------------


class _HalfCache:
    """A prefix cache that serves half of every prompt, so cached counts are not all zero."""

    def cached_tokens(self, request: Any, prompt_tokens: int) -> int:
        return prompt_tokens // 2


def _stream_run(session: Session, body: dict[str, Any]) -> list[dict[str, Any]]:
    decoder = Decoder()
    with httpx.stream(
        "POST",
        session.url + "/agents/account-review",
        json=body,
        headers={"accept": "text/event-stream", **session.auth_headers},
        timeout=60,
    ) as r:
        assert r.status_code == 200
        return [json.loads(e.data) for p in r.iter_bytes() for e in decoder.feed(p)]


def test_run_declares_its_protocol_and_reports_the_usage_the_model_reported(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.agui_checker import run_input

    assert session.embedded is not None
    simulator = session.embedded.runtime.simulator
    # What the model side reported for each chat: the simulator's own answers, recorded as
    # the runtime serves them (not the client's reading of them).
    reported: list[dict[str, Any]] = []
    answer = simulator.answer

    def recording(request: Any) -> Any:
        served = answer(request)
        reported.append(served.usage)
        return served

    monkeypatch.setattr(simulator, "answer", recording)
    monkeypatch.setattr(simulator, "prefix_cache", _HalfCache())
    events = _stream_run(session, run_input("usage-1", FAST))

    for event in events:
        parse_event(event)  # every event is one ag_ui.core accepts
    check_run(events)
    assert events[0]["type"] == "RUN_STARTED"
    assert events[0]["protocolVersion"] == PROTOCOL_VERSION == "1.0"
    end = events[-1]
    assert end["type"] == "RUN_FINISHED"
    assert end["outcome"] == {"type": "success"}
    assert set(end["result"]) == {"data-analyzer", "risk-assessor", "report-writer"}

    assert len(reported) == 3  # one chat per agent
    assert sum(u["prompt_tokens_details"]["cached_tokens"] for u in reported) > 0

    def total(*path: str) -> int:
        def get(u: dict[str, Any]) -> int:
            for key in path:
                u = u[key]
            return int(u)  # type: ignore[call-overload]

        return sum(get(u) for u in reported)

    [usage] = end["usage"]  # one model: one entry
    assert usage == {
        "model": "glm-4.6-sim",
        "inputTokens": total("prompt_tokens"),
        "outputTokens": total("completion_tokens"),
        "totalTokens": total("total_tokens"),
        "reasoningTokens": total("completion_tokens_details", "reasoning_tokens"),
        "cachedInputTokens": total("prompt_tokens_details", "cached_tokens"),
    }

    # The same stream, folded as a client does.
    folded = RunState()
    for event in events:
        folded.apply(event)
    assert folded.protocol_version == PROTOCOL_VERSION
    assert folded.outcome == {"type": "success"}
    assert folded.usage == end["usage"]


async def test_progress_is_activity_and_folds_into_the_agents(session: Session) -> None:
    handle = session.run("account-review", account="Globex", sim=FAST)
    events = [event_dict(e) async for e in handle]
    await handle
    check_run(events)
    assert not [e for e in events if e["type"] == "CUSTOM"]
    by_run = {e["subagentRunId"]: e["name"] for e in events if e["type"] == "SUBAGENT_STARTED"}
    activity = [e for e in events if e["type"].startswith("ACTIVITY_")]
    last: dict[str, dict[str, Any]] = {}
    for event in activity:
        agent = by_run[event["subagentRunId"]]  # attributed to the agent's invocation
        assert event["activityType"] == "progress"
        assert event["messageId"] == f"progress-{event['subagentRunId']}"
        if event["type"] == "ACTIVITY_SNAPSHOT":
            assert agent not in last  # one snapshot per agent, then deltas
            last[agent] = dict(event["content"])
        else:
            for op in event["patch"]:
                assert op["op"] == "replace"
                last[agent][op["path"].lstrip("/")] = op["value"]
    assert set(last) == set(handle.agents)
    for name, status in handle.agents.items():
        assert status.progress == last[name]["fraction"] == 1.0
        assert status.message == last[name]["message"]
        assert last[name]["agent"] == name


def test_run_state_folds_activity_and_the_custom_progress_of_older_runtimes() -> None:
    run = RunState()
    for event in (
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r", "protocolVersion": "1.0"},
        {"type": "SUBAGENT_STARTED", "subagentRunId": "s1", "name": "one"},
        {"type": "SUBAGENT_STARTED", "subagentRunId": "s2", "name": "two"},
        {"type": "SUBAGENT_STARTED", "subagentRunId": "s3", "name": "old"},
    ):
        run.apply(parse_event(event))
    one, two, old = run.agents["one"], run.agents["two"], run.agents["old"]

    def apply(event: dict[str, Any]) -> None:
        run.apply(parse_event(event))  # only events ag_ui.core accepts

    apply(
        {
            "type": "ACTIVITY_SNAPSHOT",
            "subagentRunId": "s1",
            "messageId": "p1",
            "activityType": "progress",
            "content": {"agent": "one", "fraction": 0.25, "message": "loading"},
        }
    )
    assert (one.progress, one.message) == (0.25, "loading")
    apply(
        {
            "type": "ACTIVITY_DELTA",
            "subagentRunId": "s1",
            "messageId": "p1",
            "activityType": "progress",
            "patch": [{"op": "replace", "path": "/fraction", "value": 0.5}],
        }
    )
    assert (one.progress, one.message) == (0.5, "loading")
    # Skipped, not fatal: a delta for an unknown message, a patch that does not apply.
    apply(
        {
            "type": "ACTIVITY_DELTA",
            "messageId": "nope",
            "activityType": "progress",
            "patch": [{"op": "replace", "path": "/fraction", "value": 0.9}],
        }
    )
    apply(
        {
            "type": "ACTIVITY_DELTA",
            "messageId": "p1",
            "activityType": "progress",
            "patch": [{"op": "replace", "path": "/missing", "value": 1}],
        }
    )
    assert (one.progress, run.patch_failures) == (0.5, 1)
    # replace: false leaves an existing activity as it stands.
    apply(
        {
            "type": "ACTIVITY_SNAPSHOT",
            "messageId": "p1",
            "activityType": "progress",
            "content": {"agent": "one", "fraction": 0.0, "message": "again"},
            "replace": False,
        }
    )
    assert (one.progress, one.message) == (0.5, "loading")
    # Unattributed: the content names the agent. Another activity type is not progress.
    apply(
        {
            "type": "ACTIVITY_SNAPSHOT",
            "messageId": "p2",
            "activityType": "progress",
            "content": {"agent": "two", "fraction": 0.75, "message": "scoring"},
        }
    )
    apply(
        {
            "type": "ACTIVITY_SNAPSHOT",
            "subagentRunId": "s2",
            "messageId": "w",
            "activityType": "web_search",
            "content": {"fraction": 0.0, "message": "searching"},
        }
    )
    assert (two.progress, two.message) == (0.75, "scoring")
    assert run.activities["w"] == {
        "activityType": "web_search",
        "content": {"fraction": 0.0, "message": "searching"},
    }
    # A runtime before AG-UI 1.0 sent CUSTOM progress: still folded.
    apply(
        {
            "type": "CUSTOM",
            "subagentRunId": "s3",
            "name": "progress",
            "value": {"agent": "old", "fraction": 0.5, "message": "half"},
        }
    )
    assert (old.progress, old.message) == (0.5, "half")
    apply(
        {
            "type": "RUN_FINISHED",
            "threadId": "t",
            "runId": "r",
            "outcome": {"type": "cancelled"},
            "usage": [{"model": "m", "inputTokens": 3, "outputTokens": 2, "totalTokens": 5}],
        }
    )
    assert run.status == "cancelled"
    assert run.protocol_version == "1.0"
    assert run.usage == [{"model": "m", "inputTokens": 3, "outputTokens": 2, "totalTokens": 5}]
    assert {a.status for a in run.agents.values()} == {"cancelled"}


async def test_cancelled_run_ends_cancelled_with_the_usage_of_its_finished_chats(
    session: Session,
) -> None:
    flow = Workflow("chat-then-wait")
    completions: list[Any] = []

    @flow.agent()
    async def talker(ctx: AgentContext) -> None:
        completions.append(
            await ctx.chat(
                "Summarise the quarter",
                thinking={"type": "enabled"},  # so that reasoning tokens are counted too
                sim={**FAST, "tokens": 20, "reasoning_tokens": 12},
            )
        )
        await ctx.progress(0.5, "waiting")
        await asyncio.sleep(30)

    run = Run(flow, session.client)  # the session's client: chats through its runtime
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        async for event in run.events():
            events.append(event_dict(event))
            if event.type == "ACTIVITY_SNAPSHOT":
                run.cancel()
    for event in events:
        parse_event(event)
    check_run(events)
    end = events[-1]
    assert end["type"] == "RUN_FINISHED"
    assert end["outcome"] == {"type": "cancelled"}
    assert "result" not in end
    [completion] = completions
    reported = completion.usage  # what the simulator's stream said, as the client read it
    assert reported["completion_tokens_details"]["reasoning_tokens"] == 12
    assert reported["completion_tokens"] == 20 + 12
    assert end["usage"] == [
        {
            "model": completion.model,
            "inputTokens": reported["prompt_tokens"],
            "outputTokens": reported["completion_tokens"],
            "totalTokens": reported["total_tokens"],
            "reasoningTokens": reported["completion_tokens_details"]["reasoning_tokens"],
            "cachedInputTokens": reported["prompt_tokens_details"]["cached_tokens"],
        }
    ]


# --- discovery: GET /agents ---------------------------------------------------------------------


def test_get_agents_lists_each_workflow_with_its_capabilities(session: Session) -> None:
    from ag_ui.core import AgentCapabilities

    flow = Workflow("lister", "Listed, never run.")
    flow.add("only", lambda ctx: asyncio.sleep(0), description="Does nothing.")
    assert session.embedded is not None
    session.embedded.runtime.register(flow)

    r = httpx.get(session.url + "/agents", headers=session.auth_headers)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["protocolVersion"] == PROTOCOL_VERSION
    assert "version" in body
    # CopilotKit's runtime-info shape: agents by id, each with its name and description.
    assert {"account-review", "lister"} <= set(body["agents"])
    review = body["agents"]["account-review"]
    assert review["name"] == "account-review"
    assert review["description"] == "Review a customer account: data, risk, report."
    assert review["url"] == session.url + "/agents/account-review"
    capabilities = AgentCapabilities.model_validate(review["capabilities"])  # AG-UI 1.0's shape
    assert capabilities.identity is not None
    assert capabilities.identity.name == "account-review"
    assert capabilities.transport is not None
    assert capabilities.transport.streaming is True
    assert capabilities.state is not None
    assert (capabilities.state.snapshots, capabilities.state.deltas) == (True, True)
    assert capabilities.multi_agent is not None
    subagents = capabilities.multi_agent.subagents or []
    assert [a.name for a in subagents] == ["data-analyzer", "risk-assessor", "report-writer"]
    assert all(a.description for a in subagents)
    assert capabilities.human_in_the_loop is not None
    assert capabilities.human_in_the_loop.interrupts is True  # ctx.ask: the interrupt outcome
    assert capabilities.custom == {"activityTypes": ["progress"]}
    # The wire is camelCase, as every AG-UI object.
    assert "multiAgent" in review["capabilities"]
    assert "humanInTheLoop" in review["capabilities"]
    lister = body["agents"]["lister"]
    assert lister["capabilities"]["multiAgent"]["subagents"] == [
        {"name": "only", "description": "Does nothing."}
    ]

    # One agent's entry, for a client that knows which one it wants.
    r = httpx.get(session.url + "/agents/account-review", headers=session.auth_headers)
    assert r.status_code == 200
    assert r.json() == {"protocolVersion": PROTOCOL_VERSION, **review}
    r = httpx.get(session.url + "/agents/nope", headers=session.auth_headers)
    assert r.status_code == 404
    assert "account-review" in r.json()["error"]["message"]


def test_get_agents_needs_a_token_as_every_route_but_health(session: Session) -> None:
    for path in ("/agents", "/agents/account-review"):
        r = httpx.get(session.url + path)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "1001"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = httpx.get(session.url + path, headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401
    # Any valid token may list, as any may start a run: a scoped one too.
    request = {"name": "lister-bob", "read": ["@lister-bob"], "write": [], "ttl_s": 60}
    r = httpx.post(session.url + "/auth/tokens", json=request, headers=session.auth_headers)
    assert r.status_code == 201, r.text
    bob = {"Authorization": f"Bearer {r.json()['token']}"}
    r = httpx.get(session.url + "/agents", headers=bob)
    assert r.status_code == 200
    assert "account-review" in r.json()["agents"]


async def test_usage_is_summed_per_model_and_reported_on_run_error_too() -> None:
    flow = Workflow("two-models")

    @flow.agent()
    async def first(ctx: AgentContext) -> None:
        # As AgentContext.chat does after each chat; here without a model to ask.
        ctx.run.count_usage(
            {
                "prompt_tokens": 10,
                "completion_tokens": 7,
                "total_tokens": 17,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
            "glm-4.6",
        )
        ctx.run.count_usage({"prompt_tokens": 5, "completion_tokens": 2}, "glm-4.6")
        ctx.run.count_usage({"prompt_tokens": 1, "completion_tokens": 1}, "glm-4.5-air")
        ctx.run.count_usage(None, "glm-4.6")  # a chat cut before its usage: nothing
        raise RuntimeError("boom")

    client = GLMClient(base_url="http://127.0.0.1:9/v1", api_key="")  # never called
    events = [event_dict(e) async for e in Run(flow, client).events()]
    await client.aclose()
    check_run(events)
    end = events[-1]
    assert end["type"] == "RUN_ERROR"
    assert end["usage"] == [
        {
            "model": "glm-4.6",
            "inputTokens": 15,
            "outputTokens": 9,
            "totalTokens": 24,
            "reasoningTokens": 3,  # the second call did not report any: it adds nothing
            "cachedInputTokens": 4,
        },
        {"model": "glm-4.5-air", "inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
    ]
