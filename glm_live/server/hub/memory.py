"""Rooms in this process's memory: :class:`~glm_live.wire.hub.HubState` behind the store
interface. The epoch is made per process, so a restarted runtime's clients are told that the
history they saw is gone (an ``epoch`` gap)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from ...wire.hub import Appended, HubState, Join, Publication, Replay
from .store import HubLimits, StoreFeed

__all__ = ["MemoryStore"]


def _nothing() -> None:
    return None


class MemoryStore:
    """A :class:`~.store.RoomStore` whose rooms live and die with the process."""

    backend = "memory"

    def __init__(self) -> None:
        self._state = HubState(secrets.token_hex(6))
        self._feed: StoreFeed | None = None
        self._counts = {"published": 0, "duplicates": 0}

    def __repr__(self) -> str:
        return f"<MemoryStore epoch={self.epoch} rooms={len(self._state.rooms)}>"

    @property
    def epoch(self) -> str:
        return self._state.epoch

    def attach(self, feed: StoreFeed, limits: HubLimits) -> None:
        self._feed = feed
        self._state.history = limits.history  # rooms created from now on keep this many
        self._state.dedupe.size = limits.dedupe

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

    def describe(self) -> dict[str, Any]:
        return {}

    def counts(self) -> dict[str, int]:
        return dict(self._counts)
