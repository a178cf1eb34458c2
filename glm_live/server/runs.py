"""``POST /agents/{name}``: run a registered workflow, AG-UI over SSE out; ``GET /agents``:
the workflows served, with their AG-UI capabilities.

The body is an AG-UI ``RunAgentInput`` (camelCase JSON), so a CopilotKit ``HttpAgent`` can
drive it. The run's inputs are ``forwardedProps.inputs`` and the other top-level keys of
``forwardedProps`` (plus ``prompt``: the last user message; :func:`run_inputs`);
``forwardedProps.sim`` is passed to every agent's chat, with the simulator's default ``seed``
unless it names one. ``tools`` (frontend tools) are offered to the model by the agents' chats
and ``context`` joins their system prompts (:meth:`~glm_live.agents.core.AgentContext.chat`).

Every event also goes to the hub room ``run:<runId>``, and a status line per agent change to
the room ``agents``. Commands published to ``control:<runId>`` (``{"command": "pause" |
"resume" | "cancel" | "input", "agent": name or null, "data": ...}``) reach the run. When the
client disconnects, the run is cancelled: its agents stop on the server. A run that stays
silent (an agent waiting for a person) gets an SSE comment every ``sse_keepalive_s`` seconds
(:mod:`.keepalive`).

Discovery: ``GET /agents`` answers in the shape of CopilotKit's runtime info (``GET
<runtime>/info``: ``{"version", "agents": {id: {"name", "description", ...}}}``, the map a
CopilotKit frontend reads to list agents), each agent with what a client needs to drive it
remotely: its ``url`` (for a CopilotKit ``HttpAgent``) and its AG-UI 1.0 ``capabilities``
(:meth:`~glm_live.agents.core.Workflow.capabilities`); ``protocolVersion`` says which AG-UI the
runs speak. ``GET /agents/{name}`` answers one agent's entry. Both need any valid token.

Who may do what: the identity that starts a run (the caller's token's name) owns it: only it
and the admin command it through ``control:<runId>`` (the hub's rule), and ``GET
/runs/{id}`` answers it, the admin, and tokens reading ``run:<id>``; to anyone else the run
does not exist (404). AG-UI clients choose run ids: a run id another identity owns, or one
running now, is refused with 409.

People in the loop: an agent's ``ctx.ask`` ends the run with the interrupt outcome; a run on
the same thread with ``resume`` continues it (:mod:`.threads` keeps the threads and checks
the resume lists). ``forwardedProps.approval`` is the run's input ``approval``. A model that
calls a frontend tool ends the run with outcome ``success`` and ``pendingToolCallIds``; the next
run on the thread brings the results as ``tool`` messages and continues it (:mod:`.threads`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ag_ui.core import PROTOCOL_VERSION, BaseEvent, RunAgentInput, RunFinishedEvent
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..agents.core import Run, Workflow
from ..protocols.agui import PROGRESS, RunState, encode_event, event_dict
from ..protocols.glm import GLMClient
from ..wire.auth import Grant
from ..wire.hub.access import read_refusal
from .chatreq import error_body
from .httpauth import grant_of, unavailable
from .hub.service import Hub
from .hub.store import HubStoreError
from .keepalive import with_keepalive
from .threads import Refused, ThreadRun, Threads, ThreadStore

__all__ = ["RunService"]

try:
    _VERSION: str | None = importlib.metadata.version("glm_live")
except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
    _VERSION = None


class RunService:
    """Registered workflows, and the runs in progress."""

    def __init__(
        self,
        hub: Hub,
        workflows: dict[str, Workflow],
        client: Callable[[], GLMClient],
        keepalive_s: float | None = None,
        sim_seed: int = 0,
        threads: ThreadStore | None = None,
    ) -> None:
        self.hub = hub
        #: The threads' records, for runs that resume interrupted ones (:mod:`.threads`).
        self.threads = Threads(threads, live=lambda run_id: run_id in self.runs)
        #: The simulator's default seed: a run's chats get it unless ``forwardedProps.sim``
        #: names one, so that agents drawing an account's facts know the seed it is drawn at.
        self.sim_seed = sim_seed
        #: Seconds of silence before a run's stream gets a ``: keep-alive`` comment.
        self.keepalive_s = keepalive_s
        self.workflows = workflows
        self._client = client
        self.runs: dict[str, Run] = {}
        # Folded state of recent runs and their owners, for GET /runs/{id} (HTTP polling).
        self.states: dict[str, tuple[RunState, list[int], str]] = {}

    def describe(self, name: str, base_url: str) -> dict[str, Any]:
        """One workflow's entry in ``GET /agents`` (``base_url``: where the caller reached
        the runtime, for the agent's ``url``)."""
        workflow = self.workflows[name]
        capabilities = workflow.capabilities(_VERSION)
        return {
            "name": name,
            "description": workflow.description,
            "url": f"{base_url.rstrip('/')}/agents/{name}",
            "capabilities": capabilities.model_dump(mode="json", by_alias=True, exclude_none=True),
        }

    async def listing(self, request: Request) -> Response:
        """``GET /agents``: every workflow served, as CopilotKit's runtime info lists agents."""
        base = str(request.base_url)
        body = {
            "version": _VERSION,
            "protocolVersion": PROTOCOL_VERSION,
            "agents": {name: self.describe(name, base) for name in sorted(self.workflows)},
        }
        return Response(json.dumps(body), media_type="application/json")

    async def agent_route(self, request: Request) -> Response:
        """``/agents/{name}``: ``POST`` runs the workflow (:meth:`endpoint`), ``GET``
        describes it (:meth:`agent`)."""
        if request.method == "POST":
            return await self.endpoint(request)
        return await self.agent(request)

    async def agent(self, request: Request) -> Response:
        """``GET /agents/{name}``: one workflow's entry of :meth:`listing`."""
        name = request.path_params["name"]
        if name not in self.workflows:
            known = ", ".join(sorted(self.workflows)) or "none"
            return _error(404, "1211", f"no workflow named {name!r}; this runtime has: {known}")
        body = {"protocolVersion": PROTOCOL_VERSION, **self.describe(name, str(request.base_url))}
        return Response(json.dumps(body), media_type="application/json")

    async def endpoint(self, request: Request) -> Response:
        name = request.path_params["name"]
        workflow = self.workflows.get(name)
        if workflow is None:
            known = ", ".join(sorted(self.workflows)) or "none"
            return _error(404, "1211", f"no workflow named {name!r}; this runtime has: {known}")
        try:
            run_input = RunAgentInput.model_validate_json(await request.body())
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            return _error(400, "1214", f"not an AG-UI RunAgentInput: {where}: {first['msg']}")
        props = run_input.forwarded_props if isinstance(run_input.forwarded_props, dict) else {}
        inputs = run_inputs(props, run_input)
        sim = props.get("sim")
        room = f"run:{run_input.run_id}"
        try:
            thread = await self.threads.begin(name, run_input, grant_of(request))
        except Refused as exc:
            return Response(exc.body(), status_code=exc.status, media_type="application/json")
        except HubStoreError:
            status, body = unavailable("start the run (its thread cannot be read)")
            return Response(body, status_code=status, media_type="application/json")
        refused = await self._claim(run_input.run_id, grant_of(request))
        if refused is not None:
            self.threads.release(thread)
            return refused

        agents: dict[str, str] = {}
        folded, updated = RunState(), [time.time_ns()]
        self.states[run_input.run_id] = (folded, updated, grant_of(request).name)
        while len(self.states) > 100:
            self.states.pop(next(iter(self.states)))

        def emit(event: BaseEvent) -> None:
            data = event_dict(event)
            thread.observe(data)
            folded.apply(data)
            updated[0] = time.time_ns()
            self.hub.publish(room, data)
            status = _agent_status(data, agents, run_input.run_id, folded)
            if status is not None:
                self.hub.publish("agents", status)

        run = Run(
            workflow,
            self._client(),
            emit,
            inputs=inputs,
            state=run_input.state if isinstance(run_input.state, dict) else None,
            run_id=run_input.run_id,
            thread_id=run_input.thread_id,
            chat_defaults={
                "sim": {"seed": self.sim_seed, **(sim if isinstance(sim, dict) else {})}
            },
            tools=[t.model_dump(mode="json", exclude_none=True) for t in run_input.tools or ()],
            context=[c.model_dump(mode="json") for c in run_input.context or ()],
        )
        self.threads.restore(run, thread, state_given=bool(run_input.state))
        return StreamingResponse(
            with_keepalive(self._stream(run, thread), self.keepalive_s),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache"},
        )

    async def _claim(self, run_id: str, grant: Grant) -> Response | None:
        """Make the caller the owner of ``run_id``; the refusal if it cannot be."""
        if run_id in self.runs:
            return _error(
                409, "1214", f"run {run_id!r} is running now: choose another runId for a new run"
            )
        try:
            owner = await self.hub.store.claim_run(run_id, grant.name)
        except HubStoreError:
            status, body = unavailable("start the run")
            return Response(body, status_code=status, media_type="application/json")
        if owner != grant.name:
            return _error(
                409, "1214", f"run id {run_id!r} belongs to another identity: choose another runId"
            )
        return None

    async def _stream(self, run: Run, thread: ThreadRun) -> AsyncIterator[bytes]:
        self.runs[run.run_id] = run
        unlisten = self.hub.listen(f"control:{run.run_id}", lambda data: self._control(run, data))
        try:
            async for event in run.events():
                if isinstance(event, RunFinishedEvent):  # kept before the client can resume
                    await self.threads.finish(run, thread, event)
                yield encode_event(event)
        finally:
            # Ended, or the client went away: run.events() has cancelled what was running.
            unlisten()
            self.runs.pop(run.run_id, None)
            self.threads.release(thread)

    async def status(self, request: Request) -> Response:
        """``GET /runs/{id}``: the run's folded state, for clients that poll."""
        run_id = request.path_params["run_id"]
        entry = self.states.get(run_id)
        grant = grant_of(request)
        # Who may see a run is who may read its room: the hub's rule, in one place.
        if entry is None or read_refusal(grant, f"run:{run_id}", owner=entry[2]) is not None:
            # A run the caller may not see does not exist for it: strangers learn nothing.
            return _error(404, "1214", "no such run (only the last 100 are kept)")
        folded, updated, _ = entry
        body = {
            "run": folded.run_id,
            "status": folded.status,
            "updated_ns": updated[0],
            "agents": {
                name: {
                    "status": a.status,
                    "progress": a.progress,
                    "step": a.step,
                    "message": a.message,
                }
                for name, a in folded.agents.items()
            },
            "state": folded.state,
        }
        return Response(json.dumps(body, default=str), media_type="application/json")

    def _control(self, run: Run, data: Any) -> None:
        if not isinstance(data, dict):
            return
        command = data.get("command")
        agent = data.get("agent")
        if command == "cancel" and agent is None:
            run.cancel()
            return
        with contextlib.suppress(ValueError):
            run.control(agent, str(command), data.get("data"))


