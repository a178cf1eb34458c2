"""The hub with its rooms in Redis Streams, shared by every runtime that uses the same Redis.

``glm-live serve --redis redis://host:6379/0`` puts a runtime's rooms here; start two on
different ports against one Redis and a client of either sees, exactly once and in order, what
is published on both, and resumes on either after a reconnect. The WebSocket protocol is the
in-memory hub's (:mod:`glm_live.server.hub`); only where rooms live changes.

Keys, under a prefix (``glm_live`` unless ``--redis-prefix`` says otherwise):

- ``<prefix>:epoch``: the epoch every runtime reports, created once (``SET NX``). It changes
  only when Redis loses the hub's data (a restart without persistence, a ``FLUSHALL``): each
  runtime notices within a second, closes its clients with 1012, and they rejoin and are told
  of the gap, as after an in-memory hub's restart.
- ``<prefix>:room:<name>``: one stream per room. Entry IDs are ``0-<seq>``: ``XADD key 0-*``
  makes Redis number them, so the sequence is per room, shared, gapless and ordered, and the
  resume point a client holds means the same on every runtime. ``MAXLEN ~ history`` bounds it.
  Fields: ``m``, the message frame without ``seq`` and ``epoch``; ``e``, the epoch.
- ``<prefix>:seen:<sender>``: publish id → sequence number for a sender's recent publications
  (the last ``dedupe`` ids; a day's expiry), so that a publication re-sent to *another* runtime
  after a reconnect is acknowledged again but not appended twice. One Lua script checks it and
  appends, atomically. The runtime's own publications are numbered the same way, so retrying a
  batch after a dropped Redis connection cannot duplicate them either.
- ``<prefix>:wake:<instance>``: a tiny stream that interrupts this runtime's blocking read when
  it starts watching a new room.

Delivery: one writer task sends appends in pipelined batches, in the order they were made (a
client's publications are acknowledged once appended); one reader task per runtime blocks on
``XREAD`` over the rooms its clients and listeners watch and fans entries out to them: local
publications come back through Redis like remote ones, so every client sees one order. A
``join`` replays with ``XRANGE`` while live entries for that client wait in a buffer; both are
filtered by sequence number, so the seam between replay and live loses and repeats nothing.

Not covered: Redis Cluster (the script touches keys in several slots), and a Redis that comes
back from an older snapshot with the epoch key intact (sequence numbers would go back in time;
run Redis without persistence, or with ``appendonly yes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from ...errors import HubStoreError
from ...transport.sse_client import safe_url
from ...wire.retry import Backoff
from .service import Hub, HubLimits, _BadFrame, _Client, _publication, _resume_point, _text

__all__ = ["RedisHub", "check_redis"]

logger = logging.getLogger("glm_live.hub")

# KEYS: epoch, room stream, sender's seen hash.
# ARGV: candidate epoch, message, maxlen, publish id, dedupe window, seen ttl (s).
# Returns {epoch, seq, duplicate}; seq is 0 for a duplicate too old to remember its number.
_APPEND = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
local id = tonumber(ARGV[4])
local prior = redis.call('HGET', KEYS[3], ARGV[4])
if prior then
  return {epoch, tonumber(prior), 1}
end
local last = tonumber(redis.call('HGET', KEYS[3], 'last') or '0')
if id <= last then
  return {epoch, 0, 1}
end
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-*', 'm', ARGV[2], 'e', epoch)
local seq = tonumber(string.match(entry, '%-(%d+)$'))
redis.call('HSET', KEYS[3], ARGV[4], seq, 'last', ARGV[4])
redis.call('HDEL', KEYS[3], tostring(id - tonumber(ARGV[5])))
redis.call('EXPIRE', KEYS[3], ARGV[6])
return {epoch, seq, 0}
"""

_SEEN_TTL_S = 24 * 3600
_BLOCK_MS = 1000  # the longest a reader waits before checking the epoch again
_BATCH = 512  # appends per pipeline
_MAX_PENDING = 100_000  # appends waiting for Redis before new ones are refused


@dataclass
class _Sub:
    """One client's membership of one room: the last sequence number sent to it, and (while
    its join replays history) the live frames that arrived meanwhile."""

    last: int | None = None
    buffer: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class _Append:
    room: str
    message: str
    sender: str  # whose dedupe window the publish id belongs to
    msg_id: int
    done: Callable[[int, bool], None] | None = None  # told the seq and whether a duplicate


