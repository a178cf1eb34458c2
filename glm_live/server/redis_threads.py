"""Threads in Redis: a runtime started with ``redis`` keeps its AG-UI threads there, so that a
run interrupted on one runtime can be resumed on another, or after a restart.

Keys, under the runtime's Redis prefix:

- ``<prefix>:thread:<key>``: one thread's :class:`~.threads.ThreadRecord` as JSON, expiring
  ``ttl_s`` after its last write or read.
- ``<prefix>:threads``: a sorted set of the thread keys by last use, so that at most
  ``max_threads`` are kept (the least recently used go first).
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..transport.sse_client import safe_url
from .hub.store import HubStoreError
from .threads import ThreadRecord, ThreadStore

__all__ = ["RedisThreadStore"]


class RedisThreadStore(ThreadStore):
    """Thread records in the Redis at ``url`` (connected on first use)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "glm_live",
        max_threads: int = 1000,
        ttl_s: float = 24 * 3600.0,
    ) -> None:
        self._url = url
        self.prefix = prefix
        self.max_threads = max_threads
        self.ttl_s: float = ttl_s
        self._redis: aioredis.Redis | None = None

    def __repr__(self) -> str:
        return f"<RedisThreadStore {safe_url(self._url)} prefix={self.prefix!r}>"

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.from_url(
                self._url, decode_responses=True, socket_timeout=10, socket_connect_timeout=5
            )
        return self._redis

    def _key(self, key: str) -> str:
        return f"{self.prefix}:thread:{key}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:threads"

    async def get(self, key: str) -> ThreadRecord | None:
        try:
            client = self._client()
            text = await client.get(self._key(key))
            if text is None:
                return None
            async with client.pipeline(transaction=True) as pipe:
                pipe.expire(self._key(key), int(self.ttl_s))
                pipe.zadd(self._index, {key: time.time()})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unusable(exc) from None
        return ThreadRecord.from_json(text)

    async def put(self, key: str, record: ThreadRecord) -> None:
        now = time.time()
        try:
            client = self._client()
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(self._key(key), record.to_json(), ex=int(self.ttl_s))
                pipe.zadd(self._index, {key: now})
                # Forget index entries whose records have expired, then the oldest extras.
                pipe.zremrangebyscore(self._index, "-inf", now - self.ttl_s)
                pipe.zcard(self._index)
                *_, count = await pipe.execute()
            extra = int(count) - self.max_threads
            if extra > 0:
                oldest = await client.zpopmin(self._index, extra)
                if oldest:
                    await client.delete(*(self._key(str(entry[0])) for entry in oldest))
        except (RedisError, OSError) as exc:
            raise self._unusable(exc) from None

    async def delete(self, key: str) -> None:
        try:
            client = self._client()
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(key))
                pipe.zrem(self._index, key)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unusable(exc) from None

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def _unusable(self, exc: BaseException) -> HubStoreError:
        return HubStoreError(
            f"the runtime cannot keep its threads in Redis at {safe_url(self._url)}: {exc} "
            "Check that redis-server runs there; the run was not started"
        )
