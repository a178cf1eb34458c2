"""The hub on ``/ws``: rooms with sequence numbers, resume, presence and messages."""

from __future__ import annotations

from .service import Hub, HubLimits

__all__ = ["Hub", "HubLimits"]
