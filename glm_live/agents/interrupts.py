"""People in the loop: an agent asks (``await ctx.ask(...)``), the run stops, a later run answers.

AG-UI 1.0 has no channel from the client into a running run, so a question does not wait: the
asking agent is suspended (its steps close, ``SUBAGENT_FINISHED`` says ``suspended``), the
agents that do not need it finish their work, and the run ends with ``RUN_FINISHED`` whose
outcome is ``interrupt``, one :class:`~ag_ui.core.Interrupt` per question. A new run on the
same thread answers them in ``RunAgentInput.resume``.

Continuation is a deterministic replay, not a kept coroutine (a restarted runtime would lose
that): the runtime keeps a checkpoint per thread (:class:`Questions` here: which agent asked
what; the finished agents' results and the state are kept by the server's thread store), and
the resuming run starts only the agents that had not finished, from their start. An agent's
``n``-th ``ask`` is matched to the ``n``-th question it asked before: it returns the answer
(``status: resolved``: the ``payload``) or raises :class:`Rejected` (``status: cancelled``).
So an agent must ask the same questions in the same order when it is replayed; what it did
before its first unanswered question is done again (keep side effects after the answers).

Frontend tools (``RunAgentInput.tools``: tools the client runs) use the same machinery. When
the model calls one in an agent's ``ctx.chat``, the runtime cannot run it: the call goes out as
``TOOL_CALL_START``/``ARGS``/``END`` with no ``TOOL_CALL_RESULT``, the agent is suspended, and
the run ends with ``RUN_FINISHED`` whose outcome is ``success`` with ``pendingToolCallIds``
(AG-UI 1.0: the run is over, the client owes the results). The next run on the thread carries
the assistant message with the calls and one ``tool`` message per call; the agent is replayed,
and its same chat (matched by order, as questions are) sends the model the conversation with
the assistant's calls and their results, then goes on. :class:`Questions` keeps these rounds
too (:meth:`Questions.call_tools`, :meth:`Questions.deliver`).

This module is pure bookkeeping (no I/O): :class:`Questions` is the run's book of questions
and frontend tool calls, :func:`schema_errors` the small JSON-schema check of an answer,
:func:`resume_errors` the check of a resume list against the questions pending,
:func:`tool_result_errors` the check of a run's tool messages against the calls pending.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ag_ui.core import Interrupt

from ..errors import GlmLiveError

__all__ = [
    "INPUT_REQUIRED",
    "Questions",
    "Rejected",
    "Suspended",
    "resume_errors",
    "schema_errors",
    "tool_result_errors",
]

#: The default ``Interrupt.reason`` of :meth:`AgentContext.ask` (the spec's reason is an open
#: string; this one says "a person must answer").
INPUT_REQUIRED = "input_required"


class Rejected(GlmLiveError):
    """The person declined to answer ``ctx.ask`` (the resume entry's ``status: cancelled``).

    Raised by :meth:`~glm_live.agents.core.AgentContext.ask`. An agent that does not catch it
    fails like on any error (``SUBAGENT_ERROR``, then the run's ``RUN_ERROR``); one that
    catches it decides what a refusal means (the builtin ``account-review`` finishes without
    its report).

    Attributes:
        interrupt_id: The question's id.
        metadata: The resume entry's ``metadata``, if any.
        payload: The resume entry's ``payload``, if any (a reason, say).
    """

    def __init__(
        self, interrupt_id: str, payload: Any = None, metadata: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"the person declined to answer question {interrupt_id}")
        self.interrupt_id = interrupt_id
        self.payload = payload
        self.metadata = dict(metadata or {})


class Suspended(BaseException):  # a signal, like CancelledError, not an error
    """Unwinds an agent that asked a question nobody has answered yet (``interrupt``), or
    that called frontend tools whose results the client owes (``tool_call_ids``).

    A :class:`BaseException`, as :class:`asyncio.CancelledError` is, so that an agent's
    ``except Exception`` does not swallow it; its ``finally`` blocks still run.
    """

    def __init__(
        self, interrupt: Interrupt | None = None, tool_call_ids: list[str] | None = None
    ) -> None:
        super().__init__(interrupt.id if interrupt is not None else tool_call_ids)
        self.interrupt = interrupt
        self.tool_call_ids = list(tool_call_ids or ())


@dataclass
class Questions:
    """The questions of one workflow execution on a thread, across its runs.

    Attributes:
        asked: Per agent, the ids of its questions in the order it asked them (earlier runs'
            and this one's).
        answers: By interrupt id, the resume entries received (wire JSON: ``status``,
            ``payload``, ``metadata``); kept until the execution ends, for the replays.
        open: Every question not answered yet, by id (wire JSON of its ``Interrupt``).
        raised: The questions this run raised (its interrupt outcome).
        invocations: Per suspended agent, its ``subagentRunId``: the run that continues it
            announces it again under that id (AG-UI: a suspended invocation's id may reappear
            in the later run that continues it), so its questions' ``subagentRunId`` names it.
        expiry_s: How long a question without its own ``timeout`` can be answered (the
            runtime sets how long it keeps a thread): its ``expiresAt``. ``None``: forever.
        rounds: Per agent, per chat (its index among the agent's ``ctx.chat`` calls, as a
            string: JSON keys), the frontend-tool rounds of that chat: each the assistant
            message that called (GLM wire form), the call ids, and the results received
            (``{id: content}``); replayed into the chat's conversation.
        calls: The frontend tool calls whose results the client owes, by tool call id:
            ``{"agent", "chat", "name"}``.
        called: The calls this run made (its ``pendingToolCallIds``).
    """

    asked: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    raised: list[Interrupt] = field(default_factory=list)
    invocations: dict[str, str] = field(default_factory=dict)
    expiry_s: float | None = None
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    called: list[str] = field(default_factory=list)
    _count: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _chats: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def ask(
        self,
        agent: str,
        subagent_run_id: str,
        message: str,
        *,
        reason: str,
        schema: Mapping[str, Any] | None,
        timeout: float | None,
        metadata: Mapping[str, Any] | None,
    ) -> Any:
        """The answer to ``agent``'s next question, or :class:`Suspended` if it has none yet.

        Raises:
            Rejected: The person declined (``status: cancelled``).
            Suspended: Not answered yet: the question is now in :attr:`raised`.
        """
        n = self._count.get(agent, 0)
        self._count[agent] = n + 1
        ids = self.asked.setdefault(agent, [])
        if n < len(ids):
            interrupt_id = ids[n]
            answer = self.answers.get(interrupt_id)
            if answer is not None:
                if answer.get("status") == "cancelled":
                    raise Rejected(interrupt_id, answer.get("payload"), answer.get("metadata"))
                return answer.get("payload")
        else:
            interrupt_id = f"ask-{uuid.uuid4().hex[:16]}"
            ids.append(interrupt_id)
        known = self.open.get(interrupt_id) or {}
        expires_at = known.get("expiresAt")
        if timeout is None:
            timeout = self.expiry_s
        if expires_at is None and timeout is not None:
            when = _now() + datetime.timedelta(seconds=float(timeout))
            expires_at = when.isoformat().replace("+00:00", "Z")
        interrupt = Interrupt(
            id=interrupt_id,
            reason=reason,
            message=message,
            response_schema=dict(schema) if schema is not None else None,
            expires_at=expires_at,
            metadata=dict(metadata) if metadata is not None else None,
            subagent_run_id=subagent_run_id,
        )
        self.open[interrupt_id] = interrupt.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        self.raised.append(interrupt)
        self.invocations[agent] = subagent_run_id
        raise Suspended(interrupt)

    def next_chat(self, agent: str) -> tuple[int, list[dict[str, Any]]]:
        """Number ``agent``'s next chat (0, 1, ... in the order it chats, replays included)
        and return its frontend-tool rounds so far (each with every result: a run starts
        only once the client sent them all)."""
        n = self._chats.get(agent, 0)
        self._chats[agent] = n + 1
        return n, list(self.rounds.get(agent, {}).get(str(n), ()))

    def call_tools(
        self,
        agent: str,
        subagent_run_id: str,
        chat: int,
        assistant: Mapping[str, Any],
        calls: list[tuple[str, str]],
    ) -> None:
        """Record that ``agent``'s chat number ``chat`` called frontend tools (``calls``:
        ``(id, name)``, in the ``assistant`` message that called them), and suspend it.

        Raises:
            Suspended: Always: the client runs the tools, a later run brings the results.
        """
        ids = [call_id for call_id, _ in calls]
        chats = self.rounds.setdefault(agent, {})
        chats.setdefault(str(chat), []).append(
            {"assistant": dict(assistant), "calls": ids, "results": {}}
        )
        for call_id, name in calls:
            self.calls[call_id] = {"agent": agent, "chat": chat, "name": name}
        self.called.extend(ids)
        self.invocations[agent] = subagent_run_id
        raise Suspended(tool_call_ids=ids)

    def deliver(self, results: Mapping[str, str]) -> None:
        """Take the client's results of pending calls (``{tool call id: content}``, checked
        with :func:`tool_result_errors`): their rounds get them, they are no longer owed."""
        for call_id, content in results.items():
            call = self.calls.pop(call_id, None)
            if call is None:
                continue
            for round_ in self.rounds.get(call["agent"], {}).get(str(call["chat"]), ()):
                if call_id in round_["calls"]:
                    round_["results"][call_id] = content

    def answer(self, entries: list[dict[str, Any]]) -> None:
        """Take checked resume entries (wire JSON): their questions are no longer open."""
        for entry in entries:
            interrupt_id = entry["interruptId"]
            self.answers[interrupt_id] = {
                k: entry[k] for k in ("status", "payload", "metadata") if k in entry
            }
            self.open.pop(interrupt_id, None)

    def to_json(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "answers": self.answers,
            "open": self.open,
            "invocations": self.invocations,
            "rounds": self.rounds,
            "calls": self.calls,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Questions:
        return cls(
            asked={k: list(v) for k, v in dict(data.get("asked") or {}).items()},
            answers=dict(data.get("answers") or {}),
            open=dict(data.get("open") or {}),
            invocations=dict(data.get("invocations") or {}),
            rounds={k: dict(v) for k, v in dict(data.get("rounds") or {}).items()},
            calls=dict(data.get("calls") or {}),
        )


def resume_errors(
    open_questions: Mapping[str, Mapping[str, Any]],
    entries: list[dict[str, Any]],
    now: datetime.datetime | None = None,
) -> list[str]:
    """What is wrong with ``entries`` (resume entries, wire JSON) as the answers to
    ``open_questions`` (by id, wire JSON of each ``Interrupt``); empty when nothing is.

    The rules: every open question is covered (answered, or abandoned with ``cancelled``:
    omission is not abandonment), once; no entry names a question that is not open; an
    expired question can only be abandoned; a resolved answer matches the question's
    ``responseSchema``.
    """
    now = now or _now()
    errors: list[str] = []
    seen: set[str] = set()
    for entry in entries:
        interrupt_id = str(entry.get("interruptId"))
        question = open_questions.get(interrupt_id)
        if interrupt_id in seen:
            errors.append(f"interrupt {interrupt_id} is answered twice")
            continue
        seen.add(interrupt_id)
        if question is None:
            errors.append(f"interrupt {interrupt_id} is not one this thread is waiting for")
            continue
        if entry.get("status") != "resolved":
            continue  # abandoning is always allowed, expired or not
        expires_at = question.get("expiresAt")
        if expires_at is not None and _expired(str(expires_at), now):
            errors.append(
                f"interrupt {interrupt_id} expired at {expires_at}: it can only be abandoned "
                "(status cancelled) now"
            )
            continue
        schema = question.get("responseSchema")
        if schema is not None:
            errors.extend(
                f"interrupt {interrupt_id}: {problem}"
                for problem in schema_errors(entry.get("payload"), schema)
            )
    missing = [i for i in open_questions if i not in seen]
    if missing:
        errors.append(
            f"no answer for interrupt(s) {', '.join(missing)}: answer each (status resolved) "
            "or abandon it (status cancelled)"
        )
    return errors


def tool_result_errors(
    pending: Mapping[str, Mapping[str, Any]], results: Mapping[str, Any]
) -> list[str]:
    """What is wrong with ``results`` (a run's new ``tool`` messages: ``{toolCallId:
    content}``) as the results of the frontend tool calls ``pending`` (by id: ``{"agent",
    "name", ...}``); empty when nothing is.

    The rules: every pending call has its result (a run cannot go on without it); no result
    names a call that is not pending.
    """
    errors = [
        f"tool message for {call_id!r}: no frontend tool call with that id is pending"
        for call_id in results
        if call_id not in pending
    ]
    missing = [f"{i} ({pending[i].get('name')})" for i in pending if i not in results]
    if missing:
        errors.append(
            f"no tool message for the pending call(s) {', '.join(missing)}: send the assistant "
            "message with the calls and one tool message (role tool, toolCallId, content) each"
        )
    return errors


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "number": (int, float),
    "integer": (int,),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: Mapping[str, Any], where: str = "payload") -> list[str]:
    """Where ``value`` breaks ``schema``: a small JSON-schema subset (``type``, ``enum``,
    ``const``, ``required``, ``properties``, ``items``); other keywords are not checked."""
    errors: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        allowed = tuple(t for n in names for t in _TYPES.get(str(n), (object,)))
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (
            is_bool and bool not in allowed and object not in allowed
        ):
            errors.append(f"{where} must be of type {' or '.join(names)}, got {_kind(value)}")
            return errors
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where} must be one of {schema['enum']!r}, got {value!r}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where} must be {schema['const']!r}, got {value!r}")
    if isinstance(value, dict):
        errors.extend(
            f"{where} lacks the required property {name!r}"
            for name in schema.get("required") or ()
            if name not in value
        )
        for name, sub in dict(schema.get("properties") or {}).items():
            if name in value and isinstance(sub, Mapping):
                errors.extend(schema_errors(value[name], sub, f"{where}.{name}"))
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            errors.extend(schema_errors(item, schema["items"], f"{where}[{index}]"))
    return errors


def _kind(value: Any) -> str:
    """The JSON type of ``value``, as a schema names it (``true`` is a boolean, not a number)."""
    for name, kind in (("boolean", bool), ("integer", int), ("number", float), ("string", str)):
        if isinstance(value, kind):
            return name
    for name in ("object", "array", "null"):
        if isinstance(value, _TYPES[name]):
            return name
    return type(value).__name__


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _expired(expires_at: str, now: datetime.datetime) -> bool:
    """Now or earlier is expired (as the reference reads ``expiresAt``); unreadable: not."""
    try:
        when = datetime.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when <= now
