"""``glm_live.connect()``: a session with the runtime, for notebooks and scripts.

A :class:`Session` holds a GLM client, a hub connection, a :class:`~glm_live.metrics.Recorder`
(every chat, run and hub heartbeat it makes) and a background event loop. With no
URL it uses the process's embedded runtime (simulated GLM-4.6, on a free loopback port),
started on first use and shared by the sessions that ask for the same options. Its calls
return at once with a live handle (see :mod:`glm_live.aio`), whose ``status`` is ``running``
and then ``done``, ``cancelled``, ``error`` or ``interrupted`` (a run also ``waiting``):

- ``session.chat(prompt, **params)`` → :class:`ChatHandle`: iterate the chunks, ``await`` or
  ``.wait()`` for the completion, ``.cancel()``;
- ``session.run("account-review", account="Globex")`` → :class:`RunHandle`: iterate the
  AG-UI events; ``.state``, ``.agents``, ``.messages`` follow them; ``.control(...)`` pauses,
  resumes, cancels an agent or gives it input; ``.cancel()`` stops the run on the server.
  A :class:`~glm_live.agents.Workflow` object runs in this process instead, on the same loop.

A run that asks a person (an AG-UI 1.0 interrupt) ends ``waiting``: ``await run`` returns
then (the cell ends, so the board's buttons can be clicked), ``run.interrupts`` lists the
questions, and ``run.resume(answer)`` (or the board's buttons) answers them. The same handle
then runs the continuation (a new run on the same thread) and folds it into the same
:class:`RunState` and board: ``await run`` again gives the final state.

``session.run(..., tools=[fn, ...])`` offers Python functions to the run as AG-UI frontend
tools (see :mod:`glm_live.notebook.tools`). A run that ends calling them does not end the
handle: it runs them and continues the thread with their results (a new run, on the same
handle, state and board), until a run ends without such calls: ``await run`` gives that end.
A call to a tool the handle was not given ends the run ``error``; so does a thread that
needs more than :attr:`RunHandle.max_tool_rounds` continuations (a model calling tools in a
loop).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ag_ui.core import BaseEvent

from ..agents.core import Run, Workflow
from ..errors import Cancelled, SSEError, TransportError
from ..measure.ledger import Price, Prices, ledger_frame, prices_of
from ..measure.recorder import Recorder
from ..protocols.agui import (
    AgentStatus,
    Interrupt,
    RunState,
    check_answer,
    event_dict,
    parse_event,
    resume_entry,
)
from ..protocols.glm import ChatStream, Chunk, Completion, GLMClient
from ..protocols.runtime import find_token
from ..transport.hub_client import Connection
from ..transport.sse_client import ConnectionEvent, EventSource
from ._env import display_once, in_kernel, mark_shown
from ._shared import acquire, release
from .aio import Handle, LoopThread, background_loop
from .conversation import Conversation, Message
from .runlog import RunLog, public_inputs
from .tools import Tool, ToolsLike, call_tool, run_calls, tools_of, unknown_calls

if TYPE_CHECKING:  # the server floor is imported only when an embedded runtime is started
    import pandas as pd

    from ..server.runner import ServerHandle

__all__ = ["ChatHandle", "RunHandle", "Session", "connect"]


class ChatHandle(Handle[Chunk, Completion]):
    """A streamed chat: chunks as they come; the completion at the end.

    As a cell's last expression it shows its :class:`~glm_live.widgets.StreamView` (made
    then, if it was started with ``display=False``), unless this cell showed it already.

    With a :class:`~glm_live.Conversation` it answers that conversation: its history is sent,
    and the answer is appended to it as it starts (``status`` ``streaming``), then filled in
    at the end with its text, reasoning, tool calls, usage and timing (see :attr:`answer`).
    With ``tools`` (Python functions) a reply that calls them is answered here: the calls
    run, their results are appended, and the conversation is sent again, on this handle,
    until a reply calls none (at most :attr:`max_tool_rounds` times); the chunks of every
    round are this handle's items, and the result is the last round's completion.
    """

    noun = "chat"

    #: The most rounds of tool results one chat sends back before it ends ``error``.
    max_tool_rounds = 10

    def __init__(
        self,
        session: Session,
        messages: Any,
        params: dict[str, Any],
        show: Callable[[ChatHandle, str], Any] | None = None,
        conversation: Conversation | None = None,
        tools: Mapping[str, Tool] | None = None,
    ) -> None:
        super().__init__(session.loop)
        self.session = session
        self.recorder = session.recorder
        self.conversation = conversation
        self.tools: dict[str, Tool] = dict(tools or {})
        self._params = dict(params)
        if self.tools:
            self._params["tools"] = [
                {"type": "function", "function": t.wire()} for t in self.tools.values()
            ]
        if conversation is not None:
            messages = conversation.to_openai_messages()
        label = messages if isinstance(messages, str) else _last_user_text(messages)
        self.title = label[:80]
        self._stream: ChatStream = session.client.stream(messages, **self._params)
        self.request = self.recorder.begin(self.title, kind="chat", model=params.get("model"))
        self.on_done(lambda result, error: self._end_round(self.status, error))
        #: The conversation's message this chat is writing (its last round's), if any.
        self.answer: Message | None = None
        self._trace: list[list[float]] = []
        if conversation is not None:
            self.answer = self._begin_answer()
        #: The StreamView showing this chat, when displayed.
        self.view: Any = None
        if show is not None:
            self.view = show(self, self.title)
        self._start()

    @property
    def completion(self) -> Completion:
        """The completion so far (complete once done): the last round's, with tools."""
        return self._stream.completion

    @property
    def model(self) -> str:
        """The model asked for."""
        return str(self._params.get("model") or self.session.client.model)

    async def _produce(self) -> AsyncIterator[Chunk]:
        for round_ in range(self.max_tool_rounds + 1):
            if round_:
                self._stream = self.session.client.stream(
                    self._conversation.to_openai_messages(), **self._params
                )
                self.answer = self._begin_answer()
                self.request = self.recorder.begin(self.title, kind="chat", model=self.model)
            async for chunk in self._one_round():
                yield chunk
            completion = self._stream.completion
            calls = completion.tool_calls if completion.finish_reason == "tool_calls" else []
            if not (self.tools and calls):
                return
            self._end_round("done", None)
            await self._answer_calls(calls)
        msg = (
            f"the model was still calling tools after {self.max_tool_rounds} rounds of "
            "results: ChatHandle.max_tool_rounds stops a model calling tools in a loop"
        )
        raise RuntimeError(msg)

    async def _one_round(self) -> AsyncIterator[Chunk]:
        recorder, request, stream = self.recorder, self.request, self._stream
        trace: list[list[float]] = []
        self._trace = trace
        text = reasoning = 0
        async with stream:
            async for chunk in stream:
                recorder.record_chunk(request, chunk)
                if self.answer is not None and (chunk.content or chunk.reasoning):
                    # When it arrived (after the request started) and how much text there
                    # was then: what a replay needs to play it as it came.
                    text += len(chunk.content)
                    reasoning += len(chunk.reasoning)
                    start = stream.completion.timings.request_start_ns or chunk.arrival_ns
                    trace.append([round((chunk.arrival_ns - start) / 1e9, 6), text, reasoning])
                yield chunk

    async def _answer_calls(self, calls: list[Any]) -> None:
        conversation = self._conversation
        for call in calls:
            found = self.tools.get(call.name or "")
            if found is None:
                given = ", ".join(repr(n) for n in self.tools)
                content = json.dumps(
                    {"error": f"no tool named {call.name!r} here (tools: {given})"}
                )
            else:
                content, _ = await call_tool(found, call.arguments)
            conversation.add("tool", content, tool_call_id=call.id or "", name=call.name)

    @property
    def _conversation(self) -> Conversation:
        if self.conversation is None:  # tools without a conversation: one of its own
            self.conversation = Conversation(self._stream_messages())
            self.answer = None
        return self.conversation

    def _stream_messages(self) -> list[dict[str, Any]]:
        messages = [dict(m) for m in self._stream.body.get("messages", [])]
        messages.append(self._stream.completion.to_message())
        return messages

    def _begin_answer(self) -> Message:
        assert self.conversation is not None
        return self.conversation.add("assistant", status="streaming", model=self.model)

    def _end_answer(self, status: str, error: BaseException | None) -> None:
        answer, conversation = self.answer, self.conversation
        if answer is None or conversation is None:
            return
        completion = self._stream.completion
        timings = completion.timings
        conversation.update(
            answer,
            content=completion.text,
            reasoning=completion.reasoning,
            tool_calls=[c.to_dict() for c in completion.tool_calls],
            model=completion.model or answer.model,
            usage=dict(completion.usage) if completion.usage else None,
            status=status,
            error=None if error is None else f"{type(error).__name__}: {error}"[:2000],
            timing={
                "ttft_s": timings.ttft,
                "e2e_s": timings.e2e,
                "chunks": self._trace,
            },
        )

    def _result(self) -> Completion:
        return self._stream.completion

    def _partial(self) -> Completion:
        return self._stream.completion

    def _end_round(self, status: str, error: BaseException | None) -> None:
        """A request has ended (one round, or the chat): the answer and the recorder say how."""
        self._end_answer(status, error)
        self.recorder.end(
            self.request,
            status="ok" if status == "done" else status,
            error=error,
            completion=self._stream.completion,
        )

    def _cancelled(self) -> Cancelled:
        return Cancelled(
            f"the chat was cancelled (.cancel() or its Stop button) after "
            f"{self.completion.chunks} chunks and {self.elapsed:.1f} s; the partial answer "
            "is the error's .partial (a Completion); start a new chat to try again",
            partial=self._stream.completion,
        )

    def __repr__(self) -> str:
        status, chunks = self.status, self.completion.chunks
        if status == "running":
            return f"<ChatHandle streaming, {chunks} chunks so far, {self.elapsed:.1f} s>"
        return f"<ChatHandle {status} after {chunks} chunks, {self.elapsed:.1f} s>"

    def _ipython_display_(self) -> None:
        _display_view(self, self.session._chat_view)


