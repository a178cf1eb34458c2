"""The load generator's transport: HTTP/1.1 over a bare asyncio protocol, parsed by h11.

Measured on this project's machines (design.md), httpx and aiohttp's line reader add tens to
hundreds of milliseconds of timing error at a thousand streams; a bare protocol stays within
a few milliseconds. So the harness sends its own requests: one keep-alive connection per
worker, each read handed to an ``h11.Connection`` (which owns framing: status line, headers,
chunked or content-length or close-delimited bodies, keep-alive) from the protocol's read
callback (``buffer_updated``: an ``asyncio.BufferedProtocol``, see :class:`_Protocol`).

The hot path is one clock read and an append: a read is stamped and queued (:class:`_Reads`),
and the reads queued in one turn of the event loop are fed to h11 together, in order, in one
callback at the next turn. So every read that the loop's poll returned is stamped before h11
parses any of them: parsing (a response head costs h11 about 30 µs, and a thousand streams
answer together) delays no other connection's stamp. Every read's body bytes are kept with
the ``perf_counter_ns`` of that read. Events are split afterwards (:meth:`Response.decode`,
through :class:`glm_live.wire.sse.Decoder`), one read at a time, so an event is stamped with
the read that completed it, exactly as if it had been split on arrival; neither the SSE
split nor the JSON parse can delay the next read's timestamp.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import h11

from ...errors import EventTooLarge
from ...wire.sse import Decoder

__all__ = ["HTTPResponseError", "Response", "Sending", "StreamClient"]


class HTTPResponseError(Exception):
    """A non-200 answer; ``status`` and ``body`` say what came back."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


@dataclass(slots=True)
class Response:
    """One streamed response: filled while it arrives, decoded into events after the run.

    Attributes:
        status: The HTTP status (0 until the head has arrived).
        start_ns: When the client was asked to send it, before it found or made a
            connection (``perf_counter_ns``, as every stamp here): the start of its phases.
        connect_start_ns: When a new connection was begun (``None``: a kept-alive one was
            reused, or the request never got that far)...
        connect_end_ns: ...and when its TCP connection was up.
        tls_ns: When its TLS handshake ended (``https`` on a new connection; else ``None``).
        reused: Whether the request went out on a kept-alive connection.
        sent_ns: When the request was about to be written.
        written_ns: When its last byte was handed to the transport.
        body_ns: A non-200 response's first body byte (a 200's is its first read stamp).
        headers_ns: When the response head was complete.
        first_byte_ns: When the first byte of the response arrived.
        end_ns: When the response ended, or failed.
        read_stamps: A 200 response's body as it arrived: each read's arrival stamp...
        read_bodies: ...and the body bytes it carried (reads that carried none are left
            out). Two flat lists, not a list of pairs: ints and bytes are not tracked by the
            garbage collector, a pair per read would be (tens of thousands in a run, each
            adding to the collections that interrupt the loop).
        body: A non-200 response's body (what :class:`HTTPResponseError` reports).
        error: Why the response did not complete, when it did not.
        events: The events' ``data`` fields, in order (after :meth:`decode`).
        arrivals: Each event's arrival: the stamp of the read that completed it.
        sizes: Each event's ``data`` length, in characters.
    """

    status: int = 0
    start_ns: int = 0
    connect_start_ns: int | None = None
    connect_end_ns: int | None = None
    tls_ns: int | None = None
    reused: bool = False
    sent_ns: int = 0
    written_ns: int | None = None
    body_ns: int | None = None
    headers_ns: int | None = None
    first_byte_ns: int | None = None
    end_ns: int | None = None
    read_stamps: list[int] = field(default_factory=list)
    read_bodies: list[bytes | bytearray] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    error: BaseException | None = None
    events: list[str] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    _decoded: int = field(default=0, init=False, repr=False)  # reads through the decoder
    _decoder: Decoder | None = field(default=None, init=False, repr=False)  # made on first use

    def decode(self, *, until_first: bool = False) -> None:
        """Split the kept reads into events (idempotent: only reads not yet decoded are).

        Args:
            until_first: Stop as soon as there is an event: enough for a running TTFT while
                the run goes, without doing the whole split then.
        """
        if self._decoder is None:
            self._decoder = Decoder()
        decoder = self._decoder
        while self._decoded < len(self.read_bodies):
            if until_first and self.events:
                return
            arrival = self.read_stamps[self._decoded]
            data = self.read_bodies[self._decoded]
            self._decoded += 1
            try:
                events = decoder.feed(data)
            except EventTooLarge as exc:
                events = exc.events  # the oversized event is dropped, the others are kept
            for event in events:
                self.events.append(event.data)
                self.arrivals.append(arrival)
                self.sizes.append(len(event.data))

    def phases(self) -> dict[str, Any]:
        """The request's HTTP phases, in ms after :attr:`start_ns`: ``connect_start_ms``,
        ``connect_ms`` (TCP up), ``tls_ms`` (handshake done), ``request_written_ms`` (last
        byte handed to the transport), ``headers_ms`` (the read that completed the response
        head), ``first_body_byte_ms`` (the read that brought the body's first byte), and
        ``reused``. A reused connection connects in no time (0, and ``tls_ms`` 0 over TLS);
        a phase that does not apply or was not reached is NaN (TLS over plain HTTP; every
        phase after a failure)."""
        start = self.start_ns or self.sent_ns

        def ms(stamp: int | None) -> float:
            return math.nan if stamp is None or not start else (stamp - start) / 1e6

        reused = 0.0 if self.reused else math.nan
        return {
            "reused": self.reused,
            "connect_start_ms": reused if self.reused else ms(self.connect_start_ns),
            "connect_ms": reused if self.reused else ms(self.connect_end_ns),
            "tls_ms": (0.0 if self.reused and self.tls_ns is not None else ms(self.tls_ns)),
            "request_written_ms": ms(self.written_ns),
            "headers_ms": ms(self.headers_ns),
            "first_body_byte_ms": ms(self.read_stamps[0] if self.read_stamps else self.body_ns),
        }

    @property
    def first_event_ns(self) -> int | None:
        """The arrival of the first event, decoding only as far as it."""
        self.decode(until_first=True)
        return self.arrivals[0] if self.arrivals else None


