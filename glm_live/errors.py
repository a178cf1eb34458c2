"""Every exception glm_live raises, in one tree.

- :class:`GlmLiveError`: the root; catch it to catch everything below.

  - :class:`SSEError`: the event stream broke the rules or the limits.

    - :class:`EventTooLarge`: a line or an event passed its size limit.

  - :class:`TransportError`: a connection could not deliver a stream.

    - :class:`ResponseError`: the server answered, but not with an event stream.

      - :class:`HTTPStatusError`: a status that is not retried (4xx other than 204).
      - :class:`ContentTypeError`: a 200 whose content type is not ``text/event-stream``.

    - :class:`RetriesExhausted`: reconnecting gave up; the last failure is ``__cause__``.
    - ``HubStoreError`` (:mod:`glm_live.server.hub.store`): the hub's Redis cannot be
      reached or refused a command.

  - :class:`GLMError`: a chat-completions call failed; ``status``, ``code`` (the GLM business
    code, a string), ``message``, ``retryable`` and ``partial`` (what had arrived).

    - :class:`AuthenticationError`: 401, codes 1000-1004.
    - :class:`RateLimitError`: 429, codes 1302/1303/1305 (retryable) and 1304/1308-1310 (quotas,
      not retryable); ``retry_after`` in seconds when the server said.
    - :class:`InsufficientBalanceError`: code 1113, sent as 429 but not retryable.
    - :class:`InvalidRequestError`: 400 and the 12xx codes; also 404 and 422.
    - :class:`ServerError`: 5xx.
    - :class:`ContentFilteredError`: ``finish_reason: sensitive`` or code 1301.
    - :class:`StreamInterrupted`: ``finish_reason: network_error``, or the connection dropped
      mid-stream.
    - :class:`MalformedResponseError`: the endpoint sent something that is not a chat
      completion (bad JSON, not an event stream, an oversized event).

  - :class:`Cancelled`: awaiting or waiting for a handle (a chat, a run) that was cancelled
    with ``.cancel()`` or its Stop button; ``partial`` holds what had arrived.
  - ``ClusterError`` (:mod:`glm_live.measure.bench.cluster`): a benchmark sharded over dask
    workers could not use its cluster (scheduler unreachable, a worker without glm_live, a
    worker that died); ``partial`` holds what the other workers returned.
  - ``WorkflowError`` (:mod:`glm_live.agents.core`): a workflow is malformed or an agent
    failed.
  - ``Rejected`` (:mod:`glm_live.agents.interrupts`): a person declined to answer an agent's
    ``ctx.ask`` (the AG-UI resume entry said ``cancelled``).
  - ``HubFrameError`` (:mod:`glm_live.wire.hub.frames`, also a ``ValueError``): a hub frame
    that is not valid JSON or not a valid frame.
  - :class:`SavedFileError` (also a ``ValueError``): a saved file this version cannot read
    (not JSON, another kind of file, a damaged or newer one).

    - ``ConversationFormatError`` (:mod:`glm_live.notebook.conversation`): not a saved
      conversation.
    - ``ReplayFormatError`` (:mod:`glm_live.notebook.runlog`): nothing
      :func:`glm_live.replay` can play.

Errors of one subsystem (in parentheses above) live with it, so that this module stays at the
bottom of the house; each is re-exported by ``glm_live``.

Messages say what went wrong and what to do. None of them ever contains an API key: the code
that builds them scrubs the secrets it holds (:func:`glm_live.wire._secret.scrub`).

This module holds the tree and nothing else: it imports nothing from glm_live, so every floor
can raise from it. Which GLM business code maps to which class is the chat wire's rule
(:func:`glm_live.wire.chat.error_from_response`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "Cancelled",
    "ContentFilteredError",
    "ContentTypeError",
    "EventTooLarge",
    "GLMError",
    "GlmLiveError",
    "HTTPStatusError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "MalformedResponseError",
    "RateLimitError",
    "ResponseError",
    "RetriesExhausted",
    "SSEError",
    "SavedFileError",
    "ServerError",
    "StreamInterrupted",
    "TransportError",
]


class GlmLiveError(Exception):
    """Root of every exception glm_live raises."""


# --- the wire ------------------------------------------------------------------------------


class SSEError(GlmLiveError):
    """The event stream broke the rules or the limits."""


class EventTooLarge(SSEError):
    """A line or an event passed its size limit.

    Attributes:
        kind: ``"line"`` or ``"event"``.
        size: How large it had grown when the limit tripped.
        limit: The limit in force.
        events: The :class:`~glm_live.wire.sse.Event` values completed by the same piece of
            input, which are not lost.
    """

    def __init__(
        self, message: str, *, kind: str, size: int, limit: int, events: list[Any]
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.size = size
        self.limit = limit
        self.events = events


# --- transport -----------------------------------------------------------------------------


class TransportError(GlmLiveError):
    """A connection could not deliver a stream."""


class ResponseError(TransportError):
    """The server answered, but not with an event stream.

    Attributes:
        status: The HTTP status.
        body: The start of the response body, decoded as text.
        content_type: The response's Content-Type header.
    """

    def __init__(self, message: str, *, status: int, body: str, content_type: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.content_type = content_type


class HTTPStatusError(ResponseError):
    """A status that is not retried (every 4xx, and 2xx/3xx other than 200 and 204)."""


class ContentTypeError(ResponseError):
    """A 200 response whose content type is not ``text/event-stream``."""


class UnsendableRequest(TransportError, ValueError):
    """The request cannot be put on the wire as given (e.g. a header value with a control
    character, or characters its encoding cannot carry); retrying would not help."""


class RetriesExhausted(TransportError):
    """Reconnecting gave up after ``attempts`` tries; ``__cause__`` is the last failure."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


