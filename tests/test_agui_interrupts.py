"""People in the loop over AG-UI 1.0: ``ctx.ask`` ends a run with the interrupt outcome, a
run on the same thread with ``resume`` continues it; against a real runtime, raw HTTP."""

from __future__ import annotations

import asyncio
import datetime
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ag_ui.core import RunFinishedInterruptOutcome

from glm_live.agents.builtin import APPROVAL_SCHEMA
from glm_live.agents.core import AgentContext, Workflow
from glm_live.agents.interrupts import (
    Questions,
    Rejected,
    Suspended,
    resume_errors,
    schema_errors,
)
from glm_live.protocols.agui import RunState, event_dict, parse_event
from glm_live.server import RuntimeConfig, ServerHandle, serve
from glm_live.server.threads import MemoryThreadStore, ThreadRecord
from glm_live.wire.sse import Decoder
from tests.agui_checker import check_run, run_input

FAST = {"ttft_ms": 1, "itl_ms": 1}


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(sim=FAST) as handle:
        yield handle


def post(
    runtime: ServerHandle, body: dict[str, Any], workflow: str = "account-review"
) -> tuple[int, list[dict[str, Any]], str]:
    """POST a run; its status, and its events (each validated by ag_ui) or its error body."""
    decoder = Decoder()
    with httpx.stream(
        "POST",
        f"{runtime.url}/agents/{workflow}",
        json=body,
        headers={"accept": "text/event-stream", **runtime.headers},
        timeout=60,
    ) as r:
        if r.status_code != 200:
            return r.status_code, [], r.read().decode()
        events = [json.loads(e.data) for p in r.iter_bytes() for e in decoder.feed(p)]
    for event in events:
        # The wire JSON is exactly what the 1.0 types produce.
        assert event_dict(parse_event(event)) == event
    check_run(events)
    return 200, events, ""


def approval_run(run_id: str, thread: str, **extra: Any) -> dict[str, Any]:
    body = run_input(run_id, FAST, thread_id=thread)
    body["forwardedProps"]["approval"] = True
    body.update(extra)
    return body


def resume(run_id: str, thread: str, *entries: dict[str, Any]) -> dict[str, Any]:
    body = run_input(run_id, FAST, thread_id=thread)
    body["messages"] = []
    body["forwardedProps"] = {}
    body["resume"] = list(entries)
    return body


def started(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events if e["type"] == "SUBAGENT_STARTED"]


def interrupted(runtime: ServerHandle, thread: str) -> dict[str, Any]:
    """Start an approval run on ``thread``; its one interrupt."""
    status, events, _ = post(runtime, approval_run(f"{thread}-1", thread))
    assert status == 200
    outcome = events[-1]["outcome"]
    assert outcome["type"] == "interrupt"
    (interrupt,) = outcome["interrupts"]
    return interrupt  # type: ignore[no-any-return]


# --- the builtin account-review asks for approval ---------------------------------------------


def test_approval_run_ends_with_the_interrupt_outcome(runtime: ServerHandle) -> None:
    status, events, _ = post(runtime, approval_run("ap-1", "ap"))
    assert status == 200
    last = events[-1]
    assert last["type"] == "RUN_FINISHED"
    outcome = RunFinishedInterruptOutcome.model_validate(last["outcome"])
    (interrupt,) = outcome.interrupts
    assert interrupt.reason == "approval"
    assert interrupt.response_schema == APPROVAL_SCHEMA
    assert "Globex" in (interrupt.message or "")
    writer = next(
        e["subagentRunId"]
        for e in events
        if e["type"] == "SUBAGENT_STARTED" and e["name"] == "report-writer"
    )
    assert interrupt.subagent_run_id == writer
    suspended = [e for e in events if e["type"] == "SUBAGENT_FINISHED" and e.get("outcome")]
    assert suspended[0]["outcome"] == {"type": "suspended", "interruptIds": [interrupt.id]}
    # No result: AG-UI 1.0 gives one to a success only (the thread keeps the analysts' results).
    assert "result" not in last
    # Folded as a client sees it: the writer waits for a person, the analysts are done.
    folded = RunState()
    for event in events:
        folded.apply(event)
    assert folded.status == "waiting"
    assert folded.agents["report-writer"].status == "waiting"
    assert folded.agents["data-analyzer"].status == "done"
    assert [q.id for q in folded.interrupts] == [interrupt.id]


