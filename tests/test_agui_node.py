"""The runtime's AG-UI endpoint through the official TypeScript client, under Node.

``tests/node/agui_run.mjs`` runs ``HttpAgent`` from ``@ag-ui/client`` (pinned in
``tests/node/package.json``) against ``POST /agents/account-review`` with the runtime's bearer
token, and prints every event the client accepted. ``runAgent`` always passes the wire events
through the client's own checks: ``enforceEvents`` (each event against ``@ag-ui/core``'s
schema; unknown material stripped or dropped, with a warning), ``transformChunks`` and
``verifyEvents`` (the ordering rules). The tests here hold the runtime to all three: a full
run with no error and no warning, whose events also validate with ``ag_ui.core`` in Python;
an ``abortRun()`` that stops the run on the server; and, so that a pass means something, the
same client rejecting a loopback server's broken stream (content before its message started).

Needs ``node`` and ``npm`` (``.ci/run`` installs them); the ``node_project`` fixture runs
``npm ci`` in ``tests/node`` once when its ``node_modules`` is missing or stale.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glm_live.protocols.agui import parse_event
from glm_live.server import ServerHandle, serve
from tests import nodeproject
from tests.agui_checker import check_run
from tests.byteserver import ByteServer, sse

TOKEN = "agui-node-test-token"
FAST = {"ttft_ms": 1, "itl_ms": 1}
AGENTS = {"data-analyzer", "risk-assessor", "report-writer"}


@pytest.fixture(scope="session")
def node_project() -> Path:
    """``tests/node`` with its ``node_modules`` installed (``npm ci`` when missing or stale)."""
    try:
        return nodeproject.install()
    except nodeproject.NodeMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(token=TOKEN) as handle:
        yield handle


def config(handle: ServerHandle, account: str, sim: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "url": handle.url + "/agents/account-review",
        "token": TOKEN,
        "runId": f"node-{uuid.uuid4().hex[:12]}",
        "threadId": "node-thread",
        "messages": [{"id": "m1", "role": "user", "content": f"Review the {account} account"}],
        "forwardedProps": {"inputs": {"account": account}, "sim": sim},
        **extra,
    }


def wait_idle(handle: ServerHandle, run_id: str, timeout: float = 10.0) -> None:
    """Until the run has left the runtime and no request (an agent's chat) is in flight."""
    deadline = time.monotonic() + timeout
    while run_id in handle.runtime.runs.runs or handle.runtime.requests_in_flight:
        assert time.monotonic() < deadline, "the server kept running the run"
        time.sleep(0.02)


# --- a full run -------------------------------------------------------------------------------


def test_official_client_runs_account_review(runtime: ServerHandle, node_project: Path) -> None:
    cfg = config(runtime, "Initech", FAST)
    got = nodeproject.run(cfg, folder=node_project)
    assert got.returncode == 0, str(got)
    assert not got.of("error"), str(got)
    assert not got.of("console-error"), str(got)
    # The client strips fields and drops event types @ag-ui/core does not describe, warning
    # each time: the runtime's events must need none of that.
    assert not got.of("warning"), str(got)

    events = got.events
    kinds = [e["type"] for e in events]
    assert kinds[0] == "RUN_STARTED"
    assert kinds[-1] == "RUN_FINISHED"
    assert kinds.count("RUN_STARTED") == kinds.count("RUN_FINISHED") == 1
    assert events[0]["runId"] == cfg["runId"]
    assert events[0]["threadId"] == "node-thread"
    for kind in ("SUBAGENT_STARTED", "SUBAGENT_FINISHED", "TEXT_MESSAGE_CONTENT", "STATE_DELTA"):
        assert kind in kinds, kind
    # What the TypeScript client accepted is AG-UI for the Python SDK too, and in order.
    for event in events:
        parse_event(event)
    check_run(events)
    started = {e["name"] for e in events if e["type"] == "SUBAGENT_STARTED"}
    assert started == AGENTS

    # The client's folded view: the state it built from the snapshot and the deltas.
    result = got.result
    state = result["state"]
    assert state["account"] == "Initech"
    assert state["report"]["status"] == "done"
    assert state["risk"]["level"] in ("low", "medium", "high")
    assert set(result["result"]) == AGENTS  # RUN_FINISHED's result: the results by agent
    names = {m.get("name") for m in result["newMessages"] if m["role"] == "assistant"}
    assert {"orchestrator", "report-writer"} <= names
    writer = [m for m in result["newMessages"] if m.get("name") == "report-writer"]
    assert "Initech" in "".join(m["content"] for m in writer)
    assert result["messages"][0] == cfg["messages"][0]


def test_official_client_pipeline_spelled_out(runtime: ServerHandle, node_project: Path) -> None:
    """The exported stages composed by hand over ``agent.run()`` accept the run too."""
    got = nodeproject.run(config(runtime, "Globex", FAST, pipeline="explicit"), folder=node_project)
    assert got.returncode == 0, str(got)
    assert not got.of("warning"), str(got)
    kinds = [e["type"] for e in got.events]
    assert kinds[0] == "RUN_STARTED"
    assert kinds[-1] == "RUN_FINISHED"
    assert set(got.result["result"]) == AGENTS


# --- abortRun() reaches the server ------------------------------------------------------------


def test_abort_run_cancels_the_run_on_the_server(runtime: ServerHandle, node_project: Path) -> None:
    # Slow enough that the run is far from its end when the first agent starts.
    cfg = config(runtime, "Globex", {"ttft_ms": 5, "itl_ms": 40}, abortAfter="SUBAGENT_STARTED")
    run_id = cfg["runId"]
    got = nodeproject.run(cfg, folder=node_project)
    assert got.returncode == 0, str(got)
    assert got.of("aborted") == [{"kind": "aborted", "after": "SUBAGENT_STARTED"}], str(got)
    assert not got.of("warning"), str(got)
    events = got.events
    assert "RUN_FINISHED" not in [e["type"] for e in events]
    # The client ends an aborted stream with its own RUN_ERROR (code "abort"), not the server's.
    assert events[-1]["type"] == "RUN_ERROR"
    assert events[-1]["code"] == "abort"

    wait_idle(runtime, run_id)
    folded, _, _ = runtime.runtime.runs.states[run_id]
    assert folded.status == "cancelled"
    assert folded.state.get("report", {}).get("status") != "done"
    assert not all(a.status == "done" for a in folded.agents.values())


# --- interrupts and frontend tools through HttpAgent -----------------------------------------

SHOW_CHART = {
    "name": "show_chart",
    "description": "Show a chart of the account's key figures; returns what was shown.",
    "parameters": {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
    },
    "returns": "chart-7 shown to the reader",
}


def clean(got: nodeproject.Outcome) -> None:
    """The script ran to its end with no error, no console error and no client warning, and
    every event the client accepted is AG-UI for the Python SDK too, each run in order."""
    assert got.returncode == 0, str(got)
    assert not got.of("error"), str(got)
    assert not got.of("console-error"), str(got)
    assert not got.of("warning"), str(got)
    for run in (1, 2):
        events = got.events_of(run)
        for event in events:
            parse_event(event)
        check_run(events)


def test_official_client_resumes_an_interrupt(runtime: ServerHandle, node_project: Path) -> None:
    cfg = config(runtime, "Initech", FAST, then="resume", threadId=f"nt-{uuid.uuid4().hex[:8]}")
    cfg["forwardedProps"]["approval"] = True
    got = nodeproject.run(cfg, folder=node_project)
    clean(got)
    first, second = got.events_of(1), got.events_of(2)
    outcome = first[-1]["outcome"]
    assert outcome["type"] == "interrupt"
    (interrupt,) = outcome["interrupts"]
    assert interrupt["reason"] == "approval"
    before, after = got.results
    assert [i["id"] for i in before["pendingInterrupts"]] == [interrupt["id"]]
    assert "report" not in before["state"]
    # The second runAgent({resume}) is a new run on the same thread, and it writes the report.
    assert second[0]["runId"] == cfg["runId"] + "-2"
    assert second[0]["threadId"] == cfg["threadId"]
    assert second[-1]["outcome"] == {"type": "success"}
    assert after["pendingInterrupts"] == []
    assert after["state"]["report"]["status"] == "done"
    assert "Initech" in after["result"]["report-writer"]
    started = [e["name"] for e in second if e["type"] == "SUBAGENT_STARTED"]
    assert started == ["report-writer"]


def test_official_client_runs_a_frontend_tool_round_trip(
    runtime: ServerHandle, node_project: Path
) -> None:
    cfg = config(
        runtime,
        "Initech",
        FAST,
        then="tools",
        tools=[SHOW_CHART],
        threadId=f"nt-{uuid.uuid4().hex[:8]}",
    )
    cfg["forwardedProps"]["useTools"] = True
    got = nodeproject.run(cfg, folder=node_project)
    clean(got)
    first, second = got.events_of(1), got.events_of(2)
    (start,) = [
        e for e in first if e["type"] == "TOOL_CALL_START" and e["toolCallName"] == "show_chart"
    ]
    call_id = start["toolCallId"]
    assert not [e for e in first if e["type"] == "TOOL_CALL_RESULT" and e["toolCallId"] == call_id]
    assert first[-1]["outcome"] == {"type": "success", "pendingToolCallIds": [call_id]}
    # The client folded the call into the assistant message it names, and the script ran it.
    (ran,) = got.of("tool")
    assert ran["toolCallId"] == call_id
    assert ran["name"] == "show_chart"
    assert ran["args"]["title"]
    before = got.results[0]
    holder = next(m for m in before["messages"] if m["id"] == start["parentMessageId"])
    assert holder["toolCalls"][0]["id"] == call_id
    # The second run carried the tool message; the writer went on with the tool's result.
    assert second[0]["runId"] == cfg["runId"] + "-2"
    assert second[-1]["outcome"] == {"type": "success"}
    report = got.result["result"]["report-writer"]
    assert "chart-7 shown to the reader" in report
    assert "Initech" in report
    messages = got.result["messages"]
    # The script's tool message, once (the analysts' risk_score result is the server's own).
    mine = [m for m in messages if m["role"] == "tool" and m["toolCallId"] == call_id]
    assert [m["content"] for m in mine] == [ran["content"]]
    writer = [m for m in got.result["newMessages"] if m.get("name") == "report-writer"]
    assert "chart-7 shown to the reader" in "".join(m.get("content") or "" for m in writer)


# --- the client's verification is on: it rejects a broken stream ------------------------------


def frame(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


START = {"type": "RUN_STARTED", "threadId": "t", "runId": "r"}
FINISH = {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"}
OPEN = {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"}
CONTENT = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "hi"}
CLOSE = {"type": "TEXT_MESSAGE_END", "messageId": "m"}

BROKEN = {
    "content before start": (
        [START, CONTENT, CLOSE, FINISH],
        "Cannot send 'TEXT_MESSAGE_CONTENT' event: No active text message found with ID 'm'",
    ),
    "event after the run finished": (
        [START, FINISH, OPEN],
        "The run has already finished with 'RUN_FINISHED'",
    ),
}


async def run_against(
    server: ByteServer, events: list[dict[str, Any]], pipeline: str, folder: Path
) -> nodeproject.Outcome:
    server.play(sse(*[frame(e) for e in events]))
    cfg = {"url": server.url + "/agents/x", "token": "t", "runId": "r", "threadId": "t"}
    proc = await asyncio.create_subprocess_exec(
        *nodeproject.command({**cfg, "pipeline": pipeline}, folder),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return nodeproject.outcome(proc.returncode, stdout.decode(), stderr.decode())


@pytest.mark.parametrize("pipeline", ["runAgent", "explicit"])
@pytest.mark.parametrize("case", sorted(BROKEN))
async def test_client_verifier_rejects_a_broken_stream(
    server: ByteServer, node_project: Path, case: str, pipeline: str
) -> None:
    events, message = BROKEN[case]
    got = await run_against(server, events, pipeline, node_project)
    assert got.returncode == 1, str(got)
    (error,) = got.of("error")
    assert message in error["message"], str(got)
    # What reached the application is a prefix of the stream that stops before the offending
    # event (runAgent's subscribers run asynchronously: the error may overtake the last
    # accepted events, never the other way round).
    offending = CONTENT if case == "content before start" else OPEN
    accepted = got.events
    assert accepted == events[: len(accepted)], str(got)
    assert len(accepted) <= events.index(offending), str(got)


@pytest.mark.parametrize("pipeline", ["runAgent", "explicit"])
async def test_client_accepts_the_same_stream_in_order(
    server: ByteServer, node_project: Path, pipeline: str
) -> None:
    """The control: the same events, well ordered, from the same server, pass."""
    got = await run_against(server, [START, OPEN, CONTENT, CLOSE, FINISH], pipeline, node_project)
    assert got.returncode == 0, str(got)
    assert [e["type"] for e in got.events] == [
        e["type"] for e in (START, OPEN, CONTENT, CLOSE, FINISH)
    ]
    assert not got.of("warning"), str(got)


# --- the set-up says what is missing ----------------------------------------------------------


def test_install_names_the_missing_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither node nor npm there
    with pytest.raises(nodeproject.NodeMissing, match=r"node and npm not found on the PATH"):
        nodeproject.install(tmp_path)


# --- in a browser: a page on another origin runs the agent and draws it -----------------------

APP = "https://app.example"
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>glm_live agents</title>
<script type="module" src="/agui_page.js"></script></head>
<body style="margin:0;background:#eef1f5"><main id="root"></main></body></html>"""


@pytest.fixture(scope="module")
def page_bundle(node_project: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("bundle") / "agui_page.js"
    try:
        return nodeproject.bundle("agui_page.mjs", out, node_project).read_bytes()
    except nodeproject.NodeMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.mark.browser
def test_a_page_on_another_origin_runs_the_agent_with_the_official_client(
    page_bundle: bytes, tmp_path: Path
) -> None:
    """Chromium loads a page at ``https://app.example`` (listed in the runtime's
    ``cors_origins``; see tests/test_browser_cors.py for why https and the local-network-access
    permission) whose bundled ``HttpAgent`` runs ``/agents/account-review`` on loopback and
    draws the agents' progress, the conversation and the final state."""
    from playwright.sync_api import expect, sync_playwright

    from glm_live.testing.lab import launch_chromium

    shot = tmp_path / "copilotkit-style.png"
    with serve(token=TOKEN, cors_origins=[APP]) as handle, sync_playwright() as p:
        browser = launch_chromium(p)
        context = browser.new_context(
            permissions=["local-network-access"], viewport={"width": 820, "height": 760}
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        logged: list[str] = []
        page.on("console", lambda m: logged.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: logged.append(f"pageerror: {e}"))

        def fulfil(route: Any) -> None:
            if route.request.url.endswith("/agui_page.js"):
                route.fulfill(status=200, content_type="text/javascript", body=page_bundle)
            else:
                route.fulfill(status=200, content_type="text/html", body=PAGE)

        page.route(f"{APP}/**", fulfil)
        page.goto(APP + "/")
        page.wait_for_function("() => typeof window.runAgentPanel === 'function'")
        summary = page.evaluate(
            "(args) => window.runAgentPanel({...args, root: document.getElementById('root')})",
            {
                "url": handle.url + "/agents/account-review",
                "token": TOKEN,
                "account": "Initech",
                "sim": {"ttft_ms": 5, "itl_ms": 2},
            },
        )
        assert summary["ok"], (summary["error"], logged)
        assert summary["kinds"][0] == "RUN_STARTED"
        assert summary["kinds"][-1] == "RUN_FINISHED"
        assert summary["state"]["account"] == "Initech"
        # The client warned about nothing (no stripped fields, no dropped events).
        assert not [line for line in logged if line.startswith(("warning", "error", "page"))]

        expect(page.locator("#run-status")).to_have_text("done")
        cards = page.locator(".agent")
        expect(cards).to_have_count(3)
        for name in sorted(AGENTS):
            card = page.locator(f'.agent[data-agent="{name}"]')
            expect(card).to_have_attribute("data-status", "done")
            expect(card).to_have_attribute("data-progress", "1")
            expect(card.locator(".bar > div")).to_have_attribute("style", "width: 100%;")
        expect(page.locator('#state dd[data-key="account"]')).to_have_text("Initech")
        expect(page.locator('#state dd[data-key="report"]')).to_have_text("done")
        expect(page.locator('.msg[data-name="orchestrator"]').first).to_contain_text("Plan")
        expect(page.locator('.msg[data-name="report-writer"]')).to_contain_text("Initech")
        page.locator(".glm-live-agui").screenshot(path=str(shot))
        browser.close()
    keep = os.environ.get("GLM_LIVE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
