"""A WebSocket client for the runtime's hub that loses nothing: ``glm_live.ws.Connection``.

Delivery guarantees, and how each is kept:

- **Nothing received twice.** Every room message carries the room's sequence number; the
  client remembers the last one per room and drops anything at or below it. Publications also
  carry their sender's identity, session and publish id, remembered across hub restarts.
- **Nothing lost silently.** After a reconnect the client rejoins each room with the last
  sequence number it saw and the room's epoch; the hub replays what came after. When it cannot
  (history trimmed, or a restarted hub whose epoch changed), the subscriber receives a
  :class:`Gap` saying so, never silence.
- **What you publish arrives once, in order.** Publications wait in a bounded outbox until
  the hub acknowledges them. After a reconnect the client resumes its publishing session (the
  ``welcome`` says which publications the hub already has) and re-sends the rest in order; the
  hub drops re-sends it has already delivered. A new ``Connection`` (a restarted process)
  opens a new session, so its publications are never mistaken for re-sends.
- **Refusals are never silent.** The hub names the client from its token and checks every
  join and publish against it: a refused ``join`` raises :class:`HubForbidden`; a refused
  publication leaves the outbox and :meth:`Connection.flush` raises :class:`HubForbidden`
  for it (all are in :attr:`Connection.refusals`).
- **Bounded.** When the outbox is full, ``overflow`` decides: ``"raise"``
  (:class:`OutboxFull`), ``"drop_oldest"`` or ``"drop_newest"``; ``ttl`` drops messages too
  old to be worth sending. Both count what they drop.

Reconnecting uses :class:`~glm_live.retry.Backoff`: full jitter, reset only after a stable
period. A heartbeat measures the round trip (:attr:`Connection.latency`) and declares the
connection dead when pongs stop. ``wss://`` verifies certificates by default (``cafile=`` adds
a CA); an ``https://`` runtime URL maps to ``wss://`` by itself.

The rules above live in :class:`~glm_live.wire.hub.ClientState` (no I/O); this module is its
asyncio shell: it connects, sends what the state says, feeds it what arrives, and hands
messages and gaps to subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..errors import TransportError
from ..wire.hub import (
    Ack,
    ClientState,
    ErrorFrame,
    Gap,
    HubFrameError,
    Joined,
    Message,
    Pending,
    Ping,
    Pong,
    Refusal,
    Welcome,
    encode,
)
from ..wire.hub.client import Overflow
from ..wire.retry import Backoff
from ._closing import AsyncClosing
from .sse_client import ConnectionState, Observed, Observer

__all__ = [
    "Connection",
    "Gap",
    "HubForbidden",
    "HubRefused",
    "Message",
    "OutboxFull",
    "Refusal",
    "hub_url",
]

logger = logging.getLogger("glm_live.ws")

# Close codes after which reconnecting cannot help.
_FATAL_CLOSE = {4401: "credentials refused", 4403: "origin refused"}


class OutboxFull(TransportError):
    """The outbox is full and ``overflow="raise"``: wait (``flush``) or publish less."""


class HubRefused(TransportError):
    """The hub refused this client (wrong, expired or revoked token; origin): ``code`` and
    ``reason`` say why."""

    def __init__(self, message: str, *, code: int, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class HubForbidden(TransportError):
    """The hub refused a join or a publication: this client's identity may not read or write
    that room. ``refusal`` has the hub's ``code`` and reason, the room and the publish id."""

    def __init__(self, refusal: Refusal) -> None:
        what = "join" if refusal.id is None else f"publication {refusal.id} to"
        super().__init__(f"the hub refused the {what} {refusal.room}: {refusal.message}")
        self.refusal = refusal


def hub_url(url: str) -> str:
    """The hub URL for a runtime URL: ``http(s)://host`` becomes ``ws(s)://host/ws``."""
    url = url.rstrip("/")
    if url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    elif url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    _, _, rest = url.partition("://")
    if "/" not in rest:
        url += "/ws"
    return url


