"""One coalescer for every live widget in the kernel.

The notebook server drops, not queues, IOPub messages above 1000 per second, and every trait
assignment is a message carrying the trait's whole value. So widgets never assign traits as
events arrive. They hand updates to the :class:`Coalescer`, which keeps, per widget, the latest
value of each trait (latest wins) and the text appended since the last flush, and flushes:

- at most ``per_widget_hz`` times a second per widget (20 by default: one message per 50 ms);
- under a global budget of ``budget`` messages a second for all widgets together (200 by
  default, a fifth of the server's limit), spent on the widgets that have waited longest;
- each flush as one comm message: the traits, plus ``_delta = {"seq", <channel>: text, ...}``
  for appended text. The JS side appends deltas in order and asks for a resync when a sequence
  number is missing (a reload, a dropped message); the full text lives in Python and is
  written to the widget's full-value traits at the end and on resync.

It runs on a daemon thread; updates can come from any thread (the background event loop's,
typically). Comm sends are thread-safe in ipykernel.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Coalescer", "LiveTarget", "coalescer"]


class LiveTarget(Protocol):
    """What the coalescer needs from a widget."""

    def hold_sync(self) -> contextlib.AbstractContextManager[Any]: ...

    def apply_flush(self, traits: dict[str, Any], delta: dict[str, Any] | None) -> None:
        """Set ``traits`` (and the text ``delta``, when there is one) in one comm message.

        Called by the coalescer's flusher thread, and by the widget itself for a message
        that must go at once (a final state, a resync asked for by the browser).
        """


@dataclass
class _Pending:
    target: Any
    traits: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    last_flush: float = 0.0
    dirty_since: float = 0.0
    seq: int = 0


class Coalescer:
    """Merges widget updates and flushes them at a bounded rate (see the module docstring)."""

    def __init__(self, per_widget_hz: float = 20.0, budget: float = 200.0) -> None:
        self.interval = 1.0 / per_widget_hz
        self.budget = budget
        self._tokens = budget
        self._refilled = time.monotonic()
        self._pending: dict[int, _Pending] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        #: Flushes sent so far (one comm message each).
        self.flushes = 0

    # -- input ---------------------------------------------------------------------------------

    def set(self, target: Any, **traits: Any) -> None:
        """Set traits on ``target`` at the next flush (latest value wins)."""
        with self._cond:
            entry, fresh = self._entry(target)
            entry.traits.update(traits)
            if fresh:
                self._cond.notify()

    def append(self, target: Any, **texts: str) -> None:
        """Append text to channels of ``target`` (sent as ordered deltas)."""
        with self._cond:
            entry, fresh = self._entry(target)
            for channel, text in texts.items():
                if text:
                    entry.texts.setdefault(channel, []).append(text)
            if fresh:
                self._cond.notify()

    def _entry(self, target: Any) -> tuple[_Pending, bool]:
        """``target``'s entry, and whether it had nothing pending (the flusher must be woken).

        Only that first update wakes the flusher: while an entry has updates pending, the
        flusher is already asleep until that entry's flush is due, and further updates change
        nothing in its schedule. At thousands of chunks a second, waking it for each one cost
        a thread switch (and the GIL handed over and back) per update.
        """
        entry = self._pending.get(id(target))
        if entry is None:
            entry = self._pending[id(target)] = _Pending(target)
        fresh = not entry.traits and not entry.texts
        if fresh:
            entry.dirty_since = time.monotonic()
        self._ensure_thread()
        return entry, fresh

    def seq(self, target: Any) -> int:
        """The last delta sequence number flushed to ``target``."""
        with self._cond:
            entry = self._pending.get(id(target))
            return entry.seq if entry is not None else 0

    # -- output --------------------------------------------------------------------------------

    def flush(self, target: Any) -> int:
        """Flush ``target`` now (end of a stream, resync); returns its last delta seq."""
        with self._cond:
            entry = self._pending.get(id(target))
            if entry is None:
                return 0
            traits, delta = self._take(entry)
        if traits or delta:
            self._send(entry.target, traits, delta)
        return entry.seq

    def settle(self, target: Any) -> int:
        """Drop ``target``'s unsent text deltas and return its last sent sequence number.

        For a widget about to send its full text (end of stream, resync): the full text
        includes what the dropped deltas held, and later deltas continue from this number.
        Traits still pending are kept.
        """
        with self._cond:
            entry = self._pending.get(id(target))
            if entry is None:
                return 0
            entry.texts = {}
            return entry.seq

    def forget(self, target: Any) -> None:
        """Stop tracking ``target`` (after its final flush)."""
        with self._cond:
            self._pending.pop(id(target), None)

    def _take(self, entry: _Pending) -> tuple[dict[str, Any], dict[str, Any] | None]:
        traits, entry.traits = entry.traits, {}
        delta = None
        if entry.texts:
            entry.seq += 1
            delta = {"seq": entry.seq, **{k: "".join(v) for k, v in entry.texts.items()}}
            entry.texts = {}
        entry.last_flush = time.monotonic()
        return traits, delta

    def _send(self, target: Any, traits: dict[str, Any], delta: dict[str, Any] | None) -> None:
        self.flushes += 1
        try:
            target.apply_flush(traits, delta)
        except Exception:  # a closed widget, a dead comm: never kill the flusher
            with self._cond:
                self._pending.pop(id(target), None)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="glm-live-coalescer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                due, wait = self._due()
                if due is None:
                    self._cond.wait(wait)
                    continue
                traits, delta = self._take(due)
            if traits or delta:
                self._send(due.target, traits, delta)

    def _due(self) -> tuple[_Pending | None, float | None]:
        """The entry to flush now (the longest waiting), or how long to sleep."""
        now = time.monotonic()
        self._tokens = min(self.budget, self._tokens + (now - self._refilled) * self.budget)
        self._refilled = now
        best: _Pending | None = None
        soonest: float | None = None
        for entry in self._pending.values():
            if not entry.traits and not entry.texts:
                continue
            ready_at = entry.last_flush + self.interval
            if ready_at <= now:
                if best is None or entry.dirty_since < best.dirty_since:
                    best = entry
            elif soonest is None or ready_at - now < soonest:
                soonest = ready_at - now
        if best is not None:
            if self._tokens >= 1:
                self._tokens -= 1
                return best, None
            return None, (1 - self._tokens) / self.budget
        return None, soonest


_default: Coalescer | None = None
_lock = threading.Lock()


def coalescer() -> Coalescer:
    """The kernel's coalescer."""
    global _default
    with _lock:
        if _default is None:
            _default = Coalescer()
        return _default
