"""A byte-exact HTTP/1.1 server on loopback, for the streams no well-behaved server would send.

Each accepted connection reads one request, records it, and plays the next :class:`Reply` from
the script (the last one repeats when the script runs out). A reply is a status, headers and a
list of steps: ``bytes`` are written as they are (one HTTP chunk each when ``chunked``), a
``float`` sleeps that many seconds. Then the connection ends as ``end`` says:

- ``"eof"``: the body ends properly (the final zero chunk), then the socket closes;
- ``"drop"``: the socket closes mid-body (an incomplete chunked body: a dropped connection);
- ``"reset"``: the socket is aborted;
- ``"hang"``: nothing more is sent until the server stops (for idle watchdogs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/event-stream"})
    steps: list[bytes | float] = field(default_factory=list)
    end: str = "eof"
    chunked: bool = True


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def sse(*steps: bytes | str | float, end: str = "eof", **kwargs: Any) -> Reply:
    """A 200 event-stream reply; ``str`` steps are encoded as UTF-8."""
    return Reply(steps=[s.encode() if isinstance(s, str) else s for s in steps], end=end, **kwargs)


def error(status: int, body: str | dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    """A complete error reply with a JSON (or text) body."""
    text = json.dumps(body) if isinstance(body, dict) else body
    content_type = "application/json" if isinstance(body, dict) else "text/plain"
    return Reply(
        status=status,
        headers={"content-type": content_type, **(headers or {})},
        steps=[text.encode()],
        chunked=False,
    )


_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ByteServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.script: list[Reply] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def play(self, *replies: Reply | Iterable[Reply]) -> None:
        """Replace the script."""
        self.script = []
        for reply in replies:
            if isinstance(reply, Reply):
                self.script.append(reply)
            else:
                self.script.extend(reply)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Request(method, path, headers, body))
        index = self.connections
        self.connections += 1
        reply = self.script[min(index, len(self.script) - 1)] if self.script else sse()

        out = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Whatever')}"]
        out += [f"{name}: {value}" for name, value in reply.headers.items()]
        if reply.chunked:
            out.append("transfer-encoding: chunked")
        else:
            length = sum(len(s) for s in reply.steps if isinstance(s, bytes))
            out.append(f"content-length: {length}")
        out.append("connection: close")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        for step in reply.steps:
            if isinstance(step, float | int):
                await asyncio.sleep(step)
                continue
            if reply.chunked:
                writer.write(b"%x\r\n%s\r\n" % (len(step), step))
            else:
                writer.write(step)
            await writer.drain()
        if reply.end == "eof":
            if reply.chunked:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif reply.end == "reset":
            writer.transport.abort()
        elif reply.end == "hang":
            await asyncio.sleep(3600)
        # "drop": fall through and close with the body incomplete
