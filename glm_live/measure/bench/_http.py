"""The load generator's transport: HTTP/1.1 over a bare ``asyncio.Protocol``.

Measured on this project's machines (design.md), httpx and aiohttp's line reader add tens to
hundreds of milliseconds of timing error at a thousand streams; a protocol that splits events
itself stays within a few milliseconds. So the harness sends its own requests: one keep-alive
connection per worker, the response body de-chunked incrementally, events split by
:class:`glm_live.sse.Decoder`, and every event stamped with the ``perf_counter_ns`` of the read
that completed it. Nothing else happens while streaming: event data is kept as text and parsed
after the run, so that JSON work cannot delay the next read's timestamp.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ...wire.sse import Decoder

__all__ = ["HTTPResponseError", "Response", "StreamClient"]


class HTTPResponseError(Exception):
    """A non-200 answer; ``status`` and ``body`` say what came back."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


@dataclass
class Response:
    """One streamed response, as received."""

    status: int = 0
    sent_ns: int = 0
    headers_ns: int | None = None
    first_byte_ns: int | None = None
    end_ns: int | None = None
    events: list[str] = field(default_factory=list)  # data fields, in order
    arrivals: list[int] = field(default_factory=list)  # perf_counter_ns, per event
    sizes: list[int] = field(default_factory=list)
    error: BaseException | None = None


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.done: asyncio.Future[None] | None = None
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self._head = bytearray()
        self._in_body = False
        self._chunked = False
        self._remaining = -1  # content-length left, or -1
        self._chunk_left = 0  # bytes left in the current chunk
        self._chunk_state = "size"  # size | data | crlf | trailer
        self._size_line = bytearray()
        self._decoder = Decoder()
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.done is not None and not self.done.done():
            if (
                self.response is not None
                and self._in_body
                and not self._chunked
                and (self._remaining < 0)
            ):
                self._finish()  # a close-delimited body ends here
            else:
                self.done.set_exception(exc or ConnectionError("connection closed mid-response"))

    def start(self, request: bytes, response: Response, done: asyncio.Future[None]) -> None:
        self._reset()
        self.response = response
        self.done = done
        assert self.transport is not None
        response.sent_ns = time.perf_counter_ns()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter_ns()
        response = self.response
        if response is None or self.done is None or self.done.done():
            return
        if response.first_byte_ns is None:
            response.first_byte_ns = now
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(self._head[:end]), now)
            data = bytes(self._head[end + 4 :])
            self._head.clear()
            if self.done.done():
                return
        if self._chunked:
            self._dechunk(data, now)
        else:
            if self._remaining >= 0:
                data = data[: self._remaining]
                self._remaining -= len(data)
            self._payload(data, now)
            if self._remaining == 0:
                self._finish()

    def _parse_head(self, head: bytes, now: int) -> None:
        assert self.response is not None
        lines = head.decode("latin-1").split("\r\n")
        try:
            self.response.status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            self._fail(ConnectionError(f"not an HTTP response: {lines[0][:80]!r}"))
            return
        self.response.headers_ns = now
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "transfer-encoding" and "chunked" in value.lower():
                self._chunked = True
            elif name == "content-length":
                self._remaining = int(value.strip())
        self._in_body = True
        if self._remaining == 0:
            self._finish()

    def _dechunk(self, data: bytes, now: int) -> None:
        view = memoryview(data)
        i = 0
        n = len(data)
        while i < n:
            state = self._chunk_state
            if state == "size":
                line, i = self._line(data, view, i)
                if line is None:
                    return
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self._chunk_state = "trailer"
                    continue
                self._chunk_left = size
                self._chunk_state = "data"
            elif state == "data":
                take = min(self._chunk_left, n - i)
                self._payload(view[i : i + take], now)
                i += take
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_state = "crlf"
            elif state == "crlf":  # the CRLF after a chunk's data
                newline = data.find(b"\n", i)
                if newline < 0:
                    return
                i = newline + 1
                self._chunk_state = "size"
            else:  # trailer lines after the last chunk, up to an empty line: the body's end
                line, i = self._line(data, view, i)
                if line is None:
                    return
                if not line.strip():
                    self._finish()
                    return

    def _line(self, data: bytes, view: memoryview, i: int) -> tuple[bytes | None, int]:
        """The line starting at ``i`` (joined to what an earlier read left) and where the next
        starts; ``None`` when it is not complete yet (what there is waits in the buffer)."""
        newline = data.find(b"\n", i)
        if newline < 0:
            self._size_line += view[i:]
            return None, len(data)
        self._size_line += view[i:newline]
        line = bytes(self._size_line)
        self._size_line.clear()
        return line, newline + 1

    def _payload(self, data: bytes | memoryview, now: int) -> None:
        response = self.response
        assert response is not None
        if response.status != 200:
            self._body += data
            return
        for event in self._decoder.feed(data):
            response.events.append(event.data)
            response.arrivals.append(now)
            response.sizes.append(len(event.data))

    def _finish(self) -> None:
        response = self.response
        if response is None or self.done is None or self.done.done():
            return
        response.end_ns = time.perf_counter_ns()
        if response.status != 200:
            self.done.set_exception(
                HTTPResponseError(response.status, self._body.decode("utf-8", "replace"))
            )
        else:
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)


class StreamClient:
    """Streams POST requests to one endpoint over reused keep-alive connections."""

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
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
            f"{extra}Content-Length: "
        ).encode()
        self._idle: list[_Protocol] = []

    async def _connection(self) -> _Protocol:
        while self._idle:
            protocol = self._idle.pop()
            if not protocol.closed:
                return protocol
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            _Protocol,
            self.host,
            self.port,
            ssl=self._ssl,
            server_hostname=self.host if self.tls else None,
        )
        return protocol

    async def post(self, body: bytes, response: Response) -> Response:
        """Send one request and stream its response into ``response`` to the end of the body;
        on failure ``response`` keeps what arrived and ``response.error`` says why."""
        protocol = await self._connection()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        protocol.start(self._head + b"%d\r\n\r\n" % len(body) + body, response, done)
        try:
            await asyncio.wait_for(done, self.timeout)
        except BaseException as exc:
            response.error = exc
            response.end_ns = time.perf_counter_ns()
            if protocol.transport is not None:
                protocol.transport.close()
            raise
        self._idle.append(protocol)
        return response

    def close(self) -> None:
        for protocol in self._idle:
            if protocol.transport is not None:
                protocol.transport.close()
        self._idle.clear()
