"""GLM-4.6 chat completions (and any OpenAI-compatible endpoint), streamed.

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

The API key lives in a :class:`~glm_live._secret.Secret`: it appears in the Authorization header
and nowhere else, not in a repr, a log line, an exception or the timings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from array import array
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
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
    error_from_response,
    scrub,
)
from ..transport._closing import AsyncClosing
from ..transport.sse_client import ConnectionFailed, EventSource, Observer, safe_url
from ..wire._secret import Secret
from ..wire.retry import Backoff, parse_retry_after
from ..wire.sse import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_SIZE

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

_MessagesLike = str | Iterable[Mapping[str, Any]]


# --- values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One fragment of a tool call as a chunk carried it."""

    index: int
    id: str | None = None
    type: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class ToolCall:
    """A tool call assembled from its fragments."""

    index: int
    id: str | None = None
    type: str = "function"
    name: str = ""
    arguments: str = ""

    def parsed_arguments(self) -> Any:
        """The arguments as JSON.

        Raises:
            MalformedResponseError: They are not valid JSON (e.g. the stream was cut).
        """
        try:
            return json.loads(self.arguments) if self.arguments else {}
        except ValueError as exc:
            msg = f"tool call {self.name!r} has arguments that are not JSON: {self.arguments!r}"
            raise MalformedResponseError(msg) from exc

    def to_dict(self) -> dict[str, Any]:
        """The call as an OpenAI/GLM ``tool_calls`` entry."""
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class Chunk:
    """One parsed stream chunk.

    Attributes:
        index: Position in the stream (0 for the first chunk).
        content: The content delta (``""`` if none).
        reasoning: The reasoning delta (``delta.reasoning_content``).
        tool_calls: Tool-call fragments in this chunk.
        finish_reason: Set on the last chunk only.
        usage: Token usage, on the last chunk only.
        role: ``delta.role`` when given.
        arrival_ns: When the bytes that completed it arrived (``perf_counter_ns``).
        raw: The chunk's JSON, as parsed.
        size: Characters of the event's data (the chunk's JSON text).
    """

    index: int
    content: str
    reasoning: str
    tool_calls: tuple[ToolCallDelta, ...]
    finish_reason: str | None
    usage: Mapping[str, Any] | None
    role: str | None
    arrival_ns: int
    raw: Mapping[str, Any]
    size: int = 0

    @property
    def kind(self) -> str:
        """What the chunk mainly carries: tool, content, reasoning, usage, role or other."""
        if self.tool_calls:
            return "tool"
        if self.content:
            return "content"
        if self.reasoning:
            return "reasoning"
        if self.usage is not None:
            return "usage"
        return "role" if self.role else "other"


@dataclass(slots=True)
class Timings:
    """Timestamps of one request, all on the ``time.perf_counter_ns`` clock.

    ``wall_anchor_ns`` is ``time.time_ns()`` read together with ``request_start_ns``, so any
    stamp converts to wall-clock time as ``wall_anchor_ns + (stamp - request_start_ns)``.
    Every field is ``None`` until it happens.
    """

    request_start_ns: int | None = None
    wall_anchor_ns: int | None = None
    request_sent_ns: int | None = None
    headers_ns: int | None = None
    first_byte_ns: int | None = None
    first_event_ns: int | None = None
    first_reasoning_ns: int | None = None
    first_content_ns: int | None = None
    first_tool_call_ns: int | None = None
    end_ns: int | None = None
    event_arrivals_ns: array[int] = field(default_factory=lambda: array("q"))
    attempts: int = 0

    def _since_start(self, stamp: int | None) -> float | None:
        if stamp is None or self.request_start_ns is None:
            return None
        return (stamp - self.request_start_ns) / 1e9

    @property
    def ttft(self) -> float | None:
        """Seconds from sending to the first token of any kind (reasoning, content, tool)."""
        stamps = [
            s
            for s in (self.first_reasoning_ns, self.first_content_ns, self.first_tool_call_ns)
            if s is not None
        ]
        return self._since_start(min(stamps)) if stamps else None

    @property
    def ttft_content(self) -> float | None:
        """Seconds from sending to the first content token."""
        return self._since_start(self.first_content_ns)

    @property
    def e2e(self) -> float | None:
        """Seconds from sending to the end of the stream."""
        return self._since_start(self.end_ns)

    def as_dict(self) -> dict[str, Any]:
        """The stamps as a plain dict (arrivals as a list), for records and DataFrames."""
        return {
            "request_start_ns": self.request_start_ns,
            "wall_anchor_ns": self.wall_anchor_ns,
            "request_sent_ns": self.request_sent_ns,
            "headers_ns": self.headers_ns,
            "first_byte_ns": self.first_byte_ns,
            "first_event_ns": self.first_event_ns,
            "first_reasoning_ns": self.first_reasoning_ns,
            "first_content_ns": self.first_content_ns,
            "first_tool_call_ns": self.first_tool_call_ns,
            "end_ns": self.end_ns,
            "event_arrivals_ns": self.event_arrivals_ns.tolist(),
            "attempts": self.attempts,
        }