class RedisHub(Hub):
    """A :class:`~glm_live.server.hub.Hub` whose rooms, sequence numbers, history, epoch and
    dedupe state live in Redis (``url``: ``redis://[:password@]host:port/db``)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "glm_live",
        token: str | None = None,
        allowed_origins: Iterable[str] = (),
        limits: HubLimits | None = None,
    ) -> None:
        super().__init__(token=token, allowed_origins=allowed_origins, limits=limits)
        self._url = url
        #: Where Redis is, without credentials (for messages and logs).
        self.where = safe_url(url)
        self.prefix = prefix
        #: This runtime among those sharing the Redis.
        self.instance = secrets.token_hex(4)
        self._redis: aioredis.Redis | None = None
        self._script = ""  # the append script's SHA, once loaded
        self._subs: dict[str, dict[_Client, _Sub]] = {}
        self._cursors: dict[str, str] = {}  # room → last entry ID this runtime has read
        self._watching: dict[str, asyncio.Future[None]] = {}
        self._pending: deque[_Append] = deque()
        self._wanted = asyncio.Event()  # appends are waiting
        self._drained = asyncio.Event()  # none are
        self._drained.set()
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_cursor = "0-0"
        self._generation = 0  # counts epoch changes: a read begun before one is stale
        self.stats["lost"] = 0

    def __repr__(self) -> str:
        return f"<RedisHub {self.where} prefix={self.prefix!r} epoch={self.epoch}>"

    # -- keys ------------------------------------------------------------------------------------

    @property
    def _epoch_key(self) -> str:
        return f"{self.prefix}:epoch"

    @property
    def _wake_key(self) -> str:
        return f"{self.prefix}:wake:{self.instance}"

    def _room_key(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    def _seen_key(self, sender: str) -> str:
        return f"{self.prefix}:seen:{sender}"

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, adopt (or create) the shared epoch, start the reader and the writer.

        Raises:
            HubStoreError: Redis cannot be reached or refused us.
        """
        self._redis = await _connect(self._url)
        try:
            await self._redis.set(self._epoch_key, self.epoch, nx=True)
            epoch = await self._redis.get(self._epoch_key)
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise _unusable(self._url, exc) from None
        self.epoch = str(epoch)
        self._script = await self._redis.script_load(_APPEND)
        self._tasks = [
            asyncio.ensure_future(self._write_loop()),
            asyncio.ensure_future(self._read_loop()),
        ]

    async def aclose(self) -> None:
        """Send what is still queued (for up to 2 s), then disconnect."""
        if self._redis is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), 2)
        if self._pending:
            logger.warning(
                "hub: %d publications not sent: Redis at %s did not take them in time",
                len(self._pending),
                self.where,
            )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()
        self._redis = None

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "redis",
            "redis": self.where,
            "prefix": self.prefix,
            "instance": self.instance,
            "epoch": self.epoch,
            "clients": len(self._clients),
            "rooms_watched": len(self._cursors),
            "pending_appends": len(self._pending),
            "stats": dict(self.stats),
        }

    # -- publishing ------------------------------------------------------------------------------

    def publish(
        self, room: str, data: Any, *, sender: str = "runtime", name: str = ""
    ) -> int | None:
        """Queue ``data`` for ``room``; Redis numbers it when the writer sends it (so this
        returns ``None``). Publications leave in the order they were made."""
        message = _message(room, sender, name, None, data)
        try:
            self._append(_Append(room, message, f"runtime:{self.instance}", next(self._ids)))
        except HubStoreError:
            self.stats["lost"] += 1
            logger.warning("Redis at %s is not keeping up: a publication to %s", self.where, room)
        return None

    def listen(self, room: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        stop = super().listen(room, callback)
        watching = asyncio.ensure_future(self._watch(room))
        watching.add_done_callback(self._watched)

        def unlisten() -> None:
            watching.cancel()
            stop()
            self._maybe_unwatch(room)

        return unlisten

    async def _write_loop(self) -> None:
        assert self._redis is not None
        backoff = Backoff(initial=0.05, maximum=2.0)
        while True:
            await self._wanted.wait()
            batch = list(itertools.islice(self._pending, _BATCH))
            if not batch:
                self._wanted.clear()
                self._drained.set()
                continue
            pipe = self._redis.pipeline(transaction=False)
            for item in batch:
                pipe.evalsha(
                    self._script,
                    3,
                    self._epoch_key,
                    self._room_key(item.room),
                    self._seen_key(item.sender),
                    secrets.token_hex(6),
                    item.message,
                    self.limits.history,
                    item.msg_id,
                    self.limits.dedupe,
                    _SEEN_TTL_S,
                )
            try:
                replies = await pipe.execute()
            except NoScriptError:  # a restarted Redis forgot the script: load it again
                with contextlib.suppress(RedisError, OSError):
                    self._script = await self._redis.script_load(_APPEND)
                continue
            except (RedisError, OSError) as exc:
                # The whole batch is tried again: the script's dedupe makes that safe.
                delay = backoff.next_delay()
                logger.warning(
                    "hub: Redis at %s failed (%s); retrying %d appends in %.2f s",
                    self.where,
                    type(exc).__name__,
                    len(batch),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            backoff.connected_for(backoff.stable_after)
            for item, (_, seq, duplicate) in zip(batch, replies, strict=True):
                self._pending.popleft()
                if duplicate:
                    self.stats["duplicates"] += 1
                else:
                    self.stats["published"] += 1
                if item.done is not None:
                    item.done(int(seq), bool(duplicate))
            epoch = replies[-1][0]
            if epoch != self.epoch:
                await self._epoch_changed(str(epoch))

    def _append(self, item: _Append) -> None:
        if len(self._pending) >= _MAX_PENDING:
            msg = f"Redis at {self.where} is not keeping up"
            raise HubStoreError(msg)
        self._pending.append(item)
        self._wanted.set()
        self._drained.clear()

    # -- reading ---------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._redis is not None
        backoff = Backoff(initial=0.05, maximum=2.0)
        while True:
            streams = {self._wake_key: self._wake_cursor}
            streams.update({self._room_key(r): c for r, c in self._cursors.items()})
            generation = self._generation
            pipe = self._redis.pipeline(transaction=False)
            pipe.get(self._epoch_key)
            pipe.xread(streams, count=1000, block=_BLOCK_MS)  # type: ignore[arg-type]
            try:
                epoch, reply = await pipe.execute()
            except (RedisError, OSError) as exc:
                delay = backoff.next_delay()
                logger.warning(
                    "hub: reading from Redis at %s failed (%s); again in %.2f s",
                    self.where,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            backoff.connected_for(backoff.stable_after)
            if epoch != self.epoch:
                await self._epoch_changed(epoch)
                continue
            if generation != self._generation:
                continue  # read with cursors from before the epoch changed: read again
            for key, entries in reply or ():
                if key == self._wake_key:
                    self._wake_cursor = entries[-1][0]
                    continue
                room = key[len(self.prefix) + 6 :]  # after "<prefix>:room:"
                for entry_id, fields in entries:
                    cursor = self._cursors.get(room)
                    # Not watched any more, or watched anew from further on meanwhile.
                    if cursor is None or _seq(entry_id) <= _seq(cursor):
                        continue
                    self._cursors[room] = entry_id
                    self._fanout(room, entry_id, fields)

    def _fanout(self, room: str, entry_id: str, fields: dict[str, str]) -> None:
        seq = _seq(entry_id)
        frame = _frame(seq, fields)
        callbacks = self._listeners.get(room)
        if callbacks:
            data = json.loads(fields["m"]).get("data")
            for callback in list(callbacks):
                try:
                    callback(data)
                except Exception:
                    logger.exception("hub listener for %s failed", room)
        for client, sub in list(self._subs.get(room, {}).items()):
            if sub.last is None:  # its join is still replaying
                sub.buffer.append((seq, frame))
            elif seq > sub.last:
                sub.last = seq
                self._send(client, frame)

    def _send(self, client: _Client, frame: str) -> bool:
        if client.offer(frame):
            self.stats["delivered"] += 1
            return True
        self._drop(client, 1013, "too slow: send queue full; reconnect to resume")
        return False

    async def _watch(self, room: str) -> None:
        """Make the reader follow ``room`` from its current end (once per room)."""
        if room in self._cursors:
            return
        registering = self._watching.get(room)
        if registering is not None:
            await asyncio.shield(registering)
            return
        assert self._redis is not None
        registering = asyncio.get_running_loop().create_future()
        self._watching[room] = registering
        try:
            last, _ = await self._bounds(room)
            self._cursors[room] = f"0-{last}"
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(self._wake_key, {"room": room}, maxlen=1)
            pipe.expire(self._wake_key, 3600)
            await pipe.execute()
        finally:
            registering.set_result(None)
            del self._watching[room]

    def _watched(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "hub: a listener's room could not be watched in Redis at %s (%s)",
                self.where,
                type(task.exception()).__name__,
            )

    def _maybe_unwatch(self, room: str) -> None:
        if not self._subs.get(room) and not self._listeners.get(room):
            self._cursors.pop(room, None)

    async def _bounds(self, room: str) -> tuple[int, int]:
        """The room's last sequence number and the first one it still keeps."""
        assert self._redis is not None
        try:
            info = await self._redis.xinfo_stream(self._room_key(room))
        except RedisError as exc:
            if "no such key" in str(exc).lower():
                return 0, 1
            raise
        last = _seq(info["last-generated-id"])
        first_entry = info.get("first-entry")
        first = _seq(first_entry[0]) if first_entry else last + 1
        return last, first

    async def _epoch_changed(self, seen: str | None) -> None:
        """Redis lost the hub's data (or never had it): adopt the new epoch, and make every
        client rejoin, which tells it of the gap."""
        assert self._redis is not None
        if seen is None:
            await self._redis.set(self._epoch_key, secrets.token_hex(6), nx=True)
            value = await self._redis.get(self._epoch_key)
            seen = None if value is None else str(value)
        if seen is None or seen == self.epoch:
            return
        logger.warning(
            "hub: Redis at %s lost the hub's rooms (epoch %s is now %s); clients rejoin",
            self.where,
            self.epoch,
            seen,
        )
        self.epoch = seen
        self._generation += 1
        for room in self._cursors:
            self._cursors[room] = "0-0"
        for client in list(self._clients):
            self._drop(client, 1012, "the hub's rooms were reset; reconnect to resume")

    # -- handlers (the protocol is the in-memory hub's) ------------------------------------------

    def _unsubscribe(self, client: _Client, name: str) -> None:
        subs = self._subs.get(name)
        if subs is not None:
            subs.pop(client, None)
            if not subs:
                del self._subs[name]
        self._maybe_unwatch(name)

    async def _join(self, client: _Client, frame: dict[str, Any]) -> None:  # type: ignore[override]
        name = _text(frame, "room", 256)
        sub = _Sub()
        self._subs.setdefault(name, {})[client] = sub
        client.rooms.add(name)
        try:
            await self._watch(name)
            last, first = await self._bounds(name)
            since, gap = _resume_point(frame, self.epoch, last, first)
            assert self._redis is not None
            entries = cast(
                "list[tuple[str, dict[str, str]]]",
                await self._redis.xrange(self._room_key(name), min=f"(0-{since}", max="+"),
            )
        except _BadFrame:
            client.rooms.discard(name)
            self._unsubscribe(client, name)
            raise
        except (RedisError, OSError) as exc:
            self._unavailable(client, exc)
            return
        if client.closing is not None:
            return
        client.offer(
            json.dumps(
                {"type": "joined", "room": name, "epoch": self.epoch, "last": last, "gap": gap}
            )
        )
        sub.last = since
        for entry_id, fields in entries:
            seq = _seq(entry_id)
            if seq > sub.last:
                sub.last = seq
                if not self._send(client, _frame(seq, fields)):
                    return
        for seq, stored in sub.buffer:
            if seq > sub.last:
                sub.last = seq
                if not self._send(client, stored):
                    return
        sub.buffer.clear()

    def _publish(self, client: _Client, frame: dict[str, Any]) -> None:
        # Not awaited: the client's next frames are read while Redis appends this one, and the
        # acknowledgement leaves when it is done (appends finish in the order they were made).
        name, msg_id = _publication(frame)
        message = _message(name, client.id, client.name, msg_id, frame["data"])

        def acknowledge(seq: int, duplicate: bool) -> None:
            ack = {"type": "ack", "id": msg_id, "room": name, "seq": seq, "duplicate": duplicate}
            client.offer(json.dumps(ack))

        try:
            self._append(_Append(name, message, client.id, msg_id, acknowledge))
        except HubStoreError as exc:
            self._unavailable(client, exc)

    def _unavailable(self, client: _Client, exc: BaseException) -> None:
        logger.warning("hub: Redis at %s failed for a client (%s)", self.where, type(exc).__name__)
        # What it published but was not acknowledged waits in its outbox for the reconnect.
        self._drop(client, 1011, "the hub's storage is unavailable; reconnect to resume")


async def check_redis(url: str) -> None:
    """Raise :class:`~glm_live.errors.HubStoreError` (saying what to do) unless the Redis at
    ``url`` answers; ``glm-live serve --redis`` checks before it starts serving."""
    client = await _connect(url)
    await client.aclose()


async def _connect(url: str) -> aioredis.Redis:
    # socket_timeout bounds every command (the blocking read waits at most _BLOCK_MS).
    client = aioredis.from_url(
        url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise _unusable(url, exc) from None
    return client


def _unusable(url: str, exc: BaseException) -> HubStoreError:
    return HubStoreError(
        f"the hub cannot use Redis at {safe_url(url)}: {exc} Start redis-server there, or "
        "give the right --redis URL (redis://[:password@]host:port/db)"
    )


def _message(room: str, sender: str, name: str, msg_id: int | None, data: Any) -> str:
    """A ``msg`` frame without ``seq`` and ``epoch`` (Redis assigns those)."""
    return json.dumps(
        {
            "type": "msg",
            "room": room,
            "from": sender,
            "name": name,
            "id": msg_id,
            "data": data,
            "ts_ns": time.time_ns(),
        }
    )


def _frame(seq: int, fields: dict[str, str]) -> str:
    """The ``msg`` frame a client receives: the stored message with ``seq`` and ``epoch``."""
    return f'{{"seq": {seq}, "epoch": "{fields["e"]}", {fields["m"][1:]}'


def _seq(entry_id: str) -> int:
    return int(entry_id.rpartition("-")[2])
