"""Standing in front of real GLM (``glm``) or any OpenAI-compatible upstream (``openai``).

The request body goes upstream as received (minus the simulator's ``sim`` object; fields such
as ``stream_options``, ``thinking`` and ``request_id`` go as given), with the
upstream key from the environment; the client's own ``Authorization`` (the runtime token)
never leaves. The response comes back byte for byte as it arrives: a stream chunk by chunk,
an error with its status and GLM body. A client that disconnects closes the upstream request.
An upstream stream that goes quiet (a model thinking) gets ``: keep-alive`` comments between
its events (:mod:`.keepalive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import httpx

from ..protocols.glm import DEFAULT_BASE_URL
from ..transport.sse_client import safe_url
from ..wire._secret import Secret, scrub
from .asgi import Receive, Send, cut_connection, send_json, wait_disconnect
from .chatreq import error_body
from .config import ConfigError, RuntimeConfig
from .keepalive import with_keepalive

__all__ = ["Proxy"]

# Response headers worth passing on; hop-by-hop and length headers are the server's business.
_FORWARDED = ("content-type", "retry-after", "retry-after-ms", "x-request-id", "content-encoding")


class Proxy:
    """Forwards chat completions to ``base_url``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float = 300.0,
        keepalive_s: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.keepalive_s = keepalive_s
        self._key = Secret(api_key) if api_key else None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )

    @classmethod
    def for_config(cls, config: RuntimeConfig) -> Proxy:
        """The proxy a runtime config asks for; :class:`ConfigError` if its key is missing."""
        if config.backend == "glm":
            key = os.environ.get("ZAI_API_KEY") or os.environ.get("ZHIPUAI_API_KEY")
            if not key:
                msg = "the glm backend needs an API key: set ZAI_API_KEY (or ZHIPUAI_API_KEY)"
                raise ConfigError(msg)
            return cls(config.upstream or DEFAULT_BASE_URL, key, keepalive_s=config.sse_keepalive_s)
        assert config.upstream is not None
        return cls(
            config.upstream, os.environ.get("OPENAI_API_KEY"), keepalive_s=config.sse_keepalive_s
        )

    def __repr__(self) -> str:
        return f"Proxy({safe_url(self.base_url)!r}, api_key={'set' if self._key else 'unset'})"

    async def aclose(self) -> None:
        await self._client.aclose()

    async def models(self) -> dict[str, Any] | None:
        """The upstream's ``GET /models`` list, or ``None`` if it has none (an error status,
        not an OpenAI list, or unreachable: the caller then lists the catalog)."""
        headers = {"accept": "application/json"}
        if self._key is not None:
            headers["authorization"] = f"Bearer {self._key.reveal()}"
        try:
            response = await self._client.get(
                self.base_url + "/models", headers=headers, timeout=10.0
            )
            listing = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(listing, dict) or not isinstance(listing.get("data"), list):
            return None
        return listing

    async def handle(self, body: dict[str, Any], receive: Receive, send: Send) -> int:
        """Forward one request; returns the status sent to the client."""
        body.pop("sim", None)
        headers = {"accept": "text/event-stream, application/json", "accept-encoding": "identity"}
        if self._key is not None:
            headers["authorization"] = f"Bearer {self._key.reveal()}"
        request = self._client.build_request(
            "POST", self.base_url + "/chat/completions", json=body, headers=headers
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            message = scrub(
                f"the upstream {safe_url(self.base_url)} could not be reached: "
                f"{type(exc).__name__}: {exc}",
                [self._key.reveal() if self._key else None],
            )
            await send_json(send, 502, error_body("502", message))
            return 502
        pump = asyncio.ensure_future(self._pump(response, send))
        gone = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not pump.done():
                pump.cancel()  # the client left: stop reading upstream
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await pump
            await response.aclose()
        return response.status_code

    async def _pump(self, response: httpx.Response, send: Send) -> None:
        headers = [
            (name.encode(), value.encode())
            for name, value in response.headers.items()
            if name.lower() in _FORWARDED
        ]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        chunks = response.aiter_raw()
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            chunks = with_keepalive(chunks, self.keepalive_s)
        try:
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError:
            # The upstream dropped mid-stream: drop the client too, so it sees the same.
            cut_connection(send)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
