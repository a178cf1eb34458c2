"""The pacer with a plain ASGI ``send`` (no direct sink), including a send that blocks:
the slow stream waits, the others go on, and nothing is lost or reordered."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from glm_live.server.chatreq import parse_chat_request
from glm_live.server.config import SimConfig
from glm_live.server.sim.engine import Simulator
from glm_live.server.sim.pacer import PacedStream, Pacer


def plan(tokens: int, itl_ms: float = 0.0, **sim_overrides: Any) -> Any:
    sim = Simulator(SimConfig())
    body = {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "sim": {"tokens": tokens, "ttft_ms": 0, "itl_ms": itl_ms, **sim_overrides},
    }
    request = parse_chat_request(body, sim.config)
    return sim.stream_plan(request, sim.answer(request), 1)


class Sink:
    """An ASGI send that records bodies and can be made to block."""

    def __init__(self, log: list[tuple[str, bytes]] | None = None) -> None:
        self.bodies: list[bytes] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls = 0
        self.log = log if log is not None else []

    async def send(self, message: dict[str, Any]) -> None:
        self.calls += 1
        await self.gate.wait()
        self.bodies.append(message["body"])
        self.log.append(("send", message["body"]))

    def contents(self) -> list[str]:
        return contents(self.bodies)


def contents(bodies: list[bytes]) -> list[str]:
    text = b"".join(bodies).decode()
    chunks = [line[6:] for line in text.split("\n\n") if line.startswith("data: {")]
    return [json.loads(c)["choices"][0]["delta"].get("content", "") for c in chunks]


class Direct:
    """A :class:`~glm_live.server._uvicorn_fast.DirectSink` that records what is written to
    it; the test decides when it applies back-pressure."""

    def __init__(self, log: list[tuple[str, bytes]], pause_after: int | None = None) -> None:
        self.log = log
        self.pause_after = pause_after
        self.paused = False
        self.disconnected = False
        self.closed = False

    def try_write(self, data: bytes) -> bool:
        if self.paused:
            return False
        self.log.append(("direct", data))
        if len(self.log) == self.pause_after:
            self.paused = True
        return True

    def close(self) -> None:
        self.closed = True


async def test_blocked_send_pauses_only_its_stream() -> None:
    pacer = Pacer()
    loop = asyncio.get_running_loop()
    slow, fast = Sink(), Sink()
    slow.gate.clear()  # the slow client's first write blocks
    slow_stream = PacedStream(plan(20, itl_ms=1), slow.send, loop.create_future())
    fast_stream = PacedStream(plan(20, itl_ms=1), fast.send, loop.create_future())
    assert slow_stream.direct is None  # a plain ASGI send: no direct path
    pacer.start(slow_stream)
    pacer.start(fast_stream)
    assert await asyncio.wait_for(fast_stream.done, 5) == "done"
    assert slow_stream.blocked
    assert not slow_stream.done.done()
    assert slow.calls == 1  # one write in flight, nothing piled up behind it
    slow.gate.set()
    assert await asyncio.wait_for(slow_stream.done, 5) == "done"
    assert slow.contents() == fast.contents()
    assert len(slow.contents()) == 21  # 20 tokens and the finishing chunk
    assert b"".join(slow.bodies).endswith(b"data: [DONE]\n\n")
    assert pacer.lag.count == 2 * 20  # one observation per write


async def test_closed_stream_stops_being_paced() -> None:
    pacer = Pacer()
    sink = Sink()
    stream = PacedStream(plan(50, itl_ms=5), sink.send, asyncio.get_running_loop().create_future())
    pacer.start(stream)
    await asyncio.sleep(0.05)
    stream.close("gone")
    written = len(sink.bodies)
    await asyncio.sleep(0.1)
    assert len(sink.bodies) == written
    assert stream.done.result() == "gone"


async def test_back_pressure_moves_a_stream_to_send_and_back() -> None:
    log: list[tuple[str, bytes]] = []
    sink, direct = Sink(log), Direct(log, pause_after=5)
    sink.gate.clear()  # the send taken under back-pressure waits too
    stream = PacedStream(
        plan(20, itl_ms=1), sink.send, asyncio.get_running_loop().create_future(), direct
    )
    Pacer().start(stream)
    await asyncio.sleep(0.05)  # the whole answer is due in about 20 ms
    assert [path for path, _ in log] == ["direct"] * 5  # nothing went past the waiting send
    assert sink.calls == 1
    assert stream.blocked  # one frame waits in send; the stream waits with it
    direct.paused = False
    sink.gate.set()
    assert await asyncio.wait_for(stream.done, 5) == "done"
    paths = [path for path, _ in log]
    # Five direct writes, the paused one through send, direct again, and the last message
    # (more_body False, with [DONE]) through send, so the server finishes the response.
    assert paths == ["direct"] * 5 + ["send"] + ["direct"] * 13 + ["send"]
    bodies = [body for _, body in log]
    assert bodies[-1].endswith(b"data: [DONE]\n\n")
    plain = Sink()
    reference = PacedStream(plan(20), plain.send, asyncio.get_running_loop().create_future())
    Pacer().start(reference)
    await asyncio.wait_for(reference.done, 5)
    assert contents(bodies) == plain.contents()
    assert len(contents(bodies)) == 21


async def test_drop_closes_the_connection_through_the_direct_sink() -> None:
    log: list[tuple[str, bytes]] = []
    sink, direct = Sink(log), Direct(log)
    dropping = plan(20, itl_ms=1, fault="drop", fault_after=6)
    stream = PacedStream(dropping, sink.send, asyncio.get_running_loop().create_future(), direct)
    Pacer().start(stream)
    assert await asyncio.wait_for(stream.done, 5) == "drop"
    assert direct.closed
    assert sink.calls == 0  # every frame went directly; nothing finished the response
    assert [path for path, _ in log] == ["direct"] * 6
