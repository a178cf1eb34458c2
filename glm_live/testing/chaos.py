"""A loopback TCP proxy that cuts connections, for testing what survives a flaky network.

Each accepted connection is forwarded to ``target_port`` and torn down (both sides aborted)
after a random lifetime drawn from ``lifetime`` seconds, so a client behind it sees its
connections drop mid-frame, again and again; ``enabled = False`` refuses new connections (an
outage) and :meth:`ChaosProxy.cut_all` drops the current ones. ``cuts`` counts the cuts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

__all__ = ["ChaosProxy"]


class ChaosProxy:
    def __init__(
        self, target_port: int, lifetime: tuple[float, float] = (3600, 3600), seed: int = 0
    ) -> None:
        self.target_port = target_port
        self.lifetime = lifetime
        self.rng = random.Random(seed)
        self.cuts = 0
        self.connections = 0
        self.enabled = True
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def cut_all(self) -> None:
        """Tear down every connection now."""
        for task in list(self._tasks):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        if not self.enabled:  # down: refuse by cutting at once
            writer.transport.abort()
            self._tasks.discard(task)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(self._pump(up_reader, writer)),
        ]
        try:
            life = self.rng.uniform(*self.lifetime)
            done, _ = await asyncio.wait(pumps, timeout=life)
            if len(done) < len(pumps):  # a direction was still open: this is a cut
                self.cuts += 1
        finally:
            for pump in pumps:
                pump.cancel()
            writer.transport.abort()
            up_writer.transport.abort()
            self._tasks.discard(task)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        # One side finished sending: tell the other (a half-close), as a direct connection
        # would, so that a closing handshake completes through the proxy without a timeout.
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
