"""Threads: what the runtime keeps between the runs of one AG-UI thread, so that a run that
asked a person (``ctx.ask``, AG-UI's interrupt outcome) can be resumed by a later one.

Per thread (and per identity: two callers' threads never meet, even with the same
``threadId``), a :class:`ThreadRecord`: the workflow, the thread's messages (the input's and
those the runs wrote), the shared state, the run's inputs and chat settings, and while
questions are open the checkpoint: the results of the agents that finished and the questions
asked and answered (:class:`~glm_live.agents.interrupts.Questions`). Records live in a
:class:`ThreadStore`; :class:`MemoryThreadStore` (the default) is bounded (least recently used
threads go first) and forgets a thread after a time to live. A runtime restart forgets its
threads with it: keep them in a shared store to survive that (the interface is ready for a
Redis one).

:class:`Threads` applies the AG-UI 1.0 rules to each run's input before the run starts (HTTP
4xx, nothing sent, nothing changed): a ``resume`` list must cover every open question of the
thread's interrupted run, once, name no other, answer no expired one, and match each
question's ``responseSchema``; a run without ``resume`` on a thread still waiting for answers
is refused (omission is not abandonment).

Frontend tools ride on the same records: a run that called the client's tools ends with
``pendingToolCallIds`` and keeps its checkpoint; the next run on the thread must carry a
``tool`` message (``toolCallId``, ``content``) for every pending call and none for a call that
is not pending (422 otherwise; 409 for results sent to a thread with no call pending), and it
continues the suspended agents. The thread's messages keep the runs' tool calls (folded into
the assistant message of their ``parentMessageId``, as the AG-UI clients fold them), so a
client's next run, which repeats the whole conversation, names no call the thread does not know.
"""

from __future__ import annotations

import abc
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ag_ui.core import RunAgentInput, RunFinishedEvent, RunFinishedInterruptOutcome

from ..agents.core import Run
from ..agents.interrupts import Questions, resume_errors, tool_result_errors
from ..wire.auth import Grant
from .chatreq import error_body
from .hub.store import HubStoreError

__all__ = ["MemoryThreadStore", "ThreadRecord", "ThreadStore", "Threads"]

logger = logging.getLogger("glm_live.server")


@dataclass
class ThreadRecord:
    """One thread, as JSON-able data (a shared store keeps :meth:`to_json`)."""

    workflow: str
    run_id: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    state: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)
    chat_defaults: dict[str, Any] = field(default_factory=dict)
    #: The agents that finished, while questions are open (a resume does not run them again).
    results: dict[str, Any] = field(default_factory=dict)
    #: :meth:`Questions.to_json` while questions are open or frontend tool calls pending.
    questions: dict[str, Any] = field(default_factory=dict)
    #: The client's tools of the run that called them (a continuation without any reuses them).
    tools: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> dict[str, dict[str, Any]]:
        """The questions waiting for an answer, by interrupt id (wire JSON)."""
        return dict(self.questions.get("open") or {})

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        """The frontend tool calls waiting for their results, by tool call id."""
        return dict(self.questions.get("calls") or {})

    @property
    def waiting(self) -> bool:
        """Whether the thread's last run left work waiting (answers, or tool results)."""
        return bool(self.open or self.pending)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> ThreadRecord:
        data = json.loads(text)
        # Keys a later version added are left out, so that runtimes of two versions can share
        # a Redis while one replaces the other.
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


class ThreadStore(abc.ABC):
    """Where thread records live, by key (the identity and the ``threadId``)."""

    #: Seconds a thread is kept after its last use (its questions' ``expiresAt`` by default).
    ttl_s: float | None = None

    @abc.abstractmethod
    async def get(self, key: str) -> ThreadRecord | None:
        """The record, or ``None`` if there is none (never was, evicted, or expired)."""

    @abc.abstractmethod
    async def put(self, key: str, record: ThreadRecord) -> None:
        """Keep ``record`` (replacing the one before)."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Forget the thread."""

    async def aclose(self) -> None:  # noqa: B027 - optional: most stores hold nothing
        """Let go of connections, if any (the runtime calls this as it stops)."""


class MemoryThreadStore(ThreadStore):
    """Threads in this process: at most ``max_threads`` (the least recently used go first),
    each forgotten ``ttl_s`` seconds after it was last written or read."""

    def __init__(
        self,
        max_threads: int = 1000,
        ttl_s: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_threads = max_threads
        self.ttl_s: float = ttl_s
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._records)

    async def get(self, key: str) -> ThreadRecord | None:
        self._expire()
        entry = self._records.get(key)
        if entry is None:
            return None
        self._records[key] = (self._clock(), entry[1])
        self._records.move_to_end(key)
        # Kept as JSON: a caller's changes to what it got never reach the store unasked.
        return ThreadRecord.from_json(entry[1])

    async def put(self, key: str, record: ThreadRecord) -> None:
        self._records[key] = (self._clock(), record.to_json())
        self._records.move_to_end(key)
        self._expire()
        while len(self._records) > self.max_threads:
            self._records.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._records.pop(key, None)

    def _expire(self) -> None:
        limit = self._clock() - self.ttl_s
        while self._records:
            key, (touched, _) = next(iter(self._records.items()))
            if touched > limit:
                break
            del self._records[key]


