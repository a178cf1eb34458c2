"""The hub's rules, once: sequence, bounded history, epoch, resume point, dedupe, and the seam
between a join's replay and live delivery.

Rule by rule (``docs/hub-protocol.md`` says the same for client authors):

- **Sequence.** Each room numbers its messages 1, 2, 3, ... per epoch, without holes.
- **Bounded history.** A room keeps its last ``history`` messages for replay.
- **Epoch.** A token naming one life of the rooms' history. When the history is lost (an
  in-memory hub restarts; Redis loses its data), the epoch changes and sequence numbers start
  again at 1: a client that joins with the old epoch is told so (an ``epoch`` gap).
- **Resume point.** :func:`resume_point` decides where a ``join`` replays from and what gap
  it reports.
- **Dedupe.** Publish ids increase per publishing session (an identity's ``hello`` opens one,
  or resumes one its ``welcome`` named). An id at or below the highest handled is a re-send:
  acknowledged again, with its first sequence number while it is remembered
  (:class:`DedupeWindow`), and never appended twice; the same id aimed at another room is
  refused (the service sends ``id_reused``). A new session starts clean.
- **Replay, then live.** :class:`Subscription` holds the live messages that arrive while a
  join replays and lets each sequence number through once, so the switch loses and repeats
  nothing.

:class:`HubState` applies all of them to rooms kept in memory: the in-memory store is this
object behind the server's store interface. The Redis store keeps the same rules in Redis
(its append script mirrors :class:`DedupeWindow` and :meth:`RoomLog.append`) and uses
:func:`resume_point` and :class:`Subscription` from here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .frames import GapReport, Join, Joined, Message, encode

__all__ = [
    "Appended",
    "DedupeWindow",
    "HubState",
    "Publication",
    "Replay",
    "RoomLog",
    "Subscription",
    "resume_point",
    "session_key",
]


def resume_point(
    join: Join, room_epoch: str, last: int, first: int
) -> tuple[int, GapReport | None]:
    """Where ``join`` resumes, and the gap to report.

    Args:
        join: The client's join: ``since`` (``None``: live from now) and the ``epoch`` it saw.
        room_epoch: The room's epoch now.
        last: The room's last sequence number (0 when empty).
        first: The first sequence number it still keeps (``last + 1`` when it keeps none).

    Returns:
        ``since``, the sequence number after which to replay, and ``None`` or the gap: an
        epoch mismatch replays everything kept (``reason="epoch"``, with ``lost_from``/
        ``lost_to`` when the new epoch's history is trimmed too); a ``since`` older than the
        history kept is ``reason="trimmed"`` (not reported for a first join, ``since=0``
        without an epoch, which asks for "whatever is kept").
    """
    since = last if join.since is None else join.since
    gap: GapReport | None = None
    if join.epoch is not None and join.epoch != room_epoch:
        gap = GapReport("epoch", old_epoch=join.epoch)
        since = 0
    if since < first - 1:
        if gap is None and (since > 0 or join.epoch is not None):
            gap = GapReport("trimmed", lost_from=since + 1, lost_to=first - 1)
        elif gap is not None:
            gap = GapReport("epoch", old_epoch=gap.old_epoch, lost_from=1, lost_to=first - 1)
    return since, gap


@dataclass(frozen=True, slots=True)
class Publication:
    """What a store appends: ``data`` for ``room`` from ``sender`` (an identity, or
    ``"runtime"``), with the publish ``id`` (``None`` for the runtime's own) in the sender's
    publishing ``session`` (``None`` for the runtime)."""

    room: str
    sender: str
    name: str
    id: int | None
    data: Any
    session: str | None = None

    @property
    def dedupe_key(self) -> str:
        """Whose publish ids these are: identity and session."""
        return session_key(self.sender, self.session or "")

    def numbered(self, seq: int, epoch: str, ts_ns: int) -> Message:
        """The message frame once the store has numbered it."""
        return Message(
            self.room, seq, epoch, self.data, self.sender, self.name, self.id, ts_ns, self.session
        )


def session_key(identity: str, session: str) -> str:
    """The key a publishing session is kept under: its identity and its session id."""
    return f"{identity}/{session}"


@dataclass(frozen=True, slots=True)
class Appended:
    """A store's answer to an append: the sequence number in ``room`` and whether it was a
    re-send (then ``seq`` is the first append's number, or 0 when no longer remembered)."""

    room: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Replay:
    """A store's answer to a join: the ``joined`` frame, the resume point ``since``, and the
    kept entries after it, as ``(seq, frame text)`` in order."""

    joined: Joined
    since: int
    entries: list[tuple[int, str]]


class DedupeWindow:
    """Per publishing session (``sender``: identity and session key): the highest publish id
    handled, and the room and sequence number of the last ``size`` ids (so that a re-send is
    acknowledged with its number, and one aimed at another room is told apart).

    At most ``sessions`` sessions are remembered; the least recently used is forgotten first
    (a client that comes back after that starts a new session, and says so in its welcome).
    """

    def __init__(self, size: int, sessions: int = 10_000) -> None:
        self.size = size
        self.sessions = sessions
        self._senders: dict[str, tuple[int, dict[int, tuple[str, int]]]] = {}

    def __len__(self) -> int:
        return len(self._senders)

    def open(self, sender: str) -> None:
        """Start a new session ``sender`` (nothing published yet)."""
        self._senders.pop(sender, None)
        self._senders[sender] = (0, {})
        while len(self._senders) > self.sessions:
            self._senders.pop(next(iter(self._senders)))

    def resume(self, sender: str) -> int | None:
        """The highest publish id session ``sender`` has handled, or ``None`` when the session
        is not known (never opened, ended, or forgotten)."""
        entry = self._senders.pop(sender, None)
        if entry is None:
            return None
        self._senders[sender] = entry  # most recently used
        return entry[0]

    def end(self, sender: str) -> None:
        """Forget session ``sender`` (its client closed normally)."""
        self._senders.pop(sender, None)

    def seen(self, sender: str, msg_id: int, room: str) -> Appended | None:
        """The acknowledgement of a re-send, or ``None`` when ``msg_id`` is new. A re-send's
        room is the first publication's (compare it with ``room``); ``seq`` is 0 once that
        is no longer remembered."""
        last, recent = self._senders.get(sender, (0, {}))
        if msg_id > last:
            return None
        first_room, seq = recent.get(msg_id, (room, 0))
        return Appended(first_room, seq, True)

    def record(self, sender: str, msg_id: int, room: str, seq: int) -> None:
        """Remember that ``msg_id`` (new: above every id seen) became ``seq`` in ``room``."""
        entry = self._senders.pop(sender, None)
        recent = {} if entry is None else entry[1]
        recent[msg_id] = (room, seq)
        if len(recent) > self.size:
            recent.pop(next(iter(recent)))
        self._senders[sender] = (msg_id, recent)
        if entry is None:
            while len(self._senders) > self.sessions:
                self._senders.pop(next(iter(self._senders)))


class RoomLog:
    """One room's sequence numbers and bounded history (the last ``history`` frames)."""

    def __init__(self, epoch: str, history: int) -> None:
        self.epoch = epoch
        self.last = 0
        self.history: deque[tuple[int, str]] = deque(maxlen=history)

    @property
    def first(self) -> int:
        """The first sequence number still kept (``last + 1`` when none is)."""
        return self.history[0][0] if self.history else self.last + 1

    def append(self, publication: Publication, ts_ns: int) -> tuple[Message, str]:
        """Number ``publication``, keep it, and return the frame and its text."""
        self.last += 1
        message = publication.numbered(self.last, self.epoch, ts_ns)
        text = encode(message)
        self.history.append((self.last, text))
        return message, text

    def after(self, since: int) -> list[tuple[int, str]]:
        """The kept ``(seq, text)`` entries numbered above ``since``."""
        return [(seq, text) for seq, text in self.history if seq > since]


class HubState:
    """Rooms kept in memory, with every rule applied: frames in, frames out, no I/O.

    Args:
        epoch: This history's epoch (the in-memory hub makes one per process).
        history: Messages kept per room (read when a room is created).
        dedupe: Publish ids remembered per sender.
    """

    def __init__(self, epoch: str, *, history: int = 1000, dedupe: int = 10_000) -> None:
        self.epoch = epoch
        self.history = history
        self.dedupe = DedupeWindow(dedupe)
        self.rooms: dict[str, RoomLog] = {}

    def room(self, name: str) -> RoomLog:
        """The room called ``name``, created empty on first use."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = RoomLog(self.epoch, self.history)
        return room

    def append(self, publication: Publication, ts_ns: int) -> tuple[Appended, Message | None, str]:
        """Append ``publication`` unless it is a re-send.

        Returns:
            The acknowledgement, and for a new message its frame and text (to deliver), or
            ``None`` and ``""`` for a re-send.
        """
        if publication.id is not None:
            prior = self.dedupe.seen(publication.dedupe_key, publication.id, publication.room)
            if prior is not None:
                return prior, None, ""
        room = self.room(publication.room)
        message, text = room.append(publication, ts_ns)
        if publication.id is not None:
            self.dedupe.record(
                publication.dedupe_key, publication.id, publication.room, message.seq
            )
        return Appended(publication.room, message.seq, False), message, text

    def join(self, join: Join) -> Replay:
        """The ``joined`` frame for ``join`` and what to replay after it."""
        room = self.room(join.room)
        since, gap = resume_point(join, room.epoch, room.last, room.first)
        return Replay(Joined(join.room, room.epoch, room.last, gap), since, room.after(since))


@dataclass(slots=True)
class Subscription:
    """One client's place in one room: the last sequence number sent to it, and, while its
    join replays (``last is None``), the live frames that arrived meanwhile."""

    last: int | None = None
    buffer: list[tuple[int, str]] = field(default_factory=list)

    def admit(self, seq: int, text: str) -> bool:
        """A live frame arrived: ``True`` when it is to be sent now (buffered while replaying;
        dropped when the replay already sent it)."""
        if self.last is None:
            self.buffer.append((seq, text))
            return False
        if seq > self.last:
            self.last = seq
            return True
        return False

    def start(self, since: int, entries: list[tuple[int, str]]) -> list[str]:
        """The replay is ready: the frames to send, replayed then buffered, each sequence
        number once; from now on :meth:`admit` lets live frames through."""
        self.last = since
        out: list[str] = []
        for seq, text in (*entries, *self.buffer):
            if seq > self.last:
                self.last = seq
                out.append(text)
        self.buffer.clear()
        return out
