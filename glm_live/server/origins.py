"""Which browser pages may use the runtime: one origin policy for HTTP (CORS, cross-site
writes) and for the hub's WebSocket ``Origin`` check, so that the rule lives in one place.

Pure: headers in, decisions out; no ASGI, no I/O (the HTTP glue is :mod:`.edges`).

The rule. A request from a browser page carries the page's ``Origin``. It is allowed when the
origin is the runtime's own (``Origin`` names the host and port of the request's ``Host``:
the page was served by this runtime, as ``/health`` is in the browser tests) or when it is in
the explicit allowlist (``--cors-origin``, ``cors_origins``). Nothing else is: not ``*``
(clients send their token in ``Authorization``, and any site could then drive a browser that
holds one), and not loopback origins as such: any local user can serve a page on a loopback
port, so loopback is not a boundary. A page at
``http://localhost:3000`` is allowed by listing it.

DNS rebinding: a page at ``http://evil.example:8765`` whose name the attacker then points at
``127.0.0.1`` is "same origin" with the runtime by the rule above, and its ``Host`` says
``evil.example:8765``. Tokens are not ambient (a browser never adds one by itself), so with
authentication on such a page gets nowhere; with authentication off (``local_only``), the
runtime answers only requests whose ``Host`` is a loopback name, as Jupyter does.

Clients that are not browsers (the openai SDK, httpx, curl, our own) send no ``Origin`` and
are not concerned. As a second signal for browsers that omit ``Origin``, an unsafe request
whose ``Sec-Fetch-Site`` says it came from another site (``cross-site``, ``same-site``) is
treated as coming from a foreign origin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "ALLOWED_HEADERS",
    "ALLOWED_METHODS",
    "EXPOSED_HEADERS",
    "MAX_AGE_S",
    "UNSAFE_METHODS",
    "OriginError",
    "OriginPolicy",
    "Preflight",
    "foreign_fetch",
    "is_loopback",
    "parse_origin",
]

#: Methods a cross-origin page may use (the runtime's routes only take these).
ALLOWED_METHODS = ("GET", "POST")
#: Methods that change something, hence checked for cross-site writes.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Request headers a cross-origin page may send: what AG-UI clients (``@ag-ui/client``'s
#: ``HttpAgent``: content-type, accept, authorization) and the openai JS SDK send (its
#: ``openai-organization``/``openai-project``, and every ``x-stainless-*`` header, allowed by
#: prefix below), plus an EventSource polyfill's ``last-event-id`` and ``cache-control``.
ALLOWED_HEADERS = frozenset(
    {
        "accept",
        "authorization",
        "cache-control",
        "content-type",
        "last-event-id",
        "openai-organization",
        "openai-project",
        "x-request-id",
    }
)
_ALLOWED_HEADER_PREFIX = "x-stainless-"
#: Response headers a cross-origin page may read (besides the CORS-safelisted ones).
EXPOSED_HEADERS = ("retry-after", "retry-after-ms", "x-request-id")
#: How long a browser may cache a preflight's answer (Chromium caps it at 7200).
MAX_AGE_S = 600

_DEFAULT_PORTS = {"http": 80, "https": 443}


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class OriginError(ValueError):
    """A configured origin is not one a browser sends; the message says why and what to
    write instead."""


def parse_origin(value: str) -> str:
    """``value`` as browsers serialise an origin: ``scheme://host[:port]``, lower case, the
    default port dropped (``https://app.example:443`` is ``https://app.example``), one
    trailing slash tolerated.

    Raises:
        OriginError: ``*``, ``null``, a path, query, fragment or user info, or a scheme other
            than http/https.
    """
    if not isinstance(value, str):
        msg = f"an origin must be a string like https://app.example, got {value!r}"
        raise OriginError(msg)
    text = value.strip()
    if text == "*":
        msg = (
            "'*' cannot be an allowed origin: clients send their token in Authorization, and "
            "any web site could then use it through a visitor's browser; list each origin "
            "(e.g. https://app.example)"
        )
        raise OriginError(msg)
    if text.lower() == "null":
        msg = "'null' (sandboxed frames, file:// pages) cannot be allowed: serve the page over http"
        raise OriginError(msg)
    parts = urlsplit(text.removesuffix("/"))
    scheme = parts.scheme.lower()
    problem = None
    if scheme not in _DEFAULT_PORTS:
        problem = "its scheme must be http or https"
    elif not parts.hostname:
        problem = "it has no host"
    elif parts.path or parts.query or parts.fragment or "#" in text or "?" in text:
        problem = "an origin has no path, query or fragment"
    elif parts.username is not None or parts.password is not None:
        problem = "an origin has no user info"
    if problem is not None:
        msg = f"{value!r} is not an origin ({problem}); write scheme://host[:port], e.g. https://app.example:8443"
        raise OriginError(msg)
    try:
        port = parts.port
    except ValueError as exc:
        msg = f"{value!r} is not an origin: {exc}"
        raise OriginError(msg) from exc
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _authority(origin: str) -> str | None:
    """The ``host[:port]`` of a browser-sent origin, as a ``Host`` header would carry it."""
    try:
        return parse_origin(origin).split("://", 1)[1]
    except OriginError:
        return None


@dataclass(frozen=True)
class Preflight:
    """The answer to a CORS preflight: allowed (with the headers to send) or refused (why)."""

    allowed: bool
    headers: tuple[tuple[str, str], ...] = ()
    reason: str = ""


class OriginPolicy:
    """The explicit allowlist of browser origins, and the same-origin rule.

    Args:
        origins: Origins allowed besides the runtime's own (validated by :func:`parse_origin`).
        local_only: Answer only requests whose ``Host`` is a loopback name (authentication
            is off: see DNS rebinding above).

    Raises:
        OriginError: An entry that is not an origin.
    """

    def __init__(self, origins: Iterable[str] = (), *, local_only: bool = False) -> None:
        self.origins = frozenset(parse_origin(o) for o in origins)
        self.local_only = local_only

    def __repr__(self) -> str:
        local = ", local_only=True" if self.local_only else ""
        return f"OriginPolicy({sorted(self.origins)!r}{local})"

    def host_refusal(self, host: str | None) -> str | None:
        """Why a request to ``Host: host`` is refused (``local_only`` and not a loopback
        name), or ``None``."""
        if not self.local_only or host is None:
            return None
        name = urlsplit("//" + host.strip()).hostname or ""
        if is_loopback(name):
            return None
        return (
            f"with authentication off this runtime answers only requests addressed to a "
            f"loopback name (127.0.0.1, localhost, [::1]), not Host {host!r} (a page using DNS "
            "rebinding would look like this); connect to 127.0.0.1, or turn authentication on"
        )

    def listed(self, origin: str) -> bool:
        """Whether ``origin`` (as a browser sent it) is in the allowlist."""
        try:
            return parse_origin(origin) in self.origins
        except OriginError:
            return False

    def allows(self, origin: str | None, host: str | None) -> bool:
        """Whether a request with ``Origin: origin`` to ``Host: host`` may be served.

        No ``Origin`` (not a browser, or a same-origin GET) is allowed. The scheme is not
        compared for same-origin: behind a TLS-terminating proxy the runtime sees ``http``
        for an ``https`` page, and a page on the runtime's own host and port is the runtime's.
        """
        if origin is None:
            return True
        if host and _authority(origin) == host.strip().lower():
            return True
        return self.listed(origin)

    def refusal(self, origin: str) -> str:
        """Why a page at ``origin`` is refused, and how to allow it."""
        return (
            f"requests from pages at {origin} are not allowed: that origin is not in this "
            f"runtime's CORS allowlist; if you trust it, start the runtime with "
            f"--cors-origin {origin} (or cors_origins in its config file, serve(cors_origins=...))"
        )

    def preflight(
        self, origin: str, method: str, requested: str, private_network: bool = False
    ) -> Preflight:
        """Answer an ``OPTIONS`` preflight from ``origin`` asking for ``method`` and the
        comma-separated headers ``requested`` (``Access-Control-Request-Headers``);
        ``private_network``: it carried ``Access-Control-Request-Private-Network: true``
        (Chromium's Private Network Access, for a public page reaching a local runtime)."""
        if not self.listed(origin):
            return Preflight(False, reason=self.refusal(origin))
        method = method.strip().upper()
        if method not in ALLOWED_METHODS:
            methods = ", ".join(ALLOWED_METHODS)
            return Preflight(False, reason=f"method {method} is not served here; use {methods}")
        names = [h.strip().lower() for h in requested.split(",") if h.strip()]
        refused = [h for h in names if not _header_allowed(h)]
        if refused:
            allowed = ", ".join(sorted(ALLOWED_HEADERS))
            return Preflight(
                False,
                reason=f"request headers {', '.join(refused)} are not allowed from other "
                f"origins; allowed: {allowed} and x-stainless-*",
            )
        headers = [
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", ", ".join(ALLOWED_METHODS)),
            ("access-control-max-age", str(MAX_AGE_S)),
            ("vary", "Origin"),
        ]
        if names:
            # Echo what was asked for (all allowed): a browser checks each name against it.
            headers.insert(2, ("access-control-allow-headers", ", ".join(names)))
        if private_network:  # a listed origin may reach the runtime wherever it listens
            headers.insert(-1, ("access-control-allow-private-network", "true"))
        return Preflight(True, tuple(headers))

    def response_headers(self, origin: str) -> tuple[tuple[str, str], ...]:
        """The headers an actual response to a listed ``origin`` carries."""
        return (
            ("access-control-allow-origin", origin),
            ("access-control-expose-headers", ", ".join(EXPOSED_HEADERS)),
            ("vary", "Origin"),
        )


def _header_allowed(name: str) -> bool:
    return name in ALLOWED_HEADERS or name.startswith(_ALLOWED_HEADER_PREFIX)


def foreign_fetch(sec_fetch_site: str | None) -> bool:
    """Whether ``Sec-Fetch-Site`` says the request came from a page on another site."""
    return sec_fetch_site in ("cross-site", "same-site")
