"""A hub client's state, without I/O: rooms and where each stands, the outbox, acknowledgements,
dedupe, what to send on (re)connecting, and gap detection.

:class:`ClientState` is fed the hub's frames as text (:meth:`~ClientState.receive`) and returns
what happened, as values: :class:`~.frames.Message` and :class:`Gap` to hand to a room's
subscribers, and the other frames (``joined``, ``ack``, ``pong``, ``welcome``, ``error``) for
the shell to act on. It produces the frames to send (:meth:`~ClientState.connected`,
:meth:`~ClientState.join`, :meth:`~ClientState.publish`). Times are handed in (``now``,
seconds on any monotonic clock); the state never reads a clock.

:class:`glm_live.transport.hub_client.Connection` is the asyncio shell around it.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .frames import (
    Ack,
    ClientFrame,
    ErrorFrame,
    Hello,
    HubFrame,
    Join,
    Joined,
    Message,
    Publish,
    Welcome,
    decode_hub_frame,
    encode,
)

__all__ = ["ClientState", "Gap", "Overflow", "Pending", "Refusal", "RoomCursor"]

Overflow = Literal["raise", "drop_oldest", "drop_newest"]

#: Publications (sender, id) remembered to drop a re-delivery after a hub restart.
SEEN_PUBLICATIONS = 100_000


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of ``room`` that cannot be replayed: the hub's history changed (``reason=
    "epoch"``: it restarted, or its store lost the data; ``old_epoch`` is the one the client
    had, ``epoch`` the new one) or they fell out of its bounded history (``"trimmed"``).
    ``lost_from``/``lost_to`` bound the lost sequence numbers when known."""

    #: Always true (a :class:`~.frames.Message` says false): tells the two apart.
    gap: ClassVar[bool] = True
    room: str
    reason: str
    epoch: str
    old_epoch: str | None = None
    lost_from: int | None = None
    lost_to: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """The hub refused a ``join`` (``id`` is ``None``) or a ``publish`` (its ``id``, which left
    the outbox): ``code`` (``forbidden``, ``id_reused``, ``bad_request``) and why."""

    code: str
    message: str
    room: str
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A publication waiting for its ``ack``: its id, its frame text, when it was queued."""

    id: int
    frame: str
    queued: float


@dataclass(slots=True)
class RoomCursor:
    """Where the client stands in a room: the last sequence number received (``None`` before
    the first ``joined`` of a live-only join) and the room's epoch (``None`` before it)."""

    last: int | None = None
    epoch: str | None = None


