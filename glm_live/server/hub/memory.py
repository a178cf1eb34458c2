"""Rooms in this process's memory: :class:`~glm_live.wire.hub.HubState` behind the store
interface. The epoch is made per process, so a restarted runtime's clients are told that the
history they saw is gone (an ``epoch`` gap)."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ...wire.hub import Appended, HubState, Join, Publication, Replay
from .store import HubLimits, StoreFeed

__all__ = ["MemoryStore"]


#: Runs whose owner is remembered (the oldest is forgotten first).
_RUNS_KEPT = 10_000


def _nothing() -> None:
    return None


def _prune(expiries: dict[str, float]) -> None:
    """Drop the entries whose expiry has passed (they no longer matter)."""
    now = time.time()
    for key in [k for k, until in expiries.items() if until <= now]:
        del expiries[key]


class MemoryStore:
    """A :class:`~.store.RoomStore` whose rooms live and die with the process."""

    backend = "memory"

    def __init__(self) -> None:
        self._state = HubState(secrets.token_hex(6))
        self._feed: StoreFeed | None = None
        self._counts = {"published": 0, "duplicates": 0}
        self._owners: OrderedDict[str, str] = OrderedDict()  # run id -> who started it
        self._revoked: dict[str, float] = {}  # token id -> its expiry
        self._tickets: dict[str, float] = {}  # used ticket id -> its expiry

    def __repr__(self) -> str:
        return f"<MemoryStore epoch={self.epoch} rooms={len(self._state.rooms)}>"

    @property
    def epoch(self) -> str:
        return self._state.epoch

    def attach(self, feed: StoreFeed, limits: HubLimits) -> None:
        self._feed = feed
        self._state.history = limits.history  # rooms created from now on keep this many
        self._state.dedupe.size = limits.dedupe
        self._state.dedupe.sessions = limits.sessions

    async def start(self) -> None:
        """Nothing to connect to."""

    async def aclose(self) -> None:
        """Nothing to let go of."""

    def append(self, publication: Publication, done: Callable[[Appended], None] | None) -> None:
        appended, message, text = self._state.append(publication, time.time_ns())
        if message is None:
            self._counts["duplicates"] += 1
        else:
            self._counts["published"] += 1
            if self._feed is not None:
                self._feed.entry(message, text)
        if done is not None:
            done(appended)

    async def watch(self, room: str) -> None:
        """Every room is watched: appends reach the feed as they happen."""

    def follow(self, room: str) -> Callable[[], None]:
        return _nothing

    def unwatch(self, room: str) -> None:
        """Rooms stay, with their history, for clients that come back."""

    async def join(self, join: Join) -> Replay:
        return self._state.join(join)

    async def open_session(self, key: str) -> None:
        self._state.dedupe.open(key)

    async def resume_session(self, key: str) -> int | None:
        return self._state.dedupe.resume(key)

    def end_session(self, key: str) -> None:
        self._state.dedupe.end(key)

    async def claim_run(self, run_id: str, owner: str) -> str:
        current = self._owners.setdefault(run_id, owner)
        self._owners.move_to_end(run_id)
        while len(self._owners) > _RUNS_KEPT:
            self._owners.popitem(last=False)
        return current

    async def run_owner(self, run_id: str) -> str | None:
        return self._owners.get(run_id)

    async def revoke(self, token_id: str, until: float) -> None:
        _prune(self._revoked)
        self._revoked[token_id] = until

    async def revoked(self, token_id: str) -> bool:
        return token_id in self._revoked

    async def use_ticket(self, token_id: str, until: float) -> bool:
        _prune(self._tickets)
        if token_id in self._tickets:
            return False
        self._tickets[token_id] = until
        return True

    def describe(self) -> dict[str, Any]:
        return {"sessions": len(self._state.dedupe)}

    def counts(self) -> dict[str, int]:
        return dict(self._counts)
