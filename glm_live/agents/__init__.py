"""Floor 4, agents: workflows of agents that call a model and report as AG-UI events.

- :mod:`.core`: :class:`~.core.Workflow`, :class:`~.core.Run`, :class:`~.core.AgentContext`.
- :mod:`.interrupts`: people in the loop (``ctx.ask``: AG-UI interrupts and resumes).
- :mod:`.builtin`: the workflows the runtime serves out of the box (``account-review``).
"""

from __future__ import annotations

from .core import Agent, AgentContext, Run, Workflow, WorkflowError
from .interrupts import Rejected

# glm_live.agents was one module before the floors had folders: its names stay here.
__all__ = ["Agent", "AgentContext", "Rejected", "Run", "Workflow", "WorkflowError"]