def test_resume_approved_writes_the_report_without_running_the_analysts_again(
    runtime: ServerHandle,
) -> None:
    interrupt = interrupted(runtime, "yes")
    answer = {"interruptId": interrupt["id"], "status": "resolved"}
    answer["payload"] = {"approved": True, "note": "ship it"}
    status, events, _ = post(runtime, resume("yes-2", "yes", answer))
    assert status == 200
    assert [e["type"] for e in events[:3]] == [
        "RUN_STARTED",
        "STATE_SNAPSHOT",
        "MESSAGES_SNAPSHOT",
    ]
    # The thread's messages: the user's, and what the interrupted run wrote.
    messages = events[2]["messages"]
    assert messages[0] == {"id": "m1", "role": "user", "content": "Review the Globex account"}
    assert any(m.get("name") == "data-analyzer" for m in messages)
    # The state the interrupted run left: the analysts' work.
    assert events[1]["snapshot"]["analysis"]["status"] == "done"
    assert started(events) == ["report-writer"]  # the analysts are not run again
    last = events[-1]
    assert last["type"] == "RUN_FINISHED"
    assert last.get("outcome", {"type": "success"})["type"] == "success"
    assert set(last["result"]) == {"data-analyzer", "risk-assessor", "report-writer"}
    assert "Globex" in last["result"]["report-writer"]
    # The thread is no longer waiting: the same answer again is refused.
    status, _, error = post(runtime, resume("yes-3", "yes", answer))
    assert status == 409
    assert "nothing to resume" in error


@pytest.mark.parametrize(
    "entry",
    [
        {"status": "cancelled"},
        {"status": "resolved", "payload": {"approved": False, "note": "numbers look off"}},
    ],
)
def test_resume_declined_finishes_without_the_report(
    runtime: ServerHandle, entry: dict[str, Any]
) -> None:
    thread = f"no-{entry['status']}"
    interrupt = interrupted(runtime, thread)
    status, events, _ = post(
        runtime, resume(f"{thread}-2", thread, {"interruptId": interrupt["id"], **entry})
    )
    assert status == 200
    assert started(events) == ["report-writer"]
    last = events[-1]
    assert last["type"] == "RUN_FINISHED"
    assert last.get("outcome", {"type": "success"})["type"] == "success"
    said = last["result"]["report-writer"]
    assert said.startswith("Report not written")
    if entry["status"] == "resolved":
        assert "numbers look off" in said
    # No report was drafted: the writer made no chat (no TEXT_MESSAGE from a GLM answer).
    assert not any(e["type"] == "STEP_STARTED" and "write report" in e["stepName"] for e in events)


# --- resumes that cannot be taken -------------------------------------------------------------


def test_bad_resumes_are_refused_before_the_run_and_change_nothing(
    runtime: ServerHandle,
) -> None:
    interrupt = interrupted(runtime, "bad")
    iid = interrupt["id"]
    cases: list[tuple[list[dict[str, Any]], int, str]] = [
        ([{"interruptId": "ask-nope", "status": "resolved"}], 422, "not one this thread"),
        (
            [{"interruptId": iid, "status": "resolved", "payload": {"approved": "yes"}}],
            422,
            "payload.approved must be of type boolean",
        ),
        (
            [{"interruptId": iid, "status": "resolved", "payload": {"note": "x"}}],
            422,
            "lacks the required property 'approved'",
        ),
        (
            [{"interruptId": iid, "status": "cancelled"}] * 2,
            422,
            "answered twice",
        ),
    ]
    for n, (entries, code, why) in enumerate(cases):
        status, _, error = post(runtime, resume(f"bad-r{n}", "bad", *entries))
        assert status == code, error
        body = json.loads(error)["error"]
        assert why in body["message"]
        assert iid in body["message"]  # what the thread still waits for
    # A run without resume on a waiting thread: omission is not abandonment.
    status, _, error = post(runtime, run_input("bad-fresh", FAST, thread_id="bad"))
    assert status == 409
    assert "waiting for answers" in error
    # The wrong workflow.
    flow = Workflow("other")
    flow.add("noop", _noop)
    runtime.runtime.register(flow)
    answer = {"interruptId": iid, "status": "cancelled"}
    status, _, error = post(runtime, resume("bad-wf", "bad", answer), "other")
    assert status == 409
    assert "POST /agents/account-review" in error
    # Nothing was lost: the right answer still works.
    answer = {"interruptId": iid, "status": "resolved", "payload": {"approved": True}}
    status, events, _ = post(runtime, resume("bad-ok", "bad", answer))
    assert status == 200
    assert "report-writer" in events[-1]["result"]


