"""The runtime's ASGI app: chat completions (simulated or proxied), health and metrics.

``Runtime`` is one ASGI app. Chat completions are handled by its own raw ASGI handler, ahead
of Starlette, so that ``send`` reaches the simulator's pacer as the server gave it (Starlette's
middleware would wrap it, and the pacer's direct path, :mod:`._uvicorn_fast`, needs the
server's own). Everything else (health, metrics, and what later floors add) is a Starlette app
behind it.

Security: authentication is always on unless switched off (``auth=False``, loopback only).
A runtime built without a token makes one (:class:`Runtime`). Every HTTP route but ``/health``
requires ``Authorization: Bearer <token>``: the admin token (compared in constant time, with
no await: the chat path's fast path) or a scoped token from ``POST /auth/tokens``. Who may do
what is drawn in :mod:`.httpauth`; the refusal says what to send, never a token. The HTTP API
and the hub share one :class:`~.auth.Authenticator`, and one
:class:`~.origins.OriginPolicy`. Before authentication, :mod:`.edges` answers CORS preflights
and refuses cross-site writes and non-JSON bodies (even with authentication off).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import logging
import secrets
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from ..agents.builtin import builtin_workflows
from ..agents.core import Workflow
from ..protocols.glm import GLMClient
from ..wire.auth import AuthError, Grant, admin_grant
from ._uvicorn_fast import direct_sink
from .asgi import (
    ConnectionCut,
    Receive,
    Scope,
    Send,
    cut_connection,
    send_json,
    wait_disconnect,
)
from .auth import Authenticator
from .chatreq import BadRequest, ChatRequest, error_body, parse_chat_request, parse_json_body
from .config import RuntimeConfig
from .edges import PREFLIGHT, check_browser_edges, method_not_allowed, not_found, with_cors_headers
from .httpauth import CHALLENGE, GRANT, bearer_token, forbidden, grant_of, refusal, unavailable
from .hub.memory import MemoryStore
from .hub.service import SERVER_SEND, Hub
from .hub.store import HubStoreError, RoomStore
from .models import model_routes
from .origins import OriginPolicy
from .promstats import RuntimeMetrics
from .proxy import Proxy
from .runs import RunService
from .sim.engine import Answer, HTTPFault, Simulator
from .sim.pacer import LagHistogram, PacedStream, Pacer
from .threads import MemoryThreadStore, ThreadStore
from .tokens import TokenService

__all__ = ["CHAT_PATHS", "Runtime", "create_app"]

logger = logging.getLogger("glm_live.server")

#: Where chat completions are served: GLM's native path and the OpenAI-style one.
CHAT_PATHS = ("/api/paas/v4/chat/completions", "/v1/chat/completions")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def create_app(config: RuntimeConfig | None = None) -> Runtime:
    """The runtime as an ASGI app, for any ASGI server."""
    return Runtime(config or RuntimeConfig())


class Runtime:
    """The embedded runtime: one ASGI app serving the simulator or a proxy.

    With authentication on and no token in ``config``, the runtime makes one here (the only
    place one is made); :attr:`config` then carries it (never in its repr).
    """

    def __init__(self, config: RuntimeConfig) -> None:
        if config.auth and not config.token:
            config = dataclasses.replace(config, token=secrets.token_urlsafe(32))
        elif not config.auth:
            logger.warning(
                "authentication is off: anyone who can reach %s:%s (any local user) may use "
                "this runtime as its admin",
                config.host,
                config.port,
            )
        self.config = config
        #: Which browser pages may call the runtime: one rule for HTTP and the hub.
        self.origins = OriginPolicy(config.cors_origins, local_only=not config.auth)
        self.lag = LagHistogram()
        self.pacer = Pacer(self.lag, keepalive_s=config.sse_keepalive_s)
        self.metrics = RuntimeMetrics(self.lag)
        self.simulator = Simulator(config.sim)
        self.hub = _hub_for(config, self.origins)
        #: The credentials check, shared with the hub.
        self.auth = self.hub.auth
        self.proxy = Proxy.for_config(config) if config.backend != "sim" else None
        self.active_streams = 0
        self.requests_in_flight = 0
        self.metrics.in_flight.set_function(lambda: self.requests_in_flight)
        #: The runtime's own root URL, once it listens (agents chat through it).
        self.self_url: str | None = None
        self._agent_client: GLMClient | None = None
        self.runs = RunService(
            self.hub,
            builtin_workflows(),
            self._agents_client,
            config.sse_keepalive_s,
            sim_seed=config.sim.seed,
            threads=_threads_for(config),
        )
        self._admin_header = f"Bearer {config.token}".encode() if config.auth else None
        self._admin = admin_grant()
        tokens = TokenService(self.hub)
        routes: list[Route | WebSocketRoute] = [
            Route("/health", self._health, methods=["GET"]),
            Route("/metrics", self._metrics, methods=["GET"]),
            WebSocketRoute("/ws", self.hub.endpoint),
            Route("/agents", self.runs.listing, methods=["GET"]),
            # One route for both methods, so that a 405 there allows both.
            Route("/agents/{name}", self.runs.agent_route, methods=["GET", "POST"]),
            Route("/runs/{run_id}", self.runs.status, methods=["GET"]),
            Route("/auth/tokens", tokens.tokens, methods=["POST"]),
            Route("/auth/revoke", tokens.revoke, methods=["POST"]),
            Route("/auth/ws-ticket", tokens.ws_ticket, methods=["POST"]),
            *model_routes(self.proxy),
        ]
        listing = [f"POST {path}" for path in CHAT_PATHS] + [
            f"{_methods(r)} {r.path}" if isinstance(r, Route) else f"GET {r.path} (WebSocket)"
            for r in routes
        ]
        self.starlette = Starlette(
            routes=routes,
            lifespan=self._lifespan,
            exception_handlers={404: not_found(listing), 405: method_not_allowed},
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> Any:
        await self.hub.start()  # a Redis hub that cannot reach Redis stops the start-up here
        yield
        await self.hub.aclose()
        if self.proxy is not None:
            await self.proxy.aclose()
        if self._agent_client is not None:
            await self._agent_client.aclose()
        await self.runs.threads.store.aclose()

    def _agents_client(self) -> GLMClient:
        """The GLM client agents chat through: this runtime itself (simulator or proxy)."""
        if self._agent_client is None:
            if self.self_url is None:
                msg = "the runtime's own URL is not known yet: it is set once it listens"
                raise RuntimeError(msg)
            self._agent_client = GLMClient(
                base_url=self.self_url + "/v1", api_key=self.config.token or "", max_retries=2
            )
        return self._agent_client

    def register(self, workflow: Workflow) -> None:
        """Serve ``workflow`` at ``POST /agents/<name>``."""
        self.runs.workflows[workflow.name] = workflow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            # Browsers first: preflights need no credentials, and a cross-site write is
            # refused whoever sends it (even with authentication off).
            json_body = path in CHAT_PATHS or path.startswith(("/agents/", "/auth/"))
            answered = await check_browser_edges(self.origins, scope, send, json_body)
            if answered is not None:
                if answered != PREFLIGHT:
                    self.metrics.errors.labels(answered).inc()
                return
            send = with_cors_headers(self.origins, scope, send)
            if path == "/health":
                scope[GRANT] = await self._grant_or_none(scope)
            else:
                grant = self._admin_fast(scope)
                if grant is None:
                    grant = await self._authenticate(scope, send)
                    if grant is None:
                        return  # refused: the answer is sent
                scope[GRANT] = grant
            if path in CHAT_PATHS:
                if scope["method"] == "POST":
                    await self.chat(scope, receive, send)
                else:
                    message = (
                        f"{path} takes POST (a chat completions request), not {scope['method']}"
                    )
                    await send_json(send, 405, error_body("405", message), [(b"allow", b"POST")])
                return
        # The hub checks WebSocket credentials itself, after accepting, so that a refused
        # client learns why from the close code instead of a bare HTTP 403. Under uvicorn it
        # writes frames straight to the connection and cuts clients that stopped reading
        # (server/_uvicorn_fast.py), so it gets the server's own send, which Starlette wraps.
        elif kind == "websocket":
            scope[SERVER_SEND] = send
        await self.starlette(scope, receive, send)

    # -- security ------------------------------------------------------------------------------

    def _admin_fast(self, scope: Scope) -> Grant | None:
        """The admin's grant if the request carries exactly ``Bearer <admin token>``: one
        constant-time comparison, no await (every chat request passes here)."""
        expected = self._admin_header
        if expected is None:
            return self._admin  # authentication off: everyone is the admin
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                return self._admin if hmac.compare_digest(value, expected) else None
        return None

    async def _authenticate(self, scope: Scope, send: Send) -> Grant | None:
        """The grant of the request's credentials; ``None`` once a refusal was sent."""
        try:
            return await self.auth.authenticate(bearer_token(scope))
        except AuthError as exc:
            self.metrics.errors.labels("unauthorised").inc()
            status, body = refusal(exc)
            await send_json(send, status, body, CHALLENGE)
        except HubStoreError as exc:
            logger.warning("cannot check credentials: %s", exc)
            status, body = unavailable("check the credentials")
            await send_json(send, status, body)
        return None

    async def _grant_or_none(self, scope: Scope) -> Grant | None:
        """The grant of valid credentials, else ``None`` (``/health`` is open to all)."""
        grant = self._admin_fast(scope)
        if grant is not None:
            return grant
        with contextlib.suppress(AuthError, HubStoreError):
            token = bearer_token(scope)
            if token is not None:
                return await self.auth.authenticate(token)
        return None

    # -- plain routes --------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        """Open to all: whether it is up and what it serves; with valid credentials also the
        hub and the load (nothing here is a secret, but strangers learn nothing they need)."""
        body: dict[str, Any] = {
            "status": "ok",
            "backend": self.config.backend,
            "simulated": self.config.backend == "sim",
            "model": "glm-4.6-sim" if self.config.backend == "sim" else None,
            "auth": self.auth.enabled,
        }
        if request.scope.get(GRANT) is not None:
            body["requests_in_flight"] = self.requests_in_flight
            body["tasks"] = len(asyncio.all_tasks())  # a soak watches this stay flat
            body["hub"] = self.hub.describe()
        return JSONResponse(body)

    async def _metrics(self, request: Request) -> Response:
        grant = grant_of(request)
        if not grant.admin:
            return forbidden(grant, "read /metrics")
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- chat completions ----------------------------------------------------------------------

    async def chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one chat-completions request, whatever the backend."""
        self.pacer.poll()
        started = time.perf_counter()
        route = scope["path"]
        metrics = self.metrics
        self.requests_in_flight += 1
        status = 500
        try:
            body = parse_json_body(await self._read_body(scope, receive))
            if self.proxy is not None:
                status = await self.proxy.handle(body, receive, send)
            else:
                status = await self._simulate(body, started, receive, send, route)
        except BadRequest as exc:
            status = exc.status
            metrics.errors.labels("bad_request").inc()
            await send_json(send, exc.status, exc.body())
        except HTTPFault as fault:
            status = fault.status
            metrics.errors.labels(f"fault_{fault.code}").inc()
            headers = [(k.encode(), v.encode()) for k, v in fault.headers.items()]
            await send_json(send, fault.status, error_body(fault.code, fault.message), headers)
        finally:
            self.requests_in_flight -= 1
            metrics.requests.labels(route, str(status)).inc()
            metrics.duration.labels(route).observe(time.perf_counter() - started)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.config.max_body_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise BadRequest(
                    f"the request body of {int(value)} bytes exceeds the limit of {limit} "
                    "bytes; shorten the messages or raise max_body_bytes"
                )
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client went away before sending the whole body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BadRequest(
                    f"the request body exceeds the limit of {limit} bytes; shorten the "
                    "messages or raise max_body_bytes"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _simulate(
        self, body: dict[str, Any], started: float, receive: Receive, send: Send, route: str
    ) -> int:
        loop_start = asyncio.get_running_loop().time() - (time.perf_counter() - started)
        request = parse_chat_request(body, self.config.sim, openai=route.startswith("/v1/"))
        self.simulator.check_http_fault(request.sim)
        answer = self.simulator.answer(request)
        self.active_streams += 1
        released = False

        def release(_: object = None) -> None:
            nonlocal released
            if not released:
                released = True
                self.active_streams -= 1

        try:
            if not request.stream:
                return await self._simulate_whole(request, answer, receive, send)
            plan = self.simulator.stream_plan(request, answer, self.active_streams)
            self.pacer.poll()
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            loop = asyncio.get_running_loop()
            direct = direct_sink(send) if self.config.uvicorn_fast_path else None
            stream = PacedStream(plan, send, loop.create_future(), direct)
            # The stream leaves the count when its last frame is written, not when this
            # handler wakes up: a closed-loop client's next request can arrive in between,
            # and would be planned as if one stream too many were in flight.
            stream.on_last_frame = release
            stream.done.add_done_callback(release)
            self.pacer.start(stream)
            outcome = await _until_done_or_gone(stream.done, receive)
            if outcome == "gone":
                stream.close("gone")
            if stream.first_at is not None:
                self.metrics.ttft.observe(stream.first_at - loop_start)
            self.metrics.count_tokens(plan.tokens_in(stream.index))
            if outcome == "drop" and stream.direct is None:
                raise ConnectionCut  # no connection to close: let the server cut it
            return 200
        finally:
            release()

    async def _simulate_whole(
        self, request: ChatRequest, answer: Answer, receive: Receive, send: Send
    ) -> int:
        sim = request.sim
        seconds = self.simulator.generation_seconds(request, answer, self.active_streams)
        if sim.fault == "stall":
            seconds = sim.stall_s
        gone = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await asyncio.wait_for(asyncio.shield(gone), seconds)
            return 499  # the client left before the answer was ready
        except TimeoutError:
            pass
        finally:
            gone.cancel()
        if sim.fault == "drop":
            cut_connection(send)
            return 200
        reason = "network_error" if sim.fault == "network_error" else None
        self.metrics.count_tokens({"content": len(answer.content)})
        await send_json(send, 200, self.simulator.completion_body(answer, reason))
        return 200


async def _until_done_or_gone(done: asyncio.Future[str], receive: Receive) -> str:
    """Wait for the stream's outcome, or ``"gone"`` if the client disconnects first."""
    gone = asyncio.ensure_future(wait_disconnect(receive))
    waiters: set[asyncio.Future[Any]] = {done, gone}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if done.done():
            outcome = done.result()
            if outcome == "drop":
                # Let the server notice the closed connection before we return.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(gone), 1.0)
            return outcome
        return "gone"
    finally:
        gone.cancel()


def _methods(route: Route) -> str:
    """A route's methods as the 404 message lists them (HEAD goes without saying)."""
    return "/".join(sorted(m for m in route.methods or () if m != "HEAD"))


def _threads_for(config: RuntimeConfig) -> ThreadStore:
    """Where the AG-UI threads live: in memory, or with ``config.redis`` in that Redis (so
    that a run interrupted on one runtime resumes on another, or after a restart)."""
    if config.redis is None:
        return MemoryThreadStore(config.threads_max, config.threads_ttl_s)
    from .redis_threads import RedisThreadStore  # redis-py is an optional dependency

    return RedisThreadStore(
        config.redis,
        prefix=config.redis_prefix,
        max_threads=config.threads_max,
        ttl_s=config.threads_ttl_s,
    )


def _hub_for(config: RuntimeConfig, origins: OriginPolicy) -> Hub:
    """The in-memory hub, or with ``config.redis`` one whose rooms live in Redis Streams; its
    :class:`~.auth.Authenticator` is the runtime's, for the HTTP API too."""
    store: RoomStore
    if config.redis is None:
        store = MemoryStore()
    else:
        from .hub.redis import RedisStore  # redis-py is an optional dependency

        store = RedisStore(config.redis, prefix=config.redis_prefix)
    auth = Authenticator(config.token if config.auth else None, store)
    return Hub(
        store,
        auth=auth,
        allowed_origins=origins,
        limits=config.hub,
        direct_writes=config.uvicorn_fast_path,
    )
