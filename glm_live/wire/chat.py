"""Chat completions on the wire: chunks in, a :class:`Completion` and its :class:`Timings` out.

Pure: nothing here does I/O or reads a clock; arrival times are handed in. The client that
streams (:class:`glm_live.protocols.glm.GLMClient`), the recorder and the benchmark harness all
parse chunks, stamp timings and map error bodies with what is here, so a rule (which delta is
the first token, which business code means what) lives in one place.

- :func:`parse_chunk` turns one chunk's JSON into a :class:`Chunk`, leniently (``object`` may be
  missing, ``finish_reason`` absent rather than null, tool calls whole or in fragments).
- :class:`Completion` assembles chunks: content, reasoning, tool calls by ``index``, usage
  (also from OpenAI's usage-only last chunk, whose ``choices`` is empty).
- :func:`build_body` writes the request, with the model's defaults from
  :mod:`glm_live.wire.models` (the caller's own fields win).
- :class:`Timings` is the one timing schema: every stamp of a request, set by
  :meth:`Timings.observe` as events arrive; the recorder's latency columns come from
  :meth:`Timings.latencies_ms`.
- :func:`error_from_response` builds the right :class:`~glm_live.errors.GLMError` from an HTTP
  status and a GLM/OpenAI error body (business codes are strings: ``"1302"``).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    AuthenticationError,
    ContentFilteredError,
    GLMError,
    InsufficientBalanceError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
)
from ._html import fmt_ms, table
from ._secret import scrub
from .models import apply_defaults

__all__ = [
    "STAMPS",
    "Chunk",
    "Completion",
    "MessagesLike",
    "Timings",
    "ToolCall",
    "ToolCallDelta",
    "build_body",
    "build_messages",
    "error_class_for",
    "error_from_response",
    "parse_chunk",
    "parse_error_body",
]

#: A prompt string, or a list of messages (``{"role": ..., "content": ...}``).
MessagesLike = str | Iterable[Mapping[str, Any]]


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
        size: Characters of the event's data (the chunk's JSON text).
        sent_ns: The server's send stamp (``x_sent_ns``, wall clock), when it gives one.

    A stream's chunks are all kept (by its handle, for views made later), so a chunk keeps
    its JSON as the text it came as, one string, and :attr:`raw` parses it when asked: a
    parsed object is half a dozen containers the garbage collector would scan on every full
    pass, which at thousands of chunks a second paused the kernel for 200 ms and more.
    """

    index: int
    content: str
    reasoning: str
    tool_calls: tuple[ToolCallDelta, ...]
    finish_reason: str | None
    usage: Mapping[str, Any] | None
    role: str | None
    arrival_ns: int
    source: str | Mapping[str, Any] = field(repr=False)
    size: int = 0
    sent_ns: int | None = None

    @property
    def raw(self) -> Mapping[str, Any]:
        """The chunk's JSON, as parsed (parsed again on each access when it came as text)."""
        source = self.source
        return json.loads(source) if isinstance(source, str) else source

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


#: The stamps of a request, in the order things happen (each ``perf_counter_ns`` or ``None``).
STAMPS = (
    "request_start_ns",
    "request_sent_ns",
    "headers_ns",
    "first_byte_ns",
    "first_event_ns",
    "first_reasoning_ns",
    "first_content_ns",
    "first_tool_call_ns",
    "last_token_ns",
    "end_ns",
)

# The recorder's latency columns: each the time from the request's start to a stamp (ms).
_LATENCY_COLUMNS = (
    ("ttft_first_byte_ms", "first_byte_ns"),
    ("ttft_first_event_ms", "first_event_ns"),
    ("ttft_reasoning_ms", "first_reasoning_ns"),
    ("ttft_content_ms", "first_content_ns"),
    ("ttft_tool_ms", "first_tool_call_ns"),
    ("ttft_ms", "first_token_ns"),
)


