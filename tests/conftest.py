from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

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


@pytest.fixture(autouse=True, scope="session")
def runtime_files_in_a_temporary_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Runtimes started by the tests (and their subprocesses) write their runtime files here,
    not in the user's ``~/.local/share/glm_live/runtime``."""
    folder = tmp_path_factory.mktemp("runtime-files")
    previous = os.environ.get("GLM_LIVE_RUNTIME_DIR")
    os.environ["GLM_LIVE_RUNTIME_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("GLM_LIVE_RUNTIME_DIR", None)
    else:
        os.environ["GLM_LIVE_RUNTIME_DIR"] = previous