def _last_user_text(messages: Any) -> str:
    for message in reversed(list(messages)):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else str(content)
    last = list(messages)[-1] if messages else {}
    return str(last.get("content", "")) if isinstance(last, Mapping) else str(last)


#: A run's end state as a handle's status.
_RUN_TO_HANDLE = {
    "finished": "done",
    "cancelled": "cancelled",
    "error": "error",
    "interrupted": "interrupted",
    "waiting": "waiting",
}

#: Inputs that are also run options AG-UI runtimes read at the top of ``forwardedProps``
#: (``approval``: ask a person before the report; ``useTools``: the simulated model calls
#: the run's frontend tools), besides ``forwardedProps.inputs``.
_RUN_OPTIONS = ("approval", "useTools")


class RunHandle(Handle[BaseEvent, RunState]):
    """A workflow run: AG-UI events as they come; the folded :class:`RunState` at the end.

    ``status`` is the handle's (``running``, ``done``, ``cancelled``, ``error``,
    ``interrupted``, ``waiting``); the run's own is ``folded.status``. As a cell's last
    expression it shows its :class:`~glm_live.widgets.AgentBoard`, unless this cell showed it
    already.

    ``waiting`` is an end of the handle's current stream, not of the work: the run asked a
    person (:attr:`interrupts`), and :meth:`resume` answers and continues it on this handle
    (``run_id`` becomes the new run's; ``elapsed`` counts the time spent waiting).
    """

    noun = "run"

    #: The most continuations with tool results one :meth:`Session.run` (or one
    #: :meth:`resume`) makes: a model that keeps calling tools ends the run ``error`` then.
    max_tool_rounds = 10

    def __init__(
        self,
        session: Session,
        workflow: str | Workflow,
        inputs: dict[str, Any],
        sim: Mapping[str, Any] | None,
        show: Callable[[RunHandle, str], Any] | None = None,
        tools: Mapping[str, Tool] | None = None,
    ) -> None:
        super().__init__(session.loop)
        self.session = session
        self.workflow = workflow
        self.inputs = inputs
        self.sim = dict(sim) if sim else None
        #: The frontend tools offered to the run, by name.
        self.tools: dict[str, Tool] = dict(tools or {})
        if self.tools and isinstance(workflow, Workflow):
            msg = "tools= is for a run the runtime serves (by name), not a Workflow run here"
            raise ValueError(msg)
        self.run_id = uuid.uuid4().hex
        self.thread_id = uuid.uuid4().hex
        self.folded = RunState(client_tools=frozenset(self.tools))
        #: The messages the thread gained after the user's: tool calls and their results.
        self._thread: list[dict[str, Any]] = []
        self._local: Run | None = None
        self._message_id = uuid.uuid4().hex
        #: Answers given so far to the questions of the waiting run: ``resume`` entries by
        #: interrupt id (sent together once every question has one).
        self.answers: dict[str, dict[str, Any]] = {}
        self._resume: list[dict[str, Any]] | None = None
        self._parent_run_id: str | None = None
        self.recorder = session.recorder
        self.name = workflow if isinstance(workflow, str) else workflow.name
        self.title = self.name
        self.request = self.recorder.begin(self.name, kind="run")
        self.on_done(self._record_end)
        # For run.log(): when each event arrived (monotonic seconds since the handle started,
        # one float per item), what the frontend tools returned, how each stream ended.
        self._arrivals: list[float] = []
        self._tool_results: list[list[Any]] = []
        self._ends: list[list[Any]] = []
        self._wall_start = time.time() - (time.monotonic() - self._started_at)
        self.on_done(self._log_end)
        #: The AgentBoard showing this run, when displayed.
        self.view: Any = None
        if show is not None:
            self.view = show(self, self.name)
        self._start()

    @property
    def state(self) -> Any:
        """The shared state, snapshots and deltas applied."""
        return self.folded.state

    @property
    def agents(self) -> dict[str, AgentStatus]:
        """Per agent: status, progress, current step, last message, timings."""
        return self.folded.agents

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The run's text messages: ``id``, ``role``, ``name`` (the agent), ``content``."""
        return self.folded.messages

    @property
    def tool_calls(self) -> list[Any]:
        """The run's tool calls (:class:`~glm_live.protocols.agui.ToolCallState`: name,
        arguments, result), frontend and backend ones, in order."""
        return self.folded.tool_calls

    @property
    def interrupts(self) -> list[Interrupt]:
        """The questions the waiting run asks that have no answer yet (``[]`` otherwise)."""
        if not self.folded.waiting or not self.done:
            return []
        return [i for i in self.folded.interrupts if i.id not in self.answers]

    def resume(
        self,
        answer: Any = None,
        *,
        interrupt_id: str | None = None,
        reject: bool = False,
        answers: Mapping[str, Any] | None = None,
    ) -> RunHandle:
        """Answer the waiting run's questions and continue it; returns this handle.

        The common case is one question: ``run.resume({"approved": True})``, or
        ``run.resume(reject=True)`` to decline it. With several, name the question
        (``interrupt_id=...``; ``reject=True`` alone declines all that are left), or answer
        many at once with ``answers={interrupt_id: answer}``. Answers are kept in
        :attr:`answers` until every question has one; then the continuation starts: a new run
        (new ``runId``) on the same thread, posted with the ``resume`` entries, folded into
        the same :class:`RunState` and board, so ``await run`` gives its end (finished, or
        ``waiting`` again if it asks more). Call it from a cell or the board, not from the
        background loop.

        Each answer is checked against its question's ``response_schema`` (its type, required
        keys, the types and enums of its properties) before anything is sent.

        Raises:
            RuntimeError: Nothing waits for an answer: the run is still running (or already
                resumed), or it ended otherwise.
            ValueError: The question is unknown, or ambiguous (several wait and none was
                named), or the answer does not fit its schema.
        """
        if isinstance(self.workflow, Workflow):
            msg = (
                "a workflow run in this process cannot be resumed yet: register it with "
                "session.register(workflow) and run it by name"
            )
            raise RuntimeError(msg)
        if not self.done or not self.folded.waiting:
            if not self.done:
                resumed = self._resume is not None
                msg = (
                    f"the run {self.name!r} was already resumed: its continuation is running"
                    if resumed
                    else f"the run {self.name!r} is still running: answer it once it waits "
                    "(run.status == 'waiting', run.interrupts)"
                )
            else:
                msg = (
                    f"the run {self.name!r} ended {self.status!r}, not waiting for an answer: "
                    "there is nothing to resume"
                )
            raise RuntimeError(msg)
        pending = {i.id: i for i in self.interrupts}
        given: dict[str, dict[str, Any]] = {}
        if answers is not None:
            if answer is not None or interrupt_id is not None or reject:
                msg = "give answers={id: answer} alone, or one answer (with interrupt_id=)"
                raise ValueError(msg)
            for key, value in answers.items():
                given[key] = self._entry(pending, key, value, reject=False)
        elif interrupt_id is None and reject and answer is None:
            given = {key: resume_entry(key, reject=True) for key in pending}
        else:
            if interrupt_id is None:
                if len(pending) != 1:
                    ids = ", ".join(repr(k) for k in pending)
                    msg = (
                        f"{len(pending)} questions wait ({ids}): name one with "
                        "interrupt_id=, or answer them all with answers={id: answer}"
                    )
                    raise ValueError(msg)
                interrupt_id = next(iter(pending))
            given[interrupt_id] = self._entry(pending, interrupt_id, answer, reject=reject)
        self.answers.update(given)
        if any(i.id not in self.answers for i in self.folded.interrupts):
            return self  # more questions to answer first
        self._continue()
        return self

    def _entry(
        self, pending: Mapping[str, Interrupt], key: str, answer: Any, *, reject: bool
    ) -> dict[str, Any]:
        """The resume entry for one question, checked against its schema."""
        question = pending.get(key)
        if question is None:
            known = ", ".join(repr(k) for k in pending) or "none"
            state = "was answered already" if key in self.answers else "is not asked"
            msg = f"the question {key!r} {state}: waiting for an answer are {known}"
            raise ValueError(msg)
        if reject:
            return resume_entry(key, reject=True)
        problems = check_answer(answer, question.response_schema)
        if problems:
            msg = (
                f"the answer {answer!r} to {key!r} does not fit its schema: "
                f"{'; '.join(problems)} (schema: {question.response_schema})"
            )
            raise ValueError(msg)
        return resume_entry(key, answer)

    def _continue(self) -> None:
        """Post the answers as a new run on the same thread, on this handle."""
        entries = [self.answers[i.id] for i in self.folded.interrupts]
        self._resume, self._parent_run_id = entries, self.folded.run_id or self.run_id
        self.answers = {}
        self.run_id = uuid.uuid4().hex
        self.request = self.recorder.begin(self.name, kind="run")
        self._restart()

    def _status_of(self, error: BaseException | None) -> str:
        if isinstance(error, Cancelled | asyncio.CancelledError):
            return "cancelled"
        if self.folded.done:
            return _RUN_TO_HANDLE[self.folded.status]
        return super()._status_of(error)

    async def _produce(self) -> AsyncIterator[BaseEvent]:
        recorder, request, folded = self.recorder, self.request, self.folded
        index = 0
        try:
            async for event in self._events():
                recorder.event(request, index, time.perf_counter_ns(), 0, "agui")
                index += 1
                self._arrivals.append(time.monotonic() - self._started_at)
                yield event
        except asyncio.CancelledError:
            folded.end("cancelled" if self._cancel_requested else "interrupted")
            raise
        except (TransportError, SSEError) as exc:
            # The stream broke: after RUN_STARTED the run may go on without us.
            lost = "interrupted" if folded.status == "running" else "error"
            folded.end(lost, f"{type(exc).__name__}: {exc}")
            raise
        except Exception as exc:
            folded.end("error", f"{type(exc).__name__}: {exc}")
            raise
        if not folded.done:
            folded.end(
                "interrupted",
                "the run's stream ended before RUN_FINISHED or RUN_ERROR; the run may go on "
                "on the server",
            )

    def _record_end(self, result: RunState | None, error: BaseException | None) -> None:
        status = self.status
        self.recorder.end(
            self.request,
            status="ok" if status == "done" else status,
            error=error,
            run_id=self.folded.run_id,
        )

    async def _events(self) -> AsyncIterator[BaseEvent]:
        if isinstance(self.workflow, Workflow):
            async for event in self._run_here(self.workflow):
                yield event
            return
        folded, resume = self.folded, self._resume
        rounds = 0
        while True:
            async for event in self._stream(resume):
                yield event
            if not folded.tool_requests or folded.done:
                return
            problem = unknown_calls(self.tools, folded.tool_requests)
            if problem is None and rounds >= self.max_tool_rounds:
                problem = (
                    f"the run still called tools after {rounds} continuations with their "
                    f"results, the most RunHandle.max_tool_rounds ({self.max_tool_rounds}) "
                    "allows: stopped there, as a model calling tools in a loop never ends"
                )
            if problem is not None:
                folded.end("error", problem)
                return
            # The tools' results continue the thread: a new run, on this handle.
            self._thread += await run_calls(self.tools, folded)
            now = time.monotonic() - self._started_at
            self._tool_results += [
                [now, c.id, c.result or "", c.error] for c in folded.tool_requests
            ]
            rounds += 1
            resume, self._parent_run_id = None, folded.run_id or self.run_id
            self.run_id = uuid.uuid4().hex

    def _body(self, resume: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The ``RunAgentInput`` of the handle's next run: the first, a resumed one (with
        ``resume`` entries), or one that brings the results of the client's tools."""
        props: dict[str, Any] = {"inputs": self.inputs}
        props.update({k: self.inputs[k] for k in _RUN_OPTIONS if k in self.inputs})
        if self.sim:
            props["sim"] = self.sim
        first = {
            "id": self._message_id,
            "role": "user",
            "content": str(self.inputs.get("prompt", "")),
        }
        body: dict[str, Any] = {
            "threadId": self.thread_id,
            "runId": self.run_id,
            "state": {},
            "messages": [first, *self._thread],
            "tools": [t.wire() for t in self.tools.values()],
            "context": [],
            "forwardedProps": props,
        }
        if resume is not None or self._thread:
            # A continuation: the same thread, a new run, the answers or the tools' results.
            body["parentRunId"] = self._parent_run_id
            body["state"] = self.folded.state if isinstance(self.folded.state, dict) else {}
        if resume is not None:
            body["resume"] = resume
        return body

    async def _stream(self, resume: list[dict[str, Any]] | None) -> AsyncIterator[BaseEvent]:
        source = EventSource(
            f"{self.session.url}/agents/{self.workflow}",
            "POST",
            json=self._body(resume),
            headers=self.session.auth_headers,
            reconnect=False,
            idle_timeout=300,
        )
        async with source:
            async for sse in source:
                event = parse_event(sse.data)
                self.folded.apply(event)
                yield event

    async def _run_here(self, workflow: Workflow) -> AsyncIterator[BaseEvent]:
        run = self._local = Run(
            workflow,
            self.session.client,
            inputs=self.inputs,
            run_id=self.run_id,
            thread_id=self.thread_id,
            chat_defaults={"sim": self.sim} if self.sim else None,
        )
        hub = self.session.hub
        async for event in run.events():
            self.folded.apply(event)
            if hub is not None:
                await hub.publish(f"run:{self.run_id}", event_dict(event))
            yield event

    def _result(self) -> RunState:
        return self.folded

    def _partial(self) -> RunState:
        return self.folded

    def _log_end(self, result: RunState | None, error: BaseException | None) -> None:
        """Note how the stream ended: as the run's state says, or (nothing ended it) as the
        board ends it (see :meth:`Session._run_view`)."""
        folded, now = self.folded, time.monotonic() - self._started_at
        if folded.done:
            self._ends.append([now, folded.status, folded.error])
        else:
            status = "cancelled" if self.status == "cancelled" else "interrupted"
            self._ends.append([now, status, _error_text(error)])

    def log(self) -> RunLog:
        """The run's events so far with the times they arrived (a :class:`RunLog`: see
        :mod:`glm_live.notebook.runlog`), for :func:`glm_live.replay`. A run resumed after
        waiting goes on in the same log."""
        with self._lock:
            items = list(self.items)
        arrivals = self._arrivals[: len(items)]
        return RunLog(
            name=self.name,
            thread_id=self.folded.thread_id or self.thread_id,
            run_ids=list(self.folded.run_ids),
            at=self._wall_start,
            inputs=public_inputs(self.inputs),
            sim=dict(self.sim) if self.sim else None,
            tools=sorted(self.tools),
            events=[[round(t, 6), event_dict(e)] for t, e in zip(arrivals, items, strict=False)],
            results=[list(r) for r in self._tool_results],
            ends=[list(r) for r in self._ends],
        )

    def save(self, path: str | Path) -> Path:
        """Write :meth:`log` to ``path`` as JSON (``glm_live.runlog/1``); returns the path.
        ``glm_live.replay(path)`` plays it again, with no server."""
        return self.log().save(path)

    def _cancelled(self) -> Cancelled:
        return Cancelled(
            f"the run {self.name!r} was cancelled (.cancel()) after {len(self.items)} events "
            f"and {self.elapsed:.1f} s; its state so far is the error's .partial (a "
            "RunState); start a new run to try again",
            partial=self.folded,
        )

    def control(self, command: str, agent: str | None = None, data: Any = None) -> None:
        """``pause``, ``resume``, ``cancel`` or ``input`` (human input) for ``agent``, or for
        every agent when ``agent`` is ``None`` (``cancel`` then stops the whole run)."""
        if command not in ("pause", "resume", "cancel", "input"):
            msg = f"unknown command {command!r}: use pause, resume, cancel or input"
            raise ValueError(msg)
        if self._local is not None:
            local = self._local
            self.session.loop.loop.call_soon_threadsafe(local.control, agent, command, data)
            return
        message = {"command": command, "agent": agent, "data": data}
        hub = self.session.hub
        if hub is None:
            msg = "this session has no hub connection to send commands through"
            raise RuntimeError(msg)
        self.session.loop.submit(hub.publish(f"control:{self.run_id}", message))

    def __repr__(self) -> str:
        status = self.status
        agents = len(self.agents)
        if status == "waiting":
            asks = len(self.interrupts)
            return (
                f"<RunHandle {self.name} waiting for {asks} answer{'s' * (asks != 1)} "
                f"(run.resume(...)) after {len(self.items)} events, {agents} agents, "
                f"{self.elapsed:.1f} s>"
            )
        if status == "running":
            return (
                f"<RunHandle {self.name} running, {agents} agents, "
                f"{len(self.items)} events so far, {self.elapsed:.1f} s>"
            )
        return (
            f"<RunHandle {self.name} {status} after {len(self.items)} events, {agents} agents, "
            f"{self.elapsed:.1f} s>"
        )

    def _ipython_display_(self) -> None:
        _display_view(self, self.session._run_view)


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _display_view(handle: ChatHandle | RunHandle, make: Callable[[Any], Any]) -> None:
    """A handle as a cell's result: its live view, once per cell (a script: its repr)."""
    from IPython.display import display

    if not in_kernel():
        display({"text/plain": repr(handle)}, raw=True)  # type: ignore[no-untyped-call]
        return
    if handle.view is None:
        handle.view = make(handle)
    display_once(handle.view)


