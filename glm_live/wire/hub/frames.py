"""The hub's frames as values, and their one encoding (JSON text <-> frame objects).

Every frame on ``/ws`` is a JSON text message holding one object with a ``type``. Each type is
a frozen dataclass here; :func:`encode` turns any of them into text, :func:`decode_client_frame`
(what the hub reads) and :func:`decode_hub_frame` (what a client reads) turn text back into
them. A frame that breaks the rules raises :class:`HubFrameError`, whose ``code`` is the one
the hub answers with (``bad_json``, ``bad_request``, ``unknown_type``) and whose message says
what was wrong. ``docs/hub-protocol.md`` is the same contract in prose.

The JSON names are the wire's, fixed by clients in other languages: a message's sender is
``from`` on the wire and :attr:`Message.sender` here (``from`` is a Python keyword).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import GlmLiveError

__all__ = [
    "Ack",
    "ClientFrame",
    "ErrorFrame",
    "GapReport",
    "Hello",
    "HubFrame",
    "HubFrameError",
    "Join",
    "Joined",
    "Leave",
    "Left",
    "Message",
    "Ping",
    "Pong",
    "Publish",
    "Welcome",
    "decode_client_frame",
    "decode_hub_frame",
    "decode_stored",
    "encode",
    "encode_stored",
]

# Longest values the hub accepts, in characters.
ID_LIMIT = 128
NAME_LIMIT = 128
KIND_LIMIT = 32
ROOM_LIMIT = 256


class HubFrameError(GlmLiveError, ValueError):
    """A frame that is not valid JSON, not an object with a known ``type``, or whose fields
    break the protocol. ``code`` is the hub's error code for it; the message says what to fix."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- client to hub ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """Opens a session. ``id`` labels this client within its identity (presence); ``session``
    resumes the publishing session a previous ``welcome`` named, after a reconnect (absent: a
    new session, whose publish ids start afresh). ``name`` is ignored when the hub
    authenticates: identity comes from the token."""

    type: ClassVar[str] = "hello"
    id: str | None = None
    name: str | None = None
    kind: str | None = None
    session: str | None = None

    def as_json(self) -> dict[str, Any]:
        fields = {"id": self.id, "name": self.name, "kind": self.kind, "session": self.session}
        return {"type": "hello", **{k: v for k, v in fields.items() if v is not None}}


@dataclass(frozen=True, slots=True)
class Join:
    """Receive ``room``: replay what came after ``since`` in ``epoch``, then live.

    ``since`` is ``None`` for "live from now" and ``0`` for "all the history kept".
    """

    type: ClassVar[str] = "join"
    room: str
    since: int | None = None
    epoch: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"type": "join", "room": self.room, "since": self.since, "epoch": self.epoch}


@dataclass(frozen=True, slots=True)
class Leave:
    """Stop receiving ``room``."""

    type: ClassVar[str] = "leave"
    room: str

    def as_json(self) -> dict[str, Any]:
        return {"type": "leave", "room": self.room}


@dataclass(frozen=True, slots=True)
class Publish:
    """Append ``data`` to ``room``. ``id`` increases per client id; a re-send is acked again."""

    type: ClassVar[str] = "publish"
    room: str
    id: int
    data: Any

    def as_json(self) -> dict[str, Any]:
        return {"type": "publish", "room": self.room, "id": self.id, "data": self.data}


@dataclass(frozen=True, slots=True)
class Ping:
    """Heartbeat; ``t`` is any JSON value, echoed in the pong."""

    type: ClassVar[str] = "ping"
    t: Any = None

    def as_json(self) -> dict[str, Any]:
        return {"type": "ping", "t": self.t}


# -- hub to client ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Welcome:
    """The answer to ``hello``: the client id in use, the hub's epoch and clock; who the client
    is (``name``, from its credentials) and what it may do (``grant``); its publishing
    ``session`` (give it in the next ``hello`` to resume), whether that resumed an existing
    one (``resumed``) and the highest publish id the hub already has from it (``last_id``: 0
    for a new session; re-send only what is above it)."""

    type: ClassVar[str] = "welcome"
    id: str
    epoch: str
    server_time_ns: int
    name: str = ""
    session: str = ""
    resumed: bool = False
    last_id: int = 0
    grant: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "welcome",
            "id": self.id,
            "epoch": self.epoch,
            "server_time_ns": self.server_time_ns,
            "name": self.name,
            "session": self.session,
            "resumed": self.resumed,
            "last_id": self.last_id,
            "grant": self.grant,
        }


@dataclass(frozen=True, slots=True)
class GapReport:
    """What a ``join`` cannot replay: ``reason`` is ``"epoch"`` (the room's history is not the
    one the client saw; ``old_epoch`` is the one it gave) or ``"trimmed"`` (older than the
    bounded history). ``lost_from``/``lost_to`` bound the lost sequence numbers when known."""

    reason: str
    old_epoch: str | None = None
    lost_from: int | None = None
    lost_to: int | None = None

    def as_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {"reason": self.reason}
        if self.old_epoch is not None:
            report["old_epoch"] = self.old_epoch
        if self.lost_from is not None:
            report["lost_from"] = self.lost_from
        if self.lost_to is not None:
            report["lost_to"] = self.lost_to
        return report


@dataclass(frozen=True, slots=True)
class Joined:
    """The answer to ``join``, sent before the replayed messages: the room's epoch, its last
    sequence number, and what cannot be replayed (``gap``)."""

    type: ClassVar[str] = "joined"
    room: str
    epoch: str
    last: int
    gap: GapReport | None = None

    def as_json(self) -> dict[str, Any]:
        gap = None if self.gap is None else self.gap.as_json()
        return {
            "type": "joined",
            "room": self.room,
            "epoch": self.epoch,
            "last": self.last,
            "gap": gap,
        }


@dataclass(frozen=True, slots=True)
class Left:
    """The answer to ``leave``."""

    type: ClassVar[str] = "left"
    room: str

    def as_json(self) -> dict[str, Any]:
        return {"type": "left", "room": self.room}


@dataclass(frozen=True, slots=True)
class Message:
    """A room message. ``seq`` increases by one per message in the room (per ``epoch``);
    ``sender`` is the publisher's identity, from its credentials (``from`` on the wire;
    ``"runtime"`` for the runtime's own), ``name`` the same, ``id`` its publish id in its
    publishing ``session`` (both ``None`` from the runtime)."""

    type: ClassVar[str] = "msg"
    #: Not a gap (lets code tell a :class:`Message` from a client's ``Gap`` without a type check).
    gap: ClassVar[bool] = False
    room: str
    seq: int
    epoch: str
    data: Any
    sender: str
    name: str
    id: int | None
    ts_ns: int
    session: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "msg",
            "room": self.room,
            "seq": self.seq,
            "epoch": self.epoch,
            "from": self.sender,
            "name": self.name,
            "id": self.id,
            "session": self.session,
            "data": self.data,
            "ts_ns": self.ts_ns,
        }


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to ``publish``: its sequence number in ``room``; ``duplicate`` when the
    publish id was handled before (``seq`` is then its first number, or 0 if forgotten)."""

    type: ClassVar[str] = "ack"
    id: int
    room: str
    seq: int
    duplicate: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "ack",
            "id": self.id,
            "room": self.room,
            "seq": self.seq,
            "duplicate": self.duplicate,
        }