@dataclass(slots=True)
class Timings:
    """Timestamps of one request, all on the ``time.perf_counter_ns`` clock: the one timing
    schema, which the GLM client, the recorder and the benchmark harness share.

    ``wall_anchor_ns`` is ``time.time_ns()`` read together with ``request_start_ns``, so any
    stamp converts to wall-clock time as ``wall_anchor_ns + (stamp - request_start_ns)``.
    Every stamp is ``None`` until it happens. The transport sets the connection's stamps
    (start, sent, headers, first byte, end); :meth:`observe` sets those of the events.
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
    last_token_ns: int | None = None
    end_ns: int | None = None
    event_arrivals_ns: array[int] = field(default_factory=lambda: array("q"))
    attempts: int = 0

    @classmethod
    def from_stamps(cls, stamps: Mapping[str, int | None]) -> Timings:
        """Timings from :meth:`stamps`' mapping (names not in :data:`STAMPS` are ignored)."""
        timings = cls()
        for name in STAMPS:
            setattr(timings, name, stamps.get(name))
        return timings

    def observe(self, arrival_ns: int, chunk: Chunk | None = None) -> None:
        """Stamp one event that arrived at ``arrival_ns``.

        Every event counts for ``first_event_ns`` and ``event_arrivals_ns`` (``[DONE]`` and
        events that are not chunks included: pass no ``chunk``). A chunk's deltas set the
        first reasoning, content and tool-call stamps, and any of them the last token's.
        """
        if self.first_event_ns is None:
            self.first_event_ns = arrival_ns
        self.event_arrivals_ns.append(arrival_ns)
        if chunk is None:
            return
        if chunk.reasoning and self.first_reasoning_ns is None:
            self.first_reasoning_ns = arrival_ns
        if chunk.content and self.first_content_ns is None:
            self.first_content_ns = arrival_ns
        if chunk.tool_calls and self.first_tool_call_ns is None:
            self.first_tool_call_ns = arrival_ns
        if chunk.reasoning or chunk.content or chunk.tool_calls:
            self.last_token_ns = arrival_ns

    @property
    def first_token_ns(self) -> int | None:
        """The first token of any kind: reasoning, content or a tool call."""
        stamps = [
            s
            for s in (self.first_reasoning_ns, self.first_content_ns, self.first_tool_call_ns)
            if s is not None
        ]
        return min(stamps) if stamps else None

    def _since_start(self, stamp: int | None) -> float | None:
        if stamp is None or self.request_start_ns is None:
            return None
        return (stamp - self.request_start_ns) / 1e9

    @property
    def ttft(self) -> float | None:
        """Seconds from sending to the first token of any kind (reasoning, content, tool)."""
        return self._since_start(self.first_token_ns)

    @property
    def ttft_content(self) -> float | None:
        """Seconds from sending to the first content token."""
        return self._since_start(self.first_content_ns)

    @property
    def e2e(self) -> float | None:
        """Seconds from sending to the end of the stream."""
        return self._since_start(self.end_ns)

    def tpot_ms(self, completion_tokens: int | None) -> float | None:
        """Time per output token after the first (ms): the decode rate, from ``usage``."""
        first, end = self.first_token_ns, self.end_ns
        if first is None or end is None or not completion_tokens or completion_tokens < 2:
            return None
        return (end - first) / 1e6 / (completion_tokens - 1)

    def latencies_ms(self, completion_tokens: int | None = None) -> dict[str, float | None]:
        """A request row's latency columns (ms from the start; ``None`` for what never came):
        the TTFT variants, TPOT and end-to-end time."""
        start = self.request_start_ns
        columns: dict[str, float | None] = {}
        for column, name in _LATENCY_COLUMNS:
            stamp = getattr(self, name)
            columns[column] = None if stamp is None or start is None else (stamp - start) / 1e6
        columns["tpot_ms"] = self.tpot_ms(completion_tokens)
        end = self.end_ns
        columns["e2e_ms"] = None if end is None or start is None else (end - start) / 1e6
        return columns

    def stamps(self) -> dict[str, int | None]:
        """The stamps (:data:`STAMPS`) as a plain dict."""
        return {name: getattr(self, name) for name in STAMPS}

    def as_dict(self) -> dict[str, Any]:
        """The stamps, the wall anchor, the arrivals (as a list) and the attempts, as a plain
        dict, for records and DataFrames."""
        return {
            **self.stamps(),
            "wall_anchor_ns": self.wall_anchor_ns,
            "event_arrivals_ns": self.event_arrivals_ns.tolist(),
            "attempts": self.attempts,
        }