class ClientState:
    """The client side of the hub protocol.

    Args:
        client_id: Sent in ``hello``: this client's label within its identity (presence).
        name: Sent in ``hello``; used by a hub without authentication only (an
            authenticating hub names the client from its token, in the ``welcome``).
        kind: Sent in ``hello`` (presence).
        outbox_limit: Unacknowledged publications held at most.
        overflow: What :meth:`publish` does when the outbox is full: ``"raise"`` (it raises
            :class:`OverflowError`), ``"drop_oldest"`` or ``"drop_newest"``.
        ttl: Seconds after which a queued publication is dropped instead of (re)sent.

    Attributes:
        rooms: Room name -> :class:`RoomCursor`, in join order.
        outbox: Publications not yet acknowledged, in id order.
        dropped: Publications dropped by the overflow policy or the ttl.
        gaps: Gaps reported so far.
        hub_epoch: The epoch of the last ``welcome``.
        identity: Who the hub says this client is (``None`` before the first ``welcome``).
        grant: What the hub says it may read and write (from the ``welcome``).
        session: The publishing session, named by the first ``welcome`` and resumed with
            every reconnect (a new :class:`ClientState`, as in a restarted process, starts a
            new one).
    """

    def __init__(
        self,
        client_id: str,
        *,
        name: str | None = None,
        kind: str = "notebook",
        outbox_limit: int = 1000,
        overflow: Overflow = "raise",
        ttl: float | None = None,
    ) -> None:
        if overflow not in ("raise", "drop_oldest", "drop_newest"):
            msg = f"overflow must be raise, drop_oldest or drop_newest, got {overflow!r}"
            raise ValueError(msg)
        if outbox_limit < 1:
            msg = "outbox_limit must be at least 1"
            raise ValueError(msg)
        self.id = client_id
        self.name = name
        self.kind = kind
        self.outbox_limit = outbox_limit
        self.overflow: Overflow = overflow
        self.ttl = ttl
        self.rooms: dict[str, RoomCursor] = {}
        self.outbox: deque[Pending] = deque()
        self.dropped = 0
        self.gaps = 0
        self.hub_epoch: str | None = None
        self.identity: str | None = None
        self.grant: dict[str, Any] | None = None
        self.session: str | None = None
        self._ids = itertools.count(1)
        self._seen: dict[tuple[str, str | None, int], None] = {}

    # -- what to send ----------------------------------------------------------------------------

    def connected(self, now: float) -> list[str]:
        """The frames that open a connection, in order: ``hello`` (resuming the session, after
        a reconnect) and a ``join`` per room from where the client stands (the inbox the hub
        joined for it included). After the ``welcome``, send the outbox (:meth:`unsent`);
        publications older than ``ttl`` have left it now (counted in :attr:`dropped`)."""
        frames: list[ClientFrame] = [Hello(self.id, self.name or None, self.kind, self.session)]
        frames += [self._join(room) for room in self.rooms]
        if self.ttl is not None:
            fresh = [p for p in self.outbox if now - p.queued <= self.ttl]
            self.dropped += len(self.outbox) - len(fresh)
            self.outbox = deque(fresh)
        return [encode(f) for f in frames]

    def unsent(self, after: int) -> Pending | None:
        """The first queued publication whose id is above ``after`` (the last one re-sent on
        this connection; 0 at first), or ``None``: re-send them in order, one by one, so
        that publications queued meanwhile are sent too, and ones dropped are not."""
        for pending in self.outbox:
            if pending.id > after:
                return pending
        return None

    def join(self, room: str, *, replay: bool = False) -> str | None:
        """Start following ``room`` (``replay``: from the oldest message kept, else live from
        now); the ``join`` frame to send, or ``None`` when the room is followed already."""
        if room in self.rooms:
            return None
        self.rooms[room] = RoomCursor(last=0 if replay else None)
        return encode(self._join(room))

    def _join(self, room: str) -> Join:
        cursor = self.rooms[room]
        return Join(room, cursor.last, cursor.epoch)

    def publish(self, room: str, data: Any, now: float) -> Pending | None:
        """Queue ``data`` for ``room``; the :class:`Pending` whose frame to send, or ``None``
        when ``overflow="drop_newest"`` dropped it.

        Raises:
            OverflowError: The outbox is full and ``overflow="raise"``.
            TypeError: ``data`` is not JSON-serialisable (nothing is queued).
        """
        if len(self.outbox) >= self.outbox_limit:
            if self.overflow == "raise":
                msg = f"outbox full ({self.outbox_limit} unacknowledged messages)"
                raise OverflowError(msg)
            if self.overflow == "drop_newest":
                self.dropped += 1
                return None
            self.outbox.popleft()
            self.dropped += 1
        msg_id = next(self._ids)
        frame = encode(Publish(room, msg_id, data))
        pending = Pending(msg_id, frame, now)
        self.outbox.append(pending)
        return pending

    # -- what was received -----------------------------------------------------------------------

    def receive(self, text: str | bytes) -> HubFrame | Gap | Refusal | None:
        """Take one frame from the hub.

        Returns:
            A :class:`~.frames.Message` to deliver (new: not at or below the room's last
            sequence number in its epoch, and not a publication seen before); the
            :class:`Gap` a ``joined`` reports (after it, the room's cursor has moved on); the
            other frames as decoded, for the shell (``joined`` without a gap, ``ack``,
            ``pong``, ``welcome``, ``error``, ``left``); a :class:`Refusal` for an ``error``
            refusing a join or publication; ``None`` for a message to drop.

        Raises:
            HubFrameError: The frame is not one a client understands.
        """
        frame = decode_hub_frame(text)
        if type(frame) is Message:
            return self._message(frame)
        if type(frame) is Ack:
            self._acknowledged(frame.id)
        elif type(frame) is Joined:
            return self._joined(frame)
        elif type(frame) is Welcome:
            self._welcome(frame)
        elif type(frame) is ErrorFrame and frame.room is not None:
            return self._refused(frame)
        return frame

    def _welcome(self, welcome: Welcome) -> None:
        self.hub_epoch = welcome.epoch
        if welcome.session:
            self.session = welcome.session
        if welcome.name:
            self.identity = welcome.name
        self.grant = welcome.grant
        if welcome.resumed:
            # The hub has every publication up to last_id: they need no re-send.
            self._acknowledged(welcome.last_id)

    def _refused(self, error: ErrorFrame) -> Refusal:
        room = error.room or ""
        if error.id is not None:
            self.outbox = deque(p for p in self.outbox if p.id != error.id)
        elif error.code == "forbidden":
            self.rooms.pop(room, None)  # not joined: do not ask again on reconnect
        return Refusal(error.code, error.message, room, error.id)

    def _message(self, message: Message) -> Message | None:
        cursor = self.rooms.get(message.room)
        if cursor is None:
            if message.room != "@" + (self.identity or ""):
                return None  # left, or never joined
            cursor = self.rooms[message.room] = RoomCursor()  # the inbox the hub joined
        if message.epoch == cursor.epoch and cursor.last is not None and message.seq <= cursor.last:
            return None  # delivered already
        cursor.last = message.seq
        cursor.epoch = message.epoch
        if message.id is not None:
            key = (message.sender, message.session, message.id)
            if key in self._seen:
                return None  # delivered before a hub restart; the re-send is not news
            self._seen[key] = None
            if len(self._seen) > SEEN_PUBLICATIONS:
                self._seen.pop(next(iter(self._seen)))
        return message

    def _acknowledged(self, msg_id: int) -> None:
        # Acks come in id order, so one acknowledges every publication up to it.
        while self.outbox and self.outbox[0].id <= msg_id:
            self.outbox.popleft()

    def _joined(self, joined: Joined) -> Joined | Gap:
        cursor = self.rooms.get(joined.room)
        if cursor is None:
            if joined.room != "@" + (self.identity or ""):
                return joined
            cursor = self.rooms[joined.room] = RoomCursor()  # the inbox the hub joined
        gap = None
        if joined.gap is not None:
            self.gaps += 1
            report = joined.gap
            gap = Gap(
                joined.room,
                report.reason,
                joined.epoch,
                report.old_epoch,
                report.lost_from,
                report.lost_to,
            )
            if report.reason == "epoch":
                cursor.last = 0  # the new epoch's messages are all news
        if cursor.last is None:
            cursor.last = joined.last  # first join, live only: resume from here
        cursor.epoch = joined.epoch
        return joined if gap is None else gap
