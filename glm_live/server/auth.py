"""The runtime's credentials check, shared by the HTTP API and the hub.

:class:`Authenticator` turns what a client presents (the admin token, a scoped token, a
WebSocket ticket) into a :class:`~glm_live.wire.auth.Grant`, or refuses it with an
:class:`~glm_live.wire.auth.AuthError` saying how to authenticate. Signing and verifying are
pure (:class:`~glm_live.wire.auth.TokenSigner`); revocations and used tickets live in the hub's
room store, so runtimes sharing a Redis (and one admin token) agree on them.

With authentication off (``glm-live serve --no-auth``, loopback only) every client is trusted
as the admin, and the hub takes a client's name from its ``hello``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from ..wire.auth import AuthError, Grant, TokenSigner, admin_grant

__all__ = ["HOW_TO_AUTHENTICATE", "OPEN_NAME", "Authenticator", "Revocations"]

#: Every client's name when authentication is off and its ``hello`` gives none.
OPEN_NAME = "anonymous"

#: What a refused client is told to do.
HOW_TO_AUTHENTICATE = (
    "send 'Authorization: Bearer <token>' (the runtime's token: printed by glm-live serve, "
    "or GLM_LIVE_TOKEN; glm_live.connect() finds it), or a token from POST /auth/tokens; "
    "browsers on the hub: the subprotocol 'glm-live.bearer.<token>' or ?ticket= from "
    "POST /auth/ws-ticket"
)


class Revocations(Protocol):
    """Where revoked tokens and used tickets are kept: the hub's room store
    (:class:`~glm_live.server.hub.store.RoomStore`), shared by runtimes using one Redis."""

    async def revoke(self, token_id: str, until: float) -> None: ...

    async def revoked(self, token_id: str) -> bool: ...

    async def use_ticket(self, token_id: str, until: float) -> bool: ...


class Authenticator:
    """Checks credentials against the runtime's admin ``token`` (``None``: authentication
    off) and the revocations kept in ``store``."""

    def __init__(self, token: str | None, store: Revocations) -> None:
        self._signer = TokenSigner(token) if token else None
        self._store = store

    def __repr__(self) -> str:
        return f"<Authenticator {'on' if self.enabled else 'off'}>"

    @property
    def enabled(self) -> bool:
        """Whether clients must authenticate."""
        return self._signer is not None

    def is_admin(self, token: str) -> bool:
        """Whether ``token`` is the admin token (constant time); the HTTP fast path."""
        return self._signer is not None and self._signer.is_admin(token)

    async def authenticate(self, token: str | None) -> Grant:
        """The grant of a bearer ``token`` (the admin's when authentication is off).

        Raises:
            AuthError: ``missing``, ``invalid``, ``expired`` or ``revoked``; the message says
                what to do. A ticket is refused here: it opens one hub connection only
                (:meth:`redeem`).
            HubStoreError: The store holding revocations failed.
        """
        if self._signer is None:
            return admin_grant(OPEN_NAME)
        if not token:
            raise AuthError("missing", f"authentication required: {HOW_TO_AUTHENTICATE}")
        grant = self._verify(token)
        if grant.ticket:
            raise AuthError("invalid", "a ticket opens one hub connection: pass it as ?ticket=")
        await self.check_revoked(grant)
        return grant

    async def redeem(self, ticket: str) -> Grant:
        """The grant of a one-connection WebSocket ``ticket``, which is then used up.

        Raises:
            AuthError: Not a ticket, expired, revoked, or used before.
            HubStoreError: The store failed.
        """
        if self._signer is None:
            return admin_grant(OPEN_NAME)
        grant = self._verify(ticket)
        if not grant.ticket:
            raise AuthError("invalid", "?ticket= takes a ticket from POST /auth/ws-ticket")
        await self.check_revoked(grant)
        if not await self._store.use_ticket(grant.id, grant.expires_at or time.time() + 60):
            raise AuthError("revoked", "this ticket was used already; ask for a new one")
        return grant

    def _verify(self, token: str) -> Grant:
        assert self._signer is not None
        return self._signer.verify(token, time.time())

    async def check_revoked(self, grant: Grant) -> None:
        """Raise ``AuthError("revoked")`` if ``grant``'s token was revoked."""
        if grant.id and await self._store.revoked(grant.id):
            raise AuthError("revoked", "this token was revoked; ask for a new one")

    def issue(
        self, name: str, read: Iterable[str] = (), write: Iterable[str] = (), ttl_s: float = 3600
    ) -> tuple[str, Grant]:
        """A scoped token for ``name`` and its grant.

        Raises:
            AuthError: Authentication is off (nothing to issue), or a bad request.
        """
        if self._signer is None:
            raise AuthError("bad_request", "authentication is off: there are no tokens to issue")
        return self._signer.issue(name, read, write, ttl_s=ttl_s, now=time.time())

    def ticket(self, grant: Grant) -> tuple[str, Grant]:
        """A one-connection WebSocket ticket for ``grant``'s holder (30 s).

        Raises:
            AuthError: Authentication is off.
        """
        if self._signer is None:
            raise AuthError("bad_request", "authentication is off: connect without a ticket")
        return self._signer.ticket_for(grant, time.time())

    async def revoke(self, token: str) -> Grant:
        """Revoke a scoped ``token`` (given whole, or by its id through :meth:`revoke_id`).

        Raises:
            AuthError: Not a live token of this runtime, or the admin token.
        """
        if self._signer is None:
            raise AuthError("bad_request", "authentication is off: there are no tokens")
        grant = self._verify(token)
        if grant.admin and not grant.ticket:
            raise AuthError(
                "bad_request", "the admin token cannot be revoked: restart with another"
            )
        await self.revoke_id(grant.id, grant.expires_at)
        return grant

    async def revoke_id(self, token_id: str, expires_at: float | None = None) -> None:
        """Refuse the token with id ``token_id`` (until ``expires_at``, else 30 days)."""
        await self._store.revoke(token_id, expires_at or time.time() + 30 * 24 * 3600)