class _Room:
    """The asyncio side of a room (where the client stands is the state's RoomCursor)."""

    def __init__(self) -> None:
        self.joined = asyncio.Event()
        self.refusal: Refusal | None = None
        self.backlog: deque[Message | Gap] = deque()
        self.subscribers: list[asyncio.Queue[Message | Gap]] = []

    def deliver(self, item: Message | Gap) -> None:
        if not self.subscribers:
            self.backlog.append(item)
        for queue in self.subscribers:
            queue.put_nowait(item)


class Connection(AsyncClosing, Observed):
    """One client of the hub, reconnecting until closed.

    Args:
        url: The hub URL (``ws://host/ws``), or the runtime's ``http(s)://`` URL; or several,
            for runtimes that share their rooms (``glm-live serve --redis``): after a
            failure the next attempt goes to the next URL, and the client resumes there.
        token: The runtime's token or a scoped one, sent as ``Authorization: Bearer``; the
            hub names this client from it (:attr:`identity`).
        name: This client's name on a hub without authentication (one with authentication
            takes the name from the token); direct messages reach it in ``@<name>``.
        kind: What it is, for presence (``notebook``, ``agent``).
        client_id: A label, stable across restarts if you like (default: random); it is
            not an identity, and a new ``Connection`` always starts a new publishing
            session.
        outbox_limit: Unacknowledged publications held at most.
        overflow: What a full outbox does: ``raise``, ``drop_oldest``, ``drop_newest``.
        ttl: Seconds after which an unsent publication is dropped (``None``: never).
        backoff: Reconnect policy.
        heartbeat: Seconds between pings; two missed pongs and the connection is dead.
        open_timeout: Seconds for one connection attempt.
        cafile: A CA bundle to trust for ``wss://`` (verification stays on).
        ssl: An ``ssl.SSLContext`` to use instead.
        max_size: Largest incoming message, bytes.
        observers: Callables receiving every :class:`~glm_live.stream.ConnectionEvent`.

    Observers also get ``heartbeat`` events, whose ``delay`` is the round trip in seconds.

    Attributes:
        url: The hub URL in use (or tried next).
        urls: Every hub URL, in the order they are tried.
        state: ``connecting``, ``open``, ``reconnecting`` or ``closed``.
        latency: Last heartbeat round trip, seconds (``None`` before the first).
        reconnects: Reconnections so far.
        dropped: Publications dropped by the overflow policy or the ttl.
        gaps: Gaps signalled so far.
        refusals: Joins and publications the hub refused, in order.
    """

    _logger = logger

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        token: str | None = None,
        name: str | None = None,
        kind: str = "notebook",
        client_id: str | None = None,
        outbox_limit: int = 1000,
        overflow: Overflow = "raise",
        ttl: float | None = None,
        backoff: Backoff | None = None,
        heartbeat: float = 5.0,
        open_timeout: float = 10.0,
        cafile: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        max_size: int = 1 << 20,
        observers: Iterable[Observer] = (),
    ) -> None:
        self.urls = [hub_url(u) for u in ([url] if isinstance(url, str) else url)]
        if not self.urls:
            msg = "give the hub's URL, or a list of them"
            raise ValueError(msg)
        self._state = ClientState(
            client_id or uuid.uuid4().hex,
            name=name,
            kind=kind,
            outbox_limit=outbox_limit,
            overflow=overflow,
            ttl=ttl,
        )
        self.url = self.urls[0]
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.backoff = backoff or Backoff(initial=0.2, maximum=10.0, stable_after=5.0)
        self.heartbeat = heartbeat
        self.open_timeout = open_timeout
        self.max_size = max_size
        self._ssl = ssl
        if self._ssl is None and any(u.startswith("wss://") for u in self.urls):
            self._ssl = ssl_module.create_default_context(cafile=cafile)
        self._observers = list(observers)

        self.state = ConnectionState.CONNECTING
        self.latency: float | None = None
        self.reconnects = 0
        self.attempts = 0
        self.last_error: BaseException | None = None

        self._rooms: dict[str, _Room] = {}
        self.refusals: list[Refusal] = []
        self._unreported: list[Refusal] = []  # refused publications flush() has not raised
        self._welcomed = asyncio.Event()
        self._acked = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._ready = False
        self._held_joins: deque[str] = deque()  # joins made while the connection opened
        self._opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._pong_at = 0.0

    def __repr__(self) -> str:
        return (
            f"<glm_live.ws.Connection {self.url} state={self.state.value} "
            f"reconnects={self.reconnects} outbox={self.outbox_depth}>"
        )

    # -- the state's settings and counts, as attributes ------------------------------------------

    @property
    def id(self) -> str:
        """This client's id (sent in ``hello``; the hub dedupes publications per id)."""
        return self._state.id

    @property
    def name(self) -> str | None:
        """This client's name: direct messages reach it in the room ``@<name>``."""
        return self._state.name

    @property
    def kind(self) -> str:
        """What it is, for presence."""
        return self._state.kind

    @property
    def outbox_limit(self) -> int:
        """Unacknowledged publications held at most."""
        return self._state.outbox_limit

    @property
    def overflow(self) -> Overflow:
        """What a full outbox does: ``raise``, ``drop_oldest`` or ``drop_newest``."""
        return self._state.overflow

    @property
    def ttl(self) -> float | None:
        """Seconds after which an unsent publication is dropped (``None``: never)."""
        return self._state.ttl

    @ttl.setter
    def ttl(self, seconds: float | None) -> None:
        self._state.ttl = seconds

    @property
    def dropped(self) -> int:
        """Publications dropped by the overflow policy or the ttl."""
        return self._state.dropped

    @property
    def gaps(self) -> int:
        """Gaps signalled so far."""
        return self._state.gaps

    @property
    def hub_epoch(self) -> str | None:
        """The hub's epoch, from its last ``welcome``."""
        return self._state.hub_epoch

    @property
    def identity(self) -> str | None:
        """Who the hub says this client is (from its token), once welcomed; its inbox is
        ``@<identity>``."""
        return self._state.identity

    @property
    def grant(self) -> dict[str, Any] | None:
        """What the hub says this client may read and write (from the ``welcome``)."""
        return self._state.grant

    @property
    def _outbox(self) -> deque[Pending]:
        return self._state.outbox

    # -- public API ----------------------------------------------------------------------------

    @property
    def outbox_depth(self) -> int:
        """Publications not yet acknowledged by the hub."""
        return len(self._state.outbox)

    async def __aenter__(self) -> Connection:
        self.start()
        return self

    def start(self) -> None:
        """Start connecting in the background (``async with`` does this)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until connected (``TimeoutError`` after ``timeout`` seconds)."""
        await asyncio.wait_for(self._opened.wait(), timeout)

    async def join(self, room: str, *, replay: bool = False, timeout: float | None = 10.0) -> None:
        """Receive ``room`` from now on, this connection and every reconnect after it.

        Args:
            room: The room.
            replay: Also receive the history the hub still keeps (a run's events so far).
            timeout: Seconds to wait for the hub to confirm (then ``TimeoutError``; the room
                stays joined for when the connection comes).

        Raises:
            HubForbidden: This client may not read ``room``.
        """
        frame = self._state.join(room, replay=replay)
        shell = self._room(room)
        shell.refusal = None
        if frame is not None and self._ws is not None:
            if self._ready:
                await self._send(frame)
            else:  # the frames that open this connection went out without the room
                self._held_joins.append(frame)
        await asyncio.wait_for(shell.joined.wait(), timeout)
        if shell.refusal is not None:
            raise HubForbidden(shell.refusal)

    async def subscribe(self, room: str) -> AsyncIterator[Message | Gap]:
        """Messages of ``room`` (joining it if needed), and any :class:`Gap`, in order."""
        if room not in self._state.rooms:
            await self.join(room)
        state = self._room(room)
        queue: asyncio.Queue[Message | Gap] = asyncio.Queue()
        if not state.subscribers:
            while state.backlog:
                queue.put_nowait(state.backlog.popleft())
        state.subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            state.subscribers.remove(queue)

    async def publish(self, room: str, data: Any) -> int | None:
        """Queue ``data`` (JSON-serialisable) for ``room``; sent now if connected.

        Returns the publication's id, or ``None`` if ``overflow="drop_newest"`` dropped it.

        Raises:
            OutboxFull: The outbox holds ``outbox_limit`` unacknowledged messages and
                ``overflow="raise"``.
            TypeError: ``data`` is not JSON-serialisable.
        """
        try:
            pending = self._state.publish(room, data, time.monotonic())
        except OverflowError:
            msg = (
                f"outbox full ({self.outbox_limit} unacknowledged messages); "
                "await flush(), raise outbox_limit, or choose another overflow policy"
            )
            raise OutboxFull(msg) from None
        if pending is None:
            return None
        self._acked.clear()
        if self._ready and self._ws is not None:
            await self._send(pending.frame)
        return pending.id

    async def send_direct(self, name: str, data: Any) -> int | None:
        """Send ``data`` to the client called ``name`` (its inbox room ``@<name>``)."""
        return await self.publish("@" + name, data)

    async def flush(self, timeout: float | None = 10.0) -> None:
        """Wait until the hub has acknowledged (or refused) every publication.

        Raises:
            HubForbidden: The hub refused a publication since the last ``flush`` (the first
                such; every one is in :attr:`refusals`).
            TimeoutError: Not acknowledged within ``timeout`` seconds.
        """

        async def drained() -> None:
            while self._state.outbox:
                self._acked.clear()
                await self._acked.wait()

        await asyncio.wait_for(drained(), timeout)
        if self._unreported:
            first, self._unreported = self._unreported[0], []
            raise HubForbidden(first)

    async def aclose(self) -> None:
        """Close the connection and stop reconnecting."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.state is not ConnectionState.CLOSED:
            self._emit("closed", ConnectionState.CLOSED)

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            self.attempts += 1
            self._emit(
                "connecting",
                ConnectionState.CONNECTING if self.attempts == 1 else ConnectionState.RECONNECTING,
            )
            opened: float | None = None
            failure: BaseException | None = None
            try:
                async with connect(
                    self.url,
                    additional_headers=self._headers,
                    ssl=self._ssl,
                    open_timeout=self.open_timeout,
                    ping_interval=None,  # our own heartbeat measures RTT and detects death
                    max_size=self.max_size,
                    close_timeout=2,
                ) as ws:
                    opened = time.monotonic()
                    await self._session(ws)
            except ConnectionClosed as exc:
                failure = exc
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code in _FATAL_CLOSE:
                    reason = exc.rcvd.reason if exc.rcvd is not None else ""
                    self.last_error = HubRefused(
                        f"the hub refused this connection ({_FATAL_CLOSE[code]}): {reason}",
                        code=code,
                        reason=reason,
                    )
                    self._emit("closed", ConnectionState.CLOSED, error=self.last_error)
                    self._opened.set()  # wake waiters; they see the closed state
                    return
            except (OSError, InvalidHandshake, TimeoutError, InvalidURI) as exc:
                failure = exc
            except asyncio.CancelledError:
                raise
            finally:
                self._ws = None
                self._ready = False
                self._opened.clear()
                for state in self._rooms.values():
                    state.joined.clear()
            if self._closing:
                break
            if opened is not None:
                self.backoff.connected_for(time.monotonic() - opened)
            if len(self.urls) > 1:  # fail over: the next runtime shares the rooms
                self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
            self.last_error = failure
            self._emit("error", self.state, error=failure)
            delay = self.backoff.next_delay()
            self.reconnects += 1
            self._emit("reconnecting", ConnectionState.RECONNECTING, delay=delay, error=failure)
            await asyncio.sleep(delay)

    def _room(self, room: str) -> _Room:
        shell = self._rooms.get(room)
        if shell is None:
            shell = self._rooms[room] = _Room()
        return shell

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        # hello, then a join per room from where the client stands (the inbox included).
        self._welcomed.clear()
        self._held_joins.clear()  # the opening frames join every room known by now
        for frame in self._state.connected(time.monotonic()):
            await ws.send(frame)
        # The welcome says which publications of a resumed session the hub already has.
        while not self._welcomed.is_set():
            self._handle(await asyncio.wait_for(ws.recv(), self.open_timeout))
        # Send the joins made since the opening frames, re-send what the hub has not
        # acknowledged, in order, then accept new sends. Joining or publishing meanwhile
        # appends to what this loop sends; no await separates its end from _ready, so nothing
        # can slip in between.
        sent = 0
        while True:
            if self._held_joins:
                await ws.send(self._held_joins.popleft())
                continue
            pending = self._state.unsent(after=sent)
            if pending is None:
                break
            await ws.send(pending.frame)
            sent = pending.id
        self._ready = True
        self._opened.set()
        self._emit("open", ConnectionState.OPEN)
        heartbeat = asyncio.ensure_future(self._heartbeat(ws))
        try:
            async for text in ws:
                self._handle(text)
        finally:
            heartbeat.cancel()

    async def _send(self, frame: str) -> None:
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)  # a failure here is seen by the reader, which reconnects

    async def _heartbeat(self, ws: ClientConnection) -> None:
        self._pong_at = time.monotonic()
        while True:
            await asyncio.sleep(self.heartbeat)
            if time.monotonic() - self._pong_at > 2 * self.heartbeat + 1:
                logger.info(
                    "%s: no pong for %.1f s, reconnecting",
                    self.url,
                    time.monotonic() - self._pong_at,
                )
                await ws.close(1011, "heartbeat timeout")
                return
            await self._send(encode(Ping(time.perf_counter())))

    # -- incoming ------------------------------------------------------------------------------

    def _handle(self, text: str | bytes) -> None:
        try:
            item = self._state.receive(text)
        except HubFrameError as exc:
            if exc.code != "unknown_type":  # a newer hub's frame types are safe to ignore
                logger.warning("unreadable frame from the hub (%s): %.200r", exc, text)
            return
        kind = type(item)
        if kind is Message or kind is Gap:
            assert isinstance(item, Message | Gap)
            self._room(item.room).deliver(item)
            if kind is Gap:  # a joined frame that reported a gap
                self._room(item.room).joined.set()
        elif kind is Ack:
            if not self._state.outbox:
                self._acked.set()
        elif kind is Joined:
            assert isinstance(item, Joined)
            self._room(item.room).joined.set()
        elif kind is Pong:
            assert isinstance(item, Pong)
            self._pong_at = time.monotonic()
            if isinstance(item.t, float):
                self.latency = time.perf_counter() - item.t
                self._emit("heartbeat", self.state, delay=self.latency)
        elif kind is Refusal:
            assert isinstance(item, Refusal)
            self._refused(item)
        elif kind is Welcome:
            self._welcomed.set()
            if not self._state.outbox:  # a resumed session's welcome may acknowledge all
                self._acked.set()
        elif kind is ErrorFrame:
            assert isinstance(item, ErrorFrame)
            logger.warning("hub error %s: %s", item.code, item.message)

    def _refused(self, refusal: Refusal) -> None:
        logger.warning(
            "the hub refused %s %s: %s",
            "a join of" if refusal.id is None else f"publication {refusal.id} to",
            refusal.room,
            refusal.message,
        )
        self.refusals.append(refusal)
        if refusal.id is None:
            shell = self._room(refusal.room)
            shell.refusal = refusal
            shell.joined.set()
        else:
            self._unreported.append(refusal)
            if not self._state.outbox:
                self._acked.set()
