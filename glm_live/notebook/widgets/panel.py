"""``LivePanel``: a session's connection, metrics and latest outputs in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets

from .connection import ConnectionIndicator
from .metrics_dashboard import MetricsDashboard

if TYPE_CHECKING:
    from ...measure.recorder import Recorder

__all__ = ["LivePanel"]


class LivePanel(ipywidgets.VBox):  # type: ignore[misc]
    """The connection indicator, the metrics dashboard, and the session's live views."""

    def __init__(self, recorder: Recorder | None = None, **kwargs: Any) -> None:
        """``recorder``: the dashboard follows it (:meth:`MetricsDashboard.follow`)."""
        self.indicator = ConnectionIndicator()
        self.dashboard = MetricsDashboard()
        if recorder is not None:
            self.dashboard.follow(recorder)
        self.outputs = ipywidgets.VBox()
        super().__init__([self.indicator, self.dashboard, self.outputs], **kwargs)

    def add(self, view: Any, keep: int = 5) -> None:
        """Show ``view`` (a StreamView or AgentBoard), keeping the last ``keep``."""
        self.outputs.children = (*self.outputs.children, view)[-keep:]
