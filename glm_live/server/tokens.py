"""``/auth/*``: scoped tokens, revocation and WebSocket tickets, over HTTP.

- ``POST /auth/tokens`` (admin): ``{"name": "bob", "read": ["chat:*", "@bob"], "write":
  ["chat:*", "@*"], "ttl_s": 3600}`` → 201 ``{"token", "id", "name", "read", "write",
  "expires_at"}``. ``read``/``write`` default to none, ``ttl_s`` to an hour.
- ``POST /auth/revoke`` (admin): ``{"token": ...}``, or ``{"id": ..., "expires_at": ...}``
  (what ``/auth/tokens`` answered) → 200 ``{"revoked": id}``; the token is refused from then
  on and its hub connections close (4401), on every runtime sharing the hub's store.
- ``POST /auth/ws-ticket`` (any valid token) → 200 ``{"ticket", "expires_at"}``: one hub
  connection within 30 seconds, as ``/ws?ticket=`` (browsers cannot set headers there).

A bad body is a 400 (code ``1214``) naming the field. The admin token cannot be revoked.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..wire.auth import AuthError, Grant
from .chatreq import error_body
from .httpauth import forbidden, grant_of, unavailable
from .hub.service import Hub
from .hub.store import HubStoreError

__all__ = ["TokenService"]

_TOKEN_FIELDS = {"name", "read", "write", "ttl_s"}
_TOKEN_ID = re.compile(r"[0-9a-f]{16}")


class TokenService:
    """The ``/auth/*`` handlers over ``hub`` (whose authenticator the HTTP API shares)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def tokens(self, request: Request) -> Response:
        """``POST /auth/tokens``: issue a scoped token."""
        grant = grant_of(request)
        if not grant.admin:
            return forbidden(grant, "issue tokens")
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        unknown = sorted(set(body) - _TOKEN_FIELDS)
        if unknown:
            return _bad(f"unknown fields {unknown}; a token request takes {sorted(_TOKEN_FIELDS)}")
        if "name" not in body:
            return _bad("name is required: the identity the token carries, e.g. 'bob'")
        for field in ("read", "write"):
            if not isinstance(body.get(field, []), list):
                return _bad(f"{field} must be a list of room patterns, e.g. ['chat:*']")
        try:
            token, issued = self.hub.auth.issue(
                body["name"], body.get("read", []), body.get("write", []), body.get("ttl_s", 3600)
            )
        except AuthError as exc:
            return _bad(exc.message)
        answer = {
            "token": token,
            "id": issued.id,
            "name": issued.name,
            "read": list(issued.read),
            "write": list(issued.write),
            "expires_at": issued.expires_at,
        }
        return JSONResponse(answer, status_code=201)

    async def revoke(self, request: Request) -> Response:
        """``POST /auth/revoke``: refuse a scoped token from now on."""
        grant = grant_of(request)
        if not grant.admin:
            return forbidden(grant, "revoke tokens")
        body = await _json_object(request)
        if isinstance(body, Response):
            return body
        try:
            target = await self._target(body)
            if isinstance(target, Response):
                return target
            await self.hub.revoke(target)
        except HubStoreError:
            status, payload = unavailable("revoke the token")
            return Response(payload, status_code=status, media_type="application/json")
        return JSONResponse({"revoked": target.id})

    async def _target(self, body: dict[str, Any]) -> Grant | Response:
        """The grant a revoke request names, or the 400 saying what is wrong with it."""
        if "token" in body:
            if set(body) != {"token"} or not isinstance(body["token"], str):
                return _bad("give either {'token': <the token>} or {'id': ..., 'expires_at': ...}")
            try:
                # Verified here (and recorded; hub.revoke records it again, harmlessly, and
                # closes its connections): an unknown or expired token says so.
                return await self.hub.auth.revoke(body["token"])
            except AuthError as exc:
                if exc.code == "expired":
                    return _bad("that token has expired already: nothing to revoke")
                return _bad(f"cannot revoke it: {exc.message}")
        token_id, expires_at = body.get("id"), body.get("expires_at")
        if set(body) - {"id", "expires_at"} or not isinstance(token_id, str):
            return _bad("give either {'token': <the token>} or {'id': ..., 'expires_at': ...}")
        if not _TOKEN_ID.fullmatch(token_id):
            return _bad("id must be a token id as POST /auth/tokens answered (16 hex digits)")
        if expires_at is not None and (
            isinstance(expires_at, bool) or not isinstance(expires_at, int | float)
        ):
            return _bad("expires_at must be the token's expiry in unix seconds (or null)")
        return Grant("", id=token_id, expires_at=expires_at)

    async def ws_ticket(self, request: Request) -> Response:
        """``POST /auth/ws-ticket``: a one-connection WebSocket ticket for the caller."""
        try:
            ticket, issued = self.hub.auth.ticket(grant_of(request))
        except AuthError as exc:
            return _bad(exc.message)
        return JSONResponse({"ticket": ticket, "expires_at": issued.expires_at})


async def _json_object(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return _bad("the body is not JSON: send a JSON object")
    if not isinstance(body, dict):
        return _bad("the body must be a JSON object")
    return body


def _bad(message: str) -> Response:
    return Response(error_body("1214", message), status_code=400, media_type="application/json")
