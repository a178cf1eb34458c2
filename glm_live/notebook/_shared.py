"""The process's embedded runtimes, shared by the sessions that use them.

``glm_live.connect()`` without a URL used to start a new server on a new port on every call:
a notebook re-run ten times had ten runtimes. Now sessions asking for the same serve options
share one runtime, reference-counted: it stops when the last session using it closes, and at
interpreter exit. Options are compared by value (``connect(sim={...})`` twice is one runtime;
different options are different runtimes).
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the server floor is imported only when an embedded runtime is started
    from ..server.runner import ServerHandle

__all__ = ["acquire", "release"]


@dataclass
class _Entry:
    handle: ServerHandle
    users: int


_lock = threading.Lock()
_runtimes: dict[str, _Entry] = {}


def _key(options: dict[str, Any]) -> str:
    # repr of the sorted options: nested dicts (sim=...) compare by value; the key is never
    # shown (it may hold a token).
    return repr(sorted(options.items(), key=lambda item: item[0]))


def _alive(handle: ServerHandle) -> bool:
    # A runtime closed directly (session.runtime.close()) is replaced, not reused.
    return handle.running


def acquire(options: dict[str, Any]) -> ServerHandle:
    """The running embedded runtime for ``options``, started if there is none; one more user.

    The caller must :func:`release` it once (``Session.close`` does).
    """
    key = _key(options)
    with _lock:
        entry = _runtimes.get(key)
        if entry is None or not _alive(entry.handle):
            from ..server import serve  # the server floor, only when asked for

            entry = _runtimes[key] = _Entry(serve(**options), 0)
        entry.users += 1
        return entry.handle


def release(handle: ServerHandle) -> None:
    """One user less of ``handle``; the last one stops it."""
    with _lock:
        for key, entry in list(_runtimes.items()):
            if entry.handle is handle:
                entry.users -= 1
                if entry.users > 0:
                    return
                del _runtimes[key]
                break
    handle.close()


def users(handle: ServerHandle) -> int:
    """How many open sessions use ``handle`` (0: not a shared runtime, or stopped)."""
    with _lock:
        return next((e.users for e in _runtimes.values() if e.handle is handle), 0)


@atexit.register
def _stop_all() -> None:
    with _lock:
        entries = list(_runtimes.values())
        _runtimes.clear()
    for entry in entries:
        entry.handle.close(timeout=2)
