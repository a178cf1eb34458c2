"""The one place that knows uvicorn's internals: a direct write path under its httptools cycle.

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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["DirectSink", "close_connection", "direct_sink"]

# An ASGI send, as in .asgi (which imports this module, so the alias is not imported back).
Send = Callable[[Any], Awaitable[None]]

_HTTPTOOLS_CYCLE_MODULE = "uvicorn.protocols.http.httptools_impl"
_CYCLE_ATTRIBUTES = ("transport", "flow", "disconnected", "chunked_encoding")


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
