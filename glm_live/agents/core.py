"""Workflows of agents, run as AG-UI event streams.

A :class:`Workflow` is a set of agents, each an async function of an :class:`AgentContext`,
with dependencies (``after=[...]``): agents without a pending dependency run in parallel, so a
chain is a sequence and a fan-in is a DAG. :class:`Run` executes one; every step of it becomes
an AG-UI event handed to ``emit``:

``RUN_STARTED`` (with ``protocolVersion``: AG-UI 1.0 makes a producer declare it),
``STATE_SNAPSHOT``, the orchestrator's plan (a step and a text message), then per agent
``SUBAGENT_STARTED``, its steps, messages (``TEXT_MESSAGE_*``, ``REASONING_*``), tool calls
(``TOOL_CALL_*``), progress (one activity message of type ``progress`` per agent:
``ACTIVITY_SNAPSHOT`` first, ``ACTIVITY_DELTA`` after) and state changes (``STATE_DELTA``, RFC
6902), then ``SUBAGENT_FINISHED`` or ``SUBAGENT_ERROR``; finally the orchestrator's report and
``RUN_FINISHED`` or ``RUN_ERROR``. Anything still open (a message, a tool call, a step) is
closed before the run ends, as AG-UI's ordering rules need.

How a run ends (:meth:`Run._finish` is the one place a ``RUN_FINISHED`` is made):

=======================  ==========================================================
what happened            terminal event
=======================  ==========================================================
every agent done         ``RUN_FINISHED``, outcome ``success``, ``result`` by agent
an agent asked a person  ``RUN_FINISHED``, outcome ``interrupt`` (``ctx.ask``)
frontend tools called    ``RUN_FINISHED``, outcome ``success`` with
                         ``pendingToolCallIds`` (no result)
cancelled                ``RUN_FINISHED``, outcome ``cancelled`` (no result)
an agent failed          ``RUN_ERROR`` code ``agent_failed``
=======================  ==========================================================

Each carries ``usage``: the run's model calls (every ``ctx.chat`` of its agents) summed per
model as AG-UI :class:`~ag_ui.core.TokenUsage`, calls cut before their usage arrived left out.

An agent can be paused, resumed, cancelled or given human input (:meth:`Run.control`): it waits
at its next checkpoint (every context call is one).

An agent can also ask a person (:meth:`AgentContext.ask`): the run then ends with the AG-UI
interrupt outcome, and a later run on the same thread answers (:mod:`.interrupts`). A model
that calls one of the client's tools (``RunAgentInput.tools``) in :meth:`AgentContext.chat`
suspends its agent the same way, until a later run brings the tool's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import jsonpatch
from ag_ui.core import (
    PROTOCOL_VERSION,
    ActivityDeltaEvent,
    ActivitySnapshotEvent,
    AgentCapabilities,
    BaseEvent,
    HumanInTheLoopCapabilities,
    IdentityCapabilities,
    MessagesSnapshotEvent,
    MultiAgentCapabilities,
    ReasoningCapabilities,
    ReasoningEndEvent,
    ReasoningMessageContentEvent,
    ReasoningMessageEndEvent,
    ReasoningMessageStartEvent,
    ReasoningStartEvent,
    RunErrorEvent,
    RunFinishedCancelledOutcome,
    RunFinishedEvent,
    RunFinishedInterruptOutcome,
    RunFinishedOutcome,
    RunFinishedSuccessOutcome,
    RunStartedEvent,
    StateCapabilities,
    StateDeltaEvent,
    StateSnapshotEvent,
    StepFinishedEvent,
    StepStartedEvent,
    SubagentErrorEvent,
    SubagentFinishedEvent,
    SubagentFinishedSuspendedOutcome,
    SubagentInfo,
    SubagentStartedEvent,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    TokenUsage,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
    ToolsCapabilities,
    TransportCapabilities,
    aggregate_token_usage,
)

from ..errors import GlmLiveError
from ..protocols.agui import PROGRESS, token_usage
from ..protocols.glm import Completion, GLMClient
from .interrupts import INPUT_REQUIRED, Questions, Suspended

__all__ = ["Agent", "AgentContext", "Run", "Workflow", "WorkflowError"]

AgentFunction = Callable[["AgentContext"], Awaitable[Any]]
Emit = Callable[[BaseEvent], None]


class WorkflowError(GlmLiveError, ValueError):
    """A workflow that cannot run: unknown dependency, cycle, duplicate name."""


@dataclass(frozen=True)
class Agent:
    """One agent: a name, an async function, what it waits for."""

    name: str
    function: AgentFunction
    after: tuple[str, ...] = ()
    description: str = ""


class Workflow:
    """Agents and their dependencies.

    Example::

        flow = Workflow("review")

        @flow.agent()
        async def fetch(ctx): ...

        @flow.agent(after=["fetch"])
        async def summarise(ctx): ...
    """

    def __init__(
        self, name: str, description: str = "", initial_state: Mapping[str, Any] | None = None
    ) -> None:
        self.name = name
        self.description = description
        self.initial_state = dict(initial_state or {})
        self.agents: dict[str, Agent] = {}

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, agents={list(self.agents)})"

    def add(
        self,
        name: str,
        function: AgentFunction,
        *,
        after: Iterable[str] = (),
        description: str = "",
    ) -> Agent:
        """Add an agent; ``after`` names the agents it waits for."""
        if name in self.agents:
            msg = f"workflow {self.name!r} already has an agent named {name!r}"
            raise WorkflowError(msg)
        agent = Agent(name, function, tuple(after), description or (function.__doc__ or ""))
        self.agents[name] = agent
        return agent

    def agent(
        self, name: str | None = None, *, after: Iterable[str] = (), description: str = ""
    ) -> Callable[[AgentFunction], AgentFunction]:
        """Decorator form of :meth:`add` (the name defaults to the function's, with dashes)."""

        def register(function: AgentFunction) -> AgentFunction:
            self.add(
                name or function.__name__.replace("_", "-"),
                function,
                after=after,
                description=description,
            )
            return function

        return register

    def capabilities(self, version: str | None = None) -> AgentCapabilities:
        """What a run of this workflow can do, as AG-UI 1.0's :class:`AgentCapabilities`
        (``version``: the runtime's, for ``identity.version``).

        Declared from what :class:`Run` and :class:`AgentContext` do for every workflow:
        SSE streaming; tool calls (the agents', ``ctx.call_tool`` and the model's, and the
        tools a client sends in ``RunAgentInput.tools``: frontend tools); a state snapshot
        then JSON Patch deltas, not kept between runs; the agents as subagents the run delegates to;
        reasoning streamed when the model thinks; people who pause, resume, cancel and
        answer agents mid-run (interventions, through the runtime's ``control:<runId>``
        room); and progress as activity of type ``progress`` (``custom.activityTypes``).
        ``humanInTheLoop.interrupts`` is ``false`` until runs end with an interrupt outcome.
        """
        return AgentCapabilities(
            identity=IdentityCapabilities(
                name=self.name,
                type="glm_live",
                description=self.description or None,
                version=version,
            ),
            transport=TransportCapabilities(streaming=True),
            tools=ToolsCapabilities(supported=True, client_provided=True),
            state=StateCapabilities(snapshots=True, deltas=True, persistent_state=False),
            multi_agent=MultiAgentCapabilities(
                supported=True,
                delegation=True,
                subagents=[
                    SubagentInfo(name=a.name, description=a.description.strip() or None)
                    for a in self.agents.values()
                ],
            ),
            reasoning=ReasoningCapabilities(supported=True, streaming=True),
            human_in_the_loop=HumanInTheLoopCapabilities(
                supported=True, interventions=True, interrupts=True
            ),
            custom={"activityTypes": [PROGRESS]},
        )

    def ready(self, waiting: Iterable[str], done: AbstractSet[str]) -> list[str]:
        """Those of ``waiting`` whose dependencies are all in ``done``, in the order given.

        The one rule of when an agent may start: :meth:`order` applies it wave by wave,
        :class:`Run` each time an agent finishes (so an agent starts as soon as what it
        needs is done, without waiting for the rest of its wave).
        """
        return [name for name in waiting if all(d in done for d in self.agents[name].after)]

    def order(self) -> list[list[str]]:
        """The agents in waves: each wave's agents can run together once the earlier waves
        are done. Raises :class:`WorkflowError` for unknown dependencies or cycles."""
        for agent in self.agents.values():
            unknown = [d for d in agent.after if d not in self.agents]
            if unknown:
                msg = f"agent {agent.name!r} waits for unknown agents {unknown}"
                raise WorkflowError(msg)
        done: set[str] = set()
        waves = []
        while len(done) < len(self.agents):
            wave = self.ready([name for name in self.agents if name not in done], done)
            if not wave:
                stuck = sorted(set(self.agents) - done)
                msg = f"workflow {self.name!r} has a dependency cycle among {stuck}"
                raise WorkflowError(msg)
            waves.append(wave)
            done.update(wave)
        return waves


class _Control:
    """Pause, resume, cancel and human input for one agent."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.running.set()
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()


class AgentContext:
    """What an agent gets: inputs, results of the agents before it, the shared state, a GLM
    client, and ways to report (steps, progress, messages, tool calls).

    The :class:`Run` makes one per agent it starts, handing it that agent's controls; the
    context reports through the run's methods for its agents (:meth:`Run.emit`,
    :meth:`Run.change_state`, :meth:`Run.deliver`).
    """

    def __init__(self, run: Run, agent: Agent, subagent_run_id: str, control: _Control) -> None:
        self.run = run
        self.agent = agent
        self.name = agent.name
        self.id = subagent_run_id
        self._control = control
        # The agent's progress activity as last sent (None: no snapshot yet).
        self._activity: dict[str, Any] | None = None

    @property
    def inputs(self) -> dict[str, Any]:
        """The run's inputs."""
        return self.run.inputs

    @property
    def results(self) -> dict[str, Any]:
        """What the agents before this one returned, by name."""
        return dict(self.run.results)

    @property
    def state(self) -> Any:
        """A copy of the shared state (change it with :meth:`update` or :meth:`patch`)."""
        return copy.deepcopy(self.run.state)

    async def checkpoint(self) -> None:
        """Wait here while paused (cancellation arrives as ``CancelledError``)."""
        await self._control.running.wait()

    def _emit(self, event: BaseEvent) -> None:
        event.subagent_run_id = self.id  # type: ignore[attr-defined]
        self.run.emit(event)

    @contextlib.asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        """A named step (``STEP_STARTED``/``STEP_FINISHED``, named ``<agent>: <name>``)."""
        await self.checkpoint()
        step = f"{self.name}: {name}"
        self._emit(StepStartedEvent(step_name=step))
        try:
            yield
        finally:
            # Also on cancellation: the step is closed before SUBAGENT_ERROR goes out.
            self._emit(StepFinishedEvent(step_name=step))

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress, 0 to 1, with a short message.

        Goes out as the agent's ``progress`` activity message (id ``progress-<subagent run
        id>``, content ``{"agent", "fraction", "message"}``): an ``ACTIVITY_SNAPSHOT`` the
        first time, then an ``ACTIVITY_DELTA`` with what changed (nothing when nothing did).
        """
        await self.checkpoint()
        content = {
            "agent": self.name,
            "fraction": min(1.0, max(0.0, float(fraction))),
            "message": message,
        }
        message_id = f"{PROGRESS}-{self.id}"
        if self._activity is None:
            self._emit(
                ActivitySnapshotEvent(
                    message_id=message_id, activity_type=PROGRESS, content=dict(content)
                )
            )
        else:
            operations = jsonpatch.make_patch(self._activity, content).patch
            if not operations:
                return
            self._emit(
                ActivityDeltaEvent.model_validate(
                    {"messageId": message_id, "activityType": PROGRESS, "patch": operations}
                )
            )
        self._activity = content

    async def update(self, changes: Mapping[str, Any]) -> None:
        """Merge ``changes`` into the shared state's top level (sent as a JSON Patch)."""
        await self.checkpoint()
        self.run.change_state(lambda state: {**state, **changes}, self.id)

    async def patch(self, operations: list[dict[str, Any]]) -> None:
        """Apply RFC 6902 ``operations`` to the shared state."""
        await self.checkpoint()
        self.run.change_state(lambda state: jsonpatch.apply_patch(state, operations), self.id)

    async def say(self, text: str) -> None:
        """A whole text message from this agent."""
        await self.checkpoint()
        message_id = uuid.uuid4().hex
        self._emit(TextMessageStartEvent(message_id=message_id, role="assistant", name=self.name))
        if text:
            self._emit(TextMessageContentEvent(message_id=message_id, delta=text))
        self._emit(TextMessageEndEvent(message_id=message_id))

    @property
    def context(self) -> list[dict[str, str]]:
        """The client's context (``RunAgentInput.context``: ``{"description", "value"}``
        each); :meth:`chat` gives it to the model in the system prompt."""
        return [dict(entry) for entry in self.run.context]

    @property
    def frontend_tools(self) -> list[dict[str, Any]]:
        """The tools the client runs (``RunAgentInput.tools``: ``{"name", "description",
        "parameters"}`` each); :meth:`chat` offers them to the model."""
        return [dict(tool) for tool in self.run.frontend_tools]

    def prompt_messages(self, prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages :meth:`chat` sends for ``prompt``: a string becomes a user message,
        and the client's :attr:`context`, if any, joins the system prompt (appended to the
        first message when it is a system one, else a system message of its own first)."""
        messages = (
            [{"role": "user", "content": prompt}]
            if isinstance(prompt, str)
            else [dict(m) for m in prompt]
        )
        if not self.run.context:
            return messages
        lines = "\n".join(f"- {e['description']}: {e['value']}" for e in self.run.context)
        text = f"Context from the client:\n{lines}"
        first = messages[0] if messages else {}
        if first.get("role") == "system" and isinstance(first.get("content"), str):
            messages[0] = {**first, "content": f"{first['content']}\n\n{text}"}
        else:
            messages.insert(0, {"role": "system", "content": text})
        return messages

    async def chat(
        self,
        prompt: str | list[dict[str, Any]],
        *,
        frontend_tools: bool | None = None,
        **params: Any,
    ) -> Completion:
        """Ask GLM (through the run's client), streaming the answer out as it comes.

        Reasoning goes out as ``REASONING_*`` events, the answer as ``TEXT_MESSAGE_*``, tool
        calls as ``TOOL_CALL_*``. Returns the finished completion. The messages sent are
        :meth:`prompt_messages` (the client's context in the system prompt).

        Frontend tools: the client's tools (:attr:`frontend_tools`) are offered to the model
        (GLM function calling, ``tools``) when ``frontend_tools`` is true, or by default when
        the call names no ``tools`` of its own (``frontend_tools=False`` opts out). If the
        model calls one, the runtime cannot run it: the call's ``TOOL_CALL_*`` events go out
        with no result, this agent is suspended here (``SUBAGENT_FINISHED`` says
        ``suspended``), and the run ends with outcome ``success`` and ``pendingToolCallIds``.
        The run on the same thread that brings the results (``tool`` messages) replays the
        agent, and this chat (the agent's same chat, matched by order, as :meth:`ask`
        matches questions) sends the model the conversation with the assistant's calls and
        the results, and returns what the model answers then (:mod:`.interrupts`).
        """
        await self.checkpoint()
        params = {**self.run.chat_defaults, **params}
        messages = self.prompt_messages(prompt)
        offer = frontend_tools if frontend_tools is not None else "tools" not in params
        names: set[str] = set()
        if offer and self.run.frontend_tools:
            own = list(params.get("tools") or [])
            taken = {(t.get("function") or {}).get("name") for t in own}
            for tool in self.run.frontend_tools:
                if tool["name"] in taken:
                    continue  # the agent's own tool of that name wins: it runs it itself
                names.add(tool["name"])
                own.append(_function_tool(tool))
            params["tools"] = own
        index, rounds = self.run.questions.next_chat(self.name)
        for round_ in rounds:  # a replay: the calls made before, with the client's results
            messages.append(round_["assistant"])
            messages.extend(
                {"role": "tool", "tool_call_id": call_id, "content": round_["results"][call_id]}
                for call_id in round_["calls"]
            )
        completion, ids = await self._stream(messages, params)
        called = [
            (ids.get(call.index) or call.id or "", call.name)
            for call in completion.tool_calls
            if call.name in names
        ]
        if called:
            assistant = completion.to_message()
            for entry, call in zip(assistant["tool_calls"], completion.tool_calls, strict=True):
                entry["id"] = ids.get(call.index) or call.id  # the id the events carried
            self.run.questions.call_tools(self.name, self.id, index, assistant, called)
        return completion

    async def _stream(
        self, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[Completion, dict[int, str]]:
        """One model call, streamed out as events; the completion, and the id each tool
        call (by index) was announced under."""
        message_id = uuid.uuid4().hex
        reasoning_id: str | None = None
        text_open = False
        calls: dict[int, str] = {}
        stream = self.run.client.stream(messages, **params)
        try:
            async for chunk in stream:
                if chunk.reasoning:
                    if reasoning_id is None:
                        reasoning_id = uuid.uuid4().hex
                        self._emit(ReasoningStartEvent(message_id=reasoning_id))
                        self._emit(
                            ReasoningMessageStartEvent(message_id=reasoning_id, role="reasoning")
                        )
                    self._emit(
                        ReasoningMessageContentEvent(message_id=reasoning_id, delta=chunk.reasoning)
                    )
                if chunk.content:
                    if reasoning_id is not None and not text_open:
                        self._close_reasoning(reasoning_id)
                        reasoning_id = None
                    if not text_open:
                        self._emit(
                            TextMessageStartEvent(
                                message_id=message_id, role="assistant", name=self.name
                            )
                        )
                        text_open = True
                    self._emit(TextMessageContentEvent(message_id=message_id, delta=chunk.content))
                for delta in chunk.tool_calls:
                    if delta.index not in calls:
                        call_id = delta.id or uuid.uuid4().hex
                        calls[delta.index] = call_id
                        self._emit(
                            ToolCallStartEvent(
                                tool_call_id=call_id,
                                tool_call_name=delta.name or "",
                                parent_message_id=message_id,
                            )
                        )
                    if delta.arguments:
                        self._emit(
                            ToolCallArgsEvent(
                                tool_call_id=calls[delta.index], delta=delta.arguments
                            )
                        )
                await self.checkpoint()
        finally:
            await stream.aclose()
            self.run.count_usage(stream.completion.usage, stream.completion.model)
            if reasoning_id is not None:
                self._close_reasoning(reasoning_id)
            if text_open:
                self._emit(TextMessageEndEvent(message_id=message_id))
            for call_id in calls.values():
                self._emit(ToolCallEndEvent(tool_call_id=call_id))
        return stream.completion, calls

    def _close_reasoning(self, reasoning_id: str) -> None:
        self._emit(ReasoningMessageEndEvent(message_id=reasoning_id))
        self._emit(ReasoningEndEvent(message_id=reasoning_id))

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any], function: Callable[..., Any]
    ) -> Any:
        """Call ``function(**arguments)`` as a tool, reporting the call and its result."""
        await self.checkpoint()
        call_id = uuid.uuid4().hex
        self._emit(ToolCallStartEvent(tool_call_id=call_id, tool_call_name=name))
        self._emit(ToolCallArgsEvent(tool_call_id=call_id, delta=json.dumps(dict(arguments))))
        self._emit(ToolCallEndEvent(tool_call_id=call_id))
        result = function(**arguments)
        if asyncio.iscoroutine(result):
            result = await result
        self._emit(
            ToolCallResultEvent(
                message_id=uuid.uuid4().hex,
                tool_call_id=call_id,
                content=json.dumps(result, default=str),
            )
        )
        return result

    async def send(self, agent: str, data: Any) -> None:
        """Message another agent of the run (it reads with :meth:`receive`)."""
        await self.checkpoint()
        self.run.deliver(agent, {"from": self.name, "data": data})

    async def receive(self, timeout: float | None = None) -> Any:
        """The next message for this agent (from an agent or a person: human input)."""
        return await asyncio.wait_for(self._control.inbox.get(), timeout)

    # -- people in the loop (AG-UI interrupts; see .interrupts) ----------------------------

    async def ask(
        self,
        message: str,
        *,
        reason: str = INPUT_REQUIRED,
        schema: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Ask a person; returns their answer (the resume entry's ``payload``).

        The first time, nobody has answered: the agent stops here (its steps close, its
        ``SUBAGENT_FINISHED`` says ``suspended``), the agents that do not need it go on, and
        the run ends with ``RUN_FINISHED`` whose outcome is ``interrupt``, this question one
        of its ``Interrupt`` objects (``message``, ``reason``, ``responseSchema`` = ``schema``,
        ``expiresAt`` = now + ``timeout`` seconds, ``subagentRunId``). A new run on the same
        thread with ``resume`` runs this agent again from its start, and this call (the
        agent's same question, matched by order) returns the answer.

        Raises:
            Rejected: The person declined (``status: cancelled``).
        """
        await self.checkpoint()
        return self.run.questions.ask(
            self.name,
            self.id,
            message,
            reason=reason,
            schema=schema,
            timeout=timeout,
            metadata=metadata,
        )


class Run:
    """One execution of a workflow, emitting AG-UI events to ``emit``.

    Args:
        workflow: What to run.
        client: The GLM client agents chat through.
        emit: Receives every event, in order, as it happens (see also :meth:`events`).
        inputs: The run's inputs (``ctx.inputs``).
        state: Initial shared state (the workflow's initial state is merged under it).
        run_id, thread_id: Ids (random by default).
        chat_defaults: Parameters added to every ``ctx.chat`` (e.g. simulator knobs).
        tools: The client's tools (AG-UI ``Tool``, wire JSON: ``name``, ``description``,
            ``parameters``), offered to the model by the agents' chats (frontend tools).
        context: The client's context (AG-UI ``Context``: ``description``, ``value``), in
            the system prompt of the agents' chats.
    """

    def __init__(
        self,
        workflow: Workflow,
        client: GLMClient,
        emit: Emit | None = None,
        *,
        inputs: Mapping[str, Any] | None = None,
        state: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        thread_id: str | None = None,
        chat_defaults: Mapping[str, Any] | None = None,
        tools: Iterable[Mapping[str, Any]] = (),
        context: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.workflow = workflow
        self.frontend_tools = [dict(t) for t in tools]
        self.context = [
            {"description": str(c.get("description", "")), "value": str(c.get("value", ""))}
            for c in context
        ]
        self.client = client
        self._sink = emit
        self.inputs = dict(inputs or {})
        self.state: Any = {**workflow.initial_state, **dict(state or {})}
        self.run_id = run_id or uuid.uuid4().hex
        self.thread_id = thread_id or uuid.uuid4().hex
        self.chat_defaults = dict(chat_defaults or {})
        self.results: dict[str, Any] = {}
        self._controls = {name: _Control() for name in workflow.agents}
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._queue: asyncio.Queue[BaseEvent] | None = None
        self._main: asyncio.Task[Any] | None = None
        self.finished = False
        #: Token usage of each model call so far (summed per model at the run's end).
        self.calls: list[TokenUsage] = []
        # -- people in the loop: the questions asked (and answered) on this run's thread, and
        # the thread's messages to send as MESSAGES_SNAPSHOT when a run resumes (.interrupts).
        self.questions = Questions()
        self.messages_snapshot: list[dict[str, Any]] | None = None

    # -- for the run's agents (their AgentContext) and the run itself ---------------------------

    def emit(self, event: BaseEvent) -> None:
        """Send ``event`` out: to ``emit`` and to the :meth:`events` stream, in call order.

        Meant for :class:`AgentContext` (and the run itself), not for callers of a run: the
        ordering rules are kept by the code that emits. Once the run has finished (its
        ``RUN_FINISHED`` or ``RUN_ERROR`` is out), events are dropped.
        """
        if self.finished:
            return
        if self._sink is not None:
            self._sink(event)
        if self._queue is not None:
            self._queue.put_nowait(event)

    def change_state(
        self, change: Callable[[Any], Any], subagent_run_id: str | None = None
    ) -> None:
        """Replace the shared state with ``change(copy of it)``; emit the difference as a
        ``STATE_DELTA`` (JSON Patch), from ``subagent_run_id`` when an agent made it, and
        nothing when nothing changed. Meant for :class:`AgentContext`."""
        before = self.state
        after = change(copy.deepcopy(before))
        operations = jsonpatch.make_patch(before, after).patch
        self.state = after
        if operations:
            event = StateDeltaEvent.model_validate({"delta": operations})
            if subagent_run_id is not None:
                event.subagent_run_id = subagent_run_id
            self.emit(event)

    def count_usage(self, usage: dict[str, Any] | None, model: str | None = None) -> None:
        """Add one model call's usage (OpenAI/GLM ``usage``) to the run's: meant for
        :meth:`AgentContext.chat`, and for agents that call a model some other way. A call
        that reported no usage adds nothing."""
        entry = token_usage(usage, model)
        if entry is not None:
            self.calls.append(entry)

    @property
    def usage(self) -> list[TokenUsage] | None:
        """The run's usage so far, one entry per model; ``None`` before any call reported."""
        return aggregate_token_usage(self.calls) or None

    def deliver(self, agent: str, message: Any) -> None:
        """Put ``message`` in ``agent``'s inbox (it reads it with :meth:`AgentContext.receive`).

        Meant for :class:`AgentContext`. Raises :class:`WorkflowError` if the run has no
        such agent.
        """
        control = self._controls.get(agent)
        if control is None:
            msg = f"no agent {agent!r} in this run"
            raise WorkflowError(msg)
        control.inbox.put_nowait(message)

    # -- for callers ------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[BaseEvent]:
        """Execute the run, yielding each event as it is emitted. Leaving the loop early
        (or cancelling the task that iterates) cancels the run."""
        queue = self._queue = asyncio.Queue()
        task = self._main = asyncio.ensure_future(self.execute())
        try:
            while not (task.done() and queue.empty()):
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def cancel(self) -> None:
        """Cancel the whole run (its agents stop; the stream ends ``cancelled``)."""
        if self._main is not None:
            self._main.cancel()

    def control(self, agent: str | None, command: str, data: Any = None) -> None:
        """``pause``, ``resume``, ``cancel`` or ``input`` (human input) for one agent, or for
        every agent when ``agent`` is ``None``."""
        names = list(self._controls) if agent is None else [agent]
        for name in names:
            control = self._controls.get(name)
            if control is None:
                continue
            if command == "pause":
                control.running.clear()
            elif command == "resume":
                control.running.set()
            elif command == "cancel":
                task = self._tasks.get(name)
                if task is not None:
                    task.cancel()
            elif command == "input":
                control.inbox.put_nowait({"from": "human", "data": data})
            else:
                msg = f"unknown command {command!r}: use pause, resume, cancel or input"
                raise ValueError(msg)

    async def execute(self) -> Any:
        """Run to the end; returns the results by agent. Cancelling this cancels every agent
        and ends the stream with ``RUN_FINISHED`` (outcome ``cancelled``)."""
        self.emit(
            RunStartedEvent(
                thread_id=self.thread_id, run_id=self.run_id, protocol_version=PROTOCOL_VERSION
            )
        )
        self.emit(StateSnapshotEvent(snapshot=copy.deepcopy(self.state)))
        if self.messages_snapshot is not None:  # a resumed run: the thread's messages so far
            self.emit(MessagesSnapshotEvent.model_validate({"messages": self.messages_snapshot}))
        try:
            waves = self.workflow.order()
        except WorkflowError as exc:
            self._finish_error(str(exc), "workflow")
            raise
        try:
            self._orchestrate(
                "plan",
                "Plan: " + " → ".join(" + ".join(wave) for wave in waves) + ".",
            )
            agents = self.workflow.agents
            failed: list[str] = []
            pending = [name for name in agents if name not in self.results]  # resumed: done
            suspended: list[str] = []  # asked a person (ctx.ask): wait for a resuming run
            running: dict[asyncio.Task[Any], str] = {}
            while pending or running:
                for name in list(pending):
                    if any(d in failed for d in agents[name].after):
                        failed.append(name)  # skipped: something it needs failed
                        pending.remove(name)
                # The workflow's own rule (the one behind order()), applied as agents finish.
                for name in self.workflow.ready(pending, self.results.keys()):
                    task = asyncio.ensure_future(self._run_agent(agents[name]))
                    self._tasks[name] = task
                    running[task] = name
                    pending.remove(name)
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    name = running.pop(task)
                    if not task.cancelled() and isinstance(task.exception(), Suspended):
                        suspended.append(name)
                    elif task.cancelled() or task.exception() is not None:
                        failed.append(name)
                    else:
                        self.results[name] = task.result()
            if failed:
                self._orchestrate("report", f"Stopped: {', '.join(failed)} did not finish.")
                self._finish_error(f"agents did not finish: {', '.join(failed)}", "agent_failed")
                return self.results
            if suspended and self.questions.raised:
                self._finish_interrupted(suspended)
                return self.results
            if suspended:  # only frontend tool calls: the client runs them, then a new run
                self._finish_tools_pending(suspended)
                return self.results
            self._orchestrate("report", f"All {len(self.results)} agents finished.")
            self._finish(RunFinishedSuccessOutcome(), _jsonable(self.results))
            return self.results
        except asyncio.CancelledError:
            for task in self._tasks.values():
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            # Every agent has ended, and its steps, messages and tool calls were closed as
            # it unwound (the context's finally blocks): nothing is left open here.
            self._finish(RunFinishedCancelledOutcome())
            raise
        except Exception as exc:
            self._finish_error(f"{type(exc).__name__}: {exc}", "orchestrator")
            raise

    def _finish_interrupted(self, suspended: list[str]) -> None:
        """End with the interrupt outcome: one ``Interrupt`` per question asked."""
        waiting = ", ".join(suspended)
        self._orchestrate("report", f"Waiting for a person to answer {waiting}.")
        # No result: 1.0 gives one to a success only (the thread keeps the results so far).
        self._finish(RunFinishedInterruptOutcome(interrupts=list(self.questions.raised)))

    def _finish_tools_pending(self, suspended: list[str]) -> None:
        """End with outcome ``success`` and ``pendingToolCallIds``: the frontend tool calls
        this run made, whose results the next run on the thread brings (AG-UI 1.0: a run
        that handed tool calls to the client is over; the client runs them and runs again)."""
        calls = self.questions.called
        tools = sorted(
            {self.questions.calls[i]["name"] for i in calls if i in self.questions.calls}
        )
        self._orchestrate(
            "report",
            f"Waiting for the client's tools ({', '.join(tools)}) for {', '.join(suspended)}.",
        )
        # No result: the work is not done; the thread keeps the results so far.
        self._finish(RunFinishedSuccessOutcome(pending_tool_call_ids=list(calls)))

    def _finish(self, outcome: RunFinishedOutcome, result: Any = None) -> None:
        """End the run with ``RUN_FINISHED``: ``outcome`` (success with its ``result``,
        cancelled, or an interrupt with the questions a person must answer) and the run's
        usage. Nothing may be open: the callers close it first."""
        self.emit(
            RunFinishedEvent(
                thread_id=self.thread_id,
                run_id=self.run_id,
                result=result,
                outcome=outcome,
                usage=self.usage,
            )
        )
        self.finished = True

    def _finish_error(self, message: str, code: str) -> None:
        self.emit(RunErrorEvent(message=message, code=code, usage=self.usage))
        self.finished = True

    def _orchestrate(self, step: str, text: str) -> None:
        """The orchestrator's step ``step`` with its one message (the plan, the report).

        Synchronous on purpose: the step opens and closes with no await in between, so a
        cancellation can never find it open.
        """
        name = f"orchestrator: {step}"
        self.emit(StepStartedEvent(step_name=name))
        message_id = uuid.uuid4().hex
        self.emit(
            TextMessageStartEvent(message_id=message_id, role="assistant", name="orchestrator")
        )
        self.emit(TextMessageContentEvent(message_id=message_id, delta=text))
        self.emit(TextMessageEndEvent(message_id=message_id))
        self.emit(StepFinishedEvent(step_name=name))

    async def _run_agent(self, agent: Agent) -> Any:
        # A suspended invocation (ctx.ask) is continued under its id; a new one gets its own.
        subagent_run_id = self.questions.invocations.pop(agent.name, None) or uuid.uuid4().hex
        self.emit(
            SubagentStartedEvent(
                subagent_run_id=subagent_run_id,
                name=agent.name,
                description=agent.description or None,
            )
        )
        ctx = AgentContext(self, agent, subagent_run_id, self._controls[agent.name])
        try:
            result = await agent.function(ctx)
        except Suspended as asked:  # ctx.ask unanswered, or frontend tools called
            waiting = [asked.interrupt.id] if asked.interrupt is not None else None
            self.emit(
                SubagentFinishedEvent(
                    subagent_run_id=subagent_run_id,
                    outcome=SubagentFinishedSuspendedOutcome(interrupt_ids=waiting),
                )
            )
            raise
        except asyncio.CancelledError:
            self.emit(
                SubagentErrorEvent(
                    subagent_run_id=subagent_run_id, message="cancelled", code="cancelled"
                )
            )
            raise
        except Exception as exc:
            self.emit(
                SubagentErrorEvent(
                    subagent_run_id=subagent_run_id,
                    message=f"{type(exc).__name__}: {exc}",
                    code=type(exc).__name__,
                )
            )
            raise
        self.emit(SubagentFinishedEvent(subagent_run_id=subagent_run_id))
        return result


def _function_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An AG-UI ``Tool`` (wire JSON) as a GLM/OpenAI function tool."""
    function: dict[str, Any] = {"name": tool["name"], "description": tool.get("description", "")}
    parameters = tool.get("parameters")
    function["parameters"] = parameters if parameters else {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
