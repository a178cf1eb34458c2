"""Handles in a real ipykernel, driven by jupyter_client: await, wait(), async iteration, a
widget that keeps updating after its cell has finished (ipykernel issue 1510), the README's
quick start as one cell, display once per cell, and all of it with nest_asyncio applied."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel


@contextlib.contextmanager
def kernel_and_manager() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A new kernel: its manager (to interrupt it) and a client; shut down after."""
    manager: KernelManager
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _kernel() -> Iterator[BlockingKernelClient]:
    with kernel_and_manager() as (_, client):
        yield client


@pytest.fixture(scope="module")
def kernel() -> Iterator[BlockingKernelClient]:
    yield from _kernel()


@pytest.fixture
def fresh_kernel() -> Iterator[BlockingKernelClient]:
    """A kernel of its own (for nest_asyncio, which patches asyncio for the whole process)."""
    yield from _kernel()


def run(
    client: BlockingKernelClient, code: str, timeout: float = 60, ok: bool = True
) -> tuple[Any, list[Any]]:
    """Execute ``code``; return the execute_reply and the IOPub messages up to idle.

    The reply must say ``ok`` unless ``ok=False`` (a cell expected to fail).
    """
    return finish(client, client.execute(code), timeout, ok)


def finish(
    client: BlockingKernelClient, msg_id: str, timeout: float = 60, ok: bool = True
) -> tuple[Any, list[Any]]:
    """The execute_reply of the request ``msg_id`` and its IOPub messages up to idle."""
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
    if ok:
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


