"""The one place that knows uvicorn's internals: direct write paths under its httptools cycle
and its WebSocket protocol.

ASGI's ``send`` is a coroutine: every body chunk through it costs a coroutine, a flow-control
check and a write. The simulator's pacer sends tens of thousands of small chunks a second from
one timer callback, so under uvicorn's httptools protocol it writes them straight to the
connection's transport instead, already framed as the chunked body uvicorn announced. This
module is the seam: :func:`direct_sink` looks at an ASGI ``send`` and returns a
:class:`DirectSink` only when it is a bound method of uvicorn's httptools request cycle (with
the attributes relied on here, and a chunked response already started); for any other server,
or anything unexpected, it returns ``None`` and callers use plain ASGI ``send``. Nothing else in
the package reaches into uvicorn.

Why only httptools: its cycle records the framing it chose (``chunked_encoding``), so the chunk
framing written here is known to match. uvicorn's h11 cycle keeps that choice inside h11's
private writer, so under h11 everything goes through ``send`` (uvicorn's plain defaults are
measured that way in ``benchmarks/sim_throughput.py``).

What is relied on (uvicorn 0.2x-0.5x, ``uvicorn.protocols.http.httptools_impl``):
``RequestResponseCycle.transport`` (the asyncio transport), ``.flow.write_paused`` (set while
the transport is above its high-water mark), ``.disconnected`` (set when the client has gone)
and ``.chunked_encoding``. If a uvicorn release renames any of them, :func:`direct_sink` returns
``None`` and the runtime keeps working on the plain path, only slower.

The hub does the same for WebSocket frames (:func:`direct_ws_sink`): it fans a message out to
every client of a room from one callback, and each ASGI ``send`` is a chain of coroutines
(Starlette's, then uvicorn's) behind a per-client writer task. Under uvicorn's sans-I/O
websockets protocol (``uvicorn.protocols.websockets.websockets_sansio_impl``, uvicorn's default
when ``websockets`` is installed) a text frame can be framed by the connection's own
``websockets`` protocol object and written at once. Relied on: ``.conn`` (``websockets``'
``ServerProtocol``: ``send_text``, ``data_to_send``), ``.transport``, ``.writable`` (an
``asyncio.Event`` cleared while the transport is above its high-water mark),
``.handshake_complete``, ``.close_sent`` and ``.disconnected``; ``conn.send_close``.

The same object can also cut a connection whose client stopped reading
(:meth:`DirectWebSocketSink.cut`): through ASGI, a close waits behind the back-pressure that
client causes, forever if it never reads again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["DirectSink", "DirectWebSocketSink", "close_connection", "direct_sink", "direct_ws_sink"]

# An ASGI send, as in .asgi (which imports this module, so the alias is not imported back).
Send = Callable[[Any], Awaitable[None]]

_HTTPTOOLS_CYCLE_MODULE = "uvicorn.protocols.http.httptools_impl"
_CYCLE_ATTRIBUTES = ("transport", "flow", "disconnected", "chunked_encoding")
_WS_PROTOCOL_MODULE = "uvicorn.protocols.websockets.websockets_sansio_impl"
_WS_ATTRIBUTES = (
    "conn",
    "transport",
    "writable",
    "handshake_complete",
    "close_sent",
    "disconnected",
)


class DirectSink(Protocol):
    """Writes the body of a started chunked response straight to its connection.

    Used between ``http.response.start`` and the last body message; the last message (``more_body:
    False``) still goes through ASGI ``send``, so that the server finishes the response and
    keeps its own bookkeeping (keep-alive, the access log) right.
    """

    @property
    def paused(self) -> bool:
        """The connection is applying back-pressure (a slow reader): use ``send``, which waits."""
        ...

    @property
    def disconnected(self) -> bool:
        """The client has gone; writes are dropped."""
        ...

    def try_write(self, data: bytes) -> bool:
        """Write ``data`` as one body chunk at once, unless the connection is :attr:`paused`.

        Returns ``False`` (nothing written) when paused: send ``data`` through ``send``, which
        waits for the reader. Never blocks; once the client has gone, data is dropped (and
        ``True`` returned). One call per chunk, as the pacer writes tens of thousands a second.
        """
        ...

    def close(self) -> None:
        """Cut the connection under the response (an injected or relayed drop)."""
        ...


class _HttptoolsSink:
    """A :class:`DirectSink` over uvicorn's httptools ``RequestResponseCycle``."""

    __slots__ = ("_cycle", "_flow", "_transport")

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle
        self._flow = cycle.flow
        self._transport = cycle.transport

    @property
    def paused(self) -> bool:
        return self._flow.write_paused is True

    @property
    def disconnected(self) -> bool:
        return self._cycle.disconnected is True

    def try_write(self, data: bytes) -> bool:
        if self._flow.write_paused:
            return False
        if not self._cycle.disconnected:
            # HTTP/1.1 chunked framing (RFC 9112 section 7.1): hex size, CRLF, data, CRLF.
            self._transport.write(b"%x\r\n%s\r\n" % (len(data), data))
        return True

    def close(self) -> None:
        self._transport.close()


