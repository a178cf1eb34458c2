"""EventSource against a byte-exact server on loopback."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets

import httpx
import pytest

from glm_live import (
    Backoff,
    ConnectionEvent,
    ConnectionFailed,
    ConnectionState,
    ContentTypeError,
    Event,
    EventSource,
    EventTooLarge,
    HTTPStatusError,
    RetriesExhausted,
)
from tests.byteserver import ByteServer, Reply, error, sse


def fast(**kwargs: float) -> Backoff:
    return Backoff(
        initial=kwargs.get("initial", 0.01),
        maximum=kwargs.get("maximum", 0.05),
        stable_after=kwargs.get("stable_after", 5.0),
        rng=random.Random(0),
    )


async def take(source: EventSource, n: int, timeout: float = 10.0) -> list[Event]:
    events: list[Event] = []

    async def run() -> None:
        async for event in source:
            events.append(event)
            if len(events) == n:
                return

    await asyncio.wait_for(run(), timeout)
    return events


async def test_headers_and_events(server: ByteServer) -> None:
    server.play(sse("id: 1\ndata: a\n\n", "data: b\n\n"))
    async with EventSource(server.url + "/events", headers={"X-Test": "yes"}) as source:
        events = await take(source, 2)
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1")]
    request = server.requests[0]
    assert request.method == "GET"
    assert request.path == "/events"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["cache-control"] == "no-cache"
    assert request.headers["x-test"] == "yes"
    assert "last-event-id" not in request.headers
    assert source.state is ConnectionState.CLOSED


async def test_post_json_body(server: ByteServer) -> None:
    server.play(sse("data: ok\n\n"))
    async with EventSource(server.url, "POST", json={"q": 1}, reconnect=False) as source:
        assert [e.data async for e in source] == ["ok"]
    assert server.requests[0].method == "POST"
    assert server.requests[0].json() == {"q": 1}


async def test_reconnects_after_clean_eof_with_last_event_id(server: ByteServer) -> None:
    server.play(sse("id: 1\ndata: a\n\n"), sse("id: 2\ndata: b\n\n"), sse(end="hang"))
    async with EventSource(server.url, backoff=fast()) as source:
        events = await take(source, 2)
        assert source.reconnects == 1
    assert [e.data for e in events] == ["a", "b"]
    assert server.requests[1].headers["last-event-id"] == "1"


async def test_charset_header_is_ignored_always_utf8(server: ByteServer) -> None:
    server.play(
        sse("data: café ☕\n\n", headers={"content-type": "text/event-stream; charset=latin-1"})
    )
    async with EventSource(server.url, reconnect=False) as source:
        assert [e.data async for e in source] == ["café ☕"]


async def test_reconnects_after_drop_mid_stream(server: ByteServer) -> None:
    server.play(sse("id: 1\ndata: a\n\ndata: half", end="drop"), sse("id: 2\ndata: b\n\n"))
    changes: list[ConnectionEvent] = []
    async with EventSource(server.url, backoff=fast(), observers=[changes.append]) as source:
        events = await take(source, 2)
        assert isinstance(source.last_error, httpx.RemoteProtocolError)
    assert [e.data for e in events] == ["a", "b"]  # the half event was never dispatched
    kinds = [c.kind for c in changes]
    assert kinds[:5] == ["connecting", "open", "error", "reconnecting", "connecting"]
    assert changes[3].state is ConnectionState.RECONNECTING
    assert changes[3].delay is not None


async def test_reconnects_after_reset(server: ByteServer) -> None:
    server.play(sse("data: a\n\n", end="reset"), sse("data: b\n\n"))
    async with EventSource(server.url, backoff=fast()) as source:
        assert [e.data for e in await take(source, 2)] == ["a", "b"]


async def test_reconnects_on_5xx_and_honours_retry_after(server: ByteServer) -> None:
    server.play(error(503, "busy", {"retry-after": "0.2"}), sse("data: ok\n\n"))
    changes: list[ConnectionEvent] = []
    async with EventSource(server.url, backoff=fast(), observers=[changes.append]) as source:
        assert [e.data for e in await take(source, 1)] == ["ok"]
        assert isinstance(source.last_error, HTTPStatusError)
        assert source.last_error.status == 503
    delays = [c.delay for c in changes if c.kind == "reconnecting"]
    assert delays[0] == pytest.approx(0.2)


async def test_connection_refused_is_retried(unused_tcp_port: int) -> None:
    source = EventSource(f"http://127.0.0.1:{unused_tcp_port}", backoff=fast(), max_retries=3)
    with pytest.raises(RetriesExhausted) as info:
        async for _ in source:
            pass
    assert info.value.attempts == 4
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert source.reconnects == 3
    assert source.state is ConnectionState.CLOSED


async def test_without_reconnect_a_drop_raises(server: ByteServer) -> None:
    server.play(sse("data: a\n\n", end="drop"))
    received = []
    with pytest.raises(ConnectionFailed) as info:
        async with EventSource(server.url, reconnect=False) as source:
            async for event in source:
                received.append(event.data)
    assert received == ["a"]
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)


async def test_204_stops_without_error(server: ByteServer) -> None:
    server.play(sse("data: a\n\n"), Reply(status=204, headers={}, chunked=False))
    async with EventSource(server.url, backoff=fast()) as source:
        assert [e.data async for e in source] == ["a"]
    assert server.connections == 2
    assert source.state is ConnectionState.CLOSED


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429])
async def test_4xx_raises_with_status_and_body(server: ByteServer, status: int) -> None:
    server.play(error(status, {"error": {"code": "x", "message": "nope"}}))
    with pytest.raises(HTTPStatusError) as info:
        async with EventSource(server.url, backoff=fast()) as source:
            async for _ in source:
                pass
    assert info.value.status == status
    assert "nope" in info.value.body
    assert server.connections == 1


async def test_wrong_content_type_raises(server: ByteServer) -> None:
    server.play(Reply(headers={"content-type": "text/html"}, steps=[b"<html>login</html>"]))
    with pytest.raises(ContentTypeError) as info:
        async with EventSource(server.url) as source:
            async for _ in source:
                pass
    assert info.value.status == 200
    assert info.value.body == "<html>login</html>"
    assert "text/html" in str(info.value)


async def test_idle_watchdog_reconnects(server: ByteServer) -> None:
    # Comments keep the connection alive (pings every 0.1 s for 0.4 s, and a 0.35 s watchdog:
    # without them it would fire mid-pings); silence does not.
    first = [
        "data: a\n\n",
        0.1,
        ": ping\n\n",
        0.1,
        ": ping\n\n",
        0.1,
        ": ping\n\n",
        0.1,
        ": ping\n\n",
    ]
    server.play(sse(*first, end="hang"), sse("data: b\n\n", end="hang"))
    at_error: list[int] = []
    source = EventSource(server.url, idle_timeout=0.35, backoff=fast())
    source.add_observer(
        lambda c: at_error.append(source.bytes_received) if c.kind == "error" else None
    )
    async with source:
        events = await take(source, 2)
        assert isinstance(source.last_error, httpx.ReadTimeout)
    assert [e.data for e in events] == ["a", "b"]
    assert server.connections == 2
    # Every ping arrived before the watchdog fired: it counts bytes, not events.
    assert at_error == [sum(len(s) for s in first if isinstance(s, str))]


async def test_replayed_ids_are_not_yielded_twice(server: ByteServer) -> None:
    server.play(
        sse("id: 1\ndata: a\n\nid: 2\ndata: b\n\n", end="drop"),
        sse("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n", end="hang"),
    )
    async with EventSource(server.url, backoff=fast()) as source:
        events = await take(source, 3)
        assert source.duplicates_dropped == 2
    assert [e.data for e in events] == ["a", "b", "c"]
    assert server.requests[1].headers["last-event-id"] == "2"


async def test_server_retry_is_a_floor(server: ByteServer) -> None:
    server.play(sse("retry: 150\ndata: a\n\n"), sse("data: b\n\n", end="hang"))
    changes: list[ConnectionEvent] = []
    async with EventSource(server.url, backoff=fast(), observers=[changes.append]) as source:
        await take(source, 2)
        assert source.retry == 150
    delays = [c.delay for c in changes if c.kind == "reconnecting"]
    assert delays == [pytest.approx(0.15)]


async def test_accept_then_close_backs_off_instead_of_looping(server: ByteServer) -> None:
    server.play(sse())  # every connection: accepted, then closed at once
    backoff = fast(initial=0.001, maximum=0.064)
    changes: list[ConnectionEvent] = []
    source = EventSource(server.url, backoff=backoff, max_retries=6, observers=[changes.append])

    async def drain() -> None:
        async for _ in source:
            pass

    # Were the failure count reset on every open, max_retries would never trip: a tight loop.
    with pytest.raises(RetriesExhausted):
        await asyncio.wait_for(drain(), 10)
    assert backoff.failures == 6
    delays = [c.delay for c in changes if c.kind == "reconnecting"]
    ceilings = [0.001, 0.002, 0.004, 0.008, 0.016, 0.032]
    assert len(delays) == 6
    assert all(d is not None and d <= c for d, c in zip(delays, ceilings, strict=True))
    assert server.connections == 7


async def test_backoff_resets_after_stable_connection(server: ByteServer) -> None:
    server.play(
        sse("data: a\n\n", end="drop"),
        sse("data: b\n\n", 0.3, end="drop"),
        sse("data: c\n\n", end="hang"),
    )
    backoff = fast(stable_after=0.2)
    async with EventSource(server.url, backoff=backoff) as source:
        await take(source, 3)
    # One failure counted for the short first connection, then reset by the 0.3 s one,
    # then one more for its own end.
    assert backoff.failures == 1


async def test_oversized_event_raises_after_yielding_earlier_ones(server: ByteServer) -> None:
    server.play(sse("data: ok\n\ndata: " + "x" * 5000 + "\n\n"))
    received = []
    with pytest.raises(EventTooLarge):
        async with EventSource(server.url, max_line_size=1000) as source:
            async for event in source:
                received.append(event.data)
    assert received == ["ok"]


async def test_slow_consumer_loses_nothing(server: ByteServer) -> None:
    n = 2000
    server.play(sse(*(f"id: {i}\ndata: {i}\n\n" for i in range(n))))
    got = []
    async with EventSource(server.url, reconnect=False) as source:
        async for event in source:
            got.append(int(event.data))
            if len(got) % 200 == 0:
                await asyncio.sleep(0.02)  # the server's writes back up meanwhile
    assert got == list(range(n))


async def test_cancelling_the_consumer_closes_cleanly(server: ByteServer) -> None:
    server.play(sse("data: a\n\n", end="hang"))
    source = EventSource(server.url)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in source:
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await source.aclose()
    assert source.state is ConnectionState.CLOSED


async def test_observer_failure_does_not_break_stream(
    server: ByteServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: ConnectionEvent) -> None:
        raise RuntimeError("observer bug")

    server.play(sse("data: a\n\n"))
    with caplog.at_level(logging.ERROR, logger="glm_live.stream"):
        async with EventSource(server.url, reconnect=False, observers=[broken]) as source:
            assert [e.data async for e in source] == ["a"]
    assert "observer" in caplog.text
    # Users configure logging by these names: the move into folders must not change them.
    assert {r.name for r in caplog.records if "observer" in r.getMessage()} == {"glm_live.stream"}


async def test_repr_hides_headers_and_query(server: ByteServer) -> None:
    token, key = secrets.token_hex(8), secrets.token_hex(8)
    source = EventSource(
        server.url + f"/s?token={token}", headers={"Authorization": f"Bearer {key}"}
    )
    text = repr(source)
    assert token not in text
    assert key not in text
    await source.aclose()
