"""glm_live.replay: a saved conversation or run plays again, as it came, with no server.

The live part runs on the embedded runtime; every replay runs with connections refused
(``socket.socket.connect`` raises), so nothing it does can reach a server.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import glm_live
from glm_live import Cancelled, Conversation, ReplayFormatError, RunLog, ServerError, Session
from glm_live.notebook.replay import plan
from glm_live.notebook.runlog import public_inputs
from glm_live.notebook.widgets import AgentBoard, ChatView, coalescer

FAST = {"ttft_ms": 20, "itl_ms": 2, "tokens": 24}


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    s = glm_live.connect(hub=False)
    yield s
    s.close()


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Refuse every outgoing connection from here on; the attempts are listed."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("a replay must not connect anywhere")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def traits(widget: Any, names: list[str]) -> dict[str, Any]:
    coalescer().flush(widget)
    return {n: getattr(widget, n) for n in names}


#: What a ChatView shows of its conversation (not its own clock: live_tokens_per_s).
CHAT_TRAITS = ["messages", "totals", "status", "title", "model", "live_id", "live_text"]


def chat(session: Session, conversation: Conversation, prompt: str, **params: Any) -> Any:
    handle = session.chat(prompt, conversation=conversation, display=False, **params)
    try:
        return handle.wait(60)
    except (Cancelled, ServerError):
        return None


@pytest.fixture(scope="module")
def conversation(session: Session) -> Conversation:
    """Two answered turns (one with reasoning), one stopped, one failed."""
    conv = Conversation(system="You review accounts.")
    chat(session, conv, "Review Globex", thinking=True, sim={**FAST, "reasoning_tokens": 12})
    chat(session, conv, "And its risks?", sim=FAST)
    slow = session.chat(
        "Now Acme",
        conversation=conv,
        display=False,
        sim={"ttft_ms": 5, "itl_ms": 15, "tokens": 400},
    )
    deadline = time.monotonic() + 30
    while slow.completion.chunks < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    slow.cancel()
    with pytest.raises(Cancelled):
        slow.wait(30)
    chat(session, conv, "Try again", sim={"ttft_ms": 5, "fault": "server_error"})
    return conv


def test_a_saved_chat_replays_equal_to_the_original(
    conversation: Conversation, tmp_path: Path, offline: list[Any]
) -> None:
    answers = [m for m in conversation if m.role == "assistant"]
    assert [a.status for a in answers] == ["done", "done", "cancelled", "error"]
    assert answers[0].reasoning
    assert answers[0].timing
    assert answers[0].timing["chunks"]
    assert len(answers[2].content) > 0
    path = conversation.save(tmp_path / "chat.json")

    handle = glm_live.replay(path, speed=None, display=False)
    replayed = handle.wait(30)
    assert handle.status == "done"
    assert replayed is handle.conversation
    assert replayed == conversation
    again = [m for m in replayed if m.role == "assistant"]
    assert again[2].status == "cancelled"
    assert again[2].content == answers[2].content
    assert again[3].status == "error"
    assert "ServerError" in (again[3].error or "")
    assert isinstance(handle.view, ChatView)
    assert not handle.view.interactive
    original_view = ChatView(conversation)
    assert traits(handle.view, CHAT_TRAITS) == traits(original_view, CHAT_TRAITS)
    assert offline == []


def test_the_answer_streams_into_the_view_as_recorded(
    conversation: Conversation, monkeypatch: pytest.MonkeyPatch, offline: list[Any]
) -> None:
    fed: list[tuple[str, str]] = []
    real_feed = ChatView.feed

    def feed(self: ChatView, content: str = "", reasoning: str = "", tokens: int = 1) -> None:
        fed.append((content, reasoning))
        real_feed(self, content, reasoning, tokens)

    monkeypatch.setattr(ChatView, "feed", feed)
    glm_live.replay(conversation, speed=None, display=False).wait(30)
    chunks = sum(len(m.timing["chunks"]) for m in conversation if m.timing)
    assert len(fed) == chunks
    text = "".join(c for c, _ in fed)
    thought = "".join(r for _, r in fed)
    answers = [m for m in conversation if m.role == "assistant"]
    assert text == "".join(m.content for m in answers)
    assert thought == "".join(m.reasoning for m in answers)


def test_chunks_are_fed_at_their_recorded_times_never_early(
    session: Session, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conv = Conversation()
    chat(session, conv, "Review Globex", sim={"ttft_ms": 100, "itl_ms": 10, "tokens": 40})
    answer = conv[-1]
    assert answer.timing is not None
    recorded = [answer.at - conv[0].at + row[0] for row in answer.timing["chunks"]]
    assert 0.3 < recorded[-1] < 3

    seen: list[float] = []
    real_feed = ChatView.feed

    def feed(self: ChatView, content: str = "", reasoning: str = "", tokens: int = 1) -> None:
        seen.append(time.monotonic())
        real_feed(self, content, reasoning, tokens)

    monkeypatch.setattr(ChatView, "feed", feed)
    refused: list[Any] = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: refused.append(a))
    handle = glm_live.replay(conv, speed=1.0, display=False)
    handle.wait(30)
    assert handle.origin is not None
    offsets = [t - handle.origin for t in seen]
    assert len(offsets) == len(recorded)
    for played, due in zip(offsets, recorded, strict=True):
        assert played >= due  # never early
    assert refused == []

    # Faster: the same steps at a tenth of the times (as scheduled).
    slow, fast = plan(conv, 1.0), plan(conv, 10.0)
    assert [s.kind for s in slow] == [s.kind for s in fast]
    for a, b in zip(slow, fast, strict=True):
        assert b.at == pytest.approx(a.at / 10, abs=1e-9)
    assert all(s.at == 0 for s in plan(conv, None))
    assert all(s.at == 0 for s in plan(conv, float("inf")))
    with pytest.raises(ValueError, match="speed"):
        plan(conv, 0)


def test_a_long_pause_is_cut_to_max_pause(
    conversation: Conversation, tmp_path: Path, offline: list[Any]
) -> None:
    data = json.loads(conversation.to_json())
    for message in data["messages"][3:]:  # everything after the first answer: an hour later
        message["at"] += 3600
    path = tmp_path / "later.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    later = Conversation.load(path)
    steps = plan(later, 1.0, max_pause=0.2)
    waits = [b.at - a.at for a, b in itertools.pairwise(steps)]
    assert max(waits) <= 0.2 + 1e-9
    assert max(b.recorded - a.recorded for a, b in itertools.pairwise(steps)) > 3000
    started = time.monotonic()
    replayed = glm_live.replay(path, speed=1.0, max_pause=0.2, display=False).wait(60)
    assert time.monotonic() - started < 30
    assert replayed == later


def test_a_cancelled_replay_stops_where_it_is(
    conversation: Conversation, monkeypatch: pytest.MonkeyPatch, offline: list[Any]
) -> None:
    fed = threading.Semaphore(0)
    real_feed = ChatView.feed

    def feed(self: ChatView, content: str = "", reasoning: str = "", tokens: int = 1) -> None:
        real_feed(self, content, reasoning, tokens)
        fed.release()

    monkeypatch.setattr(ChatView, "feed", feed)
    slow = Conversation(list(conversation)[:3])  # system, user, the first answer
    handle = glm_live.replay(slow, speed=0.05, display=False)  # 20 times slower
    for _ in range(3):
        assert fed.acquire(timeout=30)
    handle.cancel()
    with pytest.raises(Cancelled) as caught:
        handle.wait(10)
    assert handle.status == "cancelled"
    assert caught.value.partial is handle.conversation
    answer = handle.conversation[-1]
    assert answer.status == "cancelled"
    assert conversation[2].reasoning.startswith(answer.reasoning)
    assert len(answer.reasoning) < len(conversation[2].reasoning)


async def test_a_replay_is_awaited(conversation: Conversation) -> None:
    replayed = await glm_live.replay(conversation, speed=None, display=False)
    assert replayed == conversation


#: The board's traits that a replay reproduces (the agents' clocks checked apart).
BOARD_TRAITS = ["title", "status", "error", "state", "report", "interrupts", "tools"]


def card_without_clock(card: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in card.items() if k not in ("started", "finished", "elapsed")}


def assert_same_board(live: AgentBoard, replayed: AgentBoard) -> None:
    assert traits(replayed, BOARD_TRAITS) == traits(live, BOARD_TRAITS)
    assert [card_without_clock(c) for c in replayed.agents] == [
        card_without_clock(c) for c in live.agents
    ]
    for mine, theirs in zip(replayed.agents, live.agents, strict=True):
        if theirs["elapsed"] is not None:  # the original clocks, whatever the speed
            assert mine["elapsed"] == pytest.approx(theirs["elapsed"], abs=0.11)
    assert live.answerable
    assert not replayed.answerable


def assert_same_run(replayed: Any, live: Any) -> None:
    assert replayed.status == live.status
    assert replayed.messages == live.messages
    assert replayed.state == live.state
    assert replayed.result == live.result
    assert replayed.run_ids == live.run_ids
    assert {n: (a.status, a.progress, a.message) for n, a in replayed.agents.items()} == {
        n: (a.status, a.progress, a.message) for n, a in live.agents.items()
    }


def test_a_saved_run_replays_into_the_same_board(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = session.run(
        "account-review", account="Globex", sim={"ttft_ms": 20, "itl_ms": 4}, display=False
    )
    board = session._run_view(run)
    live = run.wait(60)
    assert run.status == "done"
    log = run.log()
    assert len(log.events) == len(run.items)
    assert [t for t, _ in log.events] == sorted(t for t, _ in log.events)
    assert log.events[0][1]["type"] == "RUN_STARTED"
    assert "threadId" in log.events[0][1]
    path = run.save(tmp_path / "run.json")
    loaded = RunLog.load(path)
    assert loaded.events == log.events
    assert loaded.inputs == {"account": "Globex"}

    refused: list[Any] = []
    monkeypatch.setattr(socket.socket, "connect", lambda *a: refused.append(a))
    handle = glm_live.replay(path, speed=None, display=False)
    replayed = handle.wait(30)
    assert replayed is handle.state
    assert handle.status == "done"
    assert_same_run(replayed, live)
    assert_same_board(board, handle.view)
    assert refused == []


@pytest.fixture
def resumed(session: Session) -> Any:
    run = session.run(
        "account-review", account="Globex", approval=True, sim={"ttft_ms": 5, "itl_ms": 1}
    )
    board = session._run_view(run)
    run.wait(60)
    assert run.status == "waiting"
    waited = run.log()
    run.resume({"approved": True})
    run.wait(60)
    assert run.status == "done"
    return run, board, waited


def test_a_run_resumed_after_waiting_goes_on_in_its_log(
    resumed: Any, tmp_path: Path, offline: list[Any]
) -> None:
    run, board, waited = resumed
    log = run.log()
    assert len(log.run_ids) == 2
    assert len(log.events) > len(waited.events)
    assert log.events[: len(waited.events)] == waited.events
    assert [e[1] for e in log.ends] == ["waiting", "finished"]
    started = [e for _, e in log.events if e["type"] == "RUN_STARTED"]
    assert [e["runId"] for e in started] == log.run_ids

    handle = glm_live.replay(run.save(tmp_path / "resumed.json"), speed=None, display=False)
    assert_same_run(handle.wait(30), run.folded)
    assert_same_board(board, handle.view)

    # Up to the question: the board shows it, with nothing to click.
    asked = glm_live.replay(waited, speed=None, display=False)
    state = asked.wait(30)
    assert state.status == "waiting"
    assert state.interrupts
    questions = traits(asked.view, ["interrupts"])["interrupts"]
    assert [q["id"] for q in questions] == [i.id for i in state.interrupts]
    assert asked.view.answerable is False
    assert offline == []


def test_a_runs_secrets_stay_out_of_its_log() -> None:
    inputs = {"account": "Globex", "api_key": "sk-1", "Token": "t", "db_password": "p", "n": 3}
    assert public_inputs(inputs) == {"account": "Globex", "n": 3}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"format": "something/1"}', "not a saved conversation or run log"),
        ("[1, 2]", "no format tag"),
        ("{not json", "must be JSON"),
        ('{"format": "glm_live.runlog/2", "events": []}', "newer glm_live"),
        ('{"format": "glm_live.conversation/9", "messages": []}', "newer glm_live"),
        ('{"format": "glm_live.runlog/1", "name": "x", "events": {}}', "damaged run log"),
        ('{"format": "glm_live.runlog/1", "name": "x", "events": [[-1, {}]]}', "damaged"),
        ('{"format": "glm_live.runlog/1", "name": "x", "events": [[0, 5]]}', "AG-UI event"),
        ('{"format": "glm_live.conversation/1", "messages": [{"role": "x"}]}', "damaged"),
    ],
)
def test_what_is_not_a_saved_chat_or_run_is_refused(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReplayFormatError, match=match):
        glm_live.replay(path, display=False)


def test_missing_and_binary_files_and_wrong_loaders(
    conversation: Conversation, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        glm_live.replay(tmp_path / "nowhere.json")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ReplayFormatError, match="not a text file"):
        glm_live.replay(binary)
    saved = conversation.save(tmp_path / "chat.json")
    with pytest.raises(ReplayFormatError, match="not a run log"):
        RunLog.load(saved)
    with pytest.raises(TypeError, match="replay plays"):
        glm_live.replay(42)  # type: ignore[arg-type]
    assert issubclass(ReplayFormatError, ValueError)


_RENDER = """async ([esm, values]) => {
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const widget = (await import(url)).default;
  const model = { get: (name) => values[name], on: () => {}, send: () => {} };
  const el = document.createElement("div");
  document.body.appendChild(el);
  widget.render({ model, el });
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 50)));
  return {
    asks: el.querySelectorAll(".glm-ask").length,
    buttons: el.querySelectorAll(".glm-ask button").length,
    message: el.querySelector(".glm-ask-message")?.textContent,
  };
}"""


@pytest.mark.browser
@pytest.mark.parametrize("answerable", [True, False])
def test_a_replayed_board_shows_questions_without_controls_in_chromium(answerable: bool) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_browser import launch_chromium

    board = AgentBoard(on_answer=(lambda *a: None) if answerable else None)
    assert board.answerable is answerable
    question = {
        "id": "ask-1",
        "reason": "approval",
        "message": "Send the report?",
        "agent": "report-writer",
        "schema": {"type": "object", "properties": {"approved": {"type": "boolean"}}},
        "expires_at": "",
        "answered": "",
        "refused": "",
        "tries": 0,
    }
    values = {
        "title": "account-review",
        "status": "waiting",
        "error": "",
        "agents": [],
        "state": "{}",
        "report": "",
        "interrupts": [question],
        "tools": [],
        "answerable": answerable,
    }
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.set_content("<!doctype html><html><body></body></html>")
            shown = page.evaluate(_RENDER, [board._esm, values])
        finally:
            browser.close()
    assert shown["asks"] == 1
    assert shown["message"] == "Send the report?"
    assert (shown["buttons"] > 0) is answerable


def test_a_replay_outside_a_kernel_shows_its_repr(
    conversation: Conversation, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = glm_live.replay(conversation, speed=None)  # display=None: not in a kernel
    handle.wait(30)
    assert repr(handle).startswith("<ReplayHandle of a conversation (as fast as possible), done")
    handle._ipython_display_()
    assert "ReplayHandle" in capsys.readouterr().out
