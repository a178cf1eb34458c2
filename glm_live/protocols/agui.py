"""AG-UI runs as data: parse events off the wire and fold them into a :class:`RunState`.

Events travel as camelCase JSON objects in SSE ``data:`` fields (no ``[DONE]``). The types are
``ag-ui-protocol``'s (:mod:`ag_ui.core`); :func:`parse_event` validates one, :func:`encode_event`
writes one. :class:`RunState` applies them in order: the shared state from ``STATE_SNAPSHOT``
and RFC 6902 ``STATE_DELTA`` patches (a failed patch is counted and skipped; the next snapshot
resynchronises, as AG-UI clients do), one :class:`AgentStatus` per subagent (status, progress,
current step, last message, timings), and the messages.

Progress travels as AG-UI 1.0 activity: one activity message of type ``progress`` per agent
invocation, created by an ``ACTIVITY_SNAPSHOT`` (content ``{"agent", "fraction", "message"}``)
and amended by ``ACTIVITY_DELTA`` (RFC 6902 patches against that content), attributed to the
subagent by ``subagentRunId``. Both fold into the agent's :attr:`AgentStatus.progress` and
:attr:`AgentStatus.message`; so does the ``CUSTOM`` event named ``progress`` that runtimes
before 1.0 sent, so a client still reads their runs.

``RUN_STARTED`` carries the producer's ``protocolVersion`` (:attr:`RunState.protocol_version`);
``RUN_FINISHED`` and ``RUN_ERROR`` carry the run's token ``usage``, one entry per model
(:attr:`RunState.usage`; :func:`token_usage` maps a chat completion's usage to an entry).

How a run ends (one method, :meth:`RunState.end`, whoever ends it):

======================  ===============  ==================================================
what happened           ``RunState``     agents still pending or running become
======================  ===============  ==================================================
RUN_FINISHED            ``finished``     ``done``
RUN_FINISHED cancelled  ``cancelled``    ``cancelled``
RUN_ERROR               ``error``        ``error``
cancelled locally       ``cancelled``    ``cancelled``
stream lost             ``interrupted``  ``interrupted`` (the run may go on server-side)
RUN_FINISHED interrupt  ``waiting``      ``waiting`` (for a person to answer)
======================  ===============  ==================================================

Each closed agent gets a ``finished_at``, so its clock stops. A run ends once: a later
``end`` (a stream that drops after RUN_FINISHED) changes nothing.

Interrupts (AG-UI 1.0): a run that needs a person ends with ``RUN_FINISHED`` whose ``outcome``
is ``{"type": "interrupt", "interrupts": [...]}``. The run is then ``waiting`` (not
``interrupted``, which means the client lost the stream), and :attr:`RunState.interrupts`
lists the questions, each an :class:`Interrupt` (the agent that asked is found by its
``subagentRunId``). The client answers with a new run on the same thread (``resume``
entries, see :func:`resume_entry`); one :class:`RunState` folds the whole thread, so that
run's ``RUN_STARTED`` reopens a ``waiting`` state: it runs again, its waiting agents run again,
and the pending interrupts are cleared (answered). Only ``waiting`` reopens: every other end
is final.

Frontend tools (AG-UI): the client offers tools in ``RunAgentInput.tools``
(:attr:`RunState.client_tools` names them). Every ``TOOL_CALL_START``/``ARGS``/``END`` folds
into :attr:`RunState.tool_calls` (a :class:`ToolCallState`: name, arguments, result), a
``TOOL_CALL_RESULT`` gives it its result. A client tool's call that has no result when a
``RUN_FINISHED`` (not an interrupt, not cancelled) arrives is the client's to run: it goes in
:attr:`RunState.tool_requests`, and the fold stays ``running``, because the thread is not over:
the client runs the tools (:meth:`RunState.tool_result`), and continues with a new run on the
same thread (:func:`tool_messages` are the messages it adds) whose ``RUN_STARTED`` clears the
requests. A client that cannot do so ends the fold itself (``error``).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from ag_ui.core import BaseEvent, Event, TokenUsage
from pydantic import TypeAdapter

from ..wire._html import table
from ..wire.sse import encode

__all__ = [
    "END_STATES",
    "PROGRESS",
    "AgentStatus",
    "Interrupt",
    "RunState",
    "ToolCallState",
    "check_answer",
    "encode_event",
    "event_dict",
    "parse_event",
    "resume_entry",
    "token_usage",
    "tool_line",
    "tool_messages",
]

#: The ``activityType`` of an agent's progress activity (and, before AG-UI 1.0, the name of
#: the ``CUSTOM`` event that carried it).
PROGRESS = "progress"

_EVENTS: TypeAdapter[Any] = TypeAdapter(Event)
_AGENT_EVENTS = frozenset(
    {"SUBAGENT_FINISHED", "SUBAGENT_ERROR", "STEP_STARTED", "STEP_FINISHED", "CUSTOM"}
)


def parse_event(data: str | bytes | dict[str, Any]) -> BaseEvent:
    """One AG-UI event from its JSON (raises ``pydantic.ValidationError`` on a bad one)."""
    if isinstance(data, dict):
        return _EVENTS.validate_python(data)  # type: ignore[no-any-return]
    return _EVENTS.validate_json(data)  # type: ignore[no-any-return]


def event_dict(event: BaseEvent) -> dict[str, Any]:
    """The event as its wire JSON object (camelCase, unset fields left out)."""
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def encode_event(event: BaseEvent) -> bytes:
    """The event as one SSE frame, as AG-UI's encoder writes it."""
    return encode(event.model_dump_json(by_alias=True, exclude_none=True))