@dataclass(slots=True)
class Completion:
    """A chat completion, filled in as its chunks arrive.

    ``text`` and ``reasoning`` are properties that join the deltas received so far.

    Attributes:
        tool_calls: Tool calls assembled by ``index``, in index order.
        finish_reason: ``stop``, ``length``, ``tool_calls``, ``sensitive``, ``network_error``, or
            ``None`` while streaming.
        usage: Token usage from the last chunk, when sent.
        timings: When everything happened.
        id: The completion's ID, if the server gave one.
        model: The model that answered.
        chunks: How many chunks arrived.
    """

    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    timings: Timings = field(default_factory=Timings)
    id: str | None = None
    model: str | None = None
    chunks: int = 0
    _text_parts: list[str] = field(default_factory=list, repr=False)
    _reasoning_parts: list[str] = field(default_factory=list, repr=False)
    _calls: dict[int, ToolCall] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        """The answer so far."""
        return _joined(self._text_parts)

    @property
    def reasoning(self) -> str:
        """The reasoning so far (``reasoning_content``)."""
        return _joined(self._reasoning_parts)

    @property
    def done(self) -> bool:
        """Whether the final chunk has arrived."""
        return self.finish_reason is not None

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append for the next turn (reasoning kept, as GLM asks)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return message

    def _add(self, chunk: Chunk) -> None:
        self.chunks += 1
        raw = chunk.raw
        if self.id is None and raw.get("id") is not None:
            self.id = str(raw["id"])
        if self.model is None and raw.get("model") is not None:
            self.model = str(raw["model"])
        if chunk.content:
            self._text_parts.append(chunk.content)
        if chunk.reasoning:
            self._reasoning_parts.append(chunk.reasoning)
        for delta in chunk.tool_calls:
            call = self._calls.get(delta.index)
            if call is None:
                call = self._calls[delta.index] = ToolCall(index=delta.index)
                self.tool_calls = [self._calls[i] for i in sorted(self._calls)]
            if delta.id and not call.id:
                call.id = delta.id
            if delta.type:
                call.type = delta.type
            if delta.name and not call.name:
                call.name = delta.name
            call.arguments += delta.arguments
        if chunk.usage is not None:
            self.usage = dict(chunk.usage)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason


def _joined(parts: list[str]) -> str:
    # Join on demand and keep the result: appending a chunk stays O(1), and reading the text
    # once at the end costs one join instead of one per chunk.
    if len(parts) > 1:
        parts[:] = ["".join(parts)]
    return parts[0] if parts else ""


# --- parsing -------------------------------------------------------------------------------


def _tool_deltas(raw_calls: Any, known: Mapping[int, ToolCall]) -> tuple[ToolCallDelta, ...]:
    if not isinstance(raw_calls, list):
        return ()
    deltas = []
    for position, item in enumerate(raw_calls):
        if not isinstance(item, Mapping):
            continue
        function = item.get("function") or {}
        call_id = item.get("id")
        index = item.get("index")
        if not isinstance(index, int):
            # Some servers omit index on whole calls: match by id, else take the next slot.
            by_id = [i for i, c in known.items() if call_id and c.id == call_id]
            index = by_id[0] if by_id else len(known) + position
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)  # a few servers send an object, not a string
        deltas.append(
            ToolCallDelta(
                index=index,
                id=str(call_id) if call_id else None,
                type=item.get("type"),
                name=function.get("name"),
                arguments=arguments or "",
            )
        )
    return tuple(deltas)


def parse_chunk(
    raw: Mapping[str, Any],
    index: int,
    arrival_ns: int,
    known: Mapping[int, ToolCall],
    size: int = 0,
) -> Chunk:
    """Turn one chunk's JSON into a :class:`Chunk`, tolerating missing fields."""
    choices = raw.get("choices") or []
    choice: Mapping[str, Any] = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    delta = choice.get("delta") or choice.get("message") or {}
    if not isinstance(delta, Mapping):
        delta = {}
    usage = raw.get("usage")
    return Chunk(
        index=index,
        content=delta.get("content") or "",
        reasoning=delta.get("reasoning_content") or delta.get("reasoning") or "",
        tool_calls=_tool_deltas(delta.get("tool_calls"), known),
        finish_reason=choice.get("finish_reason") or None,
        usage=usage if isinstance(usage, Mapping) else None,
        role=delta.get("role"),
        arrival_ns=arrival_ns,
        raw=raw,
        size=size,
    )


