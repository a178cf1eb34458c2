"""Running the runtime: in-process on a background thread (:func:`serve`), or in the
foreground for ``glm-live serve``.

A runtime holding a GLM key must never be open to the network by accident: bound to anything
but a loopback address, it refuses to start without a token.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from .app import Runtime
from .config import ConfigError, RuntimeConfig, config_from_mapping, load_config

__all__ = ["InsecureBindError", "ServerHandle", "build_config", "is_loopback", "serve"]


class InsecureBindError(ConfigError):
    """Asked to listen beyond loopback without a token."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_config(
    config: RuntimeConfig | str | Path | None = None, **overrides: Any
) -> RuntimeConfig:
    """A :class:`RuntimeConfig` from a config object or file plus overrides.

    The token comes from ``token=`` or ``GLM_LIVE_TOKEN``, the hub's Redis from ``redis=`` or
    ``GLM_LIVE_REDIS``. Raises :class:`InsecureBindError`
    for a non-loopback host without one.
    """
    seed = overrides.pop("seed", None)
    sim = dict(overrides.pop("sim", None) or {})
    if seed is not None:
        sim["seed"] = seed
    overrides["sim"] = sim
    if overrides.get("token") is None:
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
    if not is_loopback(result.host) and not result.token:
        msg = (
            f"refusing to listen on {result.host} without a token: anyone who can reach it "
            "could use the runtime (and its upstream key). Pass --token or set GLM_LIVE_TOKEN, "
            "or bind to 127.0.0.1."
        )
        raise InsecureBindError(msg)
    return result


def uvicorn_config(runtime: Runtime, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        runtime,
        host=runtime.config.host,
        port=runtime.config.port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        ws_max_size=runtime.hub.limits.max_message_bytes,
        ws_ping_interval=20.0,
        ssl_certfile=runtime.config.ssl_certfile,
        ssl_keyfile=runtime.config.ssl_keyfile,
    )


class ServerHandle:
    """A runtime running on a background thread. ``url`` is its root; ``close()`` stops it."""

    def __init__(self, runtime: Runtime, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.runtime = runtime
        self._server = server
        self._thread = thread
        sockets = [s for srv in server.servers for s in srv.sockets]
        host, port = sockets[0].getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if runtime.config.ssl_certfile else "http"
        #: The runtime's root URL, e.g. ``http://127.0.0.1:54321``.
        self.url = f"{scheme}://{host}:{port}"
        self.port = int(port)
        runtime.self_url = self.url

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``<url>/v1``), for ``GLMClient`` or the openai SDK."""
        return self.url + "/v1"

    def __repr__(self) -> str:
        state = "running" if self._thread.is_alive() else "stopped"
        return f"<glm_live runtime {self.url} backend={self.runtime.config.backend} {state}>"

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
    config: RuntimeConfig | str | Path | None = None,
    sim: dict[str, Any] | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    redis: str | None = None,
    log_level: str = "warning",
    startup_timeout: float = 15.0,
) -> ServerHandle:
    """Start the runtime on a background thread and return once it accepts connections.

    Args:
        host: Address to bind (loopback unless a token is given).
        port: Port; 0 picks a free one.
        backend: ``sim`` (the simulated GLM-4.6), ``glm`` (real GLM-4.6 with ``ZAI_API_KEY``)
            or ``openai`` (any OpenAI-compatible ``upstream``).
        upstream: The upstream base URL for the proxy backends.
        seed: The simulator's seed.
        token: Require ``Authorization: Bearer <token>`` (default ``GLM_LIVE_TOKEN``).
        ssl_certfile: Serve TLS (``https://``, ``wss://``) with this certificate...
        ssl_keyfile: ...and this private key.
        config: A :class:`RuntimeConfig` or a TOML config file.
        sim: Simulator defaults (``ttft_ms``, ``itl_ms``, ``tokens``, ...).
        redis: Keep the hub's rooms in this Redis (``redis://host:port/db``; default
            ``GLM_LIVE_REDIS``, else in memory), shared with every runtime that uses it.
        log_level: uvicorn's log level.
        startup_timeout: Seconds to wait for the server to start.

    Raises:
        InsecureBindError: A non-loopback host without a token.
        ConfigError: A bad setting.
        RuntimeError: The server did not start in time (the reason is chained).
    """
    runtime_config = build_config(
        config,
        host=host,
        port=port,
        backend=backend,
        upstream=upstream,
        seed=seed,
        token=token,
        sim=sim,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        redis=redis,
    )
    runtime = Runtime(runtime_config)
    server = uvicorn.Server(uvicorn_config(runtime, log_level))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="glm-live-runtime", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if failure or not thread.is_alive():
            msg = f"the runtime failed to start on {host}:{port}"
            raise RuntimeError(msg) from (failure[0] if failure else None)
        if time.monotonic() > deadline:
            server.should_exit = True
            msg = f"the runtime did not start within {startup_timeout} s"
            raise RuntimeError(msg)
        time.sleep(0.01)
    return ServerHandle(runtime, server, thread)
