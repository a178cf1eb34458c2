"""The hub (``GET /ws``): rooms with sequence numbers and history, presence, direct messages.

Protocol: JSON text frames, each an object with a ``type``.

Client to hub:

- ``hello {id, name, kind}``: who this is; ``id`` is stable across the client's reconnects.
- ``join {room, since, epoch}``: receive ``room``; replay what came after ``since`` in
  ``epoch`` (``since: null``: nothing, live from now; ``0``: all the history kept).
  Answered by ``joined {room, epoch, last, gap}`` and the replayed ``msg`` frames.
  ``gap`` is ``null``, or says what cannot be replayed: ``{"reason": "epoch"}`` when the room's
  history is not the one the client saw (the hub restarted), ``{"reason": "trimmed",
  "lost_from", "lost_to"}`` when it is older than the bounded history.
- ``leave {room}``; ``publish {room, id, data}``, answered by ``ack {id, room, seq,
  duplicate}``. ``id`` increases per client; a re-sent publish (after a reconnect) is
  acknowledged again but not delivered twice.
- ``ping {t}``, answered by ``pong {t}``.

Hub to client: ``msg {room, seq, epoch, from, name, id, data, ts_ns}``, ``error {code,
message}``. Direct messages are publications to a client's inbox room, ``@<name>``; presence
changes are published to the room ``presence``.

Protection: a token when the runtime has one (close 4401), an origin check for browsers (close
4403), a message size limit (close 1009), a per-connection rate limit (close 1008), and a
bounded send queue per connection, so a client that cannot keep up is disconnected (close
1013) instead of slowing the others. It resumes from history when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["Hub", "HubLimits"]

logger = logging.getLogger("glm_live.hub")

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclass(frozen=True)
class HubLimits:
    """Bounds that keep one client from hurting the others."""

    history: int = 1000  # messages kept per room for resuming
    max_message_bytes: int = 1 << 20
    rate: float = 500.0  # messages per second, sustained
    burst: float = 1000.0
    send_queue: int = 10_000  # frames waiting for a slow client before it is dropped
    dedupe: int = 10_000  # recent publish ids remembered per client


@dataclass
class _Room:
    epoch: str
    history: deque[tuple[int, str]]
    members: set[_Client] = field(default_factory=set)
    last: int = 0


class _Client:
    """One connected socket: its identity, rooms, send queue and rate budget."""

    def __init__(self, websocket: WebSocket, limits: HubLimits) -> None:
        self.websocket = websocket
        self.id = secrets.token_hex(8)
        self.name = ""
        self.kind = "client"
        self.rooms: set[str] = set()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(limits.send_queue)
        self.tokens = limits.burst
        self.stamp = time.monotonic()
        self.closing: tuple[int, str] | None = None

    def allow(self, limits: HubLimits) -> bool:
        now = time.monotonic()
        self.tokens = min(limits.burst, self.tokens + (now - self.stamp) * limits.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def offer(self, frame: str) -> bool:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True


class Hub:
    """Rooms, presence and delivery for every WebSocket client of one runtime."""

    def __init__(
        self,
        *,
        token: str | None = None,
        allowed_origins: Iterable[str] = (),
        limits: HubLimits | None = None,
    ) -> None:
        self.epoch = secrets.token_hex(6)  # changes when the process (and history) does
        self.limits = limits or HubLimits()
        self._token = token
        self._origins = {o.rstrip("/") for o in allowed_origins}
        self._rooms: dict[str, _Room] = {}
        self._clients: set[_Client] = set()
        # Per client id: the highest publish id handled, and recent ids' (room, seq).
        self._seen: dict[str, tuple[int, dict[int, tuple[str, int]]]] = {}
        self.stats = {"published": 0, "delivered": 0, "duplicates": 0, "dropped_clients": 0}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}

    # -- life cycle (the runtime's lifespan calls these; rooms in memory need neither) --------

    async def start(self) -> None:
        """Connect to shared state, when the hub has any."""

    async def aclose(self) -> None:
        """Let go of shared state, when the hub has any."""

    def describe(self) -> dict[str, Any]:
        """What ``/health`` says about the hub."""
        return {
            "backend": "memory",
            "epoch": self.epoch,
            "clients": len(self._clients),
            "stats": dict(self.stats),
        }

    # -- publishing from inside the runtime ---------------------------------------------------

    def publish(
        self, room: str, data: Any, *, sender: str = "runtime", name: str = ""
    ) -> int | None:
        """Publish ``data`` to ``room`` from the runtime itself; returns its sequence number
        (``None`` when the rooms live in Redis, which numbers the message a moment later)."""
        return self._deliver(room, data, sender, name, None)

    def listen(self, room: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(data)`` for every message published to ``room`` (inside the
        runtime: how a run hears its control room). Returns a function that stops it."""
        self._listeners.setdefault(room, []).append(callback)

        def stop() -> None:
            callbacks = self._listeners.get(room, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._listeners.pop(room, None)

        return stop

    @property
    def clients(self) -> list[dict[str, str]]:
        """Who is connected now (presence)."""
        return [{"id": c.id, "name": c.name, "kind": c.kind} for c in self._clients]

    def _room(self, name: str) -> _Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = _Room(self.epoch, deque(maxlen=self.limits.history))
        return room

    def _deliver(
        self, room_name: str, data: Any, sender: str, name: str, msg_id: int | None
    ) -> int:
        room = self._room(room_name)
        room.last += 1
        frame = json.dumps(
            {
                "type": "msg",
                "room": room_name,
                "seq": room.last,
                "epoch": room.epoch,
                "from": sender,
                "name": name,
                "id": msg_id,
                "data": data,
                "ts_ns": time.time_ns(),
            }
        )
        room.history.append((room.last, frame))
        self.stats["published"] += 1
        for callback in list(self._listeners.get(room_name, ())):
            try:
                callback(data)
            except Exception:
                logger.exception("hub listener for %s failed", room_name)
        for member in list(room.members):
            if member.offer(frame):
                self.stats["delivered"] += 1
            else:
                self._drop(member, 1013, "too slow: send queue full; reconnect to resume")
        return room.last

    def _drop(self, client: _Client, code: int, reason: str) -> None:
        if client.closing is None:
            client.closing = (code, reason)
            self.stats["dropped_clients"] += 1
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(None)
            self._forget(client)

    def _unsubscribe(self, client: _Client, name: str) -> None:
        room = self._rooms.get(name)
        if room is not None:
            room.members.discard(client)

    def _forget(self, client: _Client) -> None:
        if client not in self._clients:
            return
        self._clients.discard(client)
        for name in client.rooms:
            self._unsubscribe(client, name)
        if client.name or client.kind != "client":
            self.publish(
                "presence",
                {"event": "leave", "id": client.id, "name": client.name, "kind": client.kind},
            )

    # -- the endpoint --------------------------------------------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        """Serve one WebSocket until it closes."""
        await websocket.accept()
        refusal = self._refusal(websocket)
        if refusal is not None:
            await websocket.close(*refusal)
            return
        client = _Client(websocket, self.limits)
        self._clients.add(client)
        writer = asyncio.ensure_future(self._write(client))
        try:
            await self._read(client)
        except WebSocketDisconnect:
            pass
        finally:
            self._forget(client)
            if client.closing is None:
                client.closing = (1000, "")
                with contextlib.suppress(asyncio.QueueFull):
                    client.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, 5)
            if websocket.application_state != WebSocketState.DISCONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close(*client.closing)

    def _refusal(self, websocket: WebSocket) -> tuple[int, str] | None:
        headers = websocket.headers
        if self._token is not None:
            given = headers.get("authorization", "")
            query = websocket.query_params.get("token")
            expected = f"Bearer {self._token}"
            ok = secrets.compare_digest(given.encode(), expected.encode()) or (
                query is not None and secrets.compare_digest(query.encode(), self._token.encode())
            )
            if not ok:
                return 4401, "token required: send Authorization: Bearer <token>"
        origin = headers.get("origin")
        if origin and origin.rstrip("/") not in self._origins:
            host = urlsplit(origin).hostname or ""
            if host not in _LOOPBACK_HOSTS:
                return 4403, f"origin {origin} not allowed; add it to allowed_origins"
        return None

    async def _write(self, client: _Client) -> None:
        websocket = client.websocket
        while True:
            frame = await client.queue.get()
            if frame is None:
                break
            try:
                await websocket.send_text(frame)
            except Exception:
                break
        if client.closing is not None and client.closing[0] != 1000:
            with contextlib.suppress(Exception):
                await websocket.close(*client.closing)

    async def _read(self, client: _Client) -> None:
        websocket = client.websocket
        limits = self.limits
        while client.closing is None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self._error(client, "bad_frame", "send JSON text frames, not binary")
                continue
            if len(text) > limits.max_message_bytes:
                self._drop(client, 1009, f"message over {limits.max_message_bytes} bytes")
                return
            if not client.allow(limits):
                self._drop(client, 1008, f"rate limit: more than {limits.rate:g} messages/s")
                return
            try:
                frame = json.loads(text)
            except ValueError as exc:
                self._error(client, "bad_json", f"not valid JSON: {exc}")
                continue
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                self._error(client, "bad_request", "each frame must be an object with a type")
                continue
            method = _HANDLERS.get(frame["type"])
            if method is None:
                known = ", ".join(sorted(_HANDLERS))
                self._error(client, "unknown_type", f"unknown type {frame['type']!r}; use {known}")
                continue
            handler: Callable[[_Client, dict[str, Any]], Awaitable[None] | None]
            handler = getattr(self, method)
            try:
                pending = handler(client, frame)
                if pending is not None:  # the Redis hub's handlers wait for Redis
                    await pending
            except _BadFrame as exc:
                self._error(client, "bad_request", str(exc))

    def _error(self, client: _Client, code: str, message: str) -> None:
        if not client.offer(json.dumps({"type": "error", "code": code, "message": message})):
            self._drop(client, 1013, "too slow: send queue full")

    # -- handlers ------------------------------------------------------------------------------

    def _hello(self, client: _Client, frame: dict[str, Any]) -> None:
        client_id = frame.get("id")
        if client_id is not None:
            client.id = _text(frame, "id", 128)
        client.name = _text(frame, "name", 128) if frame.get("name") is not None else ""
        client.kind = _text(frame, "kind", 32) if frame.get("kind") is not None else "client"
        client.offer(
            json.dumps(
                {
                    "type": "welcome",
                    "id": client.id,
                    "epoch": self.epoch,
                    "server_time_ns": time.time_ns(),
                }
            )
        )
        self.publish(
            "presence", {"event": "join", "id": client.id, "name": client.name, "kind": client.kind}
        )

    def _join(self, client: _Client, frame: dict[str, Any]) -> None:
        name = _text(frame, "room", 256)
        room = self._room(name)
        first = room.history[0][0] if room.history else room.last + 1
        since, gap = _resume_point(frame, room.epoch, room.last, first)
        client.rooms.add(name)
        room.members.add(client)
        client.offer(
            json.dumps(
                {"type": "joined", "room": name, "epoch": room.epoch, "last": room.last, "gap": gap}
            )
        )
        for seq, stored in room.history:
            if seq > since and not client.offer(stored):
                self._drop(client, 1013, "too slow: send queue full")
                return

    def _leave(self, client: _Client, frame: dict[str, Any]) -> None:
        name = _text(frame, "room", 256)
        client.rooms.discard(name)
        self._unsubscribe(client, name)
        client.offer(json.dumps({"type": "left", "room": name}))

    def _publish(self, client: _Client, frame: dict[str, Any]) -> None:
        name, msg_id = _publication(frame)
        last, recent = self._seen.get(client.id, (0, {}))
        if msg_id <= last:
            # A re-send after a reconnect: acknowledge again, deliver nothing.
            room_name, seq = recent.get(msg_id, (name, 0))
            self.stats["duplicates"] += 1
            client.offer(
                json.dumps(
                    {"type": "ack", "id": msg_id, "room": room_name, "seq": seq, "duplicate": True}
                )
            )
            return
        seq = self._deliver(name, frame["data"], client.id, client.name, msg_id)
        recent[msg_id] = (name, seq)
        if len(recent) > self.limits.dedupe:
            recent.pop(next(iter(recent)))
        self._seen[client.id] = (msg_id, recent)
        client.offer(
            json.dumps({"type": "ack", "id": msg_id, "room": name, "seq": seq, "duplicate": False})
        )

    def _ping(self, client: _Client, frame: dict[str, Any]) -> None:
        client.offer(json.dumps({"type": "pong", "t": frame.get("t")}))