_Data = h11.Data  # a module global: one lookup per read, not two
_READ_SIZE = 256 * 1024  # the most one read takes: what asyncio's transports read at once
_CACHED_REQUESTS = 1024  # request heads kept, one per body length
# How long one turn of the loop parses queued reads before it polls for (and stamps) new ones.
_PARSE_SLICE_NS = 200_000


class _Reads:
    """Reads stamped on arrival, fed to their connections' h11 at a later turn of the loop.

    Shared by a client's connections (one loop, one read at a time). The first read queued
    schedules :meth:`step`; ``asyncio`` runs it after the I/O callbacks of that turn's poll, so
    each read of a burst is stamped before any of them is parsed. A step parses for at most
    :data:`_PARSE_SLICE_NS` and leaves the rest for the next turn, after the next poll: a burst
    of work (a thousand response heads at once) never keeps a read waiting for its stamp
    longer than a slice. Three queues, not one of tuples: a tuple per read is an object the
    garbage collector tracks, and thousands of them queued in a burst set off collections that
    stop the loop for milliseconds.
    """

    __slots__ = ("_datas", "_loop", "_protocols", "_scheduled", "_stamps")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._protocols: collections.deque[_Protocol] = collections.deque()
        self._stamps: collections.deque[int] = collections.deque()
        self._datas: collections.deque[bytes] = collections.deque()
        self._scheduled = False

    def add(self, protocol: _Protocol, now: int, data: bytes) -> None:
        """Queue ``data``, read by ``protocol`` at ``now``, for parsing at a later turn."""
        self._protocols.append(protocol)
        self._stamps.append(now)
        self._datas.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.step)

    def step(self) -> None:
        """Parse queued reads, oldest first, for at most one slice; schedule the rest."""
        protocols, stamps, datas = self._protocols, self._stamps, self._datas
        deadline = time.perf_counter_ns() + _PARSE_SLICE_NS
        while protocols:
            protocols.popleft().parse(stamps.popleft(), datas.popleft())
            if time.perf_counter_ns() > deadline:
                break
        if protocols:
            self._loop.call_soon(self.step)
        else:
            self._scheduled = False

    def drain(self) -> None:
        """Parse every queued read now, oldest first (a connection that ends needs its bytes
        parsed before its end is)."""
        protocols, stamps, datas = self._protocols, self._stamps, self._datas
        while protocols:
            protocols.popleft().parse(stamps.popleft(), datas.popleft())


