"""Where the hub's rooms live: the :class:`RoomStore` interface, and the hub's limits.

The hub service (:mod:`.service`) speaks the protocol and owns the connections; a store keeps
the rooms (sequence numbers, bounded history, epoch, dedupe state) and hands every appended
message back to the service, which fans it out. Two stores: :class:`~.memory.MemoryStore`
(one process) and :class:`~.redis.RedisStore` (Redis Streams, shared by several runtimes).
Both apply the rules of :mod:`glm_live.wire.hub.rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import TransportError
from ...wire.hub import Appended, Join, Message, Publication, Replay

__all__ = ["HubLimits", "HubStoreError", "RoomStore", "StoreFeed"]


class HubStoreError(TransportError):
    """The hub's shared storage (Redis) cannot be reached or refused a command; the message
    says where (never with its password) and what to do."""


@dataclass(frozen=True)
class HubLimits:
    """Bounds that keep one client from hurting the others."""

    history: int = 1000  # messages kept per room for resuming
    max_message_bytes: int = 1 << 20
    rate: float = 500.0  # messages per second, sustained
    burst: float = 1000.0
    send_queue: int = 10_000  # frames waiting for a slow client before it is dropped
    dedupe: int = 10_000  # recent publish ids remembered per publishing session
    sessions: int = 10_000  # publishing sessions remembered (in memory; Redis: a day each)


class StoreFeed(Protocol):
    """What a store tells the hub service (the service is the feed)."""

    def entry(self, message: Message, text: str) -> None:
        """A message was appended to a room the hub watches; ``text`` is its frame."""

    def reset(self) -> None:
        """The store lost its rooms (a new epoch): every client must rejoin."""

    def behind(self, room: str, lost_from: int, lost_to: int) -> None:
        """This process missed ``room``'s messages ``lost_from``..``lost_to`` (trimmed before
        it read them): its clients in the room must rejoin, to be told of the gap."""


class RoomStore(Protocol):
    """Rooms with sequence numbers, bounded history, an epoch and publish-id dedupe.

    Appends are not awaited: :meth:`append` queues (or, in memory, does) the work and calls
    ``done`` once the message is numbered, in the order the appends were made. Every appended
    message of a watched room then reaches the feed's :meth:`StoreFeed.entry`, once, in
    sequence order: in memory before ``done`` is called, from Redis a moment later.
    """

    @property
    def epoch(self) -> str:
        """The rooms' epoch now."""

    @property
    def backend(self) -> str:
        """``"memory"`` or ``"redis"`` (``/health`` says which)."""

    def attach(self, feed: StoreFeed, limits: HubLimits) -> None:
        """Report appended messages and resets to ``feed``; bound history and dedupe by
        ``limits`` (called again when the hub's limits change)."""

    async def start(self) -> None:
        """Connect to shared state, if any.

        Raises:
            HubStoreError: The storage cannot be reached.
        """

    async def aclose(self) -> None:
        """Finish what is queued (briefly) and disconnect."""

    def append(self, publication: Publication, done: Callable[[Appended], None] | None) -> None:
        """Append ``publication`` (dedupe by its sender and id when it has one).

        Raises:
            HubStoreError: The store cannot take more now (nothing was queued).
        """

    async def watch(self, room: str) -> None:
        """Make sure appends to ``room`` reach the feed from now on.

        Raises:
            HubStoreError: The storage failed.
        """

    def follow(self, room: str) -> Callable[[], None]:
        """Watch ``room`` in the background (for listeners, which cannot wait); returns a
        function that cancels the watching if it has not finished."""

    def unwatch(self, room: str) -> None:
        """Nobody in this process follows ``room`` any more."""

    async def join(self, join: Join) -> Replay:
        """The ``joined`` frame for ``join``, its resume point and the entries to replay.

        Raises:
            HubStoreError: The storage failed.
        """

    # -- sessions, runs, tokens: the state access control and exactly-once need ------------

    async def open_session(self, key: str) -> None:
        """Start the publishing session ``key`` (identity and session key), empty.

        Raises:
            HubStoreError: The storage failed.
        """

    async def resume_session(self, key: str) -> int | None:
        """The highest publish id session ``key`` has appended, or ``None`` when it is not
        known (never opened, ended, forgotten, or the rooms' history was lost).

        Raises:
            HubStoreError: The storage failed.
        """

    def end_session(self, key: str) -> None:
        """Forget session ``key`` (its client closed normally); done in the background."""

    async def claim_run(self, run_id: str, owner: str) -> str:
        """Make ``owner`` the owner of run ``run_id`` unless it has one; return the owner now.

        Raises:
            HubStoreError: The storage failed.
        """

    async def run_owner(self, run_id: str) -> str | None:
        """Who started run ``run_id`` (``None`` when no such run is known).

        Raises:
            HubStoreError: The storage failed.
        """

    async def revoke(self, token_id: str, until: float) -> None:
        """Refuse the token ``token_id`` from now until ``until`` (unix seconds: its expiry).

        Raises:
            HubStoreError: The storage failed.
        """

    async def revoked(self, token_id: str) -> bool:
        """Whether the token ``token_id`` was revoked.

        Raises:
            HubStoreError: The storage failed.
        """

    async def use_ticket(self, token_id: str, until: float) -> bool:
        """Mark the ticket ``token_id`` used; ``True`` the first time only.

        Raises:
            HubStoreError: The storage failed.
        """

    def describe(self) -> dict[str, Any]:
        """What ``/health`` says about the store (no credentials)."""

    def counts(self) -> dict[str, int]:
        """Appends so far: ``published``, ``duplicates`` (and ``lost`` where it can happen)."""