@dataclass(slots=True, repr=False)
class Completion:
    """A chat completion, filled in as its chunks arrive.

    ``text`` and ``reasoning`` are properties that join the deltas received so far.

    Attributes:
        tool_calls: Tool calls assembled by ``index``, in index order.
        finish_reason: ``stop``, ``length``, ``tool_calls``, ``sensitive``, ``network_error``, or
            ``None`` while streaming.
        usage: Token usage from the last chunk, when sent (GLM's finishing chunk, or
            OpenAI's usage-only chunk after it with ``stream_options.include_usage``).
        timings: When everything happened.
        id: The completion's ID, if the server gave one.
        model: The model that answered.
        request_id: The ``request_id`` the server echoed (GLM: the client's own, if sent).
        chunks: How many chunks arrived.
        keep_reasoning: Whether :meth:`to_message` always keeps ``reasoning_content``: set by
            the client when the request asked for preserved thinking
            (``thinking.clear_thinking: false``).
    """

    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    timings: Timings = field(default_factory=Timings)
    id: str | None = None
    model: str | None = None
    request_id: str | None = None
    chunks: int = 0
    keep_reasoning: bool = False
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

    @property
    def cached_tokens(self) -> int | None:
        """Prompt tokens served from the provider's cache (``prompt_tokens_details``)."""
        return _detail(self.usage, "prompt_tokens_details", "cached_tokens")

    @property
    def reasoning_tokens(self) -> int | None:
        """Completion tokens spent thinking (``completion_tokens_details``)."""
        return _detail(self.usage, "completion_tokens_details", "reasoning_tokens")

    def __repr__(self) -> str:
        # One line: the state, the size and the two latencies; the text is on .text.
        state = f"finish_reason={self.finish_reason}" if self.done else "unfinished"
        tokens = (self.usage or {}).get("completion_tokens")
        size = f"{tokens} tokens" if tokens is not None else f"{self.chunks} chunks"
        ttft, e2e = self.timings.ttft, self.timings.e2e
        times = "".join(
            f", {name} {value * 1000:.0f} ms"
            for name, value in (("TTFT", ttft), ("e2e", e2e))
            if value is not None
        )
        return f"<Completion {state}, {size}, {len(self.text)} chars{times}>"

    def _repr_html_(self) -> str:
        usage = self.usage or {}
        rows: list[tuple[str, object]] = [
            ("status", "done" if self.done else "unfinished (streaming, or cut off)"),
            ("finish_reason", self.finish_reason or "–"),
            ("model", self.model or "–"),
            (
                "tokens",
                f"{usage.get('prompt_tokens', '–')} in, {usage.get('completion_tokens', '–')} out",
            ),
            ("TTFT", fmt_ms(self.timings.ttft)),
            ("e2e", fmt_ms(self.timings.e2e)),
            ("chunks", self.chunks),
        ]
        if self.reasoning_tokens is not None:
            rows.append(("reasoning tokens", self.reasoning_tokens))
        if self.tool_calls:
            rows.append(("tool calls", ", ".join(c.name or "?" for c in self.tool_calls)))
        text = self.text
        footer = text[:600] + (" …" if len(text) > 600 else "")
        return table("Completion", rows, footer=footer)

    def to_message(self, reasoning: bool | None = None) -> dict[str, Any]:
        """The assistant message to append for the next turn.

        Args:
            reasoning: Whether to send ``reasoning_content`` back. ``None`` (the default)
                keeps it when GLM needs it: in a tool-call loop (interleaved thinking: the
                reasoning must come back with the tool results, unmodified) and when the
                request asked for preserved thinking (:attr:`keep_reasoning`). Otherwise it
                is left out: with ``clear_thinking`` at its default GLM drops it anyway.
        """
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if reasoning is None:
            reasoning = bool(self.tool_calls) or self.keep_reasoning
        if reasoning and self.reasoning:
            message["reasoning_content"] = self.reasoning
        if self.tool_calls:
            message["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        return message

    def feed(
        self, raw: Mapping[str, Any], arrival_ns: int, size: int = 0, text: str | None = None
    ) -> Chunk:
        """Take the next chunk's JSON: parse it, add it, stamp its arrival; returns the chunk.

        ``text`` is the JSON text ``raw`` was parsed from, when there is one: the chunk keeps
        that rather than ``raw`` (see :class:`Chunk`). Tool-call fragments are matched to the
        calls assembled so far, so a chunk must be fed in stream order.
        """
        chunk = parse_chunk(raw, self.chunks, arrival_ns, self._calls, size, text)
        self._add(chunk, raw)
        self.timings.observe(arrival_ns, chunk)
        return chunk

    def _add(self, chunk: Chunk, raw: Mapping[str, Any]) -> None:
        self.chunks += 1
        if self.id is None and raw.get("id") is not None:
            self.id = str(raw["id"])
        if self.model is None and raw.get("model") is not None:
            self.model = str(raw["model"])
        if self.request_id is None and raw.get("request_id") is not None:
            self.request_id = str(raw["request_id"])
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


def _detail(usage: Mapping[str, Any] | None, group: str, name: str) -> int | None:
    details = (usage or {}).get(group)
    value = details.get(name) if isinstance(details, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    text: str | None = None,
) -> Chunk:
    """Turn one chunk's JSON into a :class:`Chunk`, tolerating missing fields; ``text``, the
    JSON text ``raw`` came from, is what the chunk keeps when given (see :class:`Chunk`)."""
    choices = raw.get("choices") or []
    choice: Mapping[str, Any] = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    delta = choice.get("delta") or choice.get("message") or {}
    if not isinstance(delta, Mapping):
        delta = {}
    usage = raw.get("usage")
    sent = raw.get("x_sent_ns")
    return Chunk(
        index=index,
        content=delta.get("content") or "",
        reasoning=delta.get("reasoning_content") or delta.get("reasoning") or "",
        tool_calls=_tool_deltas(delta.get("tool_calls"), known),
        finish_reason=choice.get("finish_reason") or None,
        usage=usage if isinstance(usage, Mapping) else None,
        role=delta.get("role"),
        arrival_ns=arrival_ns,
        source=raw if text is None else text,
        size=size,
        sent_ns=sent if isinstance(sent, int) else None,
    )


def build_messages(messages: MessagesLike) -> list[dict[str, Any]]:
    """A prompt string becomes one user message; a list of messages is copied as is."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    result = [dict(message) for message in messages]
    if not result:
        msg = "messages is empty: give a prompt string or at least one message"
        raise ValueError(msg)
    return result


def build_body(
    model: str,
    messages: MessagesLike,
    params: Mapping[str, Any],
    *,
    clear_thinking: bool | None = None,
) -> dict[str, Any]:
    """The chat-completions request body: known fields normalised, unknown ones passed on.

    ``thinking`` may be ``True``/``False`` (→ ``{"type": "enabled"|"disabled"}``), a string
    type, or the dict itself. ``None`` values are left out. The model's defaults are filled in
    by :func:`glm_live.wire.models.apply_defaults` (GLM-4.7 and later: thinking enabled
    explicitly; ``clear_thinking`` into the ``thinking`` object); fields the caller gave win,
    and a model not in the catalog gets nothing added.
    """
    body: dict[str, Any] = {"model": model, "messages": build_messages(messages)}
    given = {key: value for key, value in params.items() if value is not None}
    for key, value in apply_defaults(model, given, clear_thinking).items():
        body[key] = value
    body["stream"] = True
    return body


# --- errors ------------------------------------------------------------------------------

_BODY_PREVIEW = 2000  # characters of a response body kept in a message

# Business codes, from the Z.ai error-code reference.
_RETRYABLE_RATE_CODES = frozenset({"1302", "1303", "1305"})
_QUOTA_CODES = frozenset({"1304", "1308", "1309", "1310"})


def error_class_for(status: int | None, code: str | None) -> type[GLMError]:
    """The exception class for an HTTP status and a GLM business code (either may be absent).

    The code wins over the status: GLM sends several unrelated conditions as 429.
    """
    if code is not None and code.isdigit():
        number = int(code)
        if 1000 <= number <= 1004:
            return AuthenticationError
        if number == 1113:
            return InsufficientBalanceError
        if code in _RETRYABLE_RATE_CODES or code in _QUOTA_CODES:
            return RateLimitError
        if number == 1301:
            return ContentFilteredError
        if 1200 <= number <= 1299:
            return InvalidRequestError
    if status is None:
        return GLMError
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return RateLimitError
    if status in (400, 404, 413, 422):
        return InvalidRequestError
    if status >= 500:
        return ServerError
    return GLMError


def parse_error_body(body: str | bytes | Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Pull ``(code, message)`` out of a GLM/OpenAI error body; ``(None, None)`` if it has none.

    Accepts ``{"error": {"code": "1302", "message": ...}}`` (GLM; the code may also come as a
    number) and OpenAI's ``{"error": {"message", "type", "code"}}``.
    """
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None, None
    if not isinstance(body, Mapping):
        return None, None
    error = body.get("error", body)
    if isinstance(error, str):
        return None, error
    if not isinstance(error, Mapping):
        return None, None
    code = error.get("code")
    message = error.get("message")
    return (
        None if code is None else str(code),
        None if message is None else str(message),
    )


def error_from_response(
    status: int | None,
    body: str | bytes | Mapping[str, Any],
    *,
    retry_after: float | None = None,
    secrets: Iterable[str | None] = (),
    partial: Any = None,
) -> GLMError:
    """Build the right :class:`GLMError` for an error response or an in-stream error object.

    Args:
        status: The HTTP status (``None`` for an error object inside a 200 stream).
        body: The response body, raw or parsed.
        retry_after: Seconds from a Retry-After header, if any.
        secrets: Strings that must not appear in the error (the API key).
        partial: What had been received before the error.
    """
    secrets = list(secrets)
    code, message = parse_error_body(body)
    if message is None:
        text = body if isinstance(body, str) else ""
        if isinstance(body, bytes):
            text = body.decode("utf-8", "replace")
        text = text.strip()[:_BODY_PREVIEW]
        message = f"unexpected error response: {text!r}" if text else "error with an empty body"
    message = scrub(message, secrets)
    cls = error_class_for(status, code)
    kwargs: dict[str, Any] = {"status": status, "code": code, "partial": partial}
    if cls is RateLimitError:
        kwargs["retry_after"] = retry_after
        if code in _QUOTA_CODES:
            kwargs["retryable"] = False
    elif cls is GLMError:
        kwargs["retryable"] = status in (408, 409)
    return cls(message, **kwargs)
