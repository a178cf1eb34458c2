"""SSE keep-alive comments for streams that go quiet.

A stream can be silent for long stretches: an agent waiting for a person, a slow upstream
model thinking, a stalled simulated answer. Proxies and load balancers close connections idle
for a minute or so, and some browsers give up on a silent ``fetch``; a comment line
(``: keep-alive``) every ``sse_keepalive_s`` seconds of silence keeps them open, and every SSE
parser ignores it (WHATWG: lines starting with ``:`` are comments).

:func:`with_keepalive` wraps a byte stream (agent runs, proxied upstream streams); the
simulator's pacer sends its own from its timer (:mod:`.sim.pacer`). A comment is only ever
put between two events, never inside one: for a relayed stream whose chunks may end mid-event
it waits until the bytes sent so far end with a blank line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ..wire.sse import encode

__all__ = ["KEEPALIVE", "at_event_boundary", "with_keepalive"]

#: The bytes of one keep-alive comment: ``: keep-alive`` and a blank line.
KEEPALIVE = encode(comment=" keep-alive")


def at_event_boundary(sent: bytes) -> bool:
    """Whether a stream whose bytes so far end with ``sent`` is between two events (nothing
    sent yet counts: a comment may open a stream)."""
    return not sent or sent.endswith((b"\n\n", b"\r\r", b"\r\n\r\n"))


async def with_keepalive(source: AsyncIterator[bytes], every: float | None) -> AsyncIterator[bytes]:
    """``source``'s chunks in order, plus :data:`KEEPALIVE` after every ``every`` seconds in
    which ``source`` yielded nothing (``None`` or 0: ``source`` as it is).

    ``source`` is read by one pending ``__anext__`` at a time, which a timeout does not cancel
    (cancelling it would cancel the work behind the stream); closing this generator cancels
    and closes ``source``.
    """
    if not every:
        async for chunk in source:
            yield chunk
        return
    pending: asyncio.Future[bytes] | None = None
    tail = b""
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                if at_event_boundary(tail):
                    yield KEEPALIVE
                continue
            try:
                chunk = pending.result()
            except StopAsyncIteration:
                pending = None
                return
            pending = None
            if chunk:
                tail = (tail + chunk)[-4:]
            yield chunk
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