class Session:
    """A connection to a runtime: GLM client, hub connection, background loop.

    Use :func:`connect` to make one. ``close()`` (or ``with``) releases everything,
    including an embedded runtime (see :attr:`embedded`).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        loop: LoopThread | None = None,
        embedded: ServerHandle | None = None,
        shared: bool = False,
        hub: bool = True,
        model: str = "glm-4.6",
        name: str | None = None,
        heartbeat: float = 5.0,
        prices: Prices | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        #: Per model, for :meth:`ledger`'s cost (see :class:`~glm_live.Price`); none guessed.
        self.prices: dict[str, Price] = prices_of(prices)
        self.loop = loop or background_loop()
        self._embedded = embedded
        self._shared = shared  # the embedded runtime is the process's, shared: release it
        self.auth_headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The runtime's token is the key here; never the user's ZAI_API_KEY.
        self.client = GLMClient(base_url=self.url + "/v1", api_key=token or "", model=model)
        #: Every chat, run and hub heartbeat of this session, as DataFrames on demand.
        self.recorder = Recorder()
        self._panel: Any = None
        self.hub: Connection | None = None
        if hub:
            self.hub = Connection(
                self.url,
                token=token,
                name=name,
                kind="notebook",
                heartbeat=heartbeat,
                observers=[self._observe_hub],
            )
            self.loop.loop.call_soon_threadsafe(self.hub.start)

    def _observe_hub(self, change: ConnectionEvent) -> None:
        if change.kind == "heartbeat" and change.delay is not None:
            self.recorder.sample("hub_rtt_s", change.delay)
        elif change.kind == "reconnecting":
            self.recorder.sample("hub_reconnects", change.reconnects)

    @property
    def runtime(self) -> ServerHandle | None:
        """The embedded runtime this session uses, or ``None`` (connected to a URL, or closed).

        Its :class:`~glm_live.server.ServerHandle`: ``.url``, ``.port`` (for a proxy put in
        front of it), ``.token`` (pass it on; never print it), ``.runtime`` (the app: runs in
        progress are ``.runtime.runs.runs``). Sessions of this process that asked for the same
        serve options share it; the last one to close stops it.
        """
        return self._embedded

    @property
    def embedded(self) -> ServerHandle | None:
        """The same as :attr:`runtime` (its earlier name)."""
        return self._embedded

    def register(self, workflow: Workflow) -> None:
        """Serve ``workflow`` from the embedded runtime: ``session.run(workflow.name)`` then
        runs it there (as would any client of the runtime).

        Raises:
            RuntimeError: This session is connected to a remote runtime (or closed).
        """
        runtime = self._embedded
        if runtime is None:
            msg = (
                f"register() needs the embedded runtime, and this session is connected to "
                f"{self.url}: register the workflow in the process that serves it, or run it "
                "here with session.run(workflow)"
            )
            raise RuntimeError(msg)
        runtime.runtime.register(workflow)

    def __repr__(self) -> str:
        kind = "embedded simulator" if self._embedded is not None else "remote"
        return f"<glm_live.Session {self.url} ({kind})>"

    def chat(
        self,
        prompt_or_messages: Any = None,
        *,
        conversation: Conversation | None = None,
        tools: ToolsLike | None = None,
        display: bool | None = None,
        **params: Any,
    ) -> ChatHandle:
        """Start a streamed chat; returns at once with its live handle.

        ``prompt_or_messages`` is a prompt, or OpenAI-format messages. With ``conversation``
        (a :class:`~glm_live.Conversation`) the prompt is added to it as the user's message,
        its whole history is sent, and the answer is appended to it (with its usage and
        timing); with no prompt, the conversation as it stands is answered (after its last
        message was edited, say).

        ``tools`` offers Python functions to the model (as ``session.run`` does; JSON tool
        schemas pass through unchanged): a reply that calls them is answered by running them,
        and the chat goes on until a reply calls none (see :class:`ChatHandle`).

        In a notebook its :class:`~glm_live.widgets.StreamView` is displayed (``display=False``
        opts out); in a script nothing is.

        Raises:
            ValueError: Nothing to send (no prompt, and no conversation ending with the
                user's message); messages given together with a conversation; tools that
                cannot be offered.
            RuntimeError: The conversation is still receiving another answer.
        """
        found: dict[str, Tool] = {}
        if tools is not None and _is_schema_list(tools):
            params["tools"] = list(tools)
        else:
            found = tools_of(tools)
        show = self._show_chat if _wants_display(display) else None
        if conversation is None:
            if prompt_or_messages is None:
                msg = (
                    "nothing to send: give a prompt (session.chat('...')), OpenAI-format "
                    "messages, or a conversation= to answer"
                )
                raise ValueError(msg)
            return ChatHandle(self, prompt_or_messages, params, show, None, found)
        _check_turn(conversation, prompt_or_messages)
        if prompt_or_messages is not None:
            conversation.add("user", prompt_or_messages)
        return ChatHandle(self, None, params, show, conversation, found)

    def run(
        self,
        workflow: str | Workflow,
        *,
        sim: Mapping[str, Any] | None = None,
        display: bool | None = None,
        tools: ToolsLike | None = None,
        **inputs: Any,
    ) -> RunHandle:
        """Start a workflow run (a name the runtime serves, or a Workflow to run here).

        ``sim`` passes simulator knobs to every chat of the run. In a notebook its
        :class:`~glm_live.widgets.AgentBoard` is displayed (``display=False`` opts out).

        ``tools`` offers Python functions to the run as frontend tools: a list (named after
        the functions) or ``{name: function}``; :func:`glm_live.tool` wraps one to give its
        name, description or JSON schema. The handle runs the ones the run calls and
        continues it with their results (see :mod:`glm_live.notebook.tools`).

        Raises:
            ValueError: Two tools share a name, or one has a name a model cannot call.
        """
        found = tools_of(tools)
        show = self._show_run if _wants_display(display) else None
        return RunHandle(self, workflow, inputs, sim, show, tools=found)

    def chat_view(
        self,
        conversation: Conversation | None = None,
        *,
        display: bool | None = None,
        title: str = "",
        agent: str | None = None,
        **params: Any,
    ) -> Any:
        """A :class:`~glm_live.widgets.ChatView`: a chat in the notebook, through this session.

        It shows ``conversation`` (a new one, with this session's prices, by default) and
        continues it: each message typed there (or given to its ``send``) is answered with
        ``session.chat(text, conversation=..., **params)``, streamed into the view. ``params``
        go to every chat: ``model``, ``thinking``, ``temperature``, ``sim={...}``,
        ``tools=[fn, ...]`` (Python functions the model may call; the view shows each call
        and its result).

        With ``agent`` (a workflow the runtime serves, ``"account-review"``) each message runs
        it instead (``session.run(agent, prompt=text, **params)``), and a run that asks a
        person (``approval=True``) shows its question in the chat, with Approve / Reject.

        In a notebook it is displayed where it is called (once per cell: the view returned as
        the cell's last expression does not show it twice); ``display=False`` opts out.
        """
        from .widgets import ChatView  # ipywidgets: imported when first asked for

        view = ChatView(conversation, session=self, title=title, agent=agent, **params)
        if _wants_display(display):
            view._ipython_display_()
        return view

    def ledger(self, prices: Prices | None = None) -> pd.DataFrame:
        """The session's token ledger: one row per chat request (each round of a chat that
        called tools is one), with the prompt, completion, reasoning and cached tokens the
        server reported and the cost at ``prices`` (or :attr:`prices`); ``NaN`` where no price
        is configured or no usage came (a request cancelled or failed before it). ``.sum()``
        gives the session's totals."""
        import pandas as pd

        table = prices_of(prices) if prices is not None else self.prices
        requests = self.recorder.requests_frame()
        rows = []
        if not requests.empty:
            for row in requests[requests["kind"] == "chat"].to_dict("records"):
                rows.append(
                    {
                        "request": row["request"],
                        "label": row["label"],
                        "status": row["status"],
                        **{
                            k: None if pd.isna(row[k]) else row[k]
                            for k in (
                                "model",
                                "prompt_tokens",
                                "completion_tokens",
                                "reasoning_tokens",
                                "cached_tokens",
                            )
                        },
                    }
                )
        for row in rows:
            known = row["prompt_tokens"] is not None and row["completion_tokens"] is not None
            row["total_tokens"] = row["prompt_tokens"] + row["completion_tokens"] if known else None
        return ledger_frame(rows, table, ("request", "label", "status"), index="request")

    def panel(self) -> Any:
        """This session's :class:`~glm_live.widgets.LivePanel`: the hub connection, live
        latency metrics (every request of the session, made before or after, displayed or
        not), and the views of the chats and runs started from now on.

        In a notebook it is displayed where it is called (once per cell: the returned panel
        as the cell's last expression does not show it twice); it is also returned.
        """
        panel = self._panel
        if panel is None:
            from .widgets import LivePanel  # ipywidgets: imported when first asked for

            panel = self._panel = LivePanel(recorder=self.recorder)
            hub = self.hub
            if hub is not None:
                # The hub's "open" may have fired before this subscribed: start from now.
                panel.indicator.update(
                    state=hub.state.value,
                    url=hub.url,
                    reconnects=hub.reconnects,
                    rtt_ms=-1.0 if hub.latency is None else round(hub.latency * 1000, 2),
                )
                hub.add_observer(panel.indicator.observe_connection)
        if in_kernel():
            from IPython.display import display

            display(panel)  # type: ignore[no-untyped-call]  # once per cell: LivePanel
        return panel

    def _chat_view(self, handle: ChatHandle) -> Any:
        """A StreamView following ``handle`` (from its start, or replaying what came)."""
        from .widgets import StreamView

        view = StreamView(title=handle.title, on_stop=handle.cancel)

        def finished(result: Completion | None, error: BaseException | None) -> None:
            status = handle.status
            if status == "done":
                usage = (result.usage or {}) if result is not None else {}
                view.finish("done", usage_tokens=usage.get("completion_tokens"))
            elif status == "cancelled":
                view.finish("cancelled", "stopped")
            else:  # error, interrupted
                view.finish(status, error)

        handle.follow(lambda chunk: view.feed_chunk(chunk, handle.completion), finished)
        return view

    def _run_view(self, handle: RunHandle) -> Any:
        """An AgentBoard following ``handle`` (from its start, or from where it is)."""
        from .widgets import AgentBoard

        def answer(interrupt_id: str, payload: Any, reject: bool) -> None:
            handle.resume(payload, interrupt_id=interrupt_id, reject=reject)

        board = AgentBoard(title=handle.title, on_answer=answer)

        def finished(result: RunState | None, error: BaseException | None) -> None:
            # The run ends once (RunState.end): here only if nothing ended it yet.
            handle.folded.end(
                "cancelled" if handle.status == "cancelled" else "interrupted",
                _error_text(error),
            )
            board.show(handle.folded)

        board.show(handle.folded)
        handle.follow(lambda _: board.show(handle.folded), finished)
        return board

    def _show(self, view: Any) -> Any:
        """Show a new view: in the panel if there is one, else where the cell is."""
        from IPython.display import display

        if self._panel is not None:
            self._panel.add(view)
            mark_shown(view)
        elif in_kernel():
            display_once(view)
        else:
            display(view)  # type: ignore[no-untyped-call]
        return view

    def _show_chat(self, handle: ChatHandle, title: str) -> Any:
        return self._show(self._chat_view(handle))

    def _show_run(self, handle: RunHandle, title: str) -> Any:
        return self._show(self._run_view(handle))

    def close(self) -> None:
        """Close the hub connection and the client; release the embedded runtime (the last
        session using it stops it)."""
        if self.hub is not None:
            self.loop.run(self.hub.aclose(), timeout=10)
        self.loop.run(self.client.aclose(), timeout=10)
        runtime, self._embedded = self._embedded, None
        if runtime is not None:
            if self._shared:
                release(runtime)
            else:
                runtime.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_schema_list(tools: Any) -> bool:
    """Whether ``tools`` is a list of JSON tool schemas (passed to the model as they are)."""
    return (
        isinstance(tools, list | tuple)
        and bool(tools)
        and all(isinstance(t, Mapping) and "type" in t for t in tools)
    )


def _check_turn(conversation: Conversation, prompt: Any) -> None:
    """Refuse a chat that cannot continue ``conversation`` (see :meth:`Session.chat`)."""
    if conversation.answering is not None:
        msg = (
            "this conversation is still receiving an answer: wait for it, or cancel its "
            "chat (handle.cancel(), or Stop in its view), before sending the next message"
        )
        raise RuntimeError(msg)
    if prompt is not None and not isinstance(prompt, str):
        msg = (
            "with conversation=, give the next prompt as a string: the history is the "
            "conversation's (add messages to it with conversation.add(role, content))"
        )
        raise ValueError(msg)
    if prompt is None:
        last = conversation.messages[-1] if len(conversation) else None
        if last is None or last.role not in ("user", "tool"):
            msg = (
                "nothing to answer: the conversation does not end with the user's message; "
                "give a prompt (session.chat('...', conversation=conv))"
            )
            raise ValueError(msg)


def _wants_display(display: bool | None) -> bool:
    """Display widgets by default only inside a Jupyter kernel."""
    return in_kernel() if display is None else display


def connect(
    url: str | None = None,
    token: str | None = None,
    *,
    hub: bool = True,
    heartbeat: float = 5.0,
    prices: Prices | None = None,
    **serve_options: Any,
) -> Session:
    """A :class:`Session` with the runtime at ``url``, or with an embedded one.

    Without ``url``, uses the process's embedded runtime (simulated GLM-4.6, loopback, a free
    port), started by the first such call: ``serve_options`` go to
    :func:`glm_live.server.serve` (``sim=``, ``seed=``...), and calls with the same options
    share one runtime (re-running a notebook does not start another), which stops when the
    last session using it closes (or at exit). Its token (made for it, or ``token``) is passed
    on to the session's client and hub connection: nothing to copy, and nothing printed.

    With ``url`` and no ``token``, the token is found by
    :func:`glm_live.protocols.runtime.find_token`: ``GLM_LIVE_TOKEN``, else the runtime file
    ``glm-live serve`` wrote for that URL.

    ``prices`` (per model, per million tokens: see :class:`~glm_live.Price`) give
    :meth:`Session.ledger` and the chat views their costs; none are guessed.
    """
    if url is None:
        embedded = acquire({"token": token, **serve_options} if token else serve_options)
        try:
            return Session(
                embedded.url,
                token=embedded.token,
                embedded=embedded,
                shared=True,
                hub=hub,
                heartbeat=heartbeat,
                prices=prices,
            )
        except BaseException:
            release(embedded)
            raise
    if token is None:
        token = find_token(url)
    return Session(url, token=token, hub=hub, heartbeat=heartbeat, prices=prices)
