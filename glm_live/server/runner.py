"""Running the runtime: in-process on a background thread (:func:`serve`), or in the
foreground for ``glm-live serve``.

Both bind the listening socket themselves (:func:`bind_socket`) and hand it to uvicorn, so the
address is known before uvicorn starts (port 0 picks a free one), and connections made before
uvicorn is up wait in the socket's backlog rather than being refused. Readiness is the app's
lifespan start-up completing (:class:`StartupSignal`): no polling of uvicorn's state.

Authentication is always on: a runtime started without a token makes one (``handle.token``;
``glm-live serve`` prints it). Switching it off (``auth=False``, ``--no-auth``) is refused
beyond loopback (:class:`InsecureBindError`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from ..wire.auth import DEFAULT_TTL_S
from .app import Runtime
from .asgi import Message, Receive, Scope, Send
from .config import (
    InsecureBindError,
    RuntimeConfig,
    config_from_mapping,
    is_loopback,
    load_config,
)

__all__ = [
    "InsecureBindError",
    "ServerHandle",
    "StartupSignal",
    "bind_socket",
    "build_config",
    "is_loopback",
    "root_url",
    "serve",
    "uvicorn_config",
]

#: Connections the listening socket queues before they are accepted (uvicorn's default).
BACKLOG = 2048


def build_config(
    config: RuntimeConfig | str | Path | None = None, **overrides: Any
) -> RuntimeConfig:
    """A :class:`RuntimeConfig` from a config object or file plus overrides.

    The token comes from ``token=`` or ``GLM_LIVE_TOKEN`` (which ``auth=False`` ignores), the
    hub's Redis from ``redis=`` or ``GLM_LIVE_REDIS``.

    Raises:
        InsecureBindError: Authentication off on a non-loopback host.
        ConfigError: A bad setting, or a token given with authentication off.
    """
    seed = overrides.pop("seed", None)
    sim = dict(overrides.pop("sim", None) or {})
    if seed is not None:
        sim["seed"] = seed
    overrides["sim"] = sim
    if overrides.get("token") is None and overrides.get("auth") is not False:
        overrides["token"] = os.environ.get("GLM_LIVE_TOKEN") or None
    if overrides.get("redis") is None:
        overrides["redis"] = os.environ.get("GLM_LIVE_REDIS") or None
    if isinstance(config, RuntimeConfig):
        base = {f.name: getattr(config, f.name) for f in fields(config) if f.name != "sim"}
        values = {**base, **{k: v for k, v in overrides.items() if v is not None and k != "sim"}}
        result = RuntimeConfig(**values, sim=config.sim.with_overrides(sim))
    elif config is not None:
        result = load_config(config, **overrides)
    else:
        result = config_from_mapping({}, **overrides)
    return result


def bind_socket(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening; port 0 picks a free port.

    For a name that resolves to several addresses (``localhost``) an IPv4 one is preferred.
    Connections made before anyone accepts wait in the backlog.

    Raises:
        OSError: The address cannot be resolved or bound (e.g. the port is in use).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn and asyncio do: a restarted server may take over a port whose previous
        # connections are still in TIME_WAIT (it never shares a port someone listens on).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def root_url(config: RuntimeConfig, sock: socket.socket) -> str:
    """The runtime's root URL for a socket bound by :func:`bind_socket`."""
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if config.ssl_certfile else "http"
    return f"{scheme}://{host}:{port}"


class StartupSignal:
    """An ASGI app seen through its lifespan: says when its start-up completed, or why not.

    Wraps the app for the server; HTTP and WebSocket scopes go straight through with the
    server's own ``send`` (so the runtime's uvicorn fast path still sees it).

    Attributes:
        settled: Set once start-up completed, or (by whoever runs the server) once the server
            stopped trying; a ``threading.Event``, so another thread can wait on it.
        started: Whether start-up completed.
        error: What the app raised during its lifespan, if anything (e.g. an unreachable
            Redis), for the caller to chain.
    """

    def __init__(self, app: Any, on_started: Callable[[], None] | None = None) -> None:
        self.app = app
        self.settled = threading.Event()
        self.started = False
        self.error: BaseException | None = None
        self._on_started = on_started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                self.started = True
                if self._on_started is not None:
                    self._on_started()
                self.settled.set()

        try:
            await self.app(scope, receive, watched)
        except BaseException as exc:  # the server reports it too; we keep it for the caller
            self.error = exc
            raise


