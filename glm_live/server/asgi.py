"""Small ASGI helpers shared by the runtime's handlers.

They speak plain ASGI; the one reach into uvicorn (closing a connection at once) goes through
:mod:`._uvicorn_fast`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._uvicorn_fast import close_connection

__all__ = [
    "ConnectionCut",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "cut_connection",
    "send_json",
    "wait_disconnect",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class ConnectionCut(Exception):
    """Raised to make a server whose transport we cannot reach close the connection."""


def cut_connection(send: Send) -> None:
    """Close the connection under a response mid-way (an injected or relayed drop).

    Under uvicorn's httptools protocol the transport is closed at once; under any other server
    this raises :class:`ConnectionCut`, which the handler lets propagate so that the server,
    seeing the application fail after the response started, closes the connection itself.
    """
    if not close_connection(send):
        raise ConnectionCut


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