def test_a_resume_on_a_thread_with_nothing_pending_is_refused(runtime: ServerHandle) -> None:
    entry = {"interruptId": "ask-x", "status": "resolved", "payload": {}}
    status, _, error = post(runtime, resume("none-1", "never-seen", entry))
    assert status == 409
    assert "no interrupted run" in error


def test_threads_are_per_identity(runtime: ServerHandle) -> None:
    interrupt = interrupted(runtime, "mine")
    token = runtime.issue_token("stranger")
    entry = {"interruptId": interrupt["id"], "status": "resolved", "payload": {"approved": True}}
    r = httpx.post(
        f"{runtime.url}/agents/account-review",
        json=resume("mine-stranger", "mine", entry),
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 409, r.text  # a stranger has no such thread
    assert "no interrupted run" in r.text


# --- a custom workflow: a sub-agent asks, with a timeout --------------------------------------


async def _noop(ctx: AgentContext) -> str:
    return "ok"


def asking_flow(counts: dict[str, int]) -> Workflow:
    flow = Workflow("asking")

    @flow.agent()
    async def gather(ctx: AgentContext) -> str:
        counts["gather"] = counts.get("gather", 0) + 1
        return "facts"

    @flow.agent(after=["gather"])
    async def decide(ctx: AgentContext) -> Any:
        counts["decide"] = counts.get("decide", 0) + 1
        async with ctx.step("pick"):
            colour = await ctx.ask(
                "Which colour?",
                schema={"type": "string", "enum": ["red", "blue"]},
                timeout=600,
            )
        try:
            size = await ctx.ask("Which size?", schema={"type": "integer"}, timeout=0.01)
        except Rejected:
            size = None
        return {"colour": colour, "size": size, "facts": ctx.results["gather"]}

    @flow.agent()
    async def bystander(ctx: AgentContext) -> str:
        counts["bystander"] = counts.get("bystander", 0) + 1
        return "idle"

    return flow


def test_a_sub_agent_asks_twice_and_is_replayed(runtime: ServerHandle) -> None:
    counts: dict[str, int] = {}
    runtime.runtime.register(asking_flow(counts))
    body = run_input("ask-1", FAST, thread_id="ask")
    status, events, _ = post(runtime, body, "asking")
    assert status == 200
    (first,) = events[-1]["outcome"]["interrupts"]
    assert first["reason"] == "input_required"
    assert first["message"] == "Which colour?"
    assert first["responseSchema"] == {"type": "string", "enum": ["red", "blue"]}
    expires = datetime.datetime.fromisoformat(first["expiresAt"].replace("Z", "+00:00"))
    assert expires > datetime.datetime.now(datetime.UTC)
    decide = next(e for e in events if e["type"] == "SUBAGENT_STARTED" and e["name"] == "decide")
    assert first["subagentRunId"] == decide["subagentRunId"]
    assert counts == {"gather": 1, "decide": 1, "bystander": 1}

    status, _, error = post(
        runtime,
        resume("ask-bad", "ask", {"interruptId": first["id"], "status": "resolved", "payload": 1}),
        "asking",
    )
    assert status == 422
    assert "must be of type string" in error
    entry = {"interruptId": first["id"], "status": "resolved", "payload": "blue"}
    status, events, _ = post(runtime, resume("ask-2", "ask", entry), "asking")
    assert status == 200
    # The replayed agent got its first answer and asked its second question.
    (second,) = events[-1]["outcome"]["interrupts"]
    assert second["message"] == "Which size?"
    assert second["id"] != first["id"]
    # The suspended invocation is continued under its id (AG-UI allows it in a later run).
    (again,) = [e for e in events if e["type"] == "SUBAGENT_STARTED"]
    assert again["subagentRunId"] == second["subagentRunId"] == first["subagentRunId"]
    assert counts == {"gather": 1, "decide": 2, "bystander": 1}
    # The second question expired at once: it can only be abandoned now.
    late = {"interruptId": second["id"], "status": "resolved", "payload": 3}
    status, _, error = post(runtime, resume("ask-late", "ask", late), "asking")
    assert status == 422
    assert "expired" in error
    gone = {"interruptId": second["id"], "status": "cancelled"}
    status, events, _ = post(runtime, resume("ask-3", "ask", gone), "asking")
    assert status == 200
    assert started(events) == ["decide"]
    assert events[-1]["result"]["decide"] == {"colour": "blue", "size": None, "facts": "facts"}
    assert counts == {"gather": 1, "decide": 3, "bystander": 1}


def test_parallel_agents_ask_together_and_every_question_needs_an_entry(
    runtime: ServerHandle,
) -> None:
    flow = Workflow("two-askers")

    async def asker(ctx: AgentContext) -> Any:
        return await ctx.ask(f"{ctx.name}: go?", reason="confirm")

    flow.add("left", asker)
    flow.add("right", asker)
    flow.add("after", _noop, after=["left", "right"])
    runtime.runtime.register(flow)
    status, events, _ = post(runtime, run_input("two-1", FAST, thread_id="two"), "two-askers")
    assert status == 200
    interrupts = events[-1]["outcome"]["interrupts"]
    assert sorted(i["message"] for i in interrupts) == ["left: go?", "right: go?"]
    assert {i["reason"] for i in interrupts} == {"confirm"}
    assert all("expiresAt" in i for i in interrupts)  # as long as the runtime keeps the thread
    assert "after" not in started(events)
    ids = {i["message"].split(":")[0]: i["id"] for i in interrupts}
    one = {"interruptId": ids["left"], "status": "resolved", "payload": "L"}
    status, _, error = post(runtime, resume("two-half", "two", one), "two-askers")
    assert status == 422
    assert f"no answer for interrupt(s) {ids['right']}" in error
    other = {"interruptId": ids["right"], "status": "resolved", "payload": "R"}
    status, events, _ = post(runtime, resume("two-2", "two", one, other), "two-askers")
    assert status == 200
    assert sorted(started(events)) == ["after", "left", "right"]
    assert events[-1]["result"] == {"left": "L", "right": "R", "after": "ok"}


def test_thread_limits_are_checked_in_the_config() -> None:
    from glm_live.server import ConfigError

    with pytest.raises(ConfigError, match="threads_max"):
        RuntimeConfig(threads_max=0)
    with pytest.raises(ConfigError, match="threads_ttl_s"):
        RuntimeConfig(threads_ttl_s=-1)


# --- the pieces, without a runtime ------------------------------------------------------------


async def test_memory_thread_store_is_bounded_and_expires() -> None:
    now = [0.0]
    store = MemoryThreadStore(max_threads=2, ttl_s=10, clock=lambda: now[0])
    for key in ("a", "b"):
        await store.put(key, ThreadRecord("w", key))
    assert await store.get("a") is not None  # a is now the most recently used
    await store.put("c", ThreadRecord("w", "c"))
    assert await store.get("b") is None  # the least recently used went
    assert len(store) == 2
    now[0] = 9.0
    assert await store.get("c") is not None  # touched at 9: lives until 19
    now[0] = 15.0
    assert await store.get("a") is None  # last touched at 0: expired
    assert await store.get("c") is not None
    record = await store.get("c")
    assert record is not None
    record.state = {"changed": True}
    assert (await store.get("c")).state is None  # type: ignore[union-attr]
    await store.delete("c")
    assert len(store) == 0


def test_schema_errors_cover_the_small_subset() -> None:
    assert schema_errors({"approved": True}, APPROVAL_SCHEMA) == []
    assert schema_errors({"approved": 1}, APPROVAL_SCHEMA) == [
        "payload.approved must be of type boolean, got integer"
    ]
    assert schema_errors(True, {"type": "integer"}) == [
        "payload must be of type integer, got boolean"
    ]
    assert schema_errors(2.5, {"type": ["number", "null"]}) == []
    assert schema_errors([1, "x"], {"type": "array", "items": {"type": "integer"}}) == [
        "payload[1] must be of type integer, got string"
    ]
    assert schema_errors("green", {"enum": ["red"]}) == [
        "payload must be one of ['red'], got 'green'"
    ]


def test_questions_replay_by_order() -> None:
    book = Questions()
    with pytest.raises(Suspended) as raised:
        book.ask("a", "s1", "q?", reason="r", schema=None, timeout=None, metadata=None)
    iid = raised.value.interrupt.id
    assert list(book.open) == [iid]
    assert resume_errors(book.open, []) != []
    again = Questions.from_json(book.to_json())
    again.answer([{"interruptId": iid, "status": "resolved", "payload": 42}])
    assert again.ask("a", "s2", "q?", reason="r", schema=None, timeout=None, metadata=None) == 42
    assert again.open == {}


# --- threads in Redis: resumed on another runtime, after the first one is gone -----------------


@pytest.mark.redis
def test_a_run_interrupted_on_one_runtime_resumes_on_another_through_redis() -> None:
    from tests.test_redis_hub import TOKEN, _free_port, start_redis

    port = _free_port()
    process = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    config = RuntimeConfig(redis=url, redis_prefix=f"t-{uuid.uuid4().hex[:8]}")
    try:
        with serve(token=TOKEN, config=config, sim=FAST) as first:
            interrupt = interrupted(first, "redis")
        # The first runtime (and its memory) is gone; the thread is in Redis.
        entry = {"interruptId": interrupt["id"], "status": "resolved"}
        entry["payload"] = {"approved": True}
        with serve(token=TOKEN, config=config, sim=FAST) as second:
            status, events, _ = post(second, resume("redis-2", "redis", entry))
            assert status == 200
            assert started(events) == ["report-writer"]
            assert "report-writer" in events[-1]["result"]
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.redis
async def test_redis_thread_store_is_bounded_and_expires() -> None:
    from glm_live.server.redis_threads import RedisThreadStore
    from tests.test_redis_hub import _free_port, start_redis

    port = _free_port()
    process = start_redis(port)
    store = RedisThreadStore(f"redis://127.0.0.1:{port}/0", max_threads=2, ttl_s=1)
    try:
        for key in ("a", "b"):
            await store.put(key, ThreadRecord("w", key))
        assert await store.get("a") is not None  # a is now the most recently used
        await store.put("c", ThreadRecord("w", "c"))
        assert await store.get("b") is None
        assert (await store.get("c")).run_id == "c"  # type: ignore[union-attr]
        await store.delete("c")
        assert await store.get("c") is None
        await asyncio.sleep(1.2)
        assert await store.get("a") is None  # expired
    finally:
        await store.aclose()
        process.terminate()
        process.wait(10)


async def test_a_thread_is_resumed_by_one_run_at_a_time() -> None:
    from ag_ui.core import RunAgentInput

    from glm_live.server.threads import Refused, Threads
    from glm_live.wire.auth import admin_grant

    live: set[str] = set()
    threads = Threads(MemoryThreadStore(), live=lambda run_id: run_id in live)
    grant = admin_grant()
    question = {"id": "ask-1", "reason": "r"}
    record = ThreadRecord("w", "r0", questions={"open": {"ask-1": question}})
    await threads.store.put(threads.key(grant, "t"), record)

    def resuming(run_id: str) -> RunAgentInput:
        entry = {"interruptId": "ask-1", "status": "cancelled"}
        return RunAgentInput.model_validate(
            {"threadId": "t", "runId": run_id, "messages": [], "resume": [entry]}
        )

    first = await threads.begin("w", resuming("r1"), grant)
    live.add("r1")
    with pytest.raises(Refused, match="being resumed by another run") as refused:
        await threads.begin("w", resuming("r2"), grant)
    assert refused.value.status == 409
    live.discard("r1")
    threads.release(first)
    await threads.begin("w", resuming("r3"), grant)