def uvicorn_config(runtime: Runtime, log_level: str = "warning", app: Any = None) -> uvicorn.Config:
    """uvicorn's settings for ``runtime`` (served as ``app`` if given, e.g. a wrapper of it).

    ``host`` and ``port`` are uvicorn's to bind only when it is run without ``sockets``.
    """
    return uvicorn.Config(
        runtime if app is None else app,
        host=runtime.config.host,
        port=runtime.config.port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        backlog=BACKLOG,
        ws_max_size=runtime.hub.limits.max_message_bytes,
        ws_per_message_deflate=runtime.config.ws_compression,
        ws_ping_interval=20.0,
        ssl_certfile=runtime.config.ssl_certfile,
        ssl_keyfile=runtime.config.ssl_keyfile,
    )


class ServerHandle:
    """A runtime running on a background thread. ``url`` is its root; ``close()`` stops it.

    ``token`` is its admin token and ``headers`` the header carrying it; neither shows in the
    repr. In a notebook, pass them on rather than printing them.
    """

    def __init__(
        self,
        runtime: Runtime,
        server: uvicorn.Server,
        thread: threading.Thread,
        url: str,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.runtime = runtime
        self._server = server
        self._thread = thread
        self._loop = loop
        #: The runtime's root URL, e.g. ``http://127.0.0.1:54321``.
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``<url>/v1``), for ``GLMClient`` or the openai SDK."""
        return self.url + "/v1"

    @property
    def token(self) -> str | None:
        """The runtime's admin token (``None`` with authentication off)."""
        return self.runtime.config.token if self.runtime.config.auth else None

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}`` for an HTTP client (``{}`` with
        authentication off)."""
        token = self.token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def issue_token(
        self,
        name: str,
        read: Iterable[str] = (),
        write: Iterable[str] = (),
        ttl_s: float = DEFAULT_TTL_S,
    ) -> str:
        """A scoped token for ``name``, made here (no HTTP): it may chat, run agents, read
        the hub rooms matching ``read`` and write those matching ``write``, for ``ttl_s``.

        Raises:
            AuthError: A bad name, pattern or ttl (the message says which), or
                authentication is off.
        """
        token, _ = self.runtime.auth.issue(name, read, write, ttl_s)
        return token

    def revoke_token(self, token: str, timeout: float = 10.0) -> None:
        """Refuse the scoped ``token`` from now on and close its hub connections.

        Raises:
            AuthError: Not a live scoped token of this runtime (or the admin token).
            RuntimeError: The runtime is not running.
            HubStoreError: The hub's store failed.
        """
        if self._loop is None or not self._thread.is_alive():
            msg = "the runtime is not running: nothing to revoke a token on"
            raise RuntimeError(msg)

        async def revoke() -> None:
            grant = await self.runtime.auth.revoke(token)
            await self.runtime.hub.revoke(grant)

        asyncio.run_coroutine_threadsafe(revoke(), self._loop).result(timeout)

    @property
    def running(self) -> bool:
        """Whether the runtime is still serving (not closed, its thread alive)."""
        return self._thread.is_alive()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        auth = "" if self.runtime.config.auth else " auth=off"
        return f"<glm_live runtime {self.url} backend={self.runtime.config.backend}{auth} {state}>"

    def close(self, timeout: float = 10.0) -> None:
        """Stop the server and wait (at most ``timeout`` seconds) for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    backend: str = "sim",
    upstream: str | None = None,
    seed: int | None = None,
    token: str | None = None,
    auth: bool | None = None,
    config: RuntimeConfig | str | Path | None = None,
    sim: dict[str, Any] | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    redis: str | None = None,
    cors_origins: Iterable[str] | None = None,
    sse_keepalive_s: float | None = None,
    log_level: str = "warning",
    startup_timeout: float = 15.0,
) -> ServerHandle:
    """Start the runtime on a background thread; return once its start-up completed.

    The socket is bound and listening before uvicorn starts, so the URL is known at once and
    a connection made while the app starts up waits in the backlog instead of being refused.

    Args:
        host: Address to bind (loopback by default).
        port: Port; 0 picks a free one.
        backend: ``sim`` (the simulated GLM-4.6), ``glm`` (real GLM-4.6 with ``ZAI_API_KEY``)
            or ``openai`` (any OpenAI-compatible ``upstream``).
        upstream: The upstream base URL for the proxy backends.
        seed: The simulator's seed.
        token: The admin token clients send as ``Authorization: Bearer <token>`` (default
            ``GLM_LIVE_TOKEN``, else one is made: ``handle.token``). Never printed here: the
            output would land in a notebook.
        auth: ``False`` switches authentication off (loopback only; a warning is logged);
            default: on (or as ``config`` says).
        ssl_certfile: Serve TLS (``https://``, ``wss://``) with this certificate...
        ssl_keyfile: ...and this private key.
        config: A :class:`RuntimeConfig` or a TOML config file.
        sim: Simulator defaults (``ttft_ms``, ``itl_ms``, ``tokens``, ...).
        cors_origins: Origins (``https://app.example``) whose web pages may call the runtime
            from a browser and open its hub (default: none, or as ``config`` says).
        sse_keepalive_s: Seconds a stream may stay silent before an SSE keep-alive comment
            (default 15, or as ``config`` says; 0: never).
        redis: Keep the hub's rooms in this Redis (``redis://host:port/db``; default
            ``GLM_LIVE_REDIS``, else in memory), shared with every runtime that uses it.
        log_level: uvicorn's log level.
        startup_timeout: Seconds to wait for the app's start-up (the hub, a Redis
            connection); the socket itself listens before this returns.

    Raises:
        InsecureBindError: Authentication off on a non-loopback host.
        ConfigError: A bad setting (a token with ``auth=False``).
        RuntimeError: The address cannot be bound, the server failed to start (a bad TLS
            file, an unreachable Redis: the reason is chained), or it did not start within
            ``startup_timeout`` (it is told to stop; the call does not wait for it).
    """
    runtime_config = build_config(
        config,
        host=host,
        port=port,
        backend=backend,
        upstream=upstream,
        seed=seed,
        token=token,
        auth=auth,
        sim=sim,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        redis=redis,
        cors_origins=None if cors_origins is None else tuple(cors_origins),
        sse_keepalive_s=sse_keepalive_s,
    )
    runtime = Runtime(runtime_config)
    try:
        sock = bind_socket(runtime_config.host, runtime_config.port)
    except OSError as exc:
        msg = f"the runtime cannot listen on {runtime_config.host}:{runtime_config.port}: {exc}"
        raise RuntimeError(msg) from exc
    runtime.self_url = url = root_url(runtime_config, sock)
    loops: list[asyncio.AbstractEventLoop] = []
    startup = StartupSignal(runtime, on_started=lambda: loops.append(asyncio.get_running_loop()))
    server = uvicorn.Server(uvicorn_config(runtime, log_level, app=startup))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
        finally:
            sock.close()  # uvicorn closes it after serving, but not when start-up failed
            startup.settled.set()  # wake the caller if start-up never completed

    thread = threading.Thread(target=run, name="glm-live-runtime", daemon=True)
    thread.start()
    if not startup.settled.wait(startup_timeout):
        # Still starting (e.g. the hub waiting on a silent Redis): tell uvicorn to stop as
        # soon as it can; the daemon thread ends with it.
        server.should_exit = True
        msg = f"the runtime did not start within {startup_timeout} s"
        raise RuntimeError(msg)
    if not startup.started:
        cause = startup.error or (failure[0] if failure else None)
        reason = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        msg = f"the runtime failed to start on {url}{reason}"
        raise RuntimeError(msg) from cause
    return ServerHandle(runtime, server, thread, url, loops[0] if loops else None)
