"""Who a client is and what it may do: grants, room patterns, and scoped tokens. No I/O.

A runtime has one **admin token** (given with ``--token``/``GLM_LIVE_TOKEN``, or made at start-up).
It may do everything. From it the runtime issues **scoped tokens**, as Centrifugo issues
connection and channel tokens: a name (the identity every message of its holder carries), the
rooms it may read, the rooms it may write, and an expiry. A scoped token is signed, not stored:
any runtime holding the same admin token verifies it, and only revocation needs shared state.

Token format (opaque to clients; documented for operators)::

    glt_<payload>.<signature>

``payload`` is base64url JSON ``{"n": name, "r": [read patterns], "w": [write patterns],
"x": expires_at (unix seconds), "j": token id, "k": "token" | "ticket"}``; ``signature`` is
base64url HMAC-SHA256 of ``payload`` under a key derived from the admin token. A **ticket** is
a scoped token of 30 seconds for one WebSocket connection (browsers cannot set headers there).

Room patterns: a pattern is a room name in which ``*`` stands for any run of characters (none
included): ``chat:*`` matches ``chat:`` and ``chat:lobby``; ``@*`` every inbox; ``*`` every room.
No other character is special.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import GlmLiveError

__all__ = [
    "ADMIN_NAME",
    "TICKET_TTL_S",
    "AuthError",
    "Grant",
    "TokenSigner",
    "admin_grant",
    "room_matches",
]

#: The identity of the admin token's holder.
ADMIN_NAME = "admin"
#: Seconds a WebSocket ticket lives.
TICKET_TTL_S = 30
#: Longest a scoped token may live (30 days), and the default (1 hour).
MAX_TTL_S = 30 * 24 * 3600
DEFAULT_TTL_S = 3600
_PREFIX = "glt_"
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class AuthError(GlmLiveError, ValueError):
    """Credentials that do not authenticate, or a token request that breaks the rules.

    ``code`` says which: ``missing``, ``invalid``, ``expired``, ``revoked``, ``bad_request``
    (a token request); the message says what to do.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def room_matches(patterns: Iterable[str], room: str) -> bool:
    """Whether ``room`` matches one of ``patterns`` (``*`` is any run of characters)."""
    for pattern in patterns:
        if pattern == "*" or pattern == room:
            return True
        if "*" in pattern and _pattern(pattern).fullmatch(room):
            return True
    return False


@dataclass(frozen=True, slots=True)
class Grant:
    """An authenticated identity and what it may do.

    Attributes:
        name: The identity: ``from`` and ``name`` on every message it publishes.
        read: Room patterns it may join.
        write: Room patterns it may publish to.
        admin: The runtime's own token: everything is allowed.
        expires_at: Unix seconds after which the credentials no longer hold (``None``: never).
        id: The token's id (for revocation; ``""`` for the admin token).
        ticket: Whether it came from a one-connection WebSocket ticket.
    """

    name: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    admin: bool = False
    expires_at: float | None = None
    id: str = ""
    ticket: bool = False

    def __repr__(self) -> str:
        role = "admin" if self.admin else f"read={list(self.read)} write={list(self.write)}"
        return f"<Grant {self.name} {role}>"

    def as_json(self) -> dict[str, Any]:
        """What a client is told about itself (the ``welcome`` and ``POST /auth/tokens``)."""
        return {
            "name": self.name,
            "read": ["*"] if self.admin else list(self.read),
            "write": ["*"] if self.admin else list(self.write),
            "admin": self.admin,
            "expires_at": self.expires_at,
        }


