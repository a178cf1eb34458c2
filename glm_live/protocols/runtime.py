"""A client's side of a runtime's credentials: find its token, ask it for scoped tokens.

A runtime always requires a token (``glm-live serve --no-auth`` aside). ``glm-live serve``
writes one **runtime file** per runtime it runs, as Jupyter does::

    <runtime dir>/runtime-<port>.json    {"url": ..., "token": ..., "pid": ...}

readable by its owner only (file ``0600``, directory ``0700``), removed when the runtime stops.
The runtime dir is ``GLM_LIVE_RUNTIME_DIR``, else ``~/.local/share/glm_live/runtime``.
:func:`find_token` reads ``GLM_LIVE_TOKEN``, then the runtime file of the URL's runtime;
:func:`issue_token` and :func:`revoke_token` call ``POST /auth/tokens`` and ``POST
/auth/revoke`` with the admin token (found the same way unless given).

Tokens never appear in an error message or a log line here.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import TransportError
from ..transport.sse_client import safe_url
from ..wire._secret import scrub
from ..wire.chat import error_from_response

__all__ = [
    "find_token",
    "issue_token",
    "remove_runtime_file",
    "revoke_token",
    "runtime_dir",
    "write_runtime_file",
]

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_API_SUFFIXES = ("/v1", "/api/paas/v4")


def runtime_dir() -> Path:
    """Where runtime files live: ``GLM_LIVE_RUNTIME_DIR``, else
    ``~/.local/share/glm_live/runtime``."""
    configured = os.environ.get("GLM_LIVE_RUNTIME_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".local" / "share" / "glm_live" / "runtime"


def write_runtime_file(url: str, token: str | None, port: int) -> Path:
    """Write ``runtime-<port>.json`` (mode 0600, in a 0700 directory) and return its path.

    Written whole or not at all (a temporary file renamed), so a reader never sees half.

    Raises:
        OSError: The directory or the file cannot be written.
    """
    directory = runtime_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sys.platform != "win32" and directory.stat().st_uid == os.getuid():
        directory.chmod(0o700)  # made earlier with a wider mode: other users must not list it
    path = directory / f"runtime-{port}.json"
    body = json.dumps({"url": url, "token": token, "pid": os.getpid()})
    fd, temporary = tempfile.mkstemp(prefix=".runtime-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(body)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def remove_runtime_file(path: Path) -> None:
    """Remove a runtime file written by :func:`write_runtime_file` (gone already is fine)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a runtime URL; loopback names count as one host."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host in _LOOPBACK or host.startswith("127."):
        host = "loopback"
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme)
    return ("https" if scheme in ("https", "wss") else "http"), host, port


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def find_token(url: str) -> str | None:
    """The token to send to the runtime at ``url``: ``GLM_LIVE_TOKEN``, else the token in
    the runtime file of a live ``glm-live serve`` listening there, else ``None``.

    ``url`` may be the root (``http://127.0.0.1:8765``) or an API base (``.../v1``);
    ``localhost``, ``127.0.0.1`` and ``::1`` name the same runtime.
    """
    token = os.environ.get("GLM_LIVE_TOKEN")
    if token:
        return token
    wanted = _origin(url)
    directory = runtime_dir()
    try:
        candidates = sorted(directory.glob("runtime-*.json"))
    except OSError:
        return None
    for path in candidates:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            continue
        if _origin(data["url"]) == wanted and _alive(data.get("pid")):
            found = data.get("token")
            return found if isinstance(found, str) and found else None
    return None


def _root(url: str) -> str:
    url = url.rstrip("/")
    for suffix in _API_SUFFIXES:
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url


def _admin_token(url: str, token: str | None) -> str:
    token = token or find_token(url)
    if not token:
        msg = (
            f"no token for the runtime at {safe_url(url)}: pass token=, set GLM_LIVE_TOKEN, or "
            "run it with glm-live serve on this machine (which writes its runtime file)"
        )
        raise ValueError(msg)
    return token


def _post(
    url: str, path: str, token: str, body: dict[str, Any], timeout: float, *secret: str
) -> Any:
    hidden = [token, *secret]
    target = _root(url) + path
    try:
        response = httpx.post(
            target, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        reason = scrub(str(exc), hidden)
        msg = f"cannot reach the runtime at {safe_url(target)}: {type(exc).__name__}: {reason}"
        raise TransportError(msg) from None
    if response.status_code >= 400:
        # The runtime answers as GLM does ({"error": {"code", "message"}}): the same typed
        # errors as a chat (AuthenticationError for 401, InvalidRequestError for 400/403...).
        raise error_from_response(response.status_code, response.content, secrets=hidden)
    try:
        return response.json()
    except ValueError:
        msg = f"the runtime at {safe_url(target)} answered {path} with something not JSON"
        raise TransportError(msg) from None


def issue_token(
    url: str,
    *,
    name: str,
    read: Iterable[str] = (),
    write: Iterable[str] = (),
    ttl_s: float = 3600,
    token: str | None = None,
    timeout: float = 10.0,
) -> str:
    """Ask the runtime at ``url`` for a scoped token (``POST /auth/tokens``).

    Args:
        url: The runtime's root URL (or its ``/v1`` base).
        name: The identity the token carries (``bob``).
        read: Hub room patterns it may join (``["chat:*", "@bob"]``).
        write: Hub room patterns it may publish to.
        ttl_s: Seconds it lives.
        token: The runtime's admin token (default: :func:`find_token`).
        timeout: Seconds to wait for the answer.

    Returns:
        The new token.

    Raises:
        ValueError: No admin token was given or found.
        AuthenticationError: The runtime refused the admin token (401).
        InvalidRequestError: A bad request (400: the message names the field), or the token
            is not the admin's (403).
        TransportError: The runtime cannot be reached.
    """
    admin = _admin_token(url, token)
    body = {"name": name, "read": list(read), "write": list(write), "ttl_s": ttl_s}
    answer = _post(url, "/auth/tokens", admin, body, timeout)
    issued = answer.get("token") if isinstance(answer, dict) else None
    if not isinstance(issued, str):
        msg = f"the runtime at {safe_url(url)} answered POST /auth/tokens without a token"
        raise TransportError(msg)
    return issued


def revoke_token(
    url: str, token_to_revoke: str, *, token: str | None = None, timeout: float = 10.0
) -> None:
    """Revoke a scoped token at the runtime at ``url`` (``POST /auth/revoke``): it is refused
    from now on, and its hub connections close (4401).

    Raises:
        ValueError: No admin token was given or found.
        AuthenticationError: The runtime refused the admin token.
        InvalidRequestError: ``token_to_revoke`` is not a live scoped token of that runtime,
            or the token used is not the admin's.
        TransportError: The runtime cannot be reached.
    """
    admin = _admin_token(url, token)
    _post(url, "/auth/revoke", admin, {"token": token_to_revoke}, timeout, token_to_revoke)
