"""``LivePanel``: a session's connection, metrics and latest outputs in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets

from .._env import display_once, in_kernel
from .connection import ConnectionIndicator
from .metrics_dashboard import MetricsDashboard

if TYPE_CHECKING:
    from ...measure.recorder import Recorder

__all__ = ["LivePanel"]


class LivePanel(ipywidgets.VBox):  # type: ignore[misc]
    """The connection indicator, the metrics dashboard, and the session's live views.

    A cell shows it once, however often it is displayed there: ``session.panel()`` displays
    it where it is called, and the panel it returns, as the cell's last expression, stays
    quiet (:mod:`glm_live.notebook._env`).
    """

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

    def _ipython_display_(self) -> None:
        if in_kernel():
            # The widget's own bundle, displayed raw: display(self) would come back here.
            display_once(self, self._repr_mimebundle_())
        else:
            from IPython.display import display

            display({"text/plain": repr(self)}, raw=True)  # type: ignore[no-untyped-call]
