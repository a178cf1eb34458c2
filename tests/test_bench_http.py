"""The benchmark's HTTP/1.1 client (h11 on a bare asyncio Protocol) against real loopback servers:
reads split anywhere, several events per read stamped once, errors with bodies, drops,
keep-alive, close-delimited bodies, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest

from glm_live.measure.bench._http import HTTPResponseError, Response, StreamClient
from tests.byteserver import ByteServer, Reply, error, sse

PAUSE = 0.05  # between writes: long enough that each write is a read of its own


class RawServer:
    """Plays exact bytes back: for request ``k`` on any connection, the ``k``-th script (the
    last one repeats) of byte strings and pauses; keeps each connection open for more
    requests unless the script ends with ``None`` (then it closes)."""

    def __init__(self, *scripts: Sequence[bytes | float | None]) -> None:
        self.scripts = scripts
        self.bodies: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                self.bodies.append(await reader.readexactly(length))
                script = self.scripts[min(len(self.bodies) - 1, len(self.scripts) - 1)]
                for step in script:
                    if step is None:
                        writer.close()
                        return
                    if isinstance(step, float):
                        await asyncio.sleep(step)
                    else:
                        writer.write(step)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(n: int) -> bytes:
    return b"data: " + json.dumps({"n": n}).encode() + b"\n\n"


CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


@pytest.fixture
async def byteserver() -> AsyncIterator[ByteServer]:
    server = ByteServer()
    await server.start()
    yield server
    await server.stop()


async def post(client: StreamClient, body: bytes = b"{}") -> Response:
    response = Response()
    await client.post(body, response)
    response.decode()
    return response


def numbers(response: Response) -> list[int]:
    return [json.loads(data)["n"] for data in response.events]


async def test_a_chunked_body_split_anywhere_across_reads() -> None:
    body = chunk(event(0)) + chunk(event(1) + event(2)[:7]) + chunk(event(2)[7:]) + b"0\r\n\r\n"
    wire = CHUNKED_HEAD + body
    # Cuts inside the status line, inside a chunk-size line, between a chunk's CR and LF,
    # inside an event's field name, inside the last event's data, inside the final zero chunk.
    first_chunk_end = len(CHUNKED_HEAD) + len(chunk(event(0)))
    cuts = [5, len(CHUNKED_HEAD) + 1, first_chunk_end - 1, first_chunk_end + 9]
    cuts += [len(wire) - len(b"0\r\n\r\n") - len(b"\r\n") - 4, len(wire) - 3]
    pieces: list[bytes | float | None] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        pieces += [wire[start:end], PAUSE]
    async with RawServer(pieces) as server:
        client = StreamClient(server.url)
        response = await post(client)
        client.close()
    assert response.status == 200
    assert numbers(response) == [0, 1, 2]
    # Only reads that carried body bytes are kept: the 3rd (all of event 0), the 4th (the
    # chunk's LF, the next size line, "data:"), the 5th (the rest of event 1, the start of
    # event 2) and the 6th (the end of event 2).
    assert [bytes(data) for data in response.read_bodies] == [
        event(0),
        b"data:",
        event(1)[5:] + event(2)[:-4],
        event(2)[-4:],
    ]
    stamps = response.read_stamps
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)  # one stamp per read: the pauses kept them apart
    # Each event has the stamp of the read that completed it.
    assert response.arrivals == [stamps[0], stamps[2], stamps[3]]
    assert response.headers_ns is not None
    assert response.first_byte_ns is not None
    assert response.first_byte_ns < response.headers_ns <= response.arrivals[0]
    assert response.end_ns is not None
    assert response.end_ns >= response.arrivals[2]


async def test_a_read_that_completes_several_events_stamps_them_once(
    byteserver: ByteServer,
) -> None:
    byteserver.play(sse(event(0) + event(1) + event(2), PAUSE, event(3), PAUSE, event(4)[:5],
                        PAUSE, event(4)[5:]))  # fmt: skip
    client = StreamClient(byteserver.url + "/v1/chat/completions")
    response = await post(client)
    assert numbers(response) == [0, 1, 2, 3, 4]
    first, second, third, fourth = response.read_stamps
    assert response.arrivals == [first, first, first, second, fourth]
    assert first < second < third < fourth
    assert response.first_event_ns == first
    assert response.sizes == [len('{"n": 0}')] * 5


async def test_the_first_event_is_found_without_splitting_the_rest(byteserver: ByteServer) -> None:
    byteserver.play(sse(event(0), PAUSE, event(1), PAUSE, event(2)))
    client = StreamClient(byteserver.url + "/v1/chat/completions")
    response = Response()
    await client.post(b"{}", response)
    assert response.first_event_ns == response.read_stamps[0]
    assert response.events == [json.dumps({"n": 0})]  # only as far as the first event
    response.decode()
    response.decode()  # idempotent
    assert numbers(response) == [0, 1, 2]


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("status", [429, 503])
async def test_an_error_status_raises_with_its_body(
    byteserver: ByteServer, status: int, chunked: bool
) -> None:
    answer = {"error": {"code": "1302", "message": "slow down, " + "x" * 2000}}
    reply = error(status, answer)
    if chunked:  # the same body in three chunks, three reads
        text = json.dumps(answer).encode()
        reply = Reply(status, reply.headers, [text[:10], PAUSE, text[10:50], PAUSE, text[50:]])
    byteserver.play(reply)
    client = StreamClient(byteserver.url + "/v1/chat/completions")
    response = Response()
    with pytest.raises(HTTPResponseError) as raised:
        await client.post(b"{}", response)
    assert raised.value.status == status
    assert json.loads(raised.value.body) == answer
    assert str(raised.value).startswith(f"HTTP {status}: ")
    assert len(str(raised.value)) < 400  # the message shows the start of the body
    assert response.status == status
    assert response.error is raised.value
    response.decode()
    assert response.events == []  # an error body is not an event stream


async def test_a_connection_dropped_mid_body_fails_and_keeps_what_came(
    byteserver: ByteServer,
) -> None:
    byteserver.play(sse(event(0), PAUSE, event(1) + event(2)[:4], end="drop"))
    client = StreamClient(byteserver.url + "/v1/chat/completions")
    response = Response()
    with pytest.raises(ConnectionError, match="closed mid-response"):
        await client.post(b"{}", response)
    response.decode()
    assert numbers(response) == [0, 1]
    # A content-length body cut short is a drop too.
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 100\r\n\r\n"
    async with RawServer([head + event(7), PAUSE, None]) as server:
        client = StreamClient(server.url)
        response = Response()
        with pytest.raises(ConnectionError, match="closed mid-response"):
            await client.post(b"{}", response)
    response.decode()
    assert numbers(response) == [7]


async def test_a_close_delimited_body_ends_with_the_connection() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    async with RawServer([head + event(0), PAUSE, event(1), PAUSE, None]) as server:
        client = StreamClient(server.url)
        response = await post(client)
    assert numbers(response) == [0, 1]
    assert response.arrivals[0] < response.arrivals[1]


async def test_keep_alive_reuses_a_connection_until_the_server_closes_it(
    byteserver: ByteServer,
) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n"
    payload = event(5) + b"data: [DONE]\n\n"
    async with RawServer([head % len(payload) + payload]) as server:
        client = StreamClient(server.url)
        first = await post(client, b'{"k": 1}')
        second = await post(client, b'{"k": 2}')
        client.close()
        assert server.connections == 1
        assert server.bodies == [b'{"k": 1}', b'{"k": 2}']
    assert first.events == second.events == [json.dumps({"n": 5}), "[DONE]"]
    # The byte server says "connection: close": each request gets a new connection.
    byteserver.play(sse(event(0)))
    client = StreamClient(byteserver.url + "/v1/chat/completions")
    await post(client)
    await post(client)
    assert byteserver.connections == 2
    assert byteserver.requests[0].headers["accept"] == "text/event-stream"
    assert byteserver.requests[0].headers["content-length"] == "2"


async def test_a_reply_that_is_not_http_is_a_connection_error() -> None:
    async with RawServer([b"SSH-2.0-OpenSSH_9.6\r\n\r\n", PAUSE]) as server:
        client = StreamClient(server.url)
        with pytest.raises(ConnectionError, match="bad HTTP response"):
            await client.post(b"{}", Response())


async def test_a_timeout_closes_the_connection_and_keeps_what_came(
    byteserver: ByteServer,
) -> None:
    byteserver.play(sse(event(0), end="hang"))
    client = StreamClient(byteserver.url + "/v1/chat/completions", timeout=0.3)
    response = Response()
    with pytest.raises(TimeoutError):
        await client.post(b"{}", response)
    assert isinstance(response.error, TimeoutError)
    assert response.end_ns is not None
    response.decode()
    assert numbers(response) == [0]


async def test_a_request_starts_in_the_callers_turn_on_an_idle_connection() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n"
    payload = event(7) + b"data: [DONE]\n\n"
    async with RawServer([head % len(payload) + payload]) as server:
        client = StreamClient(server.url)
        # Nothing idle: nothing is written, and the caller connects (post does).
        cold = Response()
        assert client.start(b'{"k": 1}', cold) is None
        assert cold.sent_ns == 0
        assert cold.written_ns is None
        await client.warm(1)
        response = Response()
        sending = client.start(b'{"k": 2}', response)
        # Written before this coroutine gave the loop a turn: stamped, on the warm connection.
        assert sending is not None
        assert response.reused
        assert response.start_ns <= response.sent_ns <= (response.written_ns or 0)
        assert await client.finish(sending) is response
        # The connection is idle again: the next start needs no connect either.
        again = client.start(b'{"k": 3}', Response())
        assert again is not None
        await client.finish(again)
        client.close()
        assert server.connections == 1
        assert server.bodies == [b'{"k": 2}', b'{"k": 3}']
    response.decode()
    assert response.events == [json.dumps({"n": 7}), "[DONE]"]
