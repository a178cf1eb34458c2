"""The HTTP edges: what the runtime answers before (or instead of) a handler.

- **CORS preflights** (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) are
  answered here, before authentication (browsers send no credentials on a preflight): 204 for
  an origin in the allowlist, 403 with a reason otherwise. Actual responses to a listed origin
  get ``Access-Control-Allow-Origin`` (the origin, never ``*``), ``Vary: Origin`` and the
  exposed headers (:func:`with_cors_headers`).
- **Cross-site writes** are refused even with authentication off: a browser sends a
  ``text/plain``, form or multipart POST to any site without asking first (a CORS "simple"
  request), so a page at ``http://evil.example`` could otherwise start a completion (spending
  the upstream key) or an agent run. An unsafe method from a page whose origin is neither the
  runtime's own nor listed gets 403, and a body on a JSON endpoint that is not
  ``application/json`` gets 415, both before anything is read or started.
- **DNS rebinding**: with authentication off, a request addressed to a name that is not a
  loopback one is refused (403), whatever its method (:meth:`~.origins.OriginPolicy.host_refusal`).
- **404 and 405** are JSON in GLM's error format, saying what exists (:func:`not_found`,
  :func:`method_not_allowed`), instead of Starlette's plain text.

The decisions are :class:`~.origins.OriginPolicy`'s; this module only reads headers and sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .asgi import Message, Scope, Send, send_json
from .chatreq import error_body
from .origins import UNSAFE_METHODS, OriginPolicy, foreign_fetch

__all__ = [
    "NOT_JSON",
    "ORIGIN_REFUSAL",
    "ORIGIN_REFUSED",
    "PREFLIGHT",
    "check_browser_edges",
    "method_not_allowed",
    "not_found",
    "with_cors_headers",
]

#: The GLM business code of an origin refusal (GLM's "no permission").
ORIGIN_REFUSED = "1220"
_JSON_TYPES = ("application/json",)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    """The request headers the edges look at (the first of each name)."""
    wanted = {
        b"origin",
        b"host",
        b"sec-fetch-site",
        b"content-type",
        b"content-length",
        b"transfer-encoding",
        b"access-control-request-method",
        b"access-control-request-headers",
        b"access-control-request-private-network",
    }
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", []):
        if name in wanted and name not in found:
            found[name] = value
    return found


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


#: What :func:`check_browser_edges` did, when it answered: a preflight allowed, or a refusal
#: (the runtime counts refusals in ``glm_live_errors_total`` under these names).
PREFLIGHT, ORIGIN_REFUSAL, NOT_JSON = "preflight", "origin_refused", "not_json"


async def check_browser_edges(
    policy: OriginPolicy, scope: Scope, send: Send, json_body: bool
) -> str | None:
    """Answer a preflight or refuse a cross-site write. Returns ``None`` when the request
    goes on; else what was answered (:data:`PREFLIGHT`, :data:`ORIGIN_REFUSAL`,
    :data:`NOT_JSON`), and the request must go no further.

    Args:
        policy: The runtime's origin policy.
        scope: An HTTP scope.
        send: Its ASGI send.
        json_body: The route takes a JSON body (chat, agents, auth): a body of another type
            is refused with 415.
    """
    headers = _headers(scope)
    host_refused = policy.host_refusal(_text(headers.get(b"host")))
    if host_refused is not None:
        await send_json(send, 403, error_body(ORIGIN_REFUSED, host_refused))
        return ORIGIN_REFUSAL
    method = scope["method"]
    origin = _text(headers.get(b"origin"))
    requested = headers.get(b"access-control-request-method")
    if method == "OPTIONS" and origin is not None and requested is not None:
        answer = policy.preflight(
            origin,
            requested.decode("latin-1"),
            _text(headers.get(b"access-control-request-headers")) or "",
            headers.get(b"access-control-request-private-network") == b"true",
        )
        if answer.allowed:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [(k.encode(), v.encode("latin-1")) for k, v in answer.headers],
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return PREFLIGHT
        await send_json(
            send, 403, error_body(ORIGIN_REFUSED, answer.reason), [(b"vary", b"Origin")]
        )
        return ORIGIN_REFUSAL
    if method not in UNSAFE_METHODS:
        return None
    if not policy.allows(origin, _text(headers.get(b"host"))):
        await send_json(send, 403, error_body(ORIGIN_REFUSED, policy.refusal(str(origin))))
        return ORIGIN_REFUSAL
    if origin is None and foreign_fetch(_text(headers.get(b"sec-fetch-site"))):
        message = (
            "a browser sent this request from a page on another site (Sec-Fetch-Site) without "
            "an Origin; cross-site writes are refused: call the runtime from an allowed origin"
        )
        await send_json(send, 403, error_body(ORIGIN_REFUSED, message))
        return ORIGIN_REFUSAL
    if json_body:
        kind = _text(headers.get(b"content-type"))
        has_body = headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
        media = (kind or "").split(";", 1)[0].strip().lower()
        if (kind is not None or has_body) and media not in _JSON_TYPES:
            what = f"Content-Type {kind!r}" if kind is not None else "no Content-Type"
            message = (
                f"this endpoint takes a JSON body, and the request came with {what}; send "
                "'Content-Type: application/json' with a JSON body"
            )
            await send_json(send, 415, error_body("1214", message))
            return NOT_JSON
    return None


def with_cors_headers(policy: OriginPolicy, scope: Scope, send: Send) -> Send:
    """``send``, adding the CORS headers when the request comes from a listed origin.

    Returns ``send`` itself otherwise, so that requests without ``Origin`` (every non-browser
    client, and the benchmarks) keep the server's own send and its fast path.
    """
    origin = _text(_headers(scope).get(b"origin"))
    if origin is None or not policy.listed(origin):
        return send
    extra = [(k.encode(), v.encode("latin-1")) for k, v in policy.response_headers(origin)]

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_with_cors


def _routes_text(routes: Iterable[str]) -> str:
    return "; this runtime serves: " + ", ".join(routes) + " (README: The embedded runtime)"


def not_found(routes: Iterable[str]) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Starlette's 404 handler: a GLM-shaped body listing what exists."""
    listing = _routes_text(routes)

    async def handler(request: Request, exc: Exception) -> Response:
        message = f"no route {request.method} {request.url.path}{listing}"
        return Response(error_body("404", message), status_code=404, media_type="application/json")

    return handler


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """Starlette's 405 handler: a GLM-shaped body, and the ``Allow`` header Starlette made."""
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    allow = headers.get("Allow") or headers.get("allow") or ""
    message = f"{request.url.path} does not take {request.method}; it takes: {allow}"
    return Response(
        error_body("405", message),
        status_code=405,
        media_type="application/json",
        headers={"allow": allow},
    )
