"""Who may do what over HTTP: credentials from the ``Authorization`` header, refusals as GLM
sends them.

Every HTTP route but ``/health`` needs ``Authorization: Bearer <token>`` (``/ws`` checks its
own: see the hub). The runtime puts the caller's :class:`~glm_live.wire.auth.Grant` in the
ASGI scope under :data:`GRANT`; handlers read it with :func:`grant_of`.

=====================  ==========================================================
Route                  Who
=====================  ==========================================================
chat completions       any valid token (admin or scoped)
``POST /agents/{n}``   any valid token; the caller owns the run it starts
``GET /agents[/{n}]``  any valid token (the workflows served, their capabilities)
``GET /runs/{id}``     the run's owner, the admin, a token reading ``run:<id>``
``POST /auth/ws-ticket``  any valid token
``POST /auth/tokens``  the admin
``POST /auth/revoke``  the admin
``GET /metrics``       the admin (Prometheus sends it as its bearer token)
``GET /health``        anyone; the hub's details only with a valid token
=====================  ==========================================================

Refusals: 401 with GLM's codes (``1001`` no credentials, ``1002`` a token that is not this
runtime's, ``1003`` expired or revoked) and a message saying how to authenticate; 403 code
``1220`` for a valid token without the right. Neither ever contains a token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..wire.auth import AuthError, Grant
from .asgi import Scope
from .auth import HOW_TO_AUTHENTICATE
from .chatreq import error_body

__all__ = [
    "GRANT",
    "bearer_token",
    "forbidden",
    "grant_of",
    "refusal",
    "unavailable",
]

#: The scope key holding the caller's grant.
GRANT = "glm_live.grant"

_CODES = {"missing": "1001", "invalid": "1002", "expired": "1003", "revoked": "1003"}
CHALLENGE = [(b"www-authenticate", b'Bearer realm="glm_live"')]


def bearer_token(scope: Scope) -> str | None:
    """The token of the request's ``Authorization: Bearer`` header (``None``: no header).

    Raises:
        AuthError: ``invalid``: a header of another scheme, or an empty token.
    """
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise AuthError(
                    "invalid", f"Authorization must be 'Bearer <token>'; {HOW_TO_AUTHENTICATE}"
                )
            return str(token)
    return None


def refusal(exc: AuthError) -> tuple[int, bytes]:
    """The status and GLM-shaped body refusing credentials that did not authenticate."""
    message = exc.message
    if exc.code != "missing" and HOW_TO_AUTHENTICATE not in message:
        message = f"{message}; {HOW_TO_AUTHENTICATE}"
    return 401, error_body(_CODES.get(exc.code, "1002"), message)


def grant_of(request: Request) -> Grant:
    """The caller's grant, put in the scope by the runtime before any handler runs."""
    grant: Grant = request.scope[GRANT]
    return grant


def forbidden(grant: Grant, what: str) -> Response:
    """403 (code ``1220``): ``grant`` authenticated but may not do ``what``."""
    message = (
        f"the token of {grant.name!r} may not {what}: only the runtime's admin token may "
        "(the one glm-live serve printed, or GLM_LIVE_TOKEN)"
    )
    return Response(error_body("1220", message), status_code=403, media_type="application/json")


def unavailable(what: str) -> tuple[int, bytes]:
    """503: the store holding revocations or run owners failed (a Redis that went away)."""
    message = f"cannot {what}: the hub's storage is unavailable; retry shortly"
    return 503, error_body("1234", message)
