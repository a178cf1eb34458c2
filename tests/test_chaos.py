"""The chaos proxy (``glm_live.testing.chaos``) is a faithful pipe until it cuts: bytes both
ways, and a close passed on (a half-close), so that closing handshakes complete through it."""

from __future__ import annotations

import asyncio

from glm_live.testing.chaos import ChaosProxy


async def test_a_server_closing_its_side_reaches_the_client_through_the_proxy() -> None:
    heard: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readexactly(5)
        writer.write(b"bye, " + request)
        writer.write_eof()  # done sending; still reading
        heard.set_result(await reader.read())  # and the client's end of stream, passed on
        writer.close()

    upstream = await asyncio.start_server(server, "127.0.0.1", 0)
    proxy = ChaosProxy(upstream.sockets[0].getsockname()[1])
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"hello")
        # Everything the server sent, then its end of stream: not a hang until a timeout.
        assert await asyncio.wait_for(reader.read(), 5) == b"bye, hello"
        writer.write(b"thanks")
        writer.write_eof()
        assert await asyncio.wait_for(heard, 5) == b"thanks"
        writer.close()
    finally:
        await proxy.stop()
        upstream.close()
    assert proxy.cuts == 0
    assert proxy.connections == 1