class Refused(Exception):
    """A run input the thread cannot take: its HTTP status and what to tell the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> bytes:
        return error_body("1214", self.message)


@dataclass
class ThreadRun:
    """One run on a thread: where its record goes, what it resumes, the messages it wrote."""

    key: str
    workflow: str
    messages: list[dict[str, Any]]
    resumed: ThreadRecord | None = None
    entries: list[dict[str, Any]] = field(default_factory=list)
    #: The results of pending frontend tool calls this run brings: ``{toolCallId: content}``.
    results: dict[str, str] = field(default_factory=dict)
    _open_text: dict[str, dict[str, Any]] = field(default_factory=dict)
    _calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def observe(self, event: dict[str, Any]) -> None:
        """Fold one emitted event (wire JSON) into the thread's messages, as the AG-UI clients
        fold them: text messages; tool calls into the assistant message of their
        ``parentMessageId`` (one of their own without it); results as ``tool`` messages."""
        kind = event["type"]
        if kind == "TEXT_MESSAGE_START":
            message = self._message(event["messageId"])
            if event.get("name"):
                message["name"] = event["name"]
            self._open_text[event["messageId"]] = message
        elif kind == "TEXT_MESSAGE_CONTENT" and event["messageId"] in self._open_text:
            message = self._open_text[event["messageId"]]
            message["content"] = (message.get("content") or "") + event["delta"]
        elif kind == "TEXT_MESSAGE_END":
            self._open_text.pop(event["messageId"], None)
        elif kind == "TOOL_CALL_START":
            call = {
                "id": event["toolCallId"],
                "type": "function",
                "function": {"name": event["toolCallName"], "arguments": ""},
            }
            # Without a parent, the call gets an assistant message of its own, under its id.
            holder = self._message(event.get("parentMessageId") or event["toolCallId"])
            holder.setdefault("toolCalls", []).append(call)
            self._calls[event["toolCallId"]] = call
        elif kind == "TOOL_CALL_ARGS" and event["toolCallId"] in self._calls:
            self._calls[event["toolCallId"]]["function"]["arguments"] += event["delta"]
        elif kind == "TOOL_CALL_END":
            self._calls.pop(event["toolCallId"], None)
        elif kind == "TOOL_CALL_RESULT":  # a tool the runtime ran: its result, as clients keep it
            self.messages.append(
                {
                    "id": event["messageId"],
                    "role": "tool",
                    "toolCallId": event["toolCallId"],
                    "content": event["content"],
                }
            )

    def _message(self, message_id: str) -> dict[str, Any]:
        """The thread's assistant message ``message_id``, made (empty) if it is new."""
        for earlier in reversed(self.messages):
            if earlier.get("id") == message_id:
                found: dict[str, Any] = earlier
                return found
        message: dict[str, Any] = {"id": message_id, "role": "assistant", "content": ""}
        self.messages.append(message)
        return message


