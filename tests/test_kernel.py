"""Handles in a real ipykernel, driven by jupyter_client: await, wait(), async iteration, and
a widget that keeps updating after its cell has finished (ipykernel issue 1510)."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel


@pytest.fixture(scope="module")
def kernel() -> Iterator[BlockingKernelClient]:
    manager: KernelManager
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client: BlockingKernelClient, code: str, timeout: float = 60) -> tuple[Any, list[Any]]:
    """Execute ``code``; return the execute_reply and the IOPub messages up to idle."""
    msg_id = client.execute(code)
    reply = client.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=timeout)
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.get_iopub_msg(timeout=timeout)
        messages.append(msg)
        if (
            msg["msg_type"] == "status"
            and msg["content"]["execution_state"] == "idle"
            and msg["parent_header"].get("msg_id") == msg_id
        ):
            break
    assert reply["content"]["status"] == "ok", reply["content"]
    return reply, messages


def drain(client: BlockingKernelClient, seconds: float) -> list[Any]:
    messages = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            messages.append(client.get_iopub_msg(timeout=0.1))
    return messages


def stamp(msg: Any) -> datetime:
    value = msg["header"]["date"]
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def test_widget_keeps_updating_after_the_cell_ends(kernel: BlockingKernelClient) -> None:
    run(kernel, "import glm_live\nsession = glm_live.connect(hub=False)")
    reply, during = run(
        kernel,
        (
            "h = session.chat('Review the Globex account', "
            "sim={'ttft_ms': 300, 'itl_ms': 25, 'tokens': 120})"
        ),
    )
    opens = [
        m
        for m in during
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"].get("_model_name") == "AnyModel"
    ]
    assert opens, "the StreamView was not displayed"
    view_id = opens[-1]["content"]["comm_id"]
    after = drain(kernel, 6)
    reply_time = stamp(reply)
    updates = [
        m
        for m in after
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == view_id
        and stamp(m) > reply_time
    ]
    # 120 tokens at 25 ms: ~3 s of streaming after the cell returned, ~20 flushes a second.
    assert len(updates) >= 20, f"only {len(updates)} widget updates after the cell ended"
    final = [
        m["content"]["data"]["state"] for m in updates if "text" in m["content"]["data"]["state"]
    ]
    assert final, "the full text never arrived"
    assert final[-1]["status"] == "done"
    assert "Account review: Globex" in final[-1]["text"]


def test_await_wait_and_iterate_in_cells(kernel: BlockingKernelClient) -> None:
    run(
        kernel,
        "import glm_live\nsession = glm_live.connect(hub=False)\n"
        "fast = {'ttft_ms': 1, 'itl_ms': 1, 'tokens': 12}",
    )
    _, messages = run(
        kernel,
        "c = await session.chat('x', sim=fast, display=False)\n"
        "print('awaited', c.usage['completion_tokens'])",
    )
    assert "awaited 12" in _stdout(messages)
    _, messages = run(
        kernel,
        "c = session.chat('x', sim=fast, display=False).wait(timeout=30)\n"
        "print('waited', c.finish_reason)",
    )
    assert "waited stop" in _stdout(messages)
    _, messages = run(
        kernel,
        "n = 0\nasync for chunk in session.chat('x', sim=fast, "
        "display=False):\n    n += 1\nprint('chunks', n)",
    )
    assert "chunks 13" in _stdout(messages)
    _, messages = run(
        kernel,
        "state = await session.run('account-review', display=False, "
        "sim={'ttft_ms': 1, 'itl_ms': 1})\nprint('run', state.status)",
    )
    assert "run finished" in _stdout(messages)


def test_errors_surface_on_the_widget_and_the_result(kernel: BlockingKernelClient) -> None:
    run(kernel, "import glm_live\nsession = glm_live.connect(hub=False)")
    _, messages = run(
        kernel,
        (
            "h = session.chat('x', sim={'fault': 'server_error'})\n"
            "try:\n    h.wait(timeout=30)\nexcept glm_live.ServerError as exc:\n"
            "    print('raised', type(exc).__name__)\n"
            "import time; time.sleep(0.3)\nprint('widget', h.view.status, h.view.error[:11])"
        ),
    )
    out = _stdout(messages)
    assert "raised ServerError" in out
    assert "widget error ServerError" in out


def _stdout(messages: list[Any]) -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
    )
