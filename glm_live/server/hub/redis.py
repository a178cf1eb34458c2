"""A room store in Redis Streams, shared by every runtime that uses the same Redis.

``glm-live serve --redis redis://host:6379/0`` puts a runtime's rooms here; start two on
different ports against one Redis and a client of either sees, exactly once and in order, what
is published on both, and resumes on either after a reconnect. The WebSocket protocol is the
one hub's (:mod:`glm_live.server.hub.service`, over :mod:`glm_live.wire.hub`); only where
rooms live changes: :class:`RedisStore` is a :class:`~.store.RoomStore`.

Keys, under a prefix (``glm_live`` unless ``--redis-prefix`` says otherwise):

- ``<prefix>:epoch``: the epoch every runtime reports, created once (``SET NX``). It changes
  only when Redis loses the hub's data (a restart without persistence, a ``FLUSHALL``): each
  runtime notices within a second, closes its clients with 1012, and they rejoin and are told
  of the gap, as after an in-memory hub's restart.
- ``<prefix>:room:<name>``: one stream per room. Entry IDs are ``0-<seq>``: ``XADD key 0-*``
  makes Redis number them, so the sequence is per room, shared, gapless and ordered, and the
  resume point a client holds means the same on every runtime. ``MAXLEN ~ history`` bounds it.
  Fields: ``m``, the message frame without ``seq`` and ``epoch``
  (:func:`~glm_live.wire.hub.encode_stored`); ``e``, the epoch.
- ``<prefix>:seen:<identity>/<session>``: one publishing session: ``last`` (the highest
  publish id appended) and publish id → "sequence number, room" for its recent publications
  (the last ``dedupe`` ids; a day's expiry), so that a publication re-sent to *another* runtime
  after a reconnect is acknowledged again but not appended twice, and a session resumes on any
  runtime. One Lua script checks it and appends, atomically: it is
  :class:`~glm_live.wire.hub.DedupeWindow` and :meth:`~glm_live.wire.hub.RoomLog.append` done
  inside Redis, where several runtimes agree. The runtime's own publications are numbered the
  same way, so retrying a batch after a dropped Redis connection cannot duplicate them either.
- ``<prefix>:owner:<run>``: who started a run (``SET NX``, a day); ``<prefix>:revoked:<token
  id>`` and ``<prefix>:ticket:<ticket id>``: revoked tokens and used tickets, until they expire.
- ``<prefix>:wake:<instance>``: a tiny stream that interrupts this runtime's blocking read when
  it starts watching a new room.

Delivery: one writer task sends appends in pipelined batches, in the order they were made (a
client's publications are acknowledged once appended); one reader task per runtime blocks on
``XREAD`` over the rooms its clients and listeners watch and hands entries to the hub, which fans
them out: local publications come back through Redis like remote ones, so every client sees
one order. A ``join`` replays with ``XRANGE`` while live entries for that client wait in its
:class:`~glm_live.wire.hub.Subscription`, so the seam between replay and live loses and
repeats nothing.

Not covered: Redis Cluster (the script touches keys in several slots), and a Redis that comes
back from an older snapshot with the epoch key intact (sequence numbers would go back in time;
run Redis without persistence, or with ``appendonly yes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from ...transport.sse_client import safe_url
from ...wire.hub import (
    Appended,
    HubFrameError,
    Join,
    Joined,
    Message,
    Publication,
    Replay,
    decode_stored,
    encode,
    encode_stored,
    resume_point,
)
from ...wire.retry import Backoff
from .service import Hub
from .store import HubLimits, HubStoreError, StoreFeed

__all__ = ["RedisHub", "RedisStore", "check_redis"]

logger = logging.getLogger("glm_live.hub")

# KEYS: epoch, room stream, the session's seen hash.
# ARGV: candidate epoch, message, maxlen, publish id, dedupe window, seen ttl (s), room.
# Returns {epoch, seq, duplicate, room}: for a duplicate, the room and number of the first
# append (seq 0, and the room given, when too old to remember).
_APPEND = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], ARGV[1])
  epoch = ARGV[1]
end
local id = tonumber(ARGV[4])
local prior = redis.call('HGET', KEYS[3], ARGV[4])
if prior then
  local space = string.find(prior, ' ', 1, true)
  return {epoch, tonumber(string.sub(prior, 1, space - 1)), 1, string.sub(prior, space + 1)}
end
local last = tonumber(redis.call('HGET', KEYS[3], 'last') or '0')
if id <= last then
  return {epoch, 0, 1, ARGV[7]}
end
local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-*', 'm', ARGV[2], 'e', epoch)
local seq = tonumber(string.match(entry, '%-(%d+)$'))
redis.call('HSET', KEYS[3], ARGV[4], seq .. ' ' .. ARGV[7], 'last', ARGV[4])
redis.call('HDEL', KEYS[3], tostring(id - tonumber(ARGV[5])))
redis.call('EXPIRE', KEYS[3], ARGV[6])
return {epoch, seq, 0, ARGV[7]}
"""

