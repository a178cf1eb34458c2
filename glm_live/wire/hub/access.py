"""Who may read and write which room: the hub's access rules, once. No I/O.

``docs/hub-protocol.md`` ("Who may do what") says the same for client authors:

- The **admin** (the runtime's own token, or every client when authentication is off) may do
  everything.
- **Inboxes** ``@name``: only ``name`` reads its inbox (it is joined for it at ``hello``); who
  may write there is up to the token's write patterns (``@*`` sends to anyone).
- **Runs**: ``control:<run>`` is written only by the identity that started the run; that
  identity may also read ``run:<run>`` and ``control:<run>`` whatever its patterns say.
- **The runtime's rooms**, ``presence``, ``agents``, ``run:<run>`` and anything starting with
  ``_``, are written by the runtime alone; ``_`` rooms are not read by clients either.
- **Every other room**: by the token's read and write patterns.

A refusal is a sentence saying why, sent back in an ``error`` frame with the code
``forbidden``; a permitted action returns ``None``.
"""

from __future__ import annotations

from ..auth import Grant, room_matches

__all__ = ["RUNTIME_ROOMS", "read_refusal", "run_of", "write_refusal"]

#: Rooms only the runtime publishes to (besides ``run:<run>`` and ``_...``).
RUNTIME_ROOMS = frozenset({"presence", "agents"})


def run_of(room: str) -> str | None:
    """The run a ``run:<run>`` or ``control:<run>`` room belongs to (else ``None``)."""
    for prefix in ("run:", "control:"):
        if room.startswith(prefix) and len(room) > len(prefix):
            return room[len(prefix) :]
    return None


def read_refusal(grant: Grant, room: str, owner: str | None = None) -> str | None:
    """Why ``grant`` may not join ``room`` (``None``: it may).

    ``owner`` is the identity that started the run of a ``run:``/``control:`` room, if any.
    """
    if grant.admin:
        return None
    if room.startswith("@"):
        if room == "@" + grant.name:
            return None
        return f"only {room[1:]} reads the inbox {room}; yours is @{grant.name}"
    if room.startswith("_"):
        return f"{room} is the runtime's own room"
    if owner is not None and owner == grant.name:
        return None
    if room_matches(grant.read, room):
        return None
    return f"{grant.name} may not read {room}: its token reads {_listed(grant.read)}"


def write_refusal(grant: Grant, room: str, owner: str | None = None) -> str | None:
    """Why ``grant`` may not publish to ``room`` (``None``: it may).

    ``owner`` is the identity that started the run of a ``control:`` room (``None`` when no
    such run is known).
    """
    if grant.admin:
        return None
    if room.startswith("control:"):
        if owner is not None and owner == grant.name:
            return None
        run = room[len("control:") :]
        if owner is None:
            return f"no run {run!r} is known here: only the identity that started it commands it"
        return f"only the identity that started run {run!r} (and the admin) may command it"
    if room in RUNTIME_ROOMS or room.startswith(("run:", "_")):
        return f"{room} is written by the runtime only"
    if room_matches(grant.write, room):
        return None
    return f"{grant.name} may not write to {room}: its token writes {_listed(grant.write)}"


def _listed(patterns: tuple[str, ...]) -> str:
    return ", ".join(patterns) if patterns else "no rooms"
