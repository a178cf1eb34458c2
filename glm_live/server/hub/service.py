"""The hub (``GET /ws``): the WebSocket shell around the hub protocol, over a room store.

The protocol (frames, rules) lives once, in :mod:`glm_live.wire.hub`, and is described for
client authors in ``docs/hub-protocol.md``. In short: JSON text frames; a client says
``hello``, ``join``s rooms (replay from a sequence number in an epoch, then live), ``publish``es
(acknowledged with the message's sequence number; a re-sent publish id is acknowledged again
but not delivered twice), ``leave``s and ``ping``s. Direct messages are publications to a
client's inbox room ``@<name>``; presence changes are published to the room ``presence``.

Rooms live in a :class:`~.store.RoomStore`: :class:`~.memory.MemoryStore` (default) or
:class:`~.redis.RedisStore` (shared by several runtimes). This module owns the connections:

Who may do what: every client authenticates (:class:`~glm_live.server.auth.Authenticator`:
``Authorization: Bearer``, the subprotocol ``glm-live.bearer.<token>``, ``?ticket=`` or
``?token=``; refused: close 4401 saying how). Its identity (``from`` and ``name`` on what it
publishes) comes from its credentials, and the rules of :mod:`glm_live.wire.hub.access`
decide which rooms it reads and writes; a refusal is an ``error`` frame (``forbidden``), never
silence. Publish ids are deduplicated per identity and publishing session (``hello`` opens one
or resumes the one its ``welcome`` named). A token that expires or is revoked closes its
connections with 4401.

Protection: an origin check for browsers (close 4403: the page's origin must be the runtime's
own or in its allowlist, the rule of :class:`~glm_live.server.origins.OriginPolicy`), a message
size limit (close 1009), a per-connection rate limit (close 1008), and a bounded send queue
per connection, so a client that cannot keep up is disconnected (close 1013) instead of slowing
the others. It resumes from history when it comes back. A store that fails closes its clients
with 1011; one that lost its rooms (a new epoch) with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from ...wire.auth import AuthError, Grant
from ...wire.hub import (
    Ack,
    Appended,
    ErrorFrame,
    Hello,
    HubFrame,
    HubFrameError,
    Join,
    Leave,
    Left,
    Message,
    Ping,
    Pong,
    Publication,
    Publish,
    Subscription,
    Welcome,
    decode_client_frame,
    encode,
    session_key,
)
from ...wire.hub.access import read_refusal, run_of, write_refusal
from .._uvicorn_fast import DirectWebSocketSink, direct_ws_sink
from ..auth import Authenticator
from ..origins import OriginPolicy
from .memory import MemoryStore
from .store import HubLimits, HubStoreError, RoomStore

__all__ = ["Hub", "HubLimits"]

logger = logging.getLogger("glm_live.hub")

_AUTH_ROOM = "_auth"  # revocations, heard by every runtime sharing the store
_CUT_GRACE_S = 1.0  # a client cut off for being too slow has this long to read the close
# Each closed connection leaves the server's objects for it (uvicorn's protocol, websockets'
# parser, the transport: about a hundred) in reference cycles, which only a full collection
# frees; `glm-live serve` makes those rare (gc.freeze, high thresholds), so the hub runs one
# after this many connections ended: a few milliseconds, instead of memory creeping upward.
_COLLECT_EVERY = 256
# A close reason holds 123 bytes: what went wrong, and how to authenticate.
_HOW = "send Authorization: Bearer <token>, subprotocol glm-live.bearer.<token>, or ?ticket="
_REFUSED = {
    "missing": "authentication required",
    "invalid": "token refused",
    "expired": "token expired",
    "revoked": "token revoked or ticket used",
    "bad_request": "token refused",
}
_TOO_SLOW = "too slow: send queue full; reconnect to resume"


#: The scope key under which the runtime leaves the server's own ASGI ``send`` of a WebSocket,
#: for the hub's direct write path (:func:`~glm_live.server._uvicorn_fast.direct_ws_sink`).
SERVER_SEND = "glm_live.server_send"
#: The subprotocol the hub speaks, and the prefix of one carrying a token (browsers).
SUBPROTOCOL = "glm-live.v1"
BEARER_SUBPROTOCOL = "glm-live.bearer."


class _Client:
    """One connected socket: its identity, session, rooms, send queue and rate budget."""

    def __init__(self, websocket: WebSocket, limits: HubLimits, grant: Grant) -> None:
        self.websocket = websocket
        self.grant = grant
        self.id = secrets.token_hex(8)
        self.name = grant.name
        self.kind = "client"
        self.session = ""  # its publishing session, once hello opened it
        self.rooms: set[str] = set()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(limits.send_queue)
        # Frames are written at once through ``direct`` while nothing waits in the queue and
        # the writer holds none (``sending``); otherwise they queue, in order, behind it.
        # ``sink`` (under uvicorn) can also cut the connection of a client that stopped reading.
        self.sink: DirectWebSocketSink | None = None
        self.direct: DirectWebSocketSink | None = None
        self.sending = False
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
        direct = self.direct
        if (
            direct is not None
            and not self.sending
            and self.closing is None
            and self.queue.empty()
            and direct.try_send(frame)
        ):
            return True
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    def reply(self, frame: HubFrame) -> bool:
        return self.offer(encode(frame))


class Hub:
    """Rooms, presence and delivery for every WebSocket client of one runtime.

    Args:
        store: Where the rooms live (default: a new :class:`~.memory.MemoryStore`).
        token: The admin token; clients must authenticate when given (``None``: every client
            is trusted, and named by its ``hello``). Ignored when ``auth`` is given.
        auth: The runtime's authenticator (shared with its HTTP API).
        allowed_origins: The runtime's :class:`~..origins.OriginPolicy` (the one its HTTP API
            uses), or the browser origins allowed besides the runtime's own.
        limits: Bounds on history, dedupe, message size, rate and send queues.
        direct_writes: Under uvicorn, write frames straight to the connection while nothing
            waits for it (``False``: always through ASGI ``send``, as under any server).
    """

    def __init__(
        self,
        store: RoomStore | None = None,
        *,
        token: str | None = None,
        auth: Authenticator | None = None,
        allowed_origins: OriginPolicy | Iterable[str] = (),
        limits: HubLimits | None = None,
        direct_writes: bool = True,
    ) -> None:
        self.direct_writes = direct_writes
        self._store: RoomStore = store or MemoryStore()
        self.auth = auth or Authenticator(token, self._store)
        self.origins = (
            allowed_origins
            if isinstance(allowed_origins, OriginPolicy)
            else OriginPolicy(allowed_origins)
        )
        self._clients: set[_Client] = set()
        # Room -> the clients of this process following it, each with its place in the room.
        self._subs: dict[str, dict[_Client, Subscription]] = {}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._stats = {"delivered": 0, "dropped_clients": 0, "lost": 0}
        self._ended = 0  # connections ended, for the periodic full collection
        self.limits = limits or HubLimits()

    def __repr__(self) -> str:
        return f"<Hub {self._store!r} clients={len(self._clients)}>"

    @property
    def limits(self) -> HubLimits:
        """The hub's bounds; setting them applies to rooms created from then on."""
        return self._limits

    @limits.setter
    def limits(self, limits: HubLimits) -> None:
        self._limits = limits
        self._store.attach(self, limits)

    @property
    def epoch(self) -> str:
        """The rooms' epoch: it changes when their history is lost."""
        return self._store.epoch

    @property
    def stats(self) -> dict[str, int]:
        """Counts: ``published``, ``duplicates`` (appends), ``delivered`` (frames queued for
        clients), ``dropped_clients``, ``lost`` (the runtime's publications a full store
        refused)."""
        return {**self._store.counts(), **self._stats}

    # -- life cycle (the runtime's lifespan calls these) -------------------------------------

    async def start(self) -> None:
        """Connect the store to shared state, when it has any, and hear revocations.

        Raises:
            HubStoreError: The store cannot reach its storage (Redis).
        """
        await self._store.start()
        self.listen(_AUTH_ROOM, self._auth_event)

    @property
    def store(self) -> RoomStore:
        """Where the rooms (and sessions, run owners, revocations) live."""
        return self._store

    async def revoke(self, grant: Grant) -> None:
        """Refuse ``grant``'s token from now on, and close its connections on every runtime
        sharing this hub's store (4401).

        Raises:
            HubStoreError: The store failed.
        """
        await self.auth.revoke_id(grant.id, grant.expires_at)
        self._close_token(grant.id, "token revoked")
        self.publish(_AUTH_ROOM, {"revoked": grant.id})

    def _auth_event(self, data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("revoked"), str):
            self._close_token(data["revoked"], "token revoked")

    def _close_token(self, token_id: str, why: str) -> None:
        for client in list(self._clients):
            if client.grant.id == token_id:
                self._drop(client, 4401, _close_reason(f"{why}; {_HOW}"))

    async def aclose(self) -> None:
        """Let the store finish what it has queued (briefly) and disconnect."""
        await self._store.aclose()

    def describe(self) -> dict[str, Any]:
        """What ``/health`` says about the hub."""
        return {
            "backend": self._store.backend,
            **self._store.describe(),
            "epoch": self.epoch,
            "clients": len(self._clients),
            "stats": self.stats,
        }

    # -- publishing from inside the runtime ---------------------------------------------------

    def publish(
        self, room: str, data: Any, *, sender: str = "runtime", name: str = ""
    ) -> int | None:
        """Publish ``data`` to ``room`` from the runtime itself; returns its sequence number
        (``None`` when the rooms live in Redis, which numbers the message a moment later)."""
        numbered: list[int] = []
        try:
            self._store.append(
                Publication(room, sender, name, None, data), lambda a: numbered.append(a.seq)
            )
        except HubStoreError:
            self._stats["lost"] += 1
            logger.warning("the hub's store is not keeping up: a publication to %s", room)
        return numbered[0] if numbered else None

    def listen(self, room: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``callback(data)`` for every message published to ``room`` (inside the
        runtime: how a run hears its control room). Returns a function that stops it."""
        self._listeners.setdefault(room, []).append(callback)
        cancel = self._store.follow(room)

        def stop() -> None:
            cancel()
            callbacks = self._listeners.get(room, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._listeners.pop(room, None)
            self._maybe_unwatch(room)

        return stop

    @property
    def clients(self) -> list[dict[str, str]]:
        """Who is connected now (presence)."""
        return [{"id": c.id, "name": c.name, "kind": c.kind} for c in self._clients]

    # -- what the store reports (the hub is its feed) ----------------------------------------

    def entry(self, message: Message, text: str) -> None:
        """Fan a message out to this process's listeners and to the clients in its room."""
        room = message.room
        for callback in list(self._listeners.get(room, ())):
            try:
                callback(message.data)
            except Exception:
                logger.exception("hub listener for %s failed", room)
        subs = self._subs.get(room)
        if subs:
            # The hot loop of a fan-out: _send inlined, the count added once.
            seq, delivered = message.seq, 0
            for client, sub in list(subs.items()):
                if sub.admit(seq, text):
                    if client.offer(text):
                        delivered += 1
                    else:
                        self._drop(client, 1013, _TOO_SLOW)
            self._stats["delivered"] += delivered

    def reset(self) -> None:
        """The store lost its rooms: every client reconnects and rejoins, learning of the gap."""
        for client in list(self._clients):
            self._drop(client, 1012, "the hub's rooms were reset; reconnect to resume")

    def behind(self, room: str, lost_from: int, lost_to: int) -> None:
        """This runtime missed ``room``'s messages ``lost_from``..``lost_to``: its clients in
        the room reconnect and rejoin, and are told of the gap (never a silent loss)."""
        logger.warning(
            "hub: fell behind in %s and missed messages %d..%d; its clients here rejoin",
            room,
            lost_from,
            lost_to,
        )
        for client in list(self._subs.get(room, {})):
            self._drop(client, 1013, f"fell behind in {room}; reconnect to resume")

    # -- delivery ------------------------------------------------------------------------------

    def _send(self, client: _Client, text: str) -> bool:
        if client.offer(text):
            self._stats["delivered"] += 1
            return True
        self._drop(client, 1013, _TOO_SLOW)
        return False

    def _drop(self, client: _Client, code: int, reason: str) -> None:
        if client.closing is None:
            client.closing = (code, reason)
            self._stats["dropped_clients"] += 1
            if code == 1013 or client.queue.full():
                # It cannot keep up: what waits for it is dropped (it resumes from history),
                # and its connection is cut now; through ASGI the close would wait behind
                # the back-pressure of a client that may never read again.
                while not client.queue.empty():
                    client.queue.get_nowait()
                if client.sink is not None:
                    client.sink.cut(code, reason, _CUT_GRACE_S)
            client.queue.put_nowait(None)
            self._forget(client)

    def _unsubscribe(self, client: _Client, room: str) -> None:
        subs = self._subs.get(room)
        if subs is not None:
            subs.pop(client, None)
            if not subs:
                del self._subs[room]
        self._maybe_unwatch(room)

    def _maybe_unwatch(self, room: str) -> None:
        if not self._subs.get(room) and not self._listeners.get(room):
            self._store.unwatch(room)

    def _forget(self, client: _Client) -> None:
        if client not in self._clients:
            return
        self._clients.discard(client)
        for room in client.rooms:
            self._unsubscribe(client, room)
        if client.session:  # its hello announced it: announce that it left
            self.publish(
                "presence",
                {"event": "leave", "id": client.id, "name": client.name, "kind": client.kind},
            )

    def _unavailable(self, client: _Client, exc: BaseException) -> None:
        logger.warning("hub: the store failed for a client (%s)", exc)
        # What it published but was not acknowledged waits in its outbox for the reconnect.
        self._drop(client, 1011, "the hub's storage is unavailable; reconnect to resume")

    # -- the endpoint --------------------------------------------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        """Serve one WebSocket until it closes."""
        offered = websocket.scope.get("subprotocols") or []
        chosen = SUBPROTOCOL if SUBPROTOCOL in offered else None
        if chosen is None:  # a client offering only its bearer protocol gets it back
            chosen = next((p for p in offered if p.startswith(BEARER_SUBPROTOCOL)), None)
        await websocket.accept(subprotocol=chosen)
        origin = self._origin_refusal(websocket)
        if origin is not None:
            await websocket.close(*origin)
            return
        try:
            grant = await self._authenticate(websocket, offered)
        except AuthError as exc:
            await websocket.close(4401, _close_reason(f"{_REFUSED[exc.code]}; {_HOW}"))
            return
        except HubStoreError as exc:
            logger.warning("hub: cannot check credentials (%s)", exc)
            await websocket.close(1011, "the hub's storage is unavailable; reconnect")
            return
        client = _Client(websocket, self.limits, grant)
        server_send = websocket.scope.get(SERVER_SEND)
        if server_send is not None:
            client.sink = direct_ws_sink(server_send)
            client.direct = client.sink if self.direct_writes else None
        self._clients.add(client)
        expiry = None
        if grant.expires_at is not None:
            expiry = asyncio.get_running_loop().call_later(
                max(0.0, grant.expires_at - time.time()),
                self._drop,
                client,
                4401,
                _close_reason(f"token expired; {_HOW}"),
            )
        writer = asyncio.ensure_future(self._write(client))
        normal = False
        try:
            normal = await self._read(client)
        except WebSocketDisconnect as exc:
            normal = exc.code == 1000
        finally:
            if expiry is not None:
                expiry.cancel()
            if normal and client.session:
                # A client that closed normally is done: its session ends with it.
                self._store.end_session(session_key(client.name, client.session))
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
            self._ended += 1
            if self._ended % _COLLECT_EVERY == 0:
                asyncio.get_running_loop().call_soon(_collect)

    async def _authenticate(self, websocket: WebSocket, offered: list[str]) -> Grant:
        """The grant of the credentials this socket came with (first found: the
        ``Authorization`` header, a bearer subprotocol, ``?ticket=``, ``?token=``)."""
        auth = self.auth
        if not auth.enabled:
            return await auth.authenticate(None)
        header = websocket.headers.get("authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise AuthError("invalid", "Authorization must be 'Bearer <token>'")
            return await auth.authenticate(token.strip())
        for protocol in offered:
            if protocol.startswith(BEARER_SUBPROTOCOL):
                return await auth.authenticate(protocol[len(BEARER_SUBPROTOCOL) :])
        query = websocket.query_params
        ticket = query.get("ticket")
        if ticket:
            return await auth.redeem(ticket)
        return await auth.authenticate(query.get("token"))

    def _origin_refusal(self, websocket: WebSocket) -> tuple[int, str] | None:
        # The runtime's one rule (same origin, or listed), as for its HTTP API.
        origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
        if self.origins.host_refusal(host) is not None:
            return 4403, _close_reason(f"Host {host} is not a loopback name (authentication off)")
        if self.origins.allows(origin, host):
            return None
        return 4403, _close_reason(f"origin {origin} not allowed; allow it: --cors-origin {origin}")

    async def _write(self, client: _Client) -> None:
        websocket = client.websocket
        while True:
            frame = await client.queue.get()
            if frame is None:
                break
            client.sending = True
            try:
                await websocket.send_text(frame)
            except Exception:
                break
            finally:
                client.sending = False
        if client.closing is not None and client.closing[0] != 1000:
            with contextlib.suppress(Exception):
                await websocket.close(*client.closing)

    async def _read(self, client: _Client) -> bool:
        """Read and handle frames until the socket closes; ``True`` when the client closed it
        normally (code 1000)."""
        websocket = client.websocket
        limits = self.limits
        while client.closing is None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return bool(message.get("code", 1000) == 1000)
            text = message.get("text")
            if text is None:
                self._error(client, "bad_frame", "send JSON text frames, not binary")
                continue
            if len(text) > limits.max_message_bytes:
                self._drop(client, 1009, f"message over {limits.max_message_bytes} bytes")
                return False
            if not client.allow(limits):
                self._drop(client, 1008, f"rate limit: more than {limits.rate:g} messages/s")
                return False
            try:
                frame = decode_client_frame(text)
            except HubFrameError as exc:
                self._error(client, exc.code, exc.message)
                continue
            # Frames are handled in the order they came. A publish is acknowledged when the
            # store has numbered it, while the next frames are read; what needs the store to
            # answer first (a join's history, a run's owner, a session) is awaited here.
            try:
                if type(frame) is Publish:
                    if client.session:
                        await self._publish(client, frame)
                    else:
                        self._refuse(
                            client, "bad_request", "send hello first", frame.room, frame.id
                        )
                elif type(frame) is Join:
                    await self._join(client, frame)
                elif type(frame) is Hello:
                    await self._hello(client, frame)
                elif type(frame) is Leave:
                    self._leave(client, frame)
                elif type(frame) is Ping:
                    client.reply(Pong(frame.t))
            except HubStoreError as exc:
                self._unavailable(client, exc)
        return False

    def _error(self, client: _Client, code: str, message: str) -> None:
        self._refuse(client, code, message)

    def _refuse(
        self,
        client: _Client,
        code: str,
        message: str,
        room: str | None = None,
        msg_id: int | None = None,
    ) -> None:
        if not client.reply(ErrorFrame(code, message, room, msg_id)):
            self._drop(client, 1013, "too slow: send queue full")

    # -- handlers ------------------------------------------------------------------------------

    async def _hello(self, client: _Client, hello: Hello) -> None:
        if client.session:
            self._refuse(client, "bad_request", "hello once per connection")
            return
        if not self.auth.enabled and hello.name:
            client.name = hello.name  # authentication off: the client names itself
        if hello.id is not None:
            client.id = hello.id
        client.kind = hello.kind or "client"
        # A session the hub does not know (forgotten, or its history lost with a restart) is
        # opened anew under the same id, so that its publish ids keep telling re-sends apart.
        session = hello.session or secrets.token_hex(8)
        last = await self._store.resume_session(session_key(client.name, session))
        resumed = last is not None
        if last is None:
            await self._store.open_session(session_key(client.name, session))
        client.session = session
        client.reply(
            Welcome(
                client.id,
                self.epoch,
                time.time_ns(),
                client.name,
                session,
                resumed,
                last or 0,
                client.grant.as_json(),
            )
        )
        if self.auth.enabled or hello.name:
            # The inbox is joined for the client, live from now; joining it again (with
            # since/epoch, after a reconnect) resumes it from there.
            await self._join(client, Join("@" + client.name))
        self.publish(
            "presence", {"event": "join", "id": client.id, "name": client.name, "kind": client.kind}
        )

    async def _owner(self, room: str) -> str | None:
        run = run_of(room)
        return None if run is None else await self._store.run_owner(run)

    async def _join(self, client: _Client, join: Join) -> None:
        grant = client.grant
        refusal = read_refusal(grant, join.room)
        if refusal is not None and run_of(join.room) is not None:
            refusal = read_refusal(grant, join.room, await self._owner(join.room))
        if refusal is not None:
            self._refuse(client, "forbidden", refusal, join.room)
            return
        # Follow the room before reading its history: live messages that arrive meanwhile wait
        # in the subscription, which lets each sequence number through once. Joining a room
        # already joined resumes it from the later of the two points (nothing sent twice).
        subs = self._subs.setdefault(join.room, {})
        previous = subs.get(client)
        sub = Subscription()
        subs[client] = sub
        client.rooms.add(join.room)
        try:
            await self._store.watch(join.room)
            replay = await self._store.join(join)
        except HubStoreError as exc:
            self._unavailable(client, exc)
            return
        if client.closing is not None:
            return
        since = replay.since
        if previous is not None and previous.last is not None:
            since = max(since, previous.last)
        client.reply(replay.joined)
        for text in sub.start(since, replay.entries):
            if not self._send(client, text):
                return

    def _leave(self, client: _Client, leave: Leave) -> None:
        client.rooms.discard(leave.room)
        self._unsubscribe(client, leave.room)
        client.reply(Left(leave.room))

    async def _publish(self, client: _Client, publish: Publish) -> None:
        room, msg_id = publish.room, publish.id
        grant = client.grant
        if grant.admin:
            refusal = None
        elif room.startswith("control:"):
            refusal = write_refusal(grant, room, await self._owner(room))
        else:
            refusal = write_refusal(grant, room)
        if refusal is not None:
            self._refuse(client, "forbidden", refusal, room, msg_id)
            return

        def acknowledge(appended: Appended) -> None:
            if appended.duplicate and appended.room != room:
                self._refuse(
                    client,
                    "id_reused",
                    f"publish id {msg_id} was used for {appended.room} in this session; "
                    "use a new id for a new message",
                    room,
                    msg_id,
                )
            else:
                client.reply(Ack(msg_id, appended.room, appended.seq, appended.duplicate))

        publication = Publication(
            room, client.name, client.name, msg_id, publish.data, client.session
        )
        self._store.append(publication, acknowledge)


def _collect() -> None:
    started = time.perf_counter()
    found = gc.collect()
    logger.debug(
        "hub: a full collection freed %d objects in %.1f ms",
        found,
        (time.perf_counter() - started) * 1e3,
    )


def _close_reason(text: str) -> str:
    """A close reason fits in 123 bytes (RFC 6455): keep the start, which says what to do."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."
