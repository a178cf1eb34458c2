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
from ..agents.interrupts import Questions, resume_errors
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
    #: :meth:`Questions.to_json` while questions are open.
    questions: dict[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> dict[str, dict[str, Any]]:
        """The questions waiting for an answer, by interrupt id (wire JSON)."""
        return dict(self.questions.get("open") or {})

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
    _open_text: dict[str, dict[str, Any]] = field(default_factory=dict)

    def observe(self, event: dict[str, Any]) -> None:
        """Fold one emitted event (wire JSON): the run's text messages join the thread's."""
        kind = event["type"]
        if kind == "TEXT_MESSAGE_START":
            message = {"id": event["messageId"], "role": "assistant", "content": ""}
            if event.get("name"):
                message["name"] = event["name"]
            self._open_text[event["messageId"]] = message
            self.messages.append(message)
        elif kind == "TEXT_MESSAGE_CONTENT" and event["messageId"] in self._open_text:
            self._open_text[event["messageId"]]["content"] += event["delta"]
        elif kind == "TEXT_MESSAGE_END":
            self._open_text.pop(event["messageId"], None)


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
        if not entries:
            if record is not None and record.open:
                raise Refused(
                    409,
                    f"thread {thread!r} is waiting for answers to interrupt(s) "
                    f"{', '.join(record.open)} (run {record.run_id!r} of {record.workflow!r}): "
                    "send a run with resume entries for them (status resolved, or cancelled to "
                    "abandon one), or start a new thread",
                )
            return ThreadRun(key, workflow, given)
        if record is None or not record.open:
            raise Refused(
                409,
                f"thread {thread!r} has no interrupted run waiting for answers, so there is "
                "nothing to resume (a thread is forgotten after a while, and when the runtime "
                "restarts): send the run without resume",
            )
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
        errors = resume_errors(record.open, entries)
        if errors:
            raise Refused(
                422,
                f"cannot resume thread {thread!r}: {'; '.join(errors)}. The thread still waits "
                f"for {', '.join(record.open)}; nothing was changed",
            )
        messages = list(record.messages)
        known = {m.get("id") for m in messages}
        messages.extend(m for m in given if m.get("id") not in known)
        self._busy[key] = (run_input.run_id, time.monotonic())
        return ThreadRun(key, workflow, messages, resumed=record, entries=entries)

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
            run.messages_snapshot = list(thread.messages)
        run.questions.expiry_s = self.store.ttl_s  # a question lives as long as its thread

    async def finish(self, run: Run, thread: ThreadRun, event: RunFinishedEvent) -> None:
        """Keep what the next run on the thread needs, as ``run`` finishes with ``event``
        (before the client sees it, so that it can resume at once). A cancelled run keeps
        the thread as it was."""
        outcome = event.outcome
        if outcome is not None and outcome.type == "cancelled":
            return
        interrupted = isinstance(outcome, RunFinishedInterruptOutcome)
        record = ThreadRecord(
            workflow=thread.workflow,
            run_id=run.run_id,
            messages=thread.messages,
            state=run.state,
            inputs=run.inputs,
            chat_defaults=run.chat_defaults,
            results=json.loads(json.dumps(run.results, default=str)) if interrupted else {},
            questions=run.questions.to_json() if interrupted else {},
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