# Frame type → handler method (looked up on the instance, so the Redis hub can override them).
_HANDLERS = {
    "hello": "_hello",
    "join": "_join",
    "leave": "_leave",
    "publish": "_publish",
    "ping": "_ping",
}


class _BadFrame(Exception):
    pass


def _resume_point(
    frame: dict[str, Any], room_epoch: str, last: int, first: int
) -> tuple[int, dict[str, Any] | None]:
    """Where a ``join`` resumes (``since``), and the gap to report: the room's epoch, its
    last sequence number and the first one still kept decide."""
    since = frame.get("since")
    if since is None:
        since = last  # live from now on: nothing to replay
    if not isinstance(since, int) or isinstance(since, bool) or since < 0:
        raise _BadFrame("since must be null or a non-negative integer")
    epoch = frame.get("epoch")
    gap: dict[str, Any] | None = None
    if epoch is not None and epoch != room_epoch:
        gap = {"reason": "epoch", "old_epoch": epoch}
        since = 0
    if since < first - 1:
        if gap is None and (since > 0 or epoch is not None):
            gap = {"reason": "trimmed", "lost_from": since + 1, "lost_to": first - 1}
        elif gap is not None:
            gap.update(lost_from=1, lost_to=first - 1)
    return since, gap


def _publication(frame: dict[str, Any]) -> tuple[str, int]:
    """A ``publish`` frame's room and message id, checked."""
    name = _text(frame, "room", 256)
    msg_id = frame.get("id")
    if not isinstance(msg_id, int) or isinstance(msg_id, bool):
        raise _BadFrame("publish needs an integer id (increasing per client)")
    if "data" not in frame:
        raise _BadFrame("publish needs data")
    return name, msg_id


def _text(frame: dict[str, Any], key: str, limit: int) -> str:
    value = frame.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _BadFrame(f"{key} must be a non-empty string of at most {limit} characters")
    return value