# -- what a cell shows ---------------------------------------------------------------------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def readme_quick_start() -> str:
    """The README's "Thirty seconds" block, verbatim: this test breaks when it stops working."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Thirty seconds", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "no python block after '## Thirty seconds' in README.md"
    return found.group(1)


class Models:
    """Widget models as the front end would know them: comm_open states plus updates."""

    def __init__(self) -> None:
        self.state: dict[str, dict[str, Any]] = {}

    def feed(self, messages: list[Any]) -> None:
        for m in messages:
            content = m["content"]
            if m["msg_type"] == "comm_open" and "state" in content.get("data", {}):
                self.state[content["comm_id"]] = dict(content["data"]["state"])
            elif m["msg_type"] == "comm_msg" and content["data"].get("method") == "update":
                self.state.setdefault(content["comm_id"], {}).update(content["data"]["state"])

    def children(self, model_id: str) -> list[str]:
        return [c.removeprefix("IPY_MODEL_") for c in self.state[model_id].get("children", [])]


def displayed(messages: list[Any], kind: str = "display_data") -> list[str]:
    """The model ids of the widget views a cell displayed (or returned, with execute_result)."""
    return [
        m["content"]["data"][WIDGET_VIEW]["model_id"]
        for m in messages
        if m["msg_type"] == kind and WIDGET_VIEW in m["content"]["data"]
    ]


def printed_ids(client: BlockingKernelClient, expression: str) -> list[str]:
    _, messages = run(client, f"print(*{expression})")
    return _stdout(messages).split()


def test_readme_quick_start_shows_the_panel_with_its_views(kernel: BlockingKernelClient) -> None:
    models = Models()
    _, messages = run(kernel, readme_quick_start(), timeout=120)
    models.feed(messages)
    views = displayed(messages)
    panels = [v for v in views if models.state[v].get("_model_name") == "VBoxModel"]
    assert len(panels) == 1, f"the panel was displayed {len(panels)} times: {views}"
    assert views == panels, "the chat and the run went to the panel, not beside it"
    indicator, dashboard, outputs = models.children(panels[0])
    assert models.state[indicator]["_model_name"] == "AnyModel"
    assert "url" in models.state[indicator]
    assert "summary" in models.state[dashboard]
    models.feed(drain(kernel, 0.5))
    chat_view, board = printed_ids(kernel, "(h.view.model_id, run.view.model_id)")
    assert chat_view in models.children(outputs)
    assert board in models.children(outputs)
    assert models.state[chat_view]["status"] == "done"
    _, messages = run(kernel, "print(completion.finish_reason, len(requests), h.status)")
    assert _stdout(messages).split() == ["stop", "2", "done"]


def test_a_cell_shows_each_view_once(kernel: BlockingKernelClient) -> None:
    run(
        kernel,
        "import glm_live\nplain = glm_live.connect(hub=False)\n"
        "fast = {'ttft_ms': 1, 'itl_ms': 1, 'tokens': 12}",
    )
    # The panel as the last expression of the cell that made it: shown once.
    _, messages = run(kernel, "p = plain.panel()\np")
    assert len(displayed(messages)) == 1
    assert not displayed(messages, "execute_result")
    # A chat as the last expression: its view went into the panel, nothing else is shown.
    _, messages = run(kernel, "c = plain.chat('x', sim=fast)\nc")
    assert not displayed(messages)
    assert not displayed(messages, "execute_result")
    # A later cell shows the handle's view on its own.
    _, messages = run(kernel, "c")
    assert displayed(messages) == printed_ids(kernel, "(c.view.model_id,)")
    # A handle started without a view gets one when it is a cell's result: once.
    _, messages = run(kernel, "q = plain.chat('x', sim=fast, display=False)\nq.wait(30)\nq\nq")
    views = displayed(messages)
    assert views == printed_ids(kernel, "(q.view.model_id,)")
    # Results: a one-line text and a short HTML summary.
    _, messages = run(
        kernel, "await plain.run('account-review', display=False, sim={'ttft_ms': 1, 'itl_ms': 1})"
    )
    result = next(m["content"]["data"] for m in messages if m["msg_type"] == "execute_result")
    assert result["text/plain"].startswith("<RunState finished, 3 agents (3 done)")
    assert "\n" not in result["text/plain"]
    assert "<table>" in result["text/html"]
    assert "report-writer" in result["text/html"]


def test_the_panel_starts_from_the_hubs_state(kernel: BlockingKernelClient) -> None:
    """The hub opened before the panel subscribed: the indicator says so at once, not at the
    next heartbeat."""
    run(kernel, "import glm_live\nhubbed = glm_live.connect(heartbeat=60)")
    run(kernel, "hubbed.loop.run(hubbed.hub.wait_open(10), 15)")
    _, messages = run(kernel, "hubbed.panel()")
    models = Models()
    models.feed(messages)
    (panel,) = displayed(messages)
    indicator = models.children(panel)[0]
    models.feed(drain(kernel, 0.3))  # the first coalesced flush
    assert models.state[indicator]["state"] == "open"
    assert models.state[indicator]["url"].startswith("ws://127.0.0.1:")


def test_quick_start_under_nest_asyncio(fresh_kernel: BlockingKernelClient) -> None:
    """Many notebooks apply nest_asyncio because other libraries tell them to: handles, await,
    wait(), iteration, runs, cancel and widgets after the cell must all keep working."""
    kernel = fresh_kernel
    run(
        kernel,
        "import asyncio, nest_asyncio\nnest_asyncio.apply()\nimport glm_live\n"
        "session = glm_live.connect()\nsession.panel()\n"
        "fast = {'ttft_ms': 1, 'itl_ms': 1, 'tokens': 12}",
    )
    _, messages = run(
        kernel,
        "c = await session.chat('x', sim=fast)\n"
        "w = session.chat('x', sim=fast, display=False).wait(timeout=30)\n"
        "n = 0\nasync for chunk in session.chat('x', sim=fast, display=False):\n    n += 1\n"
        "state = await session.run('account-review', sim={'ttft_ms': 1, 'itl_ms': 1})\n"
        "nested = asyncio.get_event_loop().run_until_complete("
        "asyncio.wait_for(asyncio.ensure_future(session.chat('x', sim=fast, display=False)), 30))\n"
        "print('ok', c.finish_reason, w.finish_reason, n, state.status, nested.chunks)",
    )
    assert _stdout(messages).split() == ["ok", "stop", "stop", "13", "finished", "13"]
    _, messages = run(
        kernel,
        "slow = session.chat('x', sim={'ttft_ms': 1, 'itl_ms': 20, 'tokens': 2000})\n"
        "await asyncio.sleep(0.3)\nslow.cancel()\n"
        "try:\n    await slow\nexcept glm_live.Cancelled as exc:\n"
        "    print('cancelled', type(exc.partial).__name__, slow.status)",
    )
    assert _stdout(messages).split() == ["cancelled", "Completion", "cancelled"]
    # And a widget keeps updating after its cell has ended.
    reply, during = run(
        kernel, "h = session.chat('x', sim={'ttft_ms': 300, 'itl_ms': 25, 'tokens': 120})"
    )
    models = Models()
    models.feed(during)
    view_id = printed_ids(kernel, "(h.view.model_id,)")[0]
    after = drain(kernel, 6)
    updates = [
        m
        for m in after
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == view_id
        and stamp(m) > stamp(reply)
    ]
    assert len(updates) >= 20, f"only {len(updates)} widget updates after the cell ended"
    models.feed(after)
    assert models.state[view_id]["status"] == "done"
    assert models.state[view_id]["text"]


# -- a person answers a run (AG-UI 1.0 interrupts; needs the runtime's side: agui-interrupts) ---

FAST_RUN = "sim={'ttft_ms': 1, 'itl_ms': 1}"


def send_widget_message(client: BlockingKernelClient, model_id: str, content: Any) -> None:
    """What a widget's ``model.send(content)`` in the browser sends to the kernel."""
    data = {"method": "custom", "content": content}
    client.shell_channel.send(client.session.msg("comm_msg", {"comm_id": model_id, "data": data}))


