"""``LivePanel``: a session's connection, metrics and latest outputs in one place."""

from __future__ import annotations

from typing import Any

import ipywidgets

from .connection import ConnectionIndicator
from .metrics_dashboard import MetricsDashboard

__all__ = ["LivePanel"]


class LivePanel(ipywidgets.VBox):  # type: ignore[misc]
    """The connection indicator, the metrics dashboard, and the session's live views."""

    def __init__(self, **kwargs: Any) -> None:
        self.indicator = ConnectionIndicator()
        self.dashboard = MetricsDashboard()
        self.outputs = ipywidgets.VBox()
        super().__init__([self.indicator, self.dashboard, self.outputs], **kwargs)

    def add(self, view: Any, keep: int = 5) -> None:
        """Show ``view`` (a StreamView or AgentBoard), keeping the last ``keep``."""
        self.outputs.children = (*self.outputs.children, view)[-keep:]
