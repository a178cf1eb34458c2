from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.byteserver import ByteServer


@pytest.fixture
async def server() -> AsyncIterator[ByteServer]:
    """A byte-exact HTTP server on a free loopback port, stopped after the test."""
    srv = ByteServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()