class _Protocol(asyncio.BufferedProtocol):
    """One connection: writes a request, feeds every read to h11, stamps the body's reads.

    A ``BufferedProtocol``, so that the transport reads into a buffer allocated once: a plain
    ``Protocol`` gets a new ``bytes`` per read, from ``sock.recv(256 KiB)``. Measured with
    200 loopback streams, that allocation costs about 1 µs a read in the harness's process,
    and 13 µs in a lean one, where glibc maps, remaps and unmaps the block at every read
    (strace); the buffer costs nothing, which pays for most of what h11 costs over the old
    hand-written parser. The reads are the same: whatever the socket has, up to 256 KiB.
    """

    def __init__(self, buffer: memoryview, reads: _Reads) -> None:
        self._buffer = buffer  # the client's: its connections share one loop, one read at a time
        self._reads = reads
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.done: asyncio.Future[None] | None = None
        self.closed = False
        self.connected_ns = 0  # when the TCP connection was up
        self.tls = False  # whether it carries TLS (started by StreamClient after connecting)
        self.http = h11.Connection(h11.CLIENT)
        self._streaming = False  # the current response is a 200 with a chunked body

    @property
    def reusable(self) -> bool:
        """Whether another request may go out on this connection now."""
        return not self.closed and self.http.our_state is h11.IDLE

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connected_ns = time.perf_counter_ns()
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._reads.drain()  # the bytes that came before the end are parsed first
        self.closed = True
        if self.done is None or self.done.done():
            return
        # Tell h11 the stream ended: a close-delimited body ends properly here; any other
        # body is cut short, and the error says so.
        self.http.receive_data(b"")
        with contextlib.suppress(h11.RemoteProtocolError):
            self._events(self.http.next_event(), time.perf_counter_ns())
        self._fail(exc or ConnectionError("connection closed mid-response"))

    def start(self, request: bytes, response: Response, done: asyncio.Future[None]) -> None:
        """Write ``request`` (already framed by :attr:`http`) and stream into ``response``;
        ``done`` completes at the end of the body, or fails with why it did not."""
        self.response = response
        self.done = done
        self._streaming = False
        assert self.transport is not None
        response.sent_ns = time.perf_counter_ns()
        self.transport.write(request)
        # Handed to the transport: written to the socket, or (a full socket buffer, or TLS)
        # queued for the loop to write; the last byte is the transport's from here.
        response.written_ns = time.perf_counter_ns()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        # This read's stamp, for every event it completes; the bytes are copied out of the
        # shared buffer, which the next read reuses, and parsed at the next turn (_Reads).
        self._reads.add(self, time.perf_counter_ns(), bytes(self._buffer[:nbytes]))

    def parse(self, now: int, data: bytes) -> None:
        """Feed one read, stamped ``now``, to h11 and take the events it completes."""
        response = self.response
        done = self.done
        if response is None or done is None or done.done():
            # Nothing is waiting for bytes: a server that talks out of turn is not reused.
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        if response.first_byte_ns is None:
            response.first_byte_ns = now
        http = self.http
        http.receive_data(data)
        try:
            event = http.next_event()
            # The usual read of an event stream: one chunk of a 200's chunked body, followed
            # by nothing but the chunk's closing CRLF, which h11 leaves in its buffer until
            # asked for the next event. Nothing more can come out of so little before the
            # next read, so h11 is not asked (that would be a third of its work per read).
            if (
                type(event) is _Data
                and self._streaming
                and len(http.trailing_data[0]) <= len(b"\r\n")
            ):
                response.read_stamps.append(now)
                response.read_bodies.append(event.data)
                return
            self._events(event, now)
        except h11.RemoteProtocolError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def _events(self, event: h11.Event | type[h11.NEED_DATA | h11.PAUSED], now: int) -> None:
        """Take h11's events for one read, from ``event`` on; the read's body bytes are kept as
        one piece, with the read's stamp."""
        response = self.response
        assert response is not None
        http = self.http
        body: bytes | bytearray | None = None  # this read's body bytes: usually one chunk...
        more: list[bytes | bytearray] | None = None  # ...else all its chunks, joined once
        while True:
            if type(event) is h11.Data:
                if body is None:
                    body = event.data
                elif more is None:
                    more = [body, event.data]
                else:
                    more.append(event.data)
            elif type(event) is h11.Response:
                response.status = event.status_code
                response.headers_ns = now
                self._streaming = event.status_code == 200 and any(
                    name == b"transfer-encoding" for name, _ in event.headers
                )
            elif type(event) is not h11.InformationalResponse:  # a 1xx: the real head follows
                break  # NEED_DATA, EndOfMessage, or (after the end of the stream) ConnectionClosed
            event = http.next_event()
        if more is not None:
            body = b"".join(more)
        if body is not None:
            if response.status == 200:
                response.read_stamps.append(now)
                response.read_bodies.append(body)
            else:
                if response.body_ns is None:
                    response.body_ns = now
                response.body += body
        if type(event) is h11.EndOfMessage:
            self._finish(now)

    def _finish(self, now: int) -> None:
        response = self.response
        done = self.done
        assert response is not None
        assert done is not None
        response.end_ns = now  # the arrival of the read that completed the body
        if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()  # keep-alive: the next request may go out here
        if response.status != 200:
            done.set_exception(
                HTTPResponseError(response.status, response.body.decode("utf-8", "replace"))
            )
        else:
            done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)


