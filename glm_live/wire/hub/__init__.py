"""The hub's protocol, without I/O: frames, their encoding, the rules, and both ends' state.

- :mod:`.frames`: every frame as a frozen value; :func:`~.frames.encode`,
  :func:`~.frames.decode_client_frame`, :func:`~.frames.decode_hub_frame`.
- :mod:`.rules`: sequence, bounded history, epoch, resume point, dedupe, the replay/live seam;
  :class:`~.rules.HubState` (rooms in memory, every rule applied).
- :mod:`.client`: :class:`~.client.ClientState` (outbox, acks, dedupe, resume, gaps).

The server's hub (``glm_live.server.hub``) and the client (``glm_live.transport.hub_client``)
are shells around these; ``docs/hub-protocol.md`` describes the same protocol for client
authors in other languages.
"""

from __future__ import annotations

from .client import ClientState, Gap, Pending, Refusal, RoomCursor
from .frames import (
    Ack,
    ClientFrame,
    ErrorFrame,
    GapReport,
    Hello,
    HubFrame,
    HubFrameError,
    Join,
    Joined,
    Leave,
    Left,
    Message,
    Ping,
    Pong,
    Publish,
    Welcome,
    decode_client_frame,
    decode_hub_frame,
    decode_stored,
    encode,
    encode_stored,
)
from .rules import (
    Appended,
    DedupeWindow,
    HubState,
    Publication,
    Replay,
    RoomLog,
    Subscription,
    resume_point,
    session_key,
)

__all__ = [
    "Ack",
    "Appended",
    "ClientFrame",
    "ClientState",
    "DedupeWindow",
    "ErrorFrame",
    "Gap",
    "GapReport",
    "Hello",
    "HubFrame",
    "HubFrameError",
    "HubState",
    "Join",
    "Joined",
    "Leave",
    "Left",
    "Message",
    "Pending",
    "Ping",
    "Pong",
    "Publication",
    "Publish",
    "Refusal",
    "Replay",
    "RoomCursor",
    "RoomLog",
    "Subscription",
    "Welcome",
    "decode_client_frame",
    "decode_hub_frame",
    "decode_stored",
    "encode",
    "encode_stored",
    "resume_point",
    "session_key",
]