def test_a_person_approves_a_run_on_its_board(kernel: BlockingKernelClient) -> None:
    run(kernel, "import glm_live\nsession = glm_live.connect(hub=False)")
    models = Models()
    _, messages = run(
        kernel,
        f"review = session.run('account-review', account='Globex', approval=True, {FAST_RUN})",
    )
    models.feed(messages)
    (board,) = displayed(messages)
    _, messages = run(
        kernel,
        "state = await review\n"
        "print(state.status, review.status, len(review.interrupts), review.interrupts[0].reason)",
        timeout=120,
    )
    assert _stdout(messages).split() == ["waiting", "waiting", "1", "approval"]
    models.feed(messages)
    models.feed(drain(kernel, 0.5))
    assert models.state[board]["status"] == "waiting"
    (question,) = models.state[board]["interrupts"]
    assert question["schema"]["properties"]["approved"] == {"type": "boolean"}
    assert question["message"]
    assert question["answered"] == ""

    # The Approve button, with a note.
    answer = {"approved": True, "note": "ship it"}
    send_widget_message(
        kernel,
        board,
        {"type": "answer", "id": question["id"], "status": "resolved", "payload": answer},
    )
    _, messages = run(
        kernel,
        "state = await review\nimport time; time.sleep(0.3)\n"
        "print(state.status, review.status, len(state.run_ids), len(review.interrupts))\n"
        "print('report' if 'Globex' in review.view.report else 'no report')",
        timeout=120,
    )
    assert _stdout(messages).split() == ["finished", "done", "2", "0", "report"]
    models.feed(messages)
    models.feed(drain(kernel, 0.5))
    assert models.state[board]["status"] == "finished"
    assert models.state[board]["interrupts"] == []
    assert "Globex" in models.state[board]["report"]


def test_a_cell_answers_a_waiting_run(kernel: BlockingKernelClient) -> None:
    run(kernel, "import glm_live\nsession = glm_live.connect(hub=False)")
    _, messages = run(
        kernel,
        "review = session.run('account-review', account='Globex', approval=True, "
        f"display=False, {FAST_RUN})\n"
        "state = await review\n"
        "print(state.status, review.interrupts[0].response_schema['required'])\n"
        "try:\n    review.resume({'note': 'no decision'})\n"
        "except ValueError as exc:\n    print('refused', 'approved' in str(exc))\n"
        "state = await review.resume({'approved': True})\n"
        "print(state.status, review.status, 'Globex' in str(state.result))",
        timeout=120,
    )
    assert _stdout(messages).split() == [
        "waiting",
        "['approved']",
        "refused",
        "True",
        "finished",
        "done",
        "True",
    ]


def test_a_replay_shows_its_view_once(kernel: BlockingKernelClient, tmp_path: Path) -> None:
    """A replayed conversation shows its ChatView, a replayed run its board: once, also as the
    cell's last expression (the ChatView displays itself once per cell; a replay asking for
    it to be shown must not leave it unshown)."""
    saved = tmp_path / "chat.json"
    run(
        kernel,
        "import glm_live\nreplaying = glm_live.connect(hub=False)\n"
        "conv = glm_live.Conversation()\n"
        "replaying.chat('Review the Globex account', conversation=conv, display=False,"
        " sim={'ttft_ms': 1, 'itl_ms': 1, 'tokens': 20}).wait(30)\n"
        f"conv.save({str(saved)!r})",
    )
    models = Models()
    _, messages = run(kernel, f"r = glm_live.replay({str(saved)!r}, speed=None)\nr")
    models.feed(messages)
    views = displayed(messages) + displayed(messages, "execute_result")
    assert len(views) == 1, views
    models.feed(drain(kernel, 0.5))
    assert "live_id" in models.state[views[0]]  # a ChatView's model
    _, messages = run(kernel, "await r\nprint(r.conversation == conv)")
    assert _stdout(messages).strip() == "True"


def test_readme_chat_blocks_run_as_pasted(kernel: BlockingKernelClient, tmp_path: Path) -> None:
    """The README's "Chat in the notebook" blocks, verbatim, one cell each (after the
    quick start's session), in a fresh folder: the chat answers, its export and replay work."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Chat in the notebook", 1)[1].split("### From a cell", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the chat section's two blocks"
    run(
        kernel,
        f"import os, time\nos.chdir({str(tmp_path)!r})\nimport glm_live\n"
        "session = glm_live.connect()",
    )
    run(kernel, blocks[0], timeout=60)
    run(kernel, "while chat.status != 'idle':\n    time.sleep(0.05)", timeout=60)
    _, messages = run(kernel, blocks[1], timeout=60)
    assert "## Assistant" in _stdout(messages)
    saved = json.loads((tmp_path / "globex-chat.json").read_text())
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert "Globex" in saved["messages"][2]["content"]  # the tool's result went in