def token_usage(usage: Mapping[str, Any] | None, model: str | None = None) -> TokenUsage | None:
    """One model call's usage (OpenAI/GLM ``usage``) as an AG-UI :class:`TokenUsage`.

    GLM counts as OpenAI does, which is also AG-UI's accounting: ``prompt_tokens`` includes
    the cached ones (``prompt_tokens_details.cached_tokens``), ``completion_tokens`` the
    reasoning ones (``completion_tokens_details.reasoning_tokens``), so every count passes
    through as it is; the total is computed (input plus output), as the spec allows. ``None``
    when the call reported no count (a stream cut before its usage arrived): no entry rather
    than zeros, which would read as a measured zero.
    """
    if not usage:
        return None

    def count(value: Any) -> int | None:
        # A count AG-UI cannot carry (negative, not whole, past JSON's safe integers) is
        # dropped here: TokenUsage would refuse it at the run's very last event.
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53
        return value if ok else None

    def detail(group: str, key: str) -> int | None:
        details = usage.get(group)
        return count(details.get(key)) if isinstance(details, Mapping) else None

    prompt, completion = count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))
    counts = {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": (
            prompt + completion
            if prompt is not None and completion is not None
            else count(usage.get("total_tokens"))
        ),
        "reasoning_tokens": detail("completion_tokens_details", "reasoning_tokens"),
        "cached_input_tokens": detail("prompt_tokens_details", "cached_tokens"),
    }
    if all(value is None for value in counts.values()):
        return None
    return TokenUsage.model_validate(
        {"model": model, **{k: v for k, v in counts.items() if v is not None}}
    )


@dataclass
class AgentStatus:
    """What one agent of a run is doing.

    Attributes:
        name: The agent's name.
        status: ``pending``, ``running``, ``done``, ``error``, ``cancelled``,
            ``interrupted`` (the client lost the run's stream while it ran) or ``waiting``
            (the run stopped to ask a person; it runs again once answered).
        progress: 0 to 1.
        step: The step it is in, if any.
        message: The last thing it said (progress message or text).
        error: The error message, if it failed.
        started_at, finished_at: Wall-clock seconds.
    """

    name: str
    status: str = "pending"
    progress: float = 0.0
    step: str | None = None
    message: str = ""
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    run_id: str | None = None

    @property
    def elapsed(self) -> float | None:
        """Seconds running (so far, or in all)."""
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