@dataclass(frozen=True, slots=True)
class Pong:
    """The answer to ``ping``, echoing its ``t``."""

    type: ClassVar[str] = "pong"
    t: Any = None

    def as_json(self) -> dict[str, Any]:
        return {"type": "pong", "t": self.t}


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """A frame the hub refused, and why (``type`` ``error`` on the wire). ``room`` and ``id``
    name the refused ``join`` (room) or ``publish`` (room and publish id), when it was one:
    ``forbidden`` (not allowed: the message says by which rule) or ``id_reused`` (a publish
    id already used for another room in this session)."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    room: str | None = None
    id: int | None = None

    def as_json(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.room is not None:
            frame["room"] = self.room
        if self.id is not None:
            frame["id"] = self.id
        return frame


ClientFrame = Hello | Join | Leave | Publish | Ping
HubFrame = Welcome | Joined | Left | Message | Ack | Pong | ErrorFrame


def encode(frame: ClientFrame | HubFrame) -> str:
    """The JSON text of ``frame``: the one encoding, for both directions."""
    return json.dumps(frame.as_json())


# -- decoding what a client sent (the hub's side) ----------------------------------------------


def _text(frame: dict[str, Any], key: str, limit: int) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise HubFrameError(
            "bad_request", f"{key} must be a non-empty string of at most {limit} characters"
        )
    return value


def _optional_text(frame: dict[str, Any], key: str, limit: int) -> str | None:
    return None if frame.get(key) is None else _text(frame, key, limit)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _hello(frame: dict[str, Any]) -> Hello:
    return Hello(
        _optional_text(frame, "id", ID_LIMIT),
        _optional_text(frame, "name", NAME_LIMIT),
        _optional_text(frame, "kind", KIND_LIMIT),
        _optional_text(frame, "session", ID_LIMIT),
    )


def _join(frame: dict[str, Any]) -> Join:
    room = _text(frame, "room", ROOM_LIMIT)
    since = frame.get("since")
    if since is not None and (not _integer(since) or since < 0):
        raise HubFrameError("bad_request", "since must be null or a non-negative integer")
    epoch = frame.get("epoch")
    if epoch is not None and not isinstance(epoch, str):
        raise HubFrameError("bad_request", "epoch must be null or the string a joined gave")
    return Join(room, since, epoch)


def _leave(frame: dict[str, Any]) -> Leave:
    return Leave(_text(frame, "room", ROOM_LIMIT))


def _publish(frame: dict[str, Any]) -> Publish:
    room = _text(frame, "room", ROOM_LIMIT)
    msg_id = frame.get("id")
    if not isinstance(msg_id, int) or isinstance(msg_id, bool):
        raise HubFrameError("bad_request", "publish needs an integer id (increasing per client)")
    if "data" not in frame:
        raise HubFrameError("bad_request", "publish needs data")
    return Publish(room, msg_id, frame["data"])


def _ping(frame: dict[str, Any]) -> Ping:
    return Ping(frame.get("t"))


_CLIENT_DECODERS: dict[str, Callable[[dict[str, Any]], ClientFrame]] = {
    "hello": _hello,
    "join": _join,
    "leave": _leave,
    "publish": _publish,
    "ping": _ping,
}


def _object(text: str | bytes) -> tuple[str, dict[str, Any]]:
    try:
        frame = json.loads(text)
    except ValueError as exc:
        raise HubFrameError("bad_json", f"not valid JSON: {exc}") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise HubFrameError("bad_request", "each frame must be an object with a type")
    return frame["type"], frame


def decode_client_frame(text: str | bytes) -> ClientFrame:
    """The frame a client sent.

    Raises:
        HubFrameError: ``bad_json`` (not JSON), ``bad_request`` (not an object with a
            ``type``, or a field breaks the rules: the message names it) or ``unknown_type``.
    """
    kind, frame = _object(text)
    decoder = _CLIENT_DECODERS.get(kind)
    if decoder is None:
        known = ", ".join(sorted(_CLIENT_DECODERS))
        raise HubFrameError("unknown_type", f"unknown type {kind!r}; use {known}")
    return decoder(frame)


# -- decoding what the hub sent (a client's side) -----------------------------------------------
# Lenient where the hub may add fields or leave optional ones out; strict about what a client
# needs to keep its place (room, sequence numbers, epoch, publish ids).


def _need(frame: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = frame.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HubFrameError("bad_request", f"{frame.get('type')} needs {key} ({value!r} given)")
    return value


def _message(frame: dict[str, Any]) -> Message:
    msg_id = frame.get("id")
    return Message(
        _need(frame, "room", str),
        _need(frame, "seq", int),
        _need(frame, "epoch", str),
        frame.get("data"),
        frame.get("from", ""),
        frame.get("name", ""),
        msg_id if _integer(msg_id) else None,
        frame.get("ts_ns", 0),
        frame["session"] if isinstance(frame.get("session"), str) else None,
    )


def _gap(value: Any) -> GapReport | None:
    if not value:
        return None
    if not isinstance(value, dict):
        raise HubFrameError("bad_request", f"joined gap must be null or an object ({value!r})")
    return GapReport(
        str(value.get("reason", "unknown")),
        value.get("old_epoch"),
        value.get("lost_from"),
        value.get("lost_to"),
    )


def _joined(frame: dict[str, Any]) -> Joined:
    return Joined(
        _need(frame, "room", str),
        _need(frame, "epoch", str),
        _need(frame, "last", int),
        _gap(frame.get("gap")),
    )


_HUB_DECODERS: dict[str, Callable[[dict[str, Any]], HubFrame]] = {
    "msg": _message,
    "ack": lambda f: Ack(
        _need(f, "id", int), f.get("room", ""), f.get("seq", 0), bool(f.get("duplicate"))
    ),
    "joined": _joined,
    "pong": lambda f: Pong(f.get("t")),
    "welcome": lambda f: Welcome(
        f.get("id", ""),
        _need(f, "epoch", str),
        f.get("server_time_ns", 0),
        str(f.get("name") or ""),
        str(f.get("session") or ""),
        bool(f.get("resumed")),
        f["last_id"] if _integer(f.get("last_id")) else 0,
        f["grant"] if isinstance(f.get("grant"), dict) else None,
    ),
    "left": lambda f: Left(_need(f, "room", str)),
    "error": lambda f: ErrorFrame(
        str(f.get("code", "")),
        str(f.get("message", "")),
        f["room"] if isinstance(f.get("room"), str) else None,
        f["id"] if _integer(f.get("id")) else None,
    ),
}


def decode_hub_frame(text: str | bytes) -> HubFrame:
    """The frame the hub sent.

    Raises:
        HubFrameError: Not JSON, not an object with a ``type``, an unknown ``type`` (a newer
            hub: ``code`` is ``unknown_type``, safe to ignore), or a field a client relies on
            is missing or of the wrong type.
    """
    kind, frame = _object(text)
    decoder = _HUB_DECODERS.get(kind)
    if decoder is None:
        raise HubFrameError("unknown_type", f"unknown type {kind!r} from the hub")
    return decoder(frame)


# -- the stored form (the Redis store keeps a message before Redis numbers it) -------------------


def encode_stored(
    room: str,
    sender: str,
    name: str,
    msg_id: int | None,
    data: Any,
    ts_ns: int,
    session: str | None = None,
) -> str:
    """A ``msg`` frame without ``seq`` and ``epoch``: how a shared store keeps a message whose
    sequence number the store itself assigns. :func:`decode_stored` reads it back."""
    return json.dumps(
        {
            "type": "msg",
            "room": room,
            "from": sender,
            "name": name,
            "id": msg_id,
            "session": session,
            "data": data,
            "ts_ns": ts_ns,
        }
    )


def decode_stored(text: str, seq: int, epoch: str) -> Message:
    """The :class:`Message` stored by :func:`encode_stored`, numbered ``seq`` in ``epoch``.

    Raises:
        HubFrameError: The stored text is not such a message.
    """
    _, frame = _object(text)
    frame["seq"] = seq
    frame["epoch"] = epoch
    return _message(frame)