_SEEN_TTL_S = 24 * 3600
_BLOCK_MS = 1000  # the longest a reader waits before checking the epoch again
_BATCH = 512  # appends per pipeline
_MAX_PENDING = 100_000  # appends waiting for Redis before new ones are refused


@dataclass
class _Append:
    room: str
    message: str  # the stored form (encode_stored)
    sender: str  # whose dedupe window the publish id belongs to
    msg_id: int
    done: Callable[[Appended], None] | None = None


class RedisStore:
    """A :class:`~.store.RoomStore` whose rooms, sequence numbers, history, epoch and dedupe
    state live in Redis (``url``: ``redis://[:password@]host:port/db``), under ``prefix``."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "glm_live") -> None:
        self._url = url
        #: Where Redis is, without credentials (for messages and logs).
        self.where = safe_url(url)
        self.prefix = prefix
        #: This runtime among those sharing the Redis.
        self.instance = secrets.token_hex(4)
        self._epoch = secrets.token_hex(6)  # until the shared one is adopted in start()
        self._feed: StoreFeed | None = None
        self._limits = HubLimits()
        self._redis: aioredis.Redis | None = None
        self._script = ""  # the append script's SHA, once loaded
        self._cursors: dict[str, str] = {}  # room -> last entry ID this runtime has read
        self._watching: dict[str, asyncio.Future[None]] = {}
        self._pending: deque[_Append] = deque()
        self._wanted = asyncio.Event()  # appends are waiting
        self._drained = asyncio.Event()  # none are
        self._drained.set()
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_cursor = "0-0"
        self._generation = 0  # counts epoch changes: a read begun before one is stale
        self._counts = {"published": 0, "duplicates": 0}

    def __repr__(self) -> str:
        return f"<RedisStore {self.where} prefix={self.prefix!r} epoch={self._epoch}>"

    @property
    def epoch(self) -> str:
        return self._epoch

    def attach(self, feed: StoreFeed, limits: HubLimits) -> None:
        self._feed = feed
        self._limits = limits

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

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{name}"

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, adopt (or create) the shared epoch, start the reader and the writer.

        Raises:
            HubStoreError: Redis cannot be reached or refused us.
        """
        self._redis = await _connect(self._url)
        try:
            await self._redis.set(self._epoch_key, self._epoch, nx=True)
            epoch = await self._redis.get(self._epoch_key)
        except (RedisError, OSError) as exc:
            await self._redis.aclose()
            raise _unusable(self._url, exc) from None
        self._epoch = str(epoch)
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

    # -- sessions, runs, tokens --------------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise HubStoreError(f"the hub's Redis store at {self.where} is not started")
        return self._redis

    async def open_session(self, key: str) -> None:
        seen = self._seen_key(key)
        try:
            pipe = self._client().pipeline(transaction=True)
            pipe.delete(seen)
            pipe.hset(seen, "last", 0)
            pipe.expire(seen, _SEEN_TTL_S)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc

    async def resume_session(self, key: str) -> int | None:
        seen = self._seen_key(key)
        try:
            pipe = self._client().pipeline(transaction=False)
            pipe.hget(seen, "last")
            pipe.expire(seen, _SEEN_TTL_S)
            last, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        return None if last is None else int(last)

    def end_session(self, key: str) -> None:
        if self._redis is None:
            return
        task = asyncio.ensure_future(self._redis.delete(self._seen_key(key)))
        task.add_done_callback(_ignore_failure)

    async def claim_run(self, run_id: str, owner: str) -> str:
        key = self._key("owner", run_id)
        try:
            pipe = self._client().pipeline(transaction=False)
            pipe.set(key, owner, nx=True, ex=_SEEN_TTL_S)
            pipe.get(key)
            _, current = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        return str(current)

    async def run_owner(self, run_id: str) -> str | None:
        try:
            owner = await self._client().get(self._key("owner", run_id))
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        return None if owner is None else str(owner)

    async def revoke(self, token_id: str, until: float) -> None:
        try:
            await self._client().set(self._key("revoked", token_id), 1, exat=int(until) + 1)
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc

    async def revoked(self, token_id: str) -> bool:
        try:
            return bool(await self._client().exists(self._key("revoked", token_id)))
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc

    async def use_ticket(self, token_id: str, until: float) -> bool:
        key = self._key("ticket", token_id)
        try:
            return bool(await self._client().set(key, 1, nx=True, exat=int(until) + 1))
        except (RedisError, OSError) as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> HubStoreError:
        return HubStoreError(f"Redis at {self.where} failed: {type(exc).__name__}")

    def describe(self) -> dict[str, Any]:
        return {
            "redis": self.where,
            "prefix": self.prefix,
            "instance": self.instance,
            "rooms_watched": len(self._cursors),
            "pending_appends": len(self._pending),
        }

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    # -- appending -------------------------------------------------------------------------------

    def append(self, publication: Publication, done: Callable[[Appended], None] | None) -> None:
        """Queue ``publication``; the writer appends it (Redis numbers it) and then calls
        ``done``. Appends leave in the order they were made.

        The runtime's own publications (no publish id) are numbered per runtime instance, so
        that retrying a batch after a dropped Redis connection cannot duplicate them either.

        Raises:
            HubStoreError: 100 000 appends are already waiting for Redis.
        """
        if len(self._pending) >= _MAX_PENDING:
            msg = f"Redis at {self.where} is not keeping up"
            raise HubStoreError(msg)
        message = encode_stored(
            publication.room,
            publication.sender,
            publication.name,
            publication.id,
            publication.data,
            time.time_ns(),
            publication.session,
        )
        if publication.id is None:
            sender, msg_id = f"runtime:{self.instance}", next(self._ids)
        else:
            sender, msg_id = publication.dedupe_key, publication.id
        self._pending.append(_Append(publication.room, message, sender, msg_id, done))
        self._wanted.set()
        self._drained.clear()

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
                    self._limits.history,
                    item.msg_id,
                    self._limits.dedupe,
                    _SEEN_TTL_S,
                    item.room,
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
            for item, (_, seq, duplicate, room) in zip(batch, replies, strict=True):
                self._pending.popleft()
                self._counts["duplicates" if duplicate else "published"] += 1
                if item.done is not None:
                    item.done(Appended(str(room), int(seq), bool(duplicate)))
            epoch = replies[-1][0]
            if epoch != self._epoch:
                await self._epoch_changed(str(epoch))

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
            if epoch != self._epoch:
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
                    if _seq(entry_id) > _seq(cursor) + 1 and self._feed is not None:
                        # Sequence numbers have no holes: the ones between were trimmed
                        # before this runtime read them. Its clients rejoin and hear of it.
                        self._feed.behind(room, _seq(cursor) + 1, _seq(entry_id) - 1)
                    self._cursors[room] = entry_id
                    self._deliver(entry_id, fields)

    def _deliver(self, entry_id: str, fields: dict[str, str]) -> None:
        message = self._message(entry_id, fields)
        if message is not None and self._feed is not None:
            self._feed.entry(message, encode(message))

    def _message(self, entry_id: str, fields: dict[str, str]) -> Message | None:
        """The message frame of a stream entry (``None``, logged, for one that is not ours)."""
        try:
            return decode_stored(fields["m"], _seq(entry_id), fields["e"])
        except (HubFrameError, KeyError) as exc:
            logger.warning("hub: skipped an unreadable entry %s in Redis (%s)", entry_id, exc)
            return None

    async def watch(self, room: str) -> None:
        """Make the reader follow ``room`` from its current end (once per room).

        Raises:
            HubStoreError: Redis failed.
        """
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
        except (RedisError, OSError) as exc:
            raise HubStoreError(f"Redis at {self.where} failed: {type(exc).__name__}") from exc
        finally:
            registering.set_result(None)
            del self._watching[room]

    def follow(self, room: str) -> Callable[[], None]:
        watching = asyncio.ensure_future(self.watch(room))
        watching.add_done_callback(self._watched)

        def cancel() -> None:
            watching.cancel()

        return cancel

    def _watched(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "hub: a listener's room could not be watched in Redis at %s (%s)",
                self.where,
                type(task.exception()).__name__,
            )

    def unwatch(self, room: str) -> None:
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

    async def join(self, join: Join) -> Replay:
        """Where ``join`` resumes (:func:`~glm_live.wire.hub.resume_point`) and the entries
        after it (``XRANGE``).

        Raises:
            HubStoreError: Redis failed.
        """
        assert self._redis is not None
        try:
            last, first = await self._bounds(join.room)
            since, gap = resume_point(join, self._epoch, last, first)
            entries = cast(
                "list[tuple[str, dict[str, str]]]",
                await self._redis.xrange(self._room_key(join.room), min=f"(0-{since}", max="+"),
            )
        except (RedisError, OSError) as exc:
            raise HubStoreError(f"Redis at {self.where} failed: {type(exc).__name__}") from exc
        replay: list[tuple[int, str]] = []
        for entry_id, fields in entries:
            message = self._message(entry_id, fields)
            if message is not None:
                replay.append((message.seq, encode(message)))
        return Replay(Joined(join.room, self._epoch, last, gap), since, replay)

    async def _epoch_changed(self, seen: str | None) -> None:
        """Redis lost the hub's data (or never had it): adopt the new epoch, and make every
        client rejoin, which tells it of the gap."""
        assert self._redis is not None
        if seen is None:
            await self._redis.set(self._epoch_key, secrets.token_hex(6), nx=True)
            value = await self._redis.get(self._epoch_key)
            seen = None if value is None else str(value)
        if seen is None or seen == self._epoch:
            return
        logger.warning(
            "hub: Redis at %s lost the hub's rooms (epoch %s is now %s); clients rejoin",
            self.where,
            self._epoch,
            seen,
        )
        self._epoch = seen
        self._generation += 1
        for room in self._cursors:
            self._cursors[room] = "0-0"
        if self._feed is not None:
            self._feed.reset()


def RedisHub(  # the class this was, kept as a name for code that builds one
    url: str,
    *,
    prefix: str = "glm_live",
    token: str | None = None,
    allowed_origins: Iterable[str] = (),
    limits: HubLimits | None = None,
) -> Hub:
    """A :class:`~.service.Hub` whose rooms live in Redis: ``Hub(RedisStore(url, prefix=prefix),
    ...)``."""
    return Hub(
        RedisStore(url, prefix=prefix),
        token=token,
        allowed_origins=allowed_origins,
        limits=limits,
    )


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


def _ignore_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("hub: could not end a session in Redis (%s)", type(task.exception()).__name__)


def _seq(entry_id: str) -> int:
    return int(entry_id.rpartition("-")[2])