#: A run's end states, and what its unfinished agents become. ``waiting`` is the one end a
#: later run on the same thread reopens (see the module's docstring).
END_STATES = {
    "finished": "done",
    "cancelled": "cancelled",
    "error": "error",
    "interrupted": "interrupted",
    "waiting": "waiting",
}


@dataclass(frozen=True)
class Interrupt:
    """A question a run asks a person (an AG-UI 1.0 interrupt), as the client needs it.

    Attributes:
        id: The interrupt's id: the ``interruptId`` of the answer.
        reason: Why it asks (the runtime's word, e.g. ``approval``).
        message: What to show the person.
        response_schema: The JSON Schema the answer must fit, or ``None`` (any answer).
        expires_at: When the question lapses (ISO 8601, as sent), or ``None``.
        agent: The name of the agent that asked, when its ``subagentRunId`` is one of the
            run's agents.
        subagent_run_id, tool_call_id: As sent.
        metadata: As sent (``{}`` when absent).
    """

    id: str
    reason: str = ""
    message: str = ""
    response_schema: dict[str, Any] | None = None
    expires_at: str | None = None
    agent: str | None = None
    subagent_run_id: str | None = None
    tool_call_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], agent: str | None = None) -> Interrupt:
        """One entry of an interrupt outcome's ``interrupts`` (wire JSON, camelCase)."""
        schema = data.get("responseSchema")
        return cls(
            id=str(data.get("id")),
            reason=str(data.get("reason") or ""),
            message=str(data.get("message") or ""),
            response_schema=dict(schema) if isinstance(schema, Mapping) else None,
            expires_at=None if data.get("expiresAt") is None else str(data["expiresAt"]),
            agent=agent,
            subagent_run_id=data.get("subagentRunId"),
            tool_call_id=data.get("toolCallId"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass
class ToolCallState:
    """One tool call of a run, as folded from ``TOOL_CALL_*`` events (and, for a frontend
    tool, as the client ran it).

    Attributes:
        id: The ``toolCallId``.
        name: The tool's name (``toolCallName``).
        arguments: The arguments as sent: the ``TOOL_CALL_ARGS`` deltas joined (JSON text).
        parent_message_id: The assistant message the call belongs to, if sent.
        agent: The name of the agent that made it, when its ``subagentRunId`` is known.
        run_id: The run it was made in.
        ended: Whether its ``TOOL_CALL_END`` came.
        result: The result's content (a string, JSON for a structured one), or ``None``
            until there is one.
        error: Whether the result is an error (a frontend tool that raised).
        client: Whether the client runs it (a frontend tool's call left without a result
            when the run finished).
    """

    id: str
    name: str
    arguments: str = ""
    parent_message_id: str | None = None
    agent: str | None = None
    run_id: str | None = None
    ended: bool = False
    result: str | None = None
    error: bool = False
    client: bool = False

    @property
    def args(self) -> Any:
        """The arguments parsed (``{}`` when none were sent; raises ``ValueError`` on text
        that is not JSON)."""
        return json.loads(self.arguments) if self.arguments.strip() else {}


def tool_line(call: ToolCallState, limit: int = 160) -> str:
    """A tool call in one line: ``name(k=v, ...) → result`` (``→ …`` while it has none)."""
    try:
        args = call.args
    except ValueError:
        args = call.arguments
    if isinstance(args, dict):
        shown = ", ".join(
            f"{k}={json.dumps(v, default=str, ensure_ascii=False)}" for k, v in args.items()
        )
    else:
        shown = str(args)
    if len(shown) > limit // 2:
        shown = shown[: limit // 2 - 1] + "…"
    result = "…" if call.result is None else call.result
    line = f"{call.name}({shown}) → {result}"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def tool_messages(calls: list[ToolCallState], new_id: Any = None) -> list[dict[str, Any]]:
    """The messages a client adds to a thread after running its tools (wire JSON): per
    ``parentMessageId``, in order, one assistant message with its ``toolCalls``, then one
    ``tool`` message per call with its result (each call needs one).

    Args:
        calls: The calls the client ran, each with its ``result``.
        new_id: Makes the id of a tool message (and of an assistant message whose call had
            no ``parentMessageId``); ``uuid4().hex`` by default.
    """
    make = new_id or (lambda: uuid.uuid4().hex)
    groups: dict[str, list[ToolCallState]] = {}
    for call in calls:
        groups.setdefault(call.parent_message_id or make(), []).append(call)
    out: list[dict[str, Any]] = []
    for parent, group in groups.items():
        out.append(
            {
                "id": parent,
                "role": "assistant",
                "toolCalls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments or "{}"},
                    }
                    for c in group
                ],
            }
        )
        for call in group:
            content = "" if call.result is None else call.result
            out.append({"id": make(), "role": "tool", "toolCallId": call.id, "content": content})
    return out


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list, tuple),
    "null": (type(None),),
}


