"""A resilient server-sent-events client over httpx.

:class:`EventSource` does what a browser's ``EventSource`` does, and what the Python SSE clients
leave to their users:

- reconnects on network errors, 5xx and a clean end of stream, with exponential backoff and full
  jitter (:class:`~glm_live.retry.Backoff`), the server's ``retry:`` as a floor, and the failure
  count reset only after a connection stayed up ``stable_after`` seconds;
- sends ``Last-Event-ID`` when it reconnects (as UTF-8, as browsers do), and does not yield
  twice an event the server replays with an ID of its own that was already delivered; an event
  that carries no ``id`` field of its own is never taken for a replay;
- an idle watchdog: no bytes at all (comments count) for ``idle_timeout`` seconds means the
  connection is dead, and it reconnects;
- stops on 204; raises :class:`~glm_live.errors.HTTPStatusError` on other 4xx and
  :class:`~glm_live.errors.ContentTypeError` on a wrong content type, both carrying the status
  and the start of the body, at once: the body is waited for half a second at most, so a
  server that holds such a connection open cannot stall the report;
- exposes its state, reconnect count, last error and per-connection timings, and reports every
  change to observers (plain callables taking a :class:`ConnectionEvent`).

It never logs or shows request headers, so an ``Authorization`` header stays private.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from ..errors import (
    ContentTypeError,
    EventTooLarge,
    HTTPStatusError,
    RetriesExhausted,
    TransportError,
    UnsendableRequest,
)
from ..wire.retry import Backoff, parse_retry_after
from ..wire.sse import (
    DEFAULT_MAX_EVENT_SIZE,
    DEFAULT_MAX_LINE_SIZE,
    Decoder,
    Event,
    IdentifiedEvent,
)
from ._closing import AsyncClosing

__all__ = [
    "ConnectionEvent",
    "ConnectionFailed",
    "ConnectionState",
    "EventSource",
    "Observed",
    "Observer",
    "safe_url",
]

logger = logging.getLogger("glm_live.stream")

_ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error response kept for the exception
_ERROR_BODY_WAIT = 0.5  # seconds an error response's body is waited for


class ConnectionState(enum.StrEnum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """One change in a connection's life, as observers receive it.

    Attributes:
        kind: ``"connecting"``, ``"open"``, ``"error"``, ``"reconnecting"`` (with ``delay``)
            or ``"closed"``.
        state: The state after the change.
        at_ns: When, on the ``time.perf_counter_ns`` clock.
        attempt: The connection attempt it belongs to, from 1.
        reconnects: Reconnections started so far.
        delay: Seconds until the next attempt (``"reconnecting"`` only).
        status: The HTTP status, when there was a response.
        error: The failure (``"error"``, and ``"closed"`` when it ended in one).
    """

    kind: str
    state: ConnectionState
    at_ns: int
    attempt: int
    reconnects: int
    delay: float | None = None
    status: int | None = None
    error: BaseException | None = None


Observer = Callable[[ConnectionEvent], None]


class Observed:
    """What EventSource and the hub client share: a state, attempt and reconnect counts, and
    observers told of every change (an observer's exception is logged, never raised)."""

    state: ConnectionState
    attempts: int
    reconnects: int
    _observers: list[Observer]
    _logger: ClassVar[logging.Logger] = logger  # a subclass may log under its own name

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer`` with every :class:`ConnectionEvent` from now on."""
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        """Stop calling ``observer``."""
        self._observers.remove(observer)

    def _emit(self, kind: str, state: ConnectionState, **fields: Any) -> None:
        self.state = state
        change = ConnectionEvent(
            kind=kind,
            state=state,
            at_ns=time.perf_counter_ns(),
            attempt=self.attempts,
            reconnects=self.reconnects,
            **fields,
        )
        for observer in list(self._observers):
            try:
                observer(change)
            except Exception:
                # An observer's bug must not kill the connection it observes.
                self._logger.exception("observer %r failed on %s", observer, kind)


class ConnectionFailed(TransportError):
    """The connection failed or dropped and will not be retried (``reconnect=False``).

    ``__cause__`` is the underlying httpx error.
    """


class _Reconnect(Exception):
    """Internal: this connection is over; try again after a delay (at least ``floor`` s)."""

    def __init__(self, reason: BaseException | None, floor: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.floor = floor


def safe_url(url: str | httpx.URL) -> str:
    """The URL without credentials or query string, for messages and logs."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None, userinfo=b""))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class EventSource(AsyncClosing, Observed):
    """Server-sent events from ``url``, reconnecting until closed.

    Use it as an async context manager and iterate it::

        async with EventSource(url) as source:
            async for event in source:
                print(event.event, event.data)

    Args:
        url: The stream's URL.
        method: HTTP method (``"POST"`` for chat completions and AG-UI runs).
        json: A JSON body, sent on every attempt.
        content: A raw body, instead of ``json``.
        params: Query parameters.
        headers: Extra request headers (never logged or shown).
        client: An ``httpx.AsyncClient`` to use; by default one is made and closed with this.
        transport: An httpx transport for the client made here.
        connect_timeout: Seconds to establish a connection.
        idle_timeout: Seconds without a single byte (response headers included) before the
            connection counts as dead; ``None`` disables the watchdog.
        reconnect: Whether to reconnect at all. With ``False``, a network failure raises
            :class:`ConnectionFailed`, a 5xx :class:`~glm_live.errors.HTTPStatusError`, and the
            end of the stream ends the iteration.
        max_retries: Consecutive failed attempts allowed before giving up with
            :class:`~glm_live.errors.RetriesExhausted`; ``None`` retries forever.
        backoff: The delay policy (a fresh :class:`~glm_live.retry.Backoff` by default).
        last_event_id: Resume from this ID (sent as ``Last-Event-ID`` on the first request).
        max_line_size: Largest line accepted, in bytes.
        max_event_size: Largest event data accepted, in characters.
        dedupe_window: How many delivered event IDs are remembered to drop replays.
        observers: Callables receiving every :class:`ConnectionEvent`.

    Cancelling the task that iterates is safe: the response is closed and the state becomes
    ``closed``. Nothing here waits without a timeout except the backoff sleep, which is bounded
    by ``backoff.maximum`` (or the server's ``retry``, up to ``backoff.max_floor``).
    """

    def __init__(
        self,
        url: str | httpx.URL,
        method: str = "GET",
        *,
        json: Any = None,
        content: bytes | str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float | None = 60.0,
        reconnect: bool = True,
        max_retries: int | None = None,
        backoff: Backoff | None = None,
        last_event_id: str = "",
        max_line_size: int = DEFAULT_MAX_LINE_SIZE,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        dedupe_window: int = 1024,
        observers: Iterable[Observer] = (),
    ) -> None:
        self.url = httpx.URL(url)
        self.method = method.upper()
        self._json = json
        self._content = content
        self._params = dict(params) if params else None
        self._headers = dict(headers or {})
        self._own_client = client is None
        self._client = client
        self._transport = transport
        self._timeout = httpx.Timeout(connect_timeout, read=idle_timeout)
        self.idle_timeout = idle_timeout
        self.reconnect = reconnect
        self.max_retries = max_retries
        self.backoff = backoff if backoff is not None else Backoff()
        self._max_line_size = max_line_size
        self._max_event_size = max_event_size
        self._observers: list[Observer] = list(observers)
        self._seen_order: deque[str] = deque(maxlen=max(1, dedupe_window))
        self._seen: set[str] = set()
        self._iterator: AsyncIterator[Event] | None = None

        self.state = ConnectionState.CONNECTING
        #: Reconnections started so far.
        self.reconnects = 0
        #: Attempts made so far (the first connection included).
        self.attempts = 0
        #: The failure that ended the last connection, or ``None``.
        self.last_error: BaseException | None = None
        #: The last event ID delivered; sent as ``Last-Event-ID`` on reconnect.
        self.last_event_id = last_event_id
        # What goes out as Last-Event-ID: the latest delivered ID that HTTP can carry.
        self._resume_from = _resume_header(last_event_id)
        if last_event_id and self._resume_from is None:
            msg = (
                f"last_event_id {last_event_id!r} cannot be sent as a Last-Event-ID header "
                "(it has a control character); pass the ID the server's stream gave as it is"
            )
            raise UnsendableRequest(msg)
        #: The server's reconnection time in milliseconds, once it sent ``retry:``.
        self.retry: int | None = None
        #: HTTP status of the current (or last) response.
        self.status: int | None = None
        #: Response headers of the current (or last) response.
        self.response_headers: httpx.Headers | None = None
        #: Events dropped as replays of already delivered IDs.
        self.duplicates_dropped = 0
        #: Bytes received on all connections.
        self.bytes_received = 0
        # Timings of the current connection, on the perf_counter_ns clock.
        self.request_start_ns: int | None = None
        self.request_sent_ns: int | None = None
        self.headers_ns: int | None = None
        self.first_byte_ns: int | None = None
        self.last_arrival_ns: int | None = None

    def __repr__(self) -> str:
        return (
            f"<EventSource {self.method} {safe_url(self.url)} state={self.state.value} "
            f"reconnects={self.reconnects}>"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    async def aclose(self) -> None:
        """Close the connection (and the client, if this made it). Safe to call twice."""
        iterator, self._iterator = self._iterator, _closed()
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.state is not ConnectionState.CLOSED:
            self._emit("closed", ConnectionState.CLOSED)

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> AsyncIterator[Event]:
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self._transport, follow_redirects=True)
        client = self._client
        ending: BaseException | None = None
        try:
            while True:
                self.attempts += 1
                opened_ns: int | None = None
                try:
                    self._emit(
                        "connecting",
                        ConnectionState.CONNECTING
                        if self.attempts == 1
                        else ConnectionState.RECONNECTING,
                    )
                    async for event in self._connect(client):
                        if opened_ns is None:
                            opened_ns = self.headers_ns
                        yield event
                    if opened_ns is None:
                        opened_ns = self.headers_ns
                    if not self.reconnect:
                        return
                    raise _Reconnect(None)
                except _Stop:
                    return
                except _Reconnect as again:
                    failure = again.reason
                    floor = again.floor
                except httpx.LocalProtocolError:
                    # Our own request is malformed (h11 refused it before sending): no retry
                    # can help. h11's message quotes the header value, which may be a secret,
                    # so it is not repeated.
                    raise UnsendableRequest(
                        f"{self.method} {safe_url(self.url)}: the request could not be sent, "
                        "a header value is not valid in HTTP/1.1 (a control character, or "
                        "leading or trailing whitespace); check the headers you passed"
                    ) from None
                except httpx.TransportError as exc:
                    if opened_ns is None:
                        opened_ns = self.headers_ns
                    if not self.reconnect:
                        raise ConnectionFailed(
                            f"{self.method} {safe_url(self.url)} failed: {_describe(exc)}"
                        ) from exc
                    failure, floor = exc, None
                if opened_ns is not None and self.status == 200:
                    self.backoff.connected_for((time.perf_counter_ns() - opened_ns) / 1e9)
                self.last_error = failure
                if failure is not None:
                    self._emit("error", self.state, error=failure, status=self.status)
                if self.max_retries is not None and self.backoff.failures >= self.max_retries:
                    what = _describe(failure) if failure else "the stream kept ending"
                    raise RetriesExhausted(
                        f"gave up on {safe_url(self.url)} after {self.attempts} attempts "
                        f"({self.backoff.failures} consecutive failures); last: {what}",
                        attempts=self.attempts,
                    ) from failure
                if self.retry is not None:
                    server_floor = self.retry / 1000.0
                    floor = server_floor if floor is None else max(floor, server_floor)
                delay = self.backoff.next_delay(floor)
                self.reconnects += 1
                self._emit("reconnecting", ConnectionState.RECONNECTING, delay=delay, error=failure)
                logger.info(
                    "%s: reconnecting in %.2f s (%s)",
                    safe_url(self.url),
                    delay,
                    _describe(failure) if failure else "stream ended",
                )
                await asyncio.sleep(delay)
        except BaseException as exc:
            ending = exc
            raise
        finally:
            if isinstance(ending, Exception) and not isinstance(ending, StopAsyncIteration):
                self.last_error = ending
                self._emit("closed", ConnectionState.CLOSED, error=ending, status=self.status)
            else:
                self._emit("closed", ConnectionState.CLOSED, status=self.status)

    async def _connect(self, client: httpx.AsyncClient) -> AsyncIterator[Event]:
        """One connection: send, check the response, decode until the stream ends."""
        request = client.build_request(
            self.method,
            self.url,
            json=self._json,
            content=self._content,
            params=self._params,
            headers=self._request_headers(),
            timeout=self._timeout,
            extensions={"trace": self._trace},
        )
        self.status = None
        self.response_headers = None
        self.request_sent_ns = self.headers_ns = self.first_byte_ns = None
        self.request_start_ns = time.perf_counter_ns()
        response = await client.send(request, stream=True)
        try:
            self.headers_ns = time.perf_counter_ns()
            if self.request_sent_ns is None:
                self.request_sent_ns = self.headers_ns
            self.status = response.status_code
            self.response_headers = response.headers
            await self._check(response)
            self._emit("open", ConnectionState.OPEN, status=self.status)
            async for event in self._decode(response):
                yield event
        finally:
            await response.aclose()

    def _request_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers of the next attempt, as bytes (the Last-Event-ID is UTF-8)."""
        headers: dict[str, str | bytes] = {
            **self._headers,
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
        }
        if self._resume_from:
            headers["Last-Event-ID"] = self._resume_from
        encoded = []
        for name, value in headers.items():
            try:
                raw = value.encode("ascii") if isinstance(value, str) else value
                encoded.append((name.encode("ascii"), raw))
            except UnicodeEncodeError:
                msg = (
                    f"request header {name!r} has characters an HTTP header cannot carry as "
                    "text (it must be ASCII); encode the value first, e.g. as UTF-8 bytes"
                )
                raise UnsendableRequest(msg) from None
        return encoded

    async def _check(self, response: httpx.Response) -> None:
        """Accept a 200 event stream; end, retry or raise on anything else."""
        status = response.status_code
        if status == 204:
            # The server's way to say "stop reconnecting".
            raise _Stop
        content_type = response.headers.get("content-type", "")
        if status == 200:
            media_type = content_type.partition(";")[0].strip().lower()
            if media_type == "text/event-stream":
                return
            body = await _read_some(response)
            raise ContentTypeError(
                f"{self.method} {safe_url(self.url)} answered 200 with Content-Type "
                f"{content_type or '(none)'!r}, not 'text/event-stream': is this an SSE "
                f"endpoint? Body starts: {body[:200]!r}",
                status=status,
                body=body,
                content_type=content_type,
            )
        body = await _read_some(response)
        error = HTTPStatusError(
            f"{self.method} {safe_url(self.url)} answered HTTP {status} "
            f"{response.reason_phrase}: {body[:500]!r}",
            status=status,
            body=body,
            content_type=content_type,
        )
        if status >= 500 and self.reconnect:
            raise _Reconnect(error, parse_retry_after(response.headers))
        raise error

    async def _decode(self, response: httpx.Response) -> AsyncIterator[Event]:
        decoder = Decoder(
            last_event_id=self.last_event_id,
            max_line_size=self._max_line_size,
            max_event_size=self._max_event_size,
        )
        # After a reconnect the server may replay what we already have: skip events whose
        # ID was delivered, until the first one that was not.
        replaying = self.attempts > 1 and bool(self._seen)
        resume_source = self.last_event_id
        async for piece in response.aiter_bytes():
            now = time.perf_counter_ns()
            if self.first_byte_ns is None:
                self.first_byte_ns = now
            self.bytes_received += len(piece)
            oversized: EventTooLarge | None = None
            try:
                events = decoder.feed(piece)
            except EventTooLarge as exc:
                events, oversized = exc.events, exc
            if decoder.retry is not None:
                self.retry = decoder.retry
            for event in events:
                # Only an event with an id field of its own can be a replay: one that merely
                # inherited the last ID (from this stream, or the Last-Event-ID we sent) is new.
                if replaying and isinstance(event, IdentifiedEvent):
                    if event.id in self._seen:
                        self.duplicates_dropped += 1
                        continue
                    replaying = False
                self.last_event_id = event.id
                if event.id != resume_source:
                    resume_source = self._resume_after(event.id)
                self._remember(event.id)
                self.last_arrival_ns = now
                yield event
            # The decoder also moves the ID on blocks with no data.
            self.last_event_id = decoder.last_event_id
            if self.last_event_id != resume_source:
                resume_source = self._resume_after(self.last_event_id)
            if oversized is not None:
                raise oversized
        decoder.close()

    def _resume_after(self, event_id: str) -> str:
        """Make ``event_id`` the one a reconnect resumes after, if HTTP can carry it; else
        keep the last one it could (what the server replays after that is then dropped as
        already delivered). Returns ``event_id``."""
        header = _resume_header(event_id)
        if header is not None:
            self._resume_from = header
        else:
            logger.warning(
                "%s: event ID %.40r cannot be sent as Last-Event-ID (a control character); "
                "a reconnect resumes from the last ID that can",
                safe_url(self.url),
                event_id,
            )
        return event_id

    def _remember(self, event_id: str) -> None:
        if not event_id or event_id in self._seen:
            return
        if len(self._seen_order) == self._seen_order.maxlen:
            self._seen.discard(self._seen_order[0])
        self._seen_order.append(event_id)
        self._seen.add(event_id)

    async def _trace(self, name: str, info: Mapping[str, Any]) -> None:
        # httpcore reports when the request body has gone out: the honest "request sent".
        if name.endswith("send_request_body.complete"):
            self.request_sent_ns = time.perf_counter_ns()


class _Stop(Exception):
    """Internal: the server answered 204, so the stream is over for good."""


_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _resume_header(event_id: str) -> bytes | None:
    """``event_id`` as a ``Last-Event-ID`` value (``b""``: send none), or ``None`` if HTTP
    cannot carry it.

    Browsers send the ID as UTF-8, and so does this. Leading and trailing spaces and tabs are
    left out: HTTP excludes them from a field's value (RFC 9110, section 5.5), so a server
    never sees them whoever sends them, and h11 refuses to. A control character cannot be
    carried at all.
    """
    value = event_id.encode("utf-8").strip(b" \t")
    return None if _CONTROL.search(value) else value


async def _read_some(
    response: httpx.Response, limit: int = _ERROR_BODY_LIMIT, wait: float = _ERROR_BODY_WAIT
) -> str:
    """Up to ``limit`` bytes of a response body, as text, waiting ``wait`` seconds at most: a
    server may hold an error response open, and the error is known without its body."""
    buffer = bytearray()
    try:
        async with asyncio.timeout(wait):
            async for chunk in response.aiter_bytes():
                buffer += chunk
                if len(buffer) >= limit:
                    break
    except (httpx.HTTPError, TimeoutError):
        pass  # a partial body is still worth showing
    return buffer[:limit].decode("utf-8", "replace")


async def _closed() -> AsyncIterator[Event]:
    return
    yield  # pragma: no cover - makes this an async generator
