"""AG-UI's ordering rules, as the TypeScript client enforces them (``verify.ts``), plus the
subagent rules and AG-UI 1.0's lifecycle and activity rules, for checking a whole run's event
stream. Every event is first validated by ``ag_ui.core`` (:func:`parse_event`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ag_ui.core import PROTOCOL_VERSION
from pydantic import ValidationError

from glm_live.protocols.agui import parse_event


class OrderingError(AssertionError):
    pass


def check_run(events: Iterable[Mapping[str, Any]]) -> None:
    """Raise :class:`OrderingError` at the first event that breaks a rule (or that
    ``ag_ui.core`` does not accept)."""
    activities: set[str] = set()
    messages: set[str] = set()
    calls: set[str] = set()
    steps: set[str] = set()
    reasoning: set[str] = set()
    subagents: set[str] = set()
    ended: str | None = None
    seen_snapshot = False
    for index, event in enumerate(events):
        kind = event["type"]

        def fail(why: str, kind: str = kind, index: int = index) -> None:
            raise OrderingError(f"event {index} ({kind}): {why}")

        try:
            parse_event(dict(event))
        except ValidationError as exc:
            fail(f"not a valid AG-UI {PROTOCOL_VERSION} event: {exc.errors()[0]['msg']}")
        if index == 0 and kind != "RUN_STARTED":
            fail("the first event must be RUN_STARTED")
        if ended == "RUN_ERROR":
            fail("nothing may follow RUN_ERROR")
        if ended == "RUN_FINISHED" and kind != "RUN_STARTED":
            fail("only a new RUN_STARTED may follow RUN_FINISHED")
        if kind == "RUN_STARTED":
            # 1.0: "an implementation of this version MUST send its declaration".
            if event.get("protocolVersion") != PROTOCOL_VERSION:
                fail(f"RUN_STARTED must declare protocolVersion {PROTOCOL_VERSION!r}")
            ended = None
        elif kind in ("RUN_FINISHED", "RUN_ERROR"):
            if kind == "RUN_FINISHED" and (messages or calls or steps or reasoning):
                fail(f"open at the end: messages {messages}, tool calls {calls}, steps {steps}")
            outcome = (event.get("outcome") or {}).get("type", "success")
            if kind == "RUN_FINISHED" and outcome != "success" and "result" in event:
                fail(f"a run that ends {outcome} produced no result")
            ended = kind
        elif kind == "ACTIVITY_SNAPSHOT":
            activities.add(event["messageId"])
        elif kind == "ACTIVITY_DELTA":
            if event["messageId"] not in activities:
                fail("a producer MUST NOT send a delta for an activity without a snapshot")
        elif kind == "TEXT_MESSAGE_START":
            if event["messageId"] in messages:
                fail("a message with this id is already open")
            messages.add(event["messageId"])
        elif kind in ("TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END"):
            if event["messageId"] not in messages:
                fail("no TEXT_MESSAGE_START for this message")
            if kind == "TEXT_MESSAGE_CONTENT" and not event.get("delta"):
                fail("an empty delta")
            if kind == "TEXT_MESSAGE_END":
                messages.discard(event["messageId"])
        elif kind == "TOOL_CALL_START":
            if event["toolCallId"] in calls:
                fail("a tool call with this id is already open")
            calls.add(event["toolCallId"])
        elif kind in ("TOOL_CALL_ARGS", "TOOL_CALL_END"):
            if event["toolCallId"] not in calls:
                fail("no TOOL_CALL_START for this tool call")
            if kind == "TOOL_CALL_END":
                calls.discard(event["toolCallId"])
        elif kind == "STEP_STARTED":
            if event["stepName"] in steps:
                fail("a step with this name is already open")
            steps.add(event["stepName"])
        elif kind == "STEP_FINISHED":
            if event["stepName"] not in steps:
                fail("no STEP_STARTED for this step")
            steps.discard(event["stepName"])
        elif kind == "REASONING_START":
            reasoning.add(event["messageId"])
        elif kind in (
            "REASONING_MESSAGE_START",
            "REASONING_MESSAGE_CONTENT",
            "REASONING_MESSAGE_END",
        ):
            if event["messageId"] not in reasoning:
                fail("reasoning message outside REASONING_START/END")
        elif kind == "REASONING_END":
            if event["messageId"] not in reasoning:
                fail("no REASONING_START for this id")
            reasoning.discard(event["messageId"])
        elif kind == "STATE_SNAPSHOT":
            seen_snapshot = True
        elif kind == "STATE_DELTA":
            if not seen_snapshot:
                fail("a STATE_DELTA before any STATE_SNAPSHOT")
        elif kind == "SUBAGENT_STARTED":
            if event["subagentRunId"] in subagents:
                fail("this subagent run already started")
            subagents.add(event["subagentRunId"])
        elif kind in ("SUBAGENT_FINISHED", "SUBAGENT_ERROR"):
            if event["subagentRunId"] not in subagents:
                fail("no SUBAGENT_STARTED for this subagent run")
            subagents.discard(event["subagentRunId"])
        if (
            kind not in ("SUBAGENT_STARTED",)
            and event.get("subagentRunId")
            and (
                event["subagentRunId"] not in subagents
                and kind not in ("SUBAGENT_FINISHED", "SUBAGENT_ERROR")
            )
        ):
            fail("attributed to a subagent run that is not running")
    if ended is None:
        raise OrderingError("the run never ended (no RUN_FINISHED or RUN_ERROR)")


def run_input(run_id: str, sim: Mapping[str, Any], thread_id: str = "t") -> dict[str, Any]:
    """A ``RunAgentInput`` (camelCase JSON) for the account-review workflow, about Globex,
    whose agents' chats take the simulator settings ``sim``."""
    return {
        "threadId": thread_id,
        "runId": run_id,
        "state": {},
        "messages": [{"id": "m1", "role": "user", "content": "Review the Globex account"}],
        "tools": [],
        "context": [],
        "forwardedProps": {"inputs": {"account": "Globex"}, "sim": dict(sim)},
    }