def _fits(value: Any, kind: Any) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    for name in kinds:
        types = _JSON_TYPES.get(str(name))
        if types is None:
            return True  # a type this check does not know: the runtime decides
        if isinstance(value, bool) and name in ("integer", "number"):
            continue  # JSON Schema: true is not a number
        if isinstance(value, types):
            return True
    return False


def check_answer(answer: Any, schema: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with ``answer`` for ``schema`` (an interrupt's ``responseSchema``).

    A first check in the client, so a person learns before the answer is sent: the top-level
    ``type``, ``required`` keys, each known property's ``type`` and ``enum``. Not a full JSON
    Schema validator: the runtime has the last word. Returns the problems, ``[]`` if none.
    """
    if not schema:
        return []
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None and not _fits(answer, kind):
        problems.append(f"the answer must be of type {kind}, not {type(answer).__name__}")
        return problems
    if "enum" in schema and answer not in schema["enum"]:
        problems.append(f"the answer must be one of {schema['enum']!r}")
    if not isinstance(answer, dict):
        return problems
    for key in schema.get("required") or []:
        if key not in answer:
            problems.append(f"missing required {key!r}")
    properties = schema.get("properties") or {}
    for key, value in answer.items():
        spec = properties.get(key)
        if not isinstance(spec, Mapping):
            continue
        if "type" in spec and not _fits(value, spec["type"]):
            problems.append(f"{key!r} must be of type {spec['type']}, not {type(value).__name__}")
        elif "enum" in spec and value not in spec["enum"]:
            problems.append(f"{key!r} must be one of {spec['enum']!r}")
    return problems


def resume_entry(interrupt_id: str, payload: Any = None, *, reject: bool = False) -> dict[str, Any]:
    """One ``resume`` entry of a ``RunAgentInput`` (wire JSON): ``resolved`` with ``payload``,
    or ``cancelled`` (``reject``: the person declined)."""
    if reject:
        return {"interruptId": interrupt_id, "status": "cancelled"}
    return {"interruptId": interrupt_id, "status": "resolved", "payload": payload}


@dataclass(repr=False)
class RunState:
    """A run folded from its events: state, agents, messages, outcome."""

    run_id: str | None = None
    thread_id: str | None = None
    status: str = "pending"  # running, finished, error, cancelled, interrupted, waiting
    state: Any = field(default_factory=dict)
    agents: dict[str, AgentStatus] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)  # id, role, name, content
    result: Any = None
    error: str | None = None
    events: int = 0
    patch_failures: int = 0
    #: The ``protocolVersion`` the producer declared on ``RUN_STARTED`` (``None``: before 1.0).
    protocol_version: str | None = None
    #: The ``outcome`` of ``RUN_FINISHED`` (wire JSON; ``None`` until then, or if absent).
    outcome: dict[str, Any] | None = None
    #: Token usage of the run, one entry per model (wire JSON), from its terminal event.
    usage: list[dict[str, Any]] = field(default_factory=list)
    #: Activity messages by ``messageId``: ``{"activityType", "content"}``.
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The questions a ``waiting`` run asks (``[]`` otherwise): cleared when the run on the
    #: same thread that answers them starts.
    interrupts: list[Interrupt] = field(default_factory=list)
    #: Every run of the thread folded here, in order (a resumed thread has several).
    run_ids: list[str] = field(default_factory=list)
    #: The names of the tools the client offered (``RunAgentInput.tools``): their calls left
    #: without a result at ``RUN_FINISHED`` are the client's to run.
    client_tools: frozenset[str] = frozenset()
    #: Every tool call of the thread, in order.
    tool_calls: list[ToolCallState] = field(default_factory=list)
    #: The client's tool calls the last run ended with (``[]`` otherwise): the thread goes
    #: on once the client has run them; the next run's ``RUN_STARTED`` clears them.
    tool_requests: list[ToolCallState] = field(default_factory=list)
    _by_run: dict[str, AgentStatus] = field(default_factory=dict, repr=False)
    _open: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _calls: dict[str, ToolCallState] = field(default_factory=dict, repr=False)

    def apply(self, event: BaseEvent | Mapping[str, Any]) -> None:
        """Fold one event in (a model, or its wire JSON object)."""
        e = event_dict(event) if isinstance(event, BaseEvent) else event
        self.events += 1
        kind = e.get("type")
        agent = self._by_run.get(e.get("subagentRunId") or "")
        if kind == "RUN_STARTED":
            if self.status == "waiting" or self.tool_requests:
                self._reopen()
            self.run_id, self.thread_id = e.get("runId"), e.get("threadId")
            if self.run_id:
                self.run_ids.append(self.run_id)
            self.protocol_version = e.get("protocolVersion")
            self.status = "running"
        elif kind == "RUN_FINISHED":
            self.result = e.get("result")
            self.outcome = e.get("outcome")
            self.usage = list(e.get("usage") or [])
            outcome = (self.outcome or {}).get("type")
            if outcome == "interrupt" and not self.done:
                self.interrupts = [
                    Interrupt.from_wire(entry, self._agent_of(entry))
                    for entry in (self.outcome or {}).get("interrupts") or []
                    if isinstance(entry, Mapping)
                ]
            ended = {"cancelled": "cancelled", "interrupt": "waiting"}
            if outcome not in ended and not self.done:
                self.tool_requests = self._client_calls()
                if self.tool_requests:
                    return  # the client runs them and goes on: the thread is not over
            if (self.outcome or {}).get("pendingToolCallIds"):
                # The agent waits for tools this fold does not run (the server's record of the
                # run, a client without them): not finished, as an interrupted run waits.
                self.end("waiting")
                return
            self.end(ended.get(str(outcome), "finished"))
        elif kind == "RUN_ERROR":
            self.usage = list(e.get("usage") or [])
            self.end("error", e.get("message"))
        elif kind == "STATE_SNAPSHOT":
            self.state = copy.deepcopy(e.get("snapshot"))
        elif kind == "STATE_DELTA":
            try:
                self.state = jsonpatch.apply_patch(self.state, e.get("delta") or [])
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
                self.patch_failures += 1
        elif kind == "SUBAGENT_STARTED":
            name = str(e.get("name"))
            status = self.agents.get(name) or AgentStatus(name)
            status.status, status.started_at = "running", time.time()
            status.run_id = e.get("subagentRunId")
            self.agents[name] = status
            self._by_run[status.run_id or ""] = status
        elif kind in ("ACTIVITY_SNAPSHOT", "ACTIVITY_DELTA"):
            self._apply_activity(kind, e)
        elif kind in ("TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT"):
            self._apply_tool_call(kind, e, agent)
        elif agent is not None and kind in _AGENT_EVENTS:
            self._apply_agent(agent, kind, e)
        if kind == "TEXT_MESSAGE_START":
            message = {
                "id": e.get("messageId"),
                "role": e.get("role", "assistant"),
                "name": e.get("name"),
                "content": "",
            }
            self._open[str(message["id"])] = message
            self.messages.append(message)
        elif kind == "TEXT_MESSAGE_CONTENT":
            open_message = self._open.get(str(e.get("messageId")))
            if open_message is not None:
                open_message["content"] += e.get("delta", "")
                if agent is not None:
                    agent.message = open_message["content"][-200:]
        elif kind == "TEXT_MESSAGE_END":
            self._open.pop(str(e.get("messageId")), None)

    @staticmethod
    def _apply_agent(agent: AgentStatus, kind: str, e: Mapping[str, Any]) -> None:
        if kind == "SUBAGENT_FINISHED":
            if (e.get("outcome") or {}).get("type") == "suspended":  # it asked a person
                agent.status, agent.finished_at = "waiting", time.time()
            else:
                agent.status, agent.finished_at, agent.progress = "done", time.time(), 1.0
            agent.step = None
        elif kind == "SUBAGENT_ERROR":
            agent.status, agent.finished_at = "error", time.time()
            agent.error = e.get("message")
            if e.get("code") == "cancelled":
                agent.status = "cancelled"
        elif kind == "STEP_STARTED":
            agent.step = e.get("stepName")
        elif kind == "STEP_FINISHED":
            agent.step = None
        elif kind == "CUSTOM" and e.get("name") == PROGRESS:
            # Runtimes before AG-UI 1.0 sent progress this way.
            _progress(agent, e.get("value") or {})

    def _apply_activity(self, kind: str, e: Mapping[str, Any]) -> None:
        """Fold an activity event into :attr:`activities`, and a ``progress`` activity into
        its agent (by ``subagentRunId``, else by the content's ``agent`` name).

        As the spec says: a snapshot creates or (unless ``replace: false``) replaces its
        message; a delta for an unknown message, or one whose patch does not apply, is
        skipped (the latter counted in :attr:`patch_failures`); the next snapshot repairs.
        """
        message_id = str(e.get("messageId"))
        activity = self.activities.get(message_id)
        if kind == "ACTIVITY_SNAPSHOT":
            if activity is None or e.get("replace") is not False:  # absent means replace
                activity = {
                    "activityType": e.get("activityType"),
                    "content": copy.deepcopy(e.get("content") or {}),
                }
                self.activities[message_id] = activity
        elif activity is None:
            return
        else:
            try:
                activity["content"] = jsonpatch.apply_patch(
                    activity["content"], e.get("patch") or []
                )
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
                self.patch_failures += 1
                return
            activity["activityType"] = e.get("activityType")  # a delta may retype
        if activity["activityType"] != PROGRESS or not isinstance(activity["content"], dict):
            return
        content = activity["content"]
        agent = self._by_run.get(e.get("subagentRunId") or "") or self.agents.get(
            str(content.get("agent"))
        )
        if agent is not None:
            _progress(agent, content)

    def _apply_tool_call(self, kind: str, e: Mapping[str, Any], agent: AgentStatus | None) -> None:
        call_id = str(e.get("toolCallId"))
        call = self._calls.get(call_id)
        if kind == "TOOL_CALL_START":
            call = ToolCallState(
                id=call_id,
                name=str(e.get("toolCallName") or ""),
                parent_message_id=e.get("parentMessageId"),
                agent=None if agent is None else agent.name,
                run_id=self.run_id,
            )
            self._calls[call_id] = call
            self.tool_calls.append(call)
        elif call is None:
            return  # a call this fold never saw start: nothing to attach it to
        elif kind == "TOOL_CALL_ARGS":
            call.arguments += str(e.get("delta") or "")
        elif kind == "TOOL_CALL_END":
            call.ended = True
        else:
            self.tool_result(call_id, str(e.get("content") or ""))

    def _client_calls(self) -> list[ToolCallState]:
        """The calls of the run now finishing that the client runs (see the module doc)."""
        if not self.client_tools:
            return []
        calls = [c for c in self.tool_calls if c.run_id == self.run_id and c.result is None]
        for call in calls:
            call.client = True
        return calls

    def tool_result(self, call_id: str, content: str, *, error: bool = False) -> ToolCallState:
        """Record the result of a tool call (a client that ran it, or ``TOOL_CALL_RESULT``).

        Raises:
            KeyError: No call has that id.
        """
        call = self._calls[call_id]
        call.result, call.error = content, error
        return call

    def _agent_of(self, entry: Mapping[str, Any]) -> str | None:
        agent = self._by_run.get(str(entry.get("subagentRunId") or ""))
        return None if agent is None else agent.name

    def _reopen(self) -> None:
        """A run on the same thread answers this ``waiting`` one (or brings the results of
        the client's tools): run again."""
        self.status, self.error, self.result, self.outcome = "running", None, None, None
        self.interrupts, self.tool_requests = [], []
        for agent in self.agents.values():
            if agent.status == "waiting":
                agent.status, agent.finished_at = "running", None

    def end(self, status: str, error: str | None = None) -> bool:
        """End the run with ``status`` (``finished``, ``cancelled``, ``error``,
        ``interrupted`` or ``waiting``): every agent still pending or running ends too (see
        the module's table), with a ``finished_at``. Returns whether it ended now: a run that
        had already ended keeps its first end (``waiting`` too: only the next run's
        ``RUN_STARTED`` reopens it).

        Raises:
            ValueError: ``status`` is not an end state.
        """
        agent_status = END_STATES.get(status)
        if agent_status is None:
            msg = f"a run ends as one of {', '.join(END_STATES)}, not {status!r}"
            raise ValueError(msg)
        if self.done:
            return False
        self.status = status
        if error is not None:
            self.error = error
        now = time.time()
        for agent in self.agents.values():
            if agent.status in ("pending", "running"):
                agent.status, agent.finished_at, agent.step = agent_status, now, None
        return True

    @property
    def done(self) -> bool:
        """Whether the run has ended (in any of the end states, ``waiting`` included: its
        stream is over, and what comes next is another run)."""
        return self.status in END_STATES

    @property
    def waiting(self) -> bool:
        """Whether the run waits for a person to answer :attr:`interrupts`."""
        return self.status == "waiting"

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for agent in self.agents.values():
            counts[agent.status] = counts.get(agent.status, 0) + 1
        agents = ", ".join(f"{n} {status}" for status, n in counts.items())
        detail = f" ({agents})" if agents else ""
        error = f", error: {self.error[:80]!r}" if self.error else ""
        asks = len(self.interrupts)
        asking = f", {asks} question{'s' * (asks != 1)} for a person" if asks else ""
        calls = len(self.tool_calls)
        tools = f", {calls} tool call{'s' * (calls != 1)}" if calls else ""
        return (
            f"<RunState {self.status}, {len(self.agents)} agents{detail}, "
            f"{len(self.messages)} messages{tools}, {self.events} events{error}{asking}>"
        )

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [("status", self.status)]
        if self.error:
            rows.append(("error", self.error))
        rows += [
            (f"asks{f' ({i.agent})' if i.agent else ''}", i.message or i.reason)
            for i in self.interrupts
        ]
        rows += [
            (f"tool{' (' + c.agent + ')' if c.agent else ''}", tool_line(c))
            for c in self.tool_calls
        ]
        rows += [("events", self.events), ("messages", len(self.messages))]
        grid = [
            (
                a.name,
                a.status,
                f"{a.progress:.0%}",
                "–" if a.elapsed is None else f"{a.elapsed:.1f} s",
                a.error or a.message[-80:],
            )
            for a in self.agents.values()
        ]
        return table(
            f"Run {self.run_id or ''}".strip(),
            rows,
            header=("agent", "status", "progress", "time", "last message"),
            grid=grid,
            footer=_report_head(self),
        )


def _progress(agent: AgentStatus, value: Mapping[str, Any]) -> None:
    """Set an agent's progress and message from a progress payload (fraction, message)."""
    agent.progress = float(value.get("fraction", agent.progress))
    agent.message = str(value.get("message", agent.message))


def _report_head(run: RunState, lines: int = 6) -> str:
    """The first lines of the run's report: its last assistant message, else its result."""
    text = next(
        (m["content"] for m in reversed(run.messages) if m.get("content")),
        "" if run.result is None else str(run.result),
    )
    head = text.strip().splitlines()[:lines]
    more = len(text.strip().splitlines()) > lines
    return "\n".join(head) + ("\n…" if more else "")
