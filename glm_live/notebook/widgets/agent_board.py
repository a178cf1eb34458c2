"""``AgentBoard``: one card per agent of a run, and the run's shared state."""

from __future__ import annotations

import json
from typing import Any

import traitlets

from ...protocols.agui import RunState
from ._base import LiveWidget, esm, static

__all__ = ["AgentBoard"]


class AgentBoard(LiveWidget):
    """Cards for a run's agents: status, progress, current step, elapsed time, last message.

    All agents travel in one ``agents`` list, so 64 parallel agents are one coalesced update
    stream (at most 20 messages a second), not one per agent.
    """

    _esm = esm("markdown.js", "agent_board.js")
    _css = static("widgets.css")

    title = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("pending").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    agents: traitlets.List[Any] = traitlets.List().tag(sync=True)
    state = traitlets.Unicode("{}").tag(sync=True)  # JSON, shown as it is

    def show(self, run: RunState) -> None:
        """Bring the board up to ``run`` at the next flush."""
        self.update(
            status=run.status,
            error=run.error or "",
            agents=[_card(a) for a in run.agents.values()],
            state=json.dumps(run.state, indent=1, default=str)[:20_000],
        )


def _card(agent: Any) -> dict[str, Any]:
    return {
        "name": agent.name,
        "status": agent.status,
        "progress": round(agent.progress, 3),
        "step": agent.step or "",
        "message": agent.message[-300:],
        "error": agent.error or "",
        "started": agent.started_at,
        "finished": agent.finished_at,
    }
