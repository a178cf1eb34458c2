"""``ConnectionIndicator``: the hub connection at a glance."""

from __future__ import annotations

import time
from typing import Any

import traitlets

from ...transport.sse_client import ConnectionEvent
from ._base import LiveWidget, static

__all__ = ["ConnectionIndicator"]


class ConnectionIndicator(LiveWidget):
    """Connected / reconnecting (attempt, next try) / offline, heartbeat RTT, reconnects."""

    _esm = static("connection.js")
    _css = static("widgets.css")

    state = traitlets.Unicode("connecting").tag(sync=True)
    url = traitlets.Unicode("").tag(sync=True)
    rtt_ms = traitlets.Float(-1.0).tag(sync=True)
    reconnects = traitlets.Int(0).tag(sync=True)
    attempt = traitlets.Int(0).tag(sync=True)
    next_try_at = traitlets.Float(0.0).tag(sync=True)  # wall-clock seconds
    last_error = traitlets.Unicode("").tag(sync=True)

    def observe_connection(self, change: ConnectionEvent) -> None:
        """An observer for :class:`~glm_live.ws.Connection` or :class:`~glm_live.EventSource`."""
        update: dict[str, Any] = {
            "state": change.state.value,
            "reconnects": change.reconnects,
            "attempt": change.attempt,
        }
        if change.kind == "heartbeat" and change.delay is not None:
            update["rtt_ms"] = round(change.delay * 1000, 1)
        if change.kind == "reconnecting" and change.delay is not None:
            update["next_try_at"] = time.time() + change.delay
        if change.error is not None:
            update["last_error"] = f"{type(change.error).__name__}: {change.error}"[:300]
        self.update(**update)
