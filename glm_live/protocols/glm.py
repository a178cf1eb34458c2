"""GLM chat completions (GLM-4.5 to GLM-5.1, and any OpenAI-compatible endpoint), streamed.

:class:`GLMClient` builds the request, streams it through :class:`~glm_live.stream.EventSource`
(one connection, no reconnect: a chat completion cannot be resumed), parses each chunk leniently
(``object`` may be missing, ``finish_reason`` absent rather than null), and assembles content,
reasoning, tool calls (by ``index``, whole or fragmented, also in the chunk that carries
``finish_reason``), usage and timings into a :class:`Completion`.

Failures are typed (:mod:`glm_live.errors`): an error response becomes the right
:class:`~glm_live.errors.GLMError` from its business code; ``finish_reason`` ``sensitive`` and
``network_error`` and a dropped connection raise after every chunk received was yielded, with
the completion so far on ``.partial``. Retryable failures are retried with backoff only while
nothing has been yielded (``max_retries=0`` opts out).

The API key lives in a :class:`~glm_live.wire._secret.Secret`: it appears in the Authorization
header and nowhere else, not in a repr, a log line, an exception or the timings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpx

from ..errors import (
    ContentFilteredError,
    ContentTypeError,
    EventTooLarge,
    GLMError,
    HTTPStatusError,
    MalformedResponseError,
    StreamInterrupted,
)
from ..transport._closing import AsyncClosing
from ..transport.sse_client import ConnectionFailed, EventSource, Observer, safe_url
from ..wire._secret import Secret, scrub
from ..wire.chat import (
    Chunk,
    Completion,
    MessagesLike,
    Timings,
    ToolCall,
    ToolCallDelta,
    build_body,
    error_from_response,
)
from ..wire.retry import Backoff, parse_retry_after
from ..wire.sse import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_SIZE

# The chat values live on the wire floor; they are re-exported here, where glm_live.glm (the
# module's old path) always had them.
__all__ = [
    "DEFAULT_BASE_URL",
    "ChatStream",
    "Chunk",
    "Completion",
    "GLMClient",
    "Timings",
    "ToolCall",
    "ToolCallDelta",
]

logger = logging.getLogger("glm_live.glm")

#: The international GLM endpoint (``https://open.bigmodel.cn/api/paas/v4`` in China).
DEFAULT_BASE_URL = "https://api.z.ai/api/paas/v4"


def _preserves_thinking(body: Mapping[str, Any]) -> bool:
    """Whether the request asks GLM to keep earlier turns' reasoning (preserved thinking)."""
    thinking = body.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("clear_thinking") is False


# --- the client ----------------------------------------------------------------------------


