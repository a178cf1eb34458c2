"""The hub on ``/ws``: rooms with sequence numbers, resume, presence and messages.

- :mod:`.service`: :class:`~.service.Hub`, the WebSocket shell (connections, auth, limits).
- :mod:`.store`: the :class:`~.store.RoomStore` interface and :class:`~.store.HubLimits`.
- :mod:`.memory`: :class:`~.memory.MemoryStore`, rooms in this process.
- :mod:`.redis`: ``RedisStore``, rooms in Redis Streams (needs redis-py; imported on demand).

The protocol itself is :mod:`glm_live.wire.hub`.
"""

from __future__ import annotations

from .memory import MemoryStore
from .service import Hub
from .store import HubLimits, HubStoreError, RoomStore

__all__ = ["Hub", "HubLimits", "HubStoreError", "MemoryStore", "RoomStore"]
