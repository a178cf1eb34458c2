"""The baseline for benchmarks/hub_fanout.py: a bare ``websockets`` server.

A text frame starting with ``E`` is echoed to its sender; any other is broadcast to every
connected client (``websockets.broadcast``). No JSON, no rooms, no history: the floor a hub
is measured against. Run: ``python benchmarks/raw_ws_server.py PORT``.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

clients: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    clients.add(ws)
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("E"):
                await ws.send(message)
            else:
                broadcast(clients, message)
    finally:
        clients.discard(ws)


async def main(port: int) -> None:
    # No compression, as the hub by default: both put the same bytes on the wire.
    async with serve(
        handler, "127.0.0.1", port, max_size=1 << 20, ping_interval=None, compression=None
    ):
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
