"""Small ASGI helpers shared by the runtime's handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "ConnectionCut",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "cut_connection",
    "send_json",
    "uvicorn_cycle",
    "wait_disconnect",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ConnectionCut(Exception):
    """Raised to make a server whose transport we cannot reach close the connection."""


def uvicorn_cycle(send: Send) -> Any:
    """uvicorn's httptools request cycle behind ``send``, or ``None`` for any other server.

    It gives the fastest write path and a clean way to cut a connection; everything that
    uses it has a plain-ASGI fallback.
    """
    cycle = getattr(send, "__self__", None)
    if cycle is None or type(cycle).__module__ != "uvicorn.protocols.http.httptools_impl":
        return None
    if not all(hasattr(cycle, name) for name in ("transport", "flow", "disconnected")):
        return None
    return cycle


def cut_connection(send: Send) -> None:
    """Close the connection under a response mid-way (an injected or relayed drop)."""
    cycle = uvicorn_cycle(send)
    if cycle is None:
        raise ConnectionCut
    cycle.transport.close()


async def wait_disconnect(receive: Receive) -> None:
    """Return when the client has gone (call after the request body was read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A complete JSON response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