class Sending(NamedTuple):
    """A request written by :meth:`StreamClient.start`, for :meth:`StreamClient.finish`."""

    protocol: _Protocol
    response: Response
    done: asyncio.Future[None]


class StreamClient:
    """Streams POST requests to one endpoint over reused keep-alive connections.

    Args:
        url: The endpoint.
        headers: Extra request headers (e.g. ``Authorization``).
        verify: For ``https``: an ``ssl.SSLContext``, ``True`` (the default context) or
            ``False`` (no certificate check).
        timeout: Seconds a whole response may take, from the request to the body's end.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 300.0,
    ) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        self.path = parts.path or "/"
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        if self.tls:
            self._ssl = (
                verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
            )
            if verify is False:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._headers = [
            ("Host", parts.netloc),
            ("Content-Type", "application/json"),
            ("Accept", "text/event-stream"),
            *(headers or {}).items(),
        ]
        self._idle: list[_Protocol] = []
        self._buffer = memoryview(bytearray(_READ_SIZE))  # every read lands here first
        self._reads: _Reads | None = None  # made on the loop of the first connection
        # h11 validates a request's headers when it is built (about half its cost to frame
        # a request): one per body length, built once. Lengths are few (prompts cycle).
        self._requests: dict[int, h11.Request] = {}

    def _reuse(self, response: Response) -> _Protocol | None:
        """An idle kept-alive connection for ``response`` (marked reused), or ``None``."""
        while self._idle:
            protocol = self._idle.pop()
            if protocol.reusable:
                response.reused = True
                if protocol.tls:
                    response.tls_ns = response.start_ns  # no handshake: 0 ms, not NaN
                return protocol
        return None

    async def _connect(self, response: Response | None = None) -> _Protocol:
        """A new connection; its TCP and TLS phases are stamped on ``response``, if given (a
        connection opened ahead of the sends, by :meth:`warm`, is an idle one to them)."""
        loop = asyncio.get_running_loop()
        if self._reads is None:
            self._reads = _Reads(loop)
        reads = self._reads
        started = time.perf_counter_ns()
        transport, protocol = await loop.create_connection(
            lambda: _Protocol(self._buffer, reads), self.host, self.port
        )
        if response is not None:
            response.connect_start_ns = started
            response.connect_end_ns = protocol.connected_ns
        if self._ssl is not None:
            try:
                tls = await loop.start_tls(
                    transport, protocol, self._ssl, server_hostname=self.host
                )
            except BaseException:
                transport.close()
                raise
            assert tls is not None
            protocol.transport = tls
            protocol.tls = True
            if response is not None:
                response.tls_ns = time.perf_counter_ns()
        return protocol

    async def warm(self, idle: int = 1) -> None:
        """Open connections until ``idle`` are idle, ready for the next sends: an open loop
        opens them ahead of its scheduled sends, which then skip the connect.

        Raises:
            OSError: A connection could not be made.
        """
        self._idle = [protocol for protocol in self._idle if protocol.reusable]
        while len(self._idle) < idle:
            self._idle.append(await self._connect())

    def start(self, body: bytes, response: Response) -> Sending | None:
        """Write one request now, in this turn of the loop, on an idle kept-alive connection;
        ``None`` (nothing written) when there is none. :meth:`finish` streams the response.

        An open loop sends this way at each scheduled instant: a task would write a turn of
        the loop later, and a turn can take a millisecond when many streams are reading.
        """
        response.start_ns = time.perf_counter_ns()
        protocol = self._reuse(response)
        return None if protocol is None else self._write(protocol, body, response)

    async def post(self, body: bytes, response: Response) -> Response:
        """Send one request and stream its response into ``response`` to the end of the body
        (:meth:`start`, connecting first when no connection is idle, then :meth:`finish`).

        Raises:
            HTTPResponseError: The status was not 200 (the body is on the error).
            ConnectionError: The connection closed mid-response, or the response was not
                HTTP/1.1 that h11 accepts.
            TimeoutError: The response took longer than ``timeout``.
            OSError: The connection could not be made.
        """
        sending = self.start(body, response)
        if sending is None:
            sending = self._write(await self._connect(response), body, response)
        return await self.finish(sending)

    def _write(self, protocol: _Protocol, body: bytes, response: Response) -> Sending:
        http = protocol.http
        request = http.send(self._request(len(body))) or b""
        request += http.send(h11.Data(data=body)) or b""
        request += http.send(h11.EndOfMessage()) or b""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        protocol.start(request, response, done)
        return Sending(protocol, response, done)

    async def finish(self, sending: Sending) -> Response:
        """Stream a written request's response to the end of its body (within ``timeout``).

        Cancelling this, or the timeout, closes the connection; the response keeps what
        arrived and its ``error`` says why it stopped.

        Raises:
            HTTPResponseError: The status was not 200 (the body is on the error).
            ConnectionError: The connection closed mid-response, or the response was not
                HTTP/1.1 that h11 accepts.
            TimeoutError: The response took longer than ``timeout``.
        """
        protocol, response, done = sending
        try:
            await asyncio.wait_for(done, self.timeout)
        except BaseException as exc:
            response.error = exc
            response.end_ns = time.perf_counter_ns()
            protocol.closed = True
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        if protocol.reusable:
            self._idle.append(protocol)
        elif protocol.transport is not None:
            protocol.transport.close()  # the server asked to close (Connection: close)
        return response

    def _request(self, length: int) -> h11.Request:
        request = self._requests.get(length)
        if request is None:
            request = h11.Request(
                method="POST",
                target=self.path,
                headers=[*self._headers, ("Content-Length", str(length))],
            )
            if len(self._requests) < _CACHED_REQUESTS:
                self._requests[length] = request
        return request

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends)."""
        for protocol in self._idle:
            if protocol.transport is not None:
                protocol.transport.close()
        self._idle.clear()