def admin_grant(name: str = ADMIN_NAME) -> Grant:
    """The admin token's grant (also every client's when authentication is off)."""
    return Grant(name, ("*",), ("*",), admin=True)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _patterns(value: Any, field: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise AuthError("bad_request", f"{field} must be a list of room patterns, e.g. ['chat:*']")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > 256:
            raise AuthError(
                "bad_request", f"{field}: each pattern is a non-empty string of at most 256 chars"
            )
    return tuple(value)


class TokenSigner:
    """Issues and verifies scoped tokens and tickets under a key derived from ``secret``
    (the admin token). Pure: the time is handed in.

    Args:
        secret: The admin token.
    """

    def __init__(self, secret: str) -> None:
        self._admin = secret.encode()
        self._key = hmac.new(self._admin, b"glm_live scoped tokens v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "<TokenSigner ***>"

    def is_admin(self, token: str) -> bool:
        """Whether ``token`` is the admin token (compared in constant time)."""
        return hmac.compare_digest(token.encode(), self._admin)

    def issue(
        self,
        name: str,
        read: Iterable[str] = (),
        write: Iterable[str] = (),
        *,
        ttl_s: float = DEFAULT_TTL_S,
        now: float,
        ticket: bool = False,
    ) -> tuple[str, Grant]:
        """A signed token for ``name`` and its grant.

        Raises:
            AuthError: ``bad_request``: a bad name, pattern list or ttl (the message says which).
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise AuthError(
                "bad_request", "name must be 1-64 letters, digits, '_', '.' or '-' (e.g. 'bob')"
            )
        if name == ADMIN_NAME:
            raise AuthError("bad_request", f"{ADMIN_NAME!r} is the admin token's name")
        read_t, write_t = _patterns(read, "read"), _patterns(write, "write")
        if (
            isinstance(ttl_s, bool)
            or not isinstance(ttl_s, int | float)
            or not (0 < ttl_s <= MAX_TTL_S)
        ):
            raise AuthError("bad_request", f"ttl_s must be a number of seconds in (0, {MAX_TTL_S}]")
        expires_at = int(now + ttl_s)
        token_id = secrets.token_hex(8)
        payload = {
            "n": name,
            "r": list(read_t),
            "w": list(write_t),
            "x": expires_at,
            "j": token_id,
            "k": "ticket" if ticket else "token",
        }
        grant = Grant(name, read_t, write_t, False, expires_at, token_id, ticket)
        return self._sign(payload), grant

    def ticket_for(self, grant: Grant, now: float) -> tuple[str, Grant]:
        """A one-connection WebSocket ticket carrying ``grant``'s identity and rooms, valid
        for :data:`TICKET_TTL_S` seconds (or until ``grant`` expires, if sooner)."""
        ttl = float(TICKET_TTL_S)
        if grant.expires_at is not None:
            ttl = max(1.0, min(ttl, grant.expires_at - now))
        if grant.admin:
            return self._admin_ticket(grant, ttl, now)
        return self.issue(grant.name, grant.read, grant.write, ttl_s=ttl, now=now, ticket=True)

    def _admin_ticket(self, grant: Grant, ttl: float, now: float) -> tuple[str, Grant]:
        # The admin's ticket is signed like any other, marked admin by its name and kind.
        expires_at = int(now + ttl)
        token_id = secrets.token_hex(8)
        payload = {"n": grant.name, "r": ["*"], "w": ["*"], "x": expires_at, "j": token_id}
        payload["k"] = "admin-ticket"
        admin = Grant(grant.name, ("*",), ("*",), True, expires_at, token_id, True)
        return self._sign(payload), admin

    def _signature(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def _sign(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{_PREFIX}{body}.{self._signature(body)}"

    def verify(self, token: str, now: float) -> Grant:
        """The grant of ``token``: the admin token, or a scoped token or ticket signed here.

        Revocation is not checked here (it needs the store): see ``Grant.id``.

        Raises:
            AuthError: ``invalid`` (not a token of this runtime) or ``expired``.
        """
        if self.is_admin(token):
            return admin_grant()
        if not token.startswith(_PREFIX) or token.count(".") != 1:
            raise AuthError("invalid", "not a token of this runtime")
        body, _, signature = token[len(_PREFIX) :].partition(".")
        if not hmac.compare_digest(signature.encode(), self._signature(body).encode()):
            raise AuthError("invalid", "not a token of this runtime (bad signature)")
        try:
            payload = json.loads(_unb64(body))
            name, read, write = payload["n"], payload["r"], payload["w"]
            expires_at, token_id, kind = payload["x"], payload["j"], payload["k"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise AuthError("invalid", "a malformed token") from None
        if now >= expires_at:
            raise AuthError("expired", "the token has expired; ask for a new one")
        if kind == "admin-ticket":
            return Grant(name, ("*",), ("*",), True, expires_at, token_id, True)
        return Grant(name, tuple(read), tuple(write), False, expires_at, token_id, kind == "ticket")