#: ``forwardedProps`` keys that are not run inputs.
_NOT_INPUTS = frozenset({"inputs", "sim"})


def run_inputs(props: dict[str, Any], run_input: RunAgentInput) -> dict[str, Any]:
    """The run's inputs: ``forwardedProps.inputs``, then the other top-level keys of
    ``forwardedProps`` (but ``sim``) where ``inputs`` does not name them, then ``prompt``:
    the text of the last user message (agents find what the conversation asks in it, e.g. the
    account to review), unless the inputs name one."""
    inputs = dict(props.get("inputs") or {})
    for key, value in props.items():
        if key not in _NOT_INPUTS:
            inputs.setdefault(key, value)
    for message in reversed(run_input.messages):
        if getattr(message, "role", None) == "user":
            content = getattr(message, "content", "")
            if isinstance(content, list):  # parts: the text ones
                content = " ".join(str(getattr(p, "text", "") or "") for p in content).strip()
            inputs.setdefault("prompt", content)
            break
    return inputs


def _agent_status(
    event: dict[str, Any], names: dict[str, str], run_id: str, folded: RunState
) -> dict[str, Any] | None:
    """A compact status line for the ``agents`` room, for the events that change one
    (``folded``: the run with ``event`` applied, where an activity delta's result is)."""
    kind = event["type"]
    if kind == "SUBAGENT_STARTED":
        names[event["subagentRunId"]] = event["name"]
    agent = names.get(event.get("subagentRunId") or "")
    if agent is None:
        return None
    if kind == "SUBAGENT_STARTED":
        return {"run": run_id, "agent": agent, "status": "running"}
    if kind == "SUBAGENT_FINISHED":
        outcome = event.get("outcome") or {}
        if outcome.get("type") == "suspended":  # ctx.ask: waiting for a person (a resume)
            waiting = outcome.get("interruptIds") or []
            return {"run": run_id, "agent": agent, "status": "waiting", "interrupts": waiting}
        return {"run": run_id, "agent": agent, "status": "done"}
    if kind == "SUBAGENT_ERROR":
        return {"run": run_id, "agent": agent, "status": "error", "message": event["message"]}
    if kind in ("ACTIVITY_SNAPSHOT", "ACTIVITY_DELTA") and event["activityType"] == PROGRESS:
        status = folded.agents.get(agent)
        if status is None:
            return None
        return {
            "run": run_id,
            "agent": agent,
            "status": "running",
            "progress": status.progress,
            "message": status.message,
        }
    return None


def _error(status: int, code: str, message: str) -> Response:
    return Response(error_body(code, message), status_code=status, media_type="application/json")
