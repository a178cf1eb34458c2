"""AG-UI runs as data: parse events off the wire and fold them into a :class:`RunState`.

Events travel as camelCase JSON objects in SSE ``data:`` fields (no ``[DONE]``). The types are
``ag-ui-protocol``'s (:mod:`ag_ui.core`); :func:`parse_event` validates one, :func:`encode_event`
writes one. :class:`RunState` applies them in order: the shared state from ``STATE_SNAPSHOT``
and RFC 6902 ``STATE_DELTA`` patches (a failed patch is counted and skipped; the next snapshot
resynchronises, as AG-UI clients do), one :class:`AgentStatus` per subagent (status, progress,
current step, last message, timings), and the messages.

Progress travels as ``CUSTOM`` events named ``progress`` with ``{"fraction", "message"}``,
attributed to the subagent by ``subagentRunId``.

How a run ends (one method, :meth:`RunState.end`, whoever ends it):

======================  ===============  ==================================================
what happened           ``RunState``     agents still pending or running become
======================  ===============  ==================================================
RUN_FINISHED            ``finished``     ``done``
RUN_FINISHED cancelled  ``cancelled``    ``cancelled``
RUN_ERROR               ``error``        ``error``
cancelled locally       ``cancelled``    ``cancelled``
stream lost             ``interrupted``  ``interrupted`` (the run may go on server-side)
======================  ===============  ==================================================

Each closed agent gets a ``finished_at``, so its clock stops. A run ends once: a later
``end`` (a stream that drops after RUN_FINISHED) changes nothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from ag_ui.core import BaseEvent, Event
from pydantic import TypeAdapter

from ..wire._html import table
from ..wire.sse import encode

__all__ = [
    "END_STATES",
    "PROGRESS",
    "AgentStatus",
    "RunState",
    "encode_event",
    "event_dict",
    "parse_event",
]

#: Name of the CUSTOM event that carries an agent's progress.
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


@dataclass
class AgentStatus:
    """What one agent of a run is doing.

    Attributes:
        name: The agent's name.
        status: ``pending``, ``running``, ``done``, ``error``, ``cancelled`` or
            ``interrupted`` (the client lost the run's stream while it ran).
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


#: A run's end states, and what its unfinished agents become.
END_STATES = {
    "finished": "done",
    "cancelled": "cancelled",
    "error": "error",
    "interrupted": "interrupted",
}


@dataclass(repr=False)
class RunState:
    """A run folded from its events: state, agents, messages, outcome."""

    run_id: str | None = None
    thread_id: str | None = None
    status: str = "pending"  # running, finished, error, cancelled, interrupted
    state: Any = field(default_factory=dict)
    agents: dict[str, AgentStatus] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)  # id, role, name, content
    result: Any = None
    error: str | None = None
    events: int = 0
    patch_failures: int = 0
    _by_run: dict[str, AgentStatus] = field(default_factory=dict, repr=False)
    _open: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def apply(self, event: BaseEvent | Mapping[str, Any]) -> None:
        """Fold one event in (a model, or its wire JSON object)."""
        e = event_dict(event) if isinstance(event, BaseEvent) else event
        self.events += 1
        kind = e.get("type")
        agent = self._by_run.get(e.get("subagentRunId") or "")
        if kind == "RUN_STARTED":
            self.run_id, self.thread_id = e.get("runId"), e.get("threadId")
            self.status = "running"
        elif kind == "RUN_FINISHED":
            self.result = e.get("result")
            cancelled = (e.get("outcome") or {}).get("type") == "cancelled"
            self.end("cancelled" if cancelled else "finished")
        elif kind == "RUN_ERROR":
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
            value = e.get("value") or {}
            agent.progress = float(value.get("fraction", agent.progress))
            agent.message = str(value.get("message", agent.message))

    def end(self, status: str, error: str | None = None) -> bool:
        """End the run with ``status`` (``finished``, ``cancelled``, ``error`` or
        ``interrupted``): every agent still pending or running ends too (see the module's
        table), with a ``finished_at``. Returns whether it ended now: a run that had already
        ended keeps its first end.

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
        """Whether the run has ended (in any of the end states)."""
        return self.status in END_STATES

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for agent in self.agents.values():
            counts[agent.status] = counts.get(agent.status, 0) + 1
        agents = ", ".join(f"{n} {status}" for status, n in counts.items())
        detail = f" ({agents})" if agents else ""
        error = f", error: {self.error[:80]!r}" if self.error else ""
        return (
            f"<RunState {self.status}, {len(self.agents)} agents{detail}, "
            f"{len(self.messages)} messages, {self.events} events{error}>"
        )

    def _repr_html_(self) -> str:
        rows: list[tuple[str, object]] = [("status", self.status)]
        if self.error:
            rows.append(("error", self.error))
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


def _report_head(run: RunState, lines: int = 6) -> str:
    """The first lines of the run's report: its last assistant message, else its result."""
    text = next(
        (m["content"] for m in reversed(run.messages) if m.get("content")),
        "" if run.result is None else str(run.result),
    )
    head = text.strip().splitlines()[:lines]
    more = len(text.strip().splitlines()) > lines
    return "\n".join(head) + ("\n…" if more else "")