class Threads:
    """The runtime's threads: checks each run's input against its thread, prepares resumed
    runs, and keeps what the next run needs when a run ends."""

    def __init__(
        self, store: ThreadStore | None = None, live: Callable[[str], bool] | None = None
    ) -> None:
        self.store = store or MemoryThreadStore()
        # Threads being resumed: key -> (run id, when). A claim holds while its run is live
        # (``live(run_id)``), and for a few seconds before it starts streaming.
        self._busy: dict[str, tuple[str, float]] = {}
        self._live = live or (lambda run_id: False)

    @staticmethod
    def key(grant: Grant, thread_id: str) -> str:
        return f"{len(grant.name)}:{grant.name}:{thread_id}"

    async def begin(self, workflow: str, run_input: RunAgentInput, grant: Grant) -> ThreadRun:
        """The run's place on its thread; raises :class:`Refused` for an input the thread
        cannot take (nothing is changed then)."""
        key = self.key(grant, run_input.thread_id)
        thread = run_input.thread_id
        record = await self.store.get(key)
        entries = [
            e.model_dump(mode="json", by_alias=True, exclude_none=True)
            for e in run_input.resume or ()
        ]
        given = [
            m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in run_input.messages
        ]
        known = {m.get("id") for m in record.messages} if record is not None else set()
        answered = (
            {
                str(m["toolCallId"])
                for m in record.messages
                if m.get("role") == "tool" and "toolCallId" in m
            }
            if record is not None
            else set()
        )
        # The tool messages this run brings: those the thread has not seen yet.
        results = {
            str(m["toolCallId"]): _text(m.get("content"))
            for m in given
            if m.get("role") == "tool"
            and m.get("id") not in known
            and str(m.get("toolCallId")) not in answered
        }
        if record is None and not (given and given[-1].get("role") == "tool"):
            results = {}  # a thread this runtime does not know: its history is the client's
        pending = record.pending if record is not None else {}
        if not entries and record is not None and record.open:
            raise Refused(
                409,
                f"thread {thread!r} is waiting for answers to interrupt(s) "
                f"{', '.join(record.open)} (run {record.run_id!r} of {record.workflow!r}): "
                "send a run with resume entries for them (status resolved, or cancelled to "
                "abandon one), or start a new thread",
            )
        if entries and (record is None or not record.open):
            raise Refused(
                409,
                f"thread {thread!r} has no interrupted run waiting for answers, so there is "
                "nothing to resume (a thread is forgotten after a while, and when the runtime "
                "restarts): send the run without resume",
            )
        if pending and not results:
            owed = ", ".join(f"{i} ({c.get('name')})" for i, c in pending.items())
            last = record.run_id if record is not None else "?"
            raise Refused(
                409,
                f"thread {thread!r} is waiting for the results of the frontend tool call(s) "
                f"{owed} (run {last!r}): send the conversation with "
                "the assistant message that made the calls and one tool message (role tool, "
                "toolCallId, content) per call, or start a new thread",
            )
        if results and not pending:
            raise Refused(
                409,
                f"thread {thread!r} has no frontend tool call waiting for a result, so the "
                f"tool message(s) for {', '.join(results)} continue nothing (a thread is "
                "forgotten after a while, and when the runtime restarts): send the run "
                "without them",
            )
        if record is None or not record.waiting:
            return ThreadRun(key, workflow, given)
        if record.workflow != workflow:
            raise Refused(
                409,
                f"thread {thread!r} was interrupted by workflow {record.workflow!r}: resume it "
                f"with POST /agents/{record.workflow}",
            )
        if self._resuming(key):
            raise Refused(
                409, f"thread {thread!r} is being resumed by another run: wait for it to end"
            )
        errors = resume_errors(record.open, entries) if record.open else []
        if errors:
            raise Refused(
                422,
                f"cannot resume thread {thread!r}: {'; '.join(errors)}. The thread still waits "
                f"for {', '.join(record.open)}; nothing was changed",
            )
        errors = tool_result_errors(pending, results) if pending else []
        if errors:
            raise Refused(
                422,
                f"cannot continue thread {thread!r}: {'; '.join(errors)}. The thread still "
                f"waits for the results of {', '.join(pending)}; nothing was changed",
            )
        messages = list(record.messages)
        messages.extend(m for m in given if m.get("id") not in known)
        self._busy[key] = (run_input.run_id, time.monotonic())
        return ThreadRun(key, workflow, messages, resumed=record, entries=entries, results=results)

    def restore(self, run: Run, thread: ThreadRun, state_given: bool) -> None:
        """Make ``run`` continue the thread's interrupted run: its inputs, settings, state
        (the input's own, when it sent one), finished agents' results and questions, with
        the answers; it sends the thread's messages as ``MESSAGES_SNAPSHOT``."""
        record = thread.resumed
        if record is not None:
            run.inputs = dict(record.inputs)
            run.chat_defaults = dict(record.chat_defaults)
            if not state_given:
                run.state = record.state
            run.results = dict(record.results)
            run.questions = Questions.from_json(record.questions)
            run.questions.answer(thread.entries)
            run.questions.deliver(thread.results)
            if not run.frontend_tools:  # the client sent its tools with the first run only
                run.frontend_tools = [dict(t) for t in record.tools]
            run.messages_snapshot = list(thread.messages)
        run.questions.expiry_s = self.store.ttl_s  # a question lives as long as its thread

    async def finish(self, run: Run, thread: ThreadRun, event: RunFinishedEvent) -> None:
        """Keep what the next run on the thread needs, as ``run`` finishes with ``event``
        (before the client sees it, so that it can resume at once). A cancelled run keeps
        the thread as it was."""
        outcome = event.outcome
        if outcome is not None and outcome.type == "cancelled":
            return
        # Work left waiting: questions (the interrupt outcome), or frontend tool calls.
        interrupted = isinstance(outcome, RunFinishedInterruptOutcome) or bool(run.questions.calls)
        record = ThreadRecord(
            workflow=thread.workflow,
            run_id=run.run_id,
            messages=thread.messages,
            state=run.state,
            inputs=run.inputs,
            chat_defaults=run.chat_defaults,
            results=json.loads(json.dumps(run.results, default=str)) if interrupted else {},
            questions=run.questions.to_json() if interrupted else {},
            tools=run.frontend_tools if interrupted else [],
        )
        try:
            await self.store.put(thread.key, record)
        except HubStoreError as exc:
            # The run's end still goes out; a resume of it will say there is nothing to resume.
            logger.warning("thread %s not kept: %s", thread.key, exc)

    def release(self, thread: ThreadRun) -> None:
        """The run has ended: its thread may be resumed again."""
        if thread.resumed is not None:
            self._busy.pop(thread.key, None)

    def _resuming(self, key: str) -> bool:
        claim = self._busy.get(key)
        if claim is None:
            return False
        run_id, since = claim
        return self._live(run_id) or time.monotonic() - since < 10.0


def _text(content: Any) -> str:
    """A tool message's content as text (a string, or parts with ``text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return json.dumps(content)