class GLMClient(AsyncClosing):
    """A client for GLM chat completions (GLM-4.5 to GLM-5.1), or any OpenAI-compatible
    endpoint.

    Requests get the model's defaults from :data:`glm_live.wire.models.CATALOG` (see
    :meth:`stream`); a usage-only last chunk (OpenAI's ``stream_options.include_usage``) and
    GLM's usage on the finishing chunk are both read into :attr:`Completion.usage`.

    Args:
        base_url: The API root; ``/chat/completions`` is appended. Defaults to ``ZAI_BASE_URL``
            or :data:`DEFAULT_BASE_URL`.
        api_key: The key; ``None`` reads ``ZAI_API_KEY``, then ``ZHIPUAI_API_KEY``; ``""``
            sends none (endpoints that need none, like the embedded simulator).
        model: The model asked for unless a call says otherwise (``glm-4.6`` by default).
        max_retries: Retries of a retryable failure before the first chunk (0 opts out).
        backoff: Delay policy between those retries.
        connect_timeout: Seconds to connect.
        idle_timeout: Seconds without a byte before the stream counts as dropped.
        headers: Extra headers on every request.
        transport: An httpx transport (tests, proxies).
        verify: TLS verification: ``True`` (the default CAs), a CA bundle path, an
            ``ssl.SSLContext``, or ``False`` (not recommended).
        max_line_size: Largest SSE line accepted, in bytes.
        max_event_size: Largest SSE event accepted, in characters.
        observers: Connection observers, passed to every request's event source.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str = "glm-4.6",
        *,
        max_retries: int = 2,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float | None = 120.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | str | bool = True,
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        observers: Iterable[Observer] = (),
    ) -> None:
        base = base_url or os.environ.get("ZAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        if api_key is None:
            api_key = os.environ.get("ZAI_API_KEY") or os.environ.get("ZHIPUAI_API_KEY")
        key = api_key
        self._api_key = Secret(key) if key else None
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self._extra_headers = dict(headers or {})
        self._transport = transport
        if isinstance(verify, str):  # a CA bundle: verification stays on, with that CA
            verify = ssl.create_default_context(cafile=verify)
        self._verify = verify
        self.max_line_size = max_line_size
        self.max_event_size = max_event_size
        self.observers = list(observers)
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        key = "set" if self._api_key else "unset"
        return (
            f"GLMClient(base_url={safe_url(self.base_url)!r}, model={self.model!r}, api_key={key})"
        )

    @property
    def url(self) -> str:
        """The chat-completions URL."""
        return self.base_url + "/chat/completions"

    @property
    def has_api_key(self) -> bool:
        """Whether a key is configured (the key itself is never exposed)."""
        return self._api_key is not None

    @property
    def api_key(self) -> Secret | None:
        """The key, masked (``Secret('***')``); ``None`` when none is configured."""
        return self._api_key

    def open(self, body: Mapping[str, Any]) -> EventSource:
        """The event source of one request with ``body``, on this client's connection pool
        and with its headers; nothing is sent until it is iterated. :class:`ChatStream` calls
        this for each attempt; :meth:`stream` is the way in for everyone else."""
        headers = {"User-Agent": "glm_live", **self._extra_headers}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                verify=self._verify,
                follow_redirects=True,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
        return EventSource(
            self.url,
            "POST",
            json=body,
            headers=headers,
            client=self._http,
            connect_timeout=self.connect_timeout,
            idle_timeout=self.idle_timeout,
            reconnect=False,
            max_line_size=self.max_line_size,
            max_event_size=self.max_event_size,
            observers=self.observers,
        )

    def stream(
        self, messages: MessagesLike, *, clear_thinking: bool | None = None, **params: Any
    ) -> ChatStream:
        """Start a streamed completion; iterate the result for :class:`Chunk` values.

        ``params`` are request fields (``thinking``, ``tools``, ``tool_choice``,
        ``tool_stream``, ``temperature``, ``top_p``, ``max_tokens``, ``stop``,
        ``stream_options``, ``request_id``, ``model``, and any other, passed through
        unchanged). The model's defaults from :data:`glm_live.wire.models.CATALOG` are filled
        in where a field is left out (GLM-4.7, GLM-5, GLM-5.1: ``thinking`` enabled); a model
        not in the catalog gets none.

        ``clear_thinking=False`` asks for preserved thinking (GLM-4.7 and later): it goes into
        ``thinking`` as ``{"type": "enabled", "clear_thinking": false}``, and the completion's
        :meth:`~Completion.to_message` then always sends the reasoning back, as GLM requires.

        The returned :class:`ChatStream` has ``.completion``, which grows as chunks arrive.
        Nothing is sent until iteration starts.
        """
        model = params.pop("model", None) or self.model
        return ChatStream(self, build_body(model, messages, params, clear_thinking=clear_thinking))

    async def complete(
        self, messages: MessagesLike, *, clear_thinking: bool | None = None, **params: Any
    ) -> Completion:
        """Stream a completion to its end and return it (timings included)."""
        stream = self.stream(messages, clear_thinking=clear_thinking, **params)
        async with stream:
            async for _ in stream:
                pass
        return stream.completion

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class ChatStream(AsyncClosing):
    """One streamed completion: an async iterator of :class:`Chunk` with a growing
    :attr:`completion`.

    Closing it (``aclose()``, leaving ``async with``, or breaking out of the loop and letting
    it be collected) drops the connection, which tells the server to stop.
    """

    def __init__(self, client: GLMClient, body: dict[str, Any]) -> None:
        self._client = client
        key = client.api_key
        self._secrets = [key.reveal()] if key is not None else []  # kept out of every error
        self.body = body
        self.completion = Completion()
        self.completion.keep_reasoning = _preserves_thinking(body)
        self._iterator: AsyncIterator[Chunk] | None = None
        self._source: EventSource | None = None

    def __repr__(self) -> str:
        state = "done" if self.completion.done else f"{self.completion.chunks} chunks"
        return f"<ChatStream {self.body.get('model')!r} {state}>"

    def __aiter__(self) -> AsyncIterator[Chunk]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def aclose(self) -> None:
        """Stop the stream and drop the connection."""
        iterator = self._iterator
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()
        if self._source is not None:
            await self._source.aclose()

    async def _run(self) -> AsyncIterator[Chunk]:
        client = self._client
        backoff = client.backoff or Backoff(initial=0.5, maximum=8.0)
        attempt = 0
        while True:
            attempt += 1
            try:
                async for chunk in self._attempt(attempt):
                    yield chunk
                return
            except GLMError as error:
                # Nothing has reached the caller yet, so a retry cannot duplicate anything.
                if (
                    error.retryable
                    and self.completion.chunks == 0
                    and attempt <= client.max_retries
                ):
                    delay = backoff.next_delay(getattr(error, "retry_after", None))
                    logger.info("%s; retry %d in %.2f s", error, attempt, delay)
                    await asyncio.sleep(delay)
                    continue
                raise

    async def _attempt(self, attempt: int) -> AsyncIterator[Chunk]:
        """One request: every failure leaves as a :class:`GLMError`."""
        completion = self.completion
        timings = completion.timings = Timings(attempts=attempt)
        source = self._source = self._client.open(self.body)
        timings.wall_anchor_ns = time.time_ns()
        timings.request_start_ns = time.perf_counter_ns()
        done = False
        try:
            async for event in source:
                arrival = source.last_arrival_ns or time.perf_counter_ns()
                data = event.data
                if data.strip() == "[DONE]":
                    timings.observe(arrival)
                    done = True
                    break
                try:
                    raw = self._parse(event.event, data)
                except GLMError:
                    timings.observe(arrival)  # it arrived, though it is no chunk
                    raise
                yield completion.feed(raw, arrival, len(data), data)
        except GLMError:
            raise
        except Exception as exc:
            error = self._translate(exc)
            if error is None:
                raise
            raise error from exc
        finally:
            timings.end_ns = time.perf_counter_ns()
            self._stamp(source)
            await source.aclose()
        self._finish(done)

    def _stamp(self, source: EventSource) -> None:
        timings = self.completion.timings
        timings.request_sent_ns = source.request_sent_ns
        timings.headers_ns = source.headers_ns
        timings.first_byte_ns = source.first_byte_ns
        if source.request_start_ns is not None:
            timings.request_start_ns = source.request_start_ns

    def _parse(self, event_type: str, data: str) -> Mapping[str, Any]:
        """The chunk's JSON; an error object or anything that is not a chunk raises."""
        completion = self.completion
        try:
            raw = json.loads(data)
        except ValueError:
            preview = data if len(data) <= 200 else data[:200] + "…"
            raise MalformedResponseError(
                f"chunk {completion.chunks} is not JSON: {preview!r}", partial=completion
            ) from None
        if not isinstance(raw, Mapping):
            raise MalformedResponseError(
                f"chunk {completion.chunks} is JSON but not an object: {data[:200]!r}",
                partial=completion,
            )
        if event_type == "error" or "error" in raw:
            raise error_from_response(None, raw, secrets=self._secrets, partial=completion)
        return raw

    def _finish(self, done: bool) -> None:
        completion = self.completion
        reason = completion.finish_reason
        if reason == "sensitive":
            raise ContentFilteredError(
                "the answer was stopped by the content filter (finish_reason: sensitive)",
                code="1301",
                partial=completion,
            )
        if reason == "network_error":
            raise StreamInterrupted(
                "the server reported an inference failure mid-answer (finish_reason: "
                "network_error)",
                partial=completion,
            )
        if reason is None:
            ending = "[DONE] without a finish_reason" if done else "no finish_reason, no [DONE]"
            raise StreamInterrupted(
                f"the stream ended after {completion.chunks} chunks before the answer did "
                f"({ending})",
                partial=completion,
            )

    def _translate(self, exc: BaseException) -> GLMError | None:
        """The GLM error for a transport-level failure, or ``None`` to let it through."""
        completion = self.completion
        secrets = self._secrets
        source = self._source
        where = safe_url(self._client.url)
        if isinstance(exc, GLMError):
            return exc
        if isinstance(exc, ContentTypeError):
            return MalformedResponseError(
                scrub(
                    f"{where} answered 200 with Content-Type {exc.content_type!r}, not an "
                    f"event stream; body starts {exc.body[:200]!r}",
                    secrets,
                ),
                status=exc.status,
                partial=completion,
            )
        if isinstance(exc, HTTPStatusError):
            headers = source.response_headers if source is not None else None
            return error_from_response(
                exc.status,
                exc.body,
                retry_after=parse_retry_after(headers) if headers is not None else None,
                secrets=secrets,
                partial=completion,
            )
        if isinstance(exc, EventTooLarge):
            return MalformedResponseError(
                f"{exc} (GLMClient(max_line_size=..., max_event_size=...))",
                partial=completion,
            )
        if isinstance(exc, ConnectionFailed):
            cause = exc.__cause__
            if isinstance(cause, httpx.TimeoutException) and not isinstance(
                cause, httpx.ConnectTimeout
            ):
                what = f"no bytes for {self._client.idle_timeout} s"
            else:
                what = str(exc)
            when = (
                "before the answer started"
                if completion.chunks == 0
                else f"after {completion.chunks} chunks"
            )
            return StreamInterrupted(
                scrub(f"the connection to {where} failed {when}: {what}", secrets),
                partial=completion,
            )
        return None