# --- the GLM API ---------------------------------------------------------------------------


class GLMError(GlmLiveError):
    """A chat-completions call failed.

    Attributes:
        status: The HTTP status, or ``None`` when the failure came inside a 200 stream.
        code: The GLM business code as a string (``"1302"``), or ``None``.
        message: What the server or the client said went wrong.
        retryable: Whether trying the same request again later can succeed.
        partial: The completion received before the failure (a
            :class:`glm_live.Completion`), or ``None`` when nothing had started.
    """

    default_retryable = False
    hint = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
        partial: Any = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.partial = partial
        super().__init__(message)

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"HTTP {self.status}" if self.status is not None else "",
                f"code {self.code}" if self.code else "",
            )
            if part
        )
        text = f"[{where}] {self.message}" if where else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, retryable={self.retryable!r})"
        )


class AuthenticationError(GLMError):
    """The API key was missing, invalid or expired (401, codes 1000-1004)."""

    hint = "check the API key: set ZAI_API_KEY or pass api_key="


class RateLimitError(GLMError):
    """Too many requests (429; codes 1302, 1303, 1305 are retryable, quotas are not).

    Attributes:
        retry_after: Seconds the server asked us to wait, or ``None``.
    """

    default_retryable = True
    hint = "lower the concurrency or request rate, or wait and retry"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InsufficientBalanceError(GLMError):
    """The account is in arrears (code 1113). Sent as 429, but retrying will not help."""

    hint = "recharge the account; retrying will not help"


class InvalidRequestError(GLMError):
    """The request was rejected as malformed (400, codes 12xx; also 404 and 422)."""

    hint = "fix the request: see the message for the offending field"


class ServerError(GLMError):
    """The server failed (5xx)."""

    default_retryable = True
    hint = "a server-side failure; retrying later may succeed"


class ContentFilteredError(GLMError):
    """The content was blocked by the safety review (``finish_reason: sensitive``, 1301)."""

    hint = "the provider's content filter stopped the answer; rephrase the request"


class StreamInterrupted(GLMError):
    """The stream ended before the answer did.

    ``finish_reason: network_error`` (inference failed on the server) or a dropped connection;
    ``partial`` holds everything that arrived.
    """

    default_retryable = True
    hint = "the partial answer is on .partial; retrying restarts the answer"


class MalformedResponseError(GLMError):
    """The endpoint sent something that is not a chat completion."""

    hint = "is the base URL an OpenAI-compatible chat-completions endpoint?"


# --- the notebook --------------------------------------------------------------------------


class Cancelled(GlmLiveError):
    """Awaited or waited for a handle that was cancelled (``h.cancel()``, a Stop button).

    Not an :class:`asyncio.CancelledError`: the task awaiting the handle was not cancelled,
    only the work the handle stood for, so this is an ordinary error of that work.

    Attributes:
        partial: What had arrived: the :class:`~glm_live.Completion` so far for a chat, the
            :class:`~glm_live.RunState` so far for a run.
    """

    def __init__(self, message: str, *, partial: Any = None) -> None:
        super().__init__(message)
        self.partial = partial


class SavedFileError(GlmLiveError, ValueError):
    """A saved file (a conversation, a run's event log) this version cannot read: not JSON,
    another kind of file, a damaged one, or one a newer glm_live wrote. The message says
    which, and what reads the file it is."""