def build_messages(messages: _MessagesLike) -> list[dict[str, Any]]:
    """A prompt string becomes one user message; a list of messages is copied as is."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    result = [dict(message) for message in messages]
    if not result:
        msg = "messages is empty: give a prompt string or at least one message"
        raise ValueError(msg)
    return result


def build_body(model: str, messages: _MessagesLike, params: Mapping[str, Any]) -> dict[str, Any]:
    """The chat-completions request body: known fields normalised, unknown ones passed on.

    ``thinking`` may be ``True``/``False`` (→ ``{"type": "enabled"|"disabled"}``), a string
    type, or the dict itself. ``None`` values are left out.
    """
    body: dict[str, Any] = {"model": model, "messages": build_messages(messages)}
    for key, value in params.items():
        if value is None:
            continue
        if key == "thinking":
            if isinstance(value, bool):
                value = {"type": "enabled" if value else "disabled"}
            elif isinstance(value, str):
                value = {"type": value}
        body[key] = value
    body["stream"] = True
    return body


# --- the client ----------------------------------------------------------------------------


class GLMClient(AsyncClosing):
    """A client for GLM-4.6 chat completions, or any OpenAI-compatible endpoint.

    Args:
        base_url: The API root; ``/chat/completions`` is appended. Defaults to ``ZAI_BASE_URL``
            or :data:`DEFAULT_BASE_URL`.
        api_key: The key; ``None`` reads ``ZAI_API_KEY``, then ``ZHIPUAI_API_KEY``; ``""``
            sends none (endpoints that need none, like the embedded simulator).
        model: The model asked for unless a call says otherwise.
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

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "glm_live", **self._extra_headers}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        return headers

    def _secrets(self) -> list[str]:
        return [self._api_key.reveal()] if self._api_key is not None else []

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport,
                verify=self._verify,
                follow_redirects=True,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
        return self._http

    def stream(self, messages: _MessagesLike, **params: Any) -> ChatStream:
        """Start a streamed completion; iterate the result for :class:`Chunk` values.

        ``params`` are request fields (``thinking``, ``tools``, ``tool_choice``,
        ``tool_stream``, ``temperature``, ``top_p``, ``max_tokens``, ``stop``,
        ``stream_options``, ``model``, and any other, passed through unchanged).
        The returned :class:`ChatStream` has ``.completion``, which grows as chunks arrive.
        Nothing is sent until iteration starts.
        """
        model = params.pop("model", None) or self.model
        return ChatStream(self, build_body(model, messages, params))

    async def complete(self, messages: _MessagesLike, **params: Any) -> Completion:
        """Stream a completion to its end and return it (timings included)."""
        stream = self.stream(messages, **params)
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
        self.body = body
        self.completion = Completion()
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
        client = self._client
        completion = self.completion
        timings = completion.timings = Timings(attempts=attempt)
        source = self._source = EventSource(
            client.url,
            "POST",
            json=self.body,
            headers=client._headers(),
            client=client._client(),
            connect_timeout=client.connect_timeout,
            idle_timeout=client.idle_timeout,
            reconnect=False,
            max_line_size=client.max_line_size,
            max_event_size=client.max_event_size,
            observers=client.observers,
        )
        timings.wall_anchor_ns = time.time_ns()
        timings.request_start_ns = time.perf_counter_ns()
        done = False
        try:
            async for event in source:
                arrival = source.last_arrival_ns or time.perf_counter_ns()
                if timings.first_event_ns is None:
                    timings.first_event_ns = arrival
                timings.event_arrivals_ns.append(arrival)
                data = event.data
                if data.strip() == "[DONE]":
                    done = True
                    break
                chunk = self._parse(event.event, data, arrival)
                completion._add(chunk)
                if chunk.reasoning and timings.first_reasoning_ns is None:
                    timings.first_reasoning_ns = arrival
                if chunk.content and timings.first_content_ns is None:
                    timings.first_content_ns = arrival
                if chunk.tool_calls and timings.first_tool_call_ns is None:
                    timings.first_tool_call_ns = arrival
                yield chunk
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

    def _parse(self, event_type: str, data: str, arrival: int) -> Chunk:
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
            raise error_from_response(
                None, raw, secrets=self._client._secrets(), partial=completion
            )
        return parse_chunk(raw, completion.chunks, arrival, completion._calls, len(data))

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
        secrets = self._client._secrets()
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