def direct_sink(send: Send) -> DirectSink | None:
    """A :class:`DirectSink` for the response behind ``send``, or ``None`` to use ``send``.

    Call after ``http.response.start`` was sent: only then is the body's framing known. Returns
    ``None`` for any server but uvicorn's httptools protocol, for a response that is not
    chunked, and for a uvicorn whose cycle lacks what this module relies on.
    """
    cycle = _httptools_cycle(send)
    if cycle is None or cycle.chunked_encoding is not True:
        return None
    return _HttptoolsSink(cycle)


def close_connection(send: Send) -> bool:
    """Close the connection under the response behind ``send``, at any point of it.

    Returns ``False`` (and does nothing) when ``send`` is not uvicorn's httptools cycle: the
    caller must then make the server close it (for instance by raising).
    """
    cycle = _httptools_cycle(send)
    if cycle is None:
        return False
    cycle.transport.close()
    return True


def _httptools_cycle(send: Send) -> Any:
    """uvicorn's httptools request cycle that ``send`` is a method of, or ``None``."""
    cycle = getattr(send, "__self__", None)
    if cycle is None or type(cycle).__module__ != _HTTPTOOLS_CYCLE_MODULE:
        return None
    if not all(hasattr(cycle, name) for name in _CYCLE_ATTRIBUTES):
        return None
    return cycle


class DirectWebSocketSink(Protocol):
    """Writes text frames of an accepted WebSocket straight to its connection."""

    def try_send(self, text: str) -> bool:
        """Frame and write ``text`` at once; ``False`` (nothing written) while the connection
        applies back-pressure or is closing: then send it through ASGI ``send``, which waits
        (and raises once the client has gone). Never blocks."""
        ...

    def cut(self, code: int, reason: str, grace: float) -> None:
        """Close now, whatever the back-pressure: the close frame (``code``, ``reason``) goes
        behind what is buffered, and the connection is aborted after ``grace`` seconds unless
        it closed by then. For a client that stopped reading."""
        ...


class _SansIOWebSocketSink:
    """A :class:`DirectWebSocketSink` over uvicorn's ``WebSocketsSansIOProtocol``."""

    __slots__ = ("_conn", "_protocol", "_transport", "_writable")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._conn = protocol.conn
        self._transport = protocol.transport
        self._writable = protocol.writable

    def try_send(self, text: str) -> bool:
        protocol = self._protocol
        transport = self._transport
        if (
            not self._writable.is_set()
            or protocol.close_sent
            or protocol.disconnected
            or transport.is_closing()  # e.g. the client's close frame arrived
        ):
            return False
        conn = self._conn
        try:
            conn.send_text(text.encode())
        except Exception:  # the connection is closing: ASGI send reports it to the writer
            return False
        transport.write(b"".join(conn.data_to_send()))
        return True

    def cut(self, code: int, reason: str, grace: float) -> None:
        protocol = self._protocol
        if protocol.disconnected:
            return
        if not protocol.close_sent:
            try:
                self._conn.send_close(code, reason)
                self._transport.write(b"".join(self._conn.data_to_send()))
            except Exception:  # the protocol is past sending: the abort below still holds
                pass
            protocol.close_sent = True
        asyncio.get_running_loop().call_later(grace, self._transport.abort)


def direct_ws_sink(send: Send) -> DirectWebSocketSink | None:
    """A :class:`DirectWebSocketSink` for the accepted WebSocket behind ``send`` (the server's
    own ASGI ``send``, not a framework's wrapper of it), or ``None`` to use ``send``: for any
    server but uvicorn's sans-I/O websockets protocol, or one lacking what is relied on here."""
    protocol = getattr(send, "__self__", None)
    if protocol is None or type(protocol).__module__ != _WS_PROTOCOL_MODULE:
        return None
    if not all(hasattr(protocol, name) for name in _WS_ATTRIBUTES):
        return None
    if protocol.handshake_complete is not True:
        return None
    return _SansIOWebSocketSink(protocol)
