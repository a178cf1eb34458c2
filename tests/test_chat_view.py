"""ChatView's model side on a real embedded session, without a browser: what the page is sent,
and what its buttons (custom messages) do."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import glm_live
from glm_live import Conversation
from glm_live.notebook.session import Session
from glm_live.notebook.widgets import ChatView, coalescer
from glm_live.testing.comm_recorder import CommLog, record_comms

QUICK = {"ttft_ms": 1, "itl_ms": 1, "tokens": 30}
SLOW = {"ttft_ms": 1, "itl_ms": 20, "tokens": 2000}


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def comms() -> Iterator[CommLog]:
    with record_comms() as log:
        yield log


@pytest.fixture
def session(comms: CommLog) -> Iterator[Session]:
    with glm_live.connect(hub=False) as session:
        yield session


def click(view: ChatView, kind: str, **fields: Any) -> None:
    """What the page's buttons send."""
    view._handle_custom_msg({"type": kind, **fields}, [])


def idle(view: ChatView) -> None:
    wait_for(lambda: view.status == "idle" and view.handle is not None and view.handle.done)
    coalescer().flush(view)


def test_send_shows_the_conversation_when_the_answer_is_done(session: Session) -> None:
    view = session.chat_view(display=False, sim=QUICK)
    handle = view.send("Review the Globex account")
    completion = handle.wait(30)
    idle(view)
    conversation = view.conversation
    assert [m["role"] for m in view.messages] == ["user", "assistant"]
    assert [m["status"] for m in view.messages] == ["done", "done"]
    assert [m["content"] for m in view.messages] == [m.content for m in conversation]
    assert view.messages[1]["content"] == completion.text
    assert view.messages[1]["id"] == conversation[1].id
    assert view.messages[1]["usage"]["completion_tokens"] == completion.usage["completion_tokens"]
    assert view.live_id == ""
    assert view.model == "glm-4.6-sim"
    assert view.simulated is True
    assert view.interactive is True


def test_the_answer_streams_as_deltas_to_its_live_id(session: Session, comms: CommLog) -> None:
    view = session.chat_view(display=False, sim={"ttft_ms": 1, "itl_ms": 5, "tokens": 120})
    handle = view.send("Review Globex")
    answer_id = view.conversation[1].id
    completion = handle.wait(30)
    idle(view)
    updates = comms.updates(view.comm.comm_id)
    assert any(u.get("live_id") == answer_id for u in updates)
    deltas = [u["_delta"] for u in updates if "_delta" in u]
    seqs = [d["seq"] for d in deltas]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    # The page builds the answer from the deltas while it streams (the last ones are dropped
    # at the end: the full text comes with the finished message).
    streamed = "".join(d.get("text", "") for d in deltas)
    assert streamed
    assert completion.text.startswith(streamed)
    last = [u["messages"] for u in updates if "messages" in u][-1]
    assert last[-1]["content"] == completion.text
    # Message boundaries only: the messages trait is sent a few times, never per token.
    assert sum("messages" in u for u in updates) <= 6
    assert view.live_text == ""
    assert view.live_id == ""


def test_stop_keeps_the_partial_answer_cancelled(session: Session) -> None:
    view = session.chat_view(display=False, sim=SLOW)
    handle = view.send("Review Globex")
    wait_for(lambda: len(handle.items) > 5)
    assert view.status == "streaming"
    click(view, "stop")
    with pytest.raises(glm_live.Cancelled):
        handle.wait(10)
    idle(view)
    answer = view.messages[-1]
    assert answer["status"] == "cancelled"
    assert answer["content"]  # what had arrived stays
    assert answer["content"] == view.conversation[-1].content
    assert view.notice == ""


def test_regenerate_replaces_the_last_answer(session: Session) -> None:
    view = session.chat_view(display=False, sim=QUICK)
    view.send("Review Globex").wait(30)
    idle(view)
    first = view.messages[-1]["id"]
    click(view, "regenerate")
    view.handle.wait(30)  # type: ignore[union-attr]
    idle(view)
    answers = [m for m in view.messages if m["role"] == "assistant"]
    assert len(answers) == 1
    assert answers[0]["id"] != first
    assert answers[0]["status"] == "done"
    assert [m.role for m in view.conversation] == ["user", "assistant"]


def test_edit_truncates_and_answers_again(session: Session) -> None:
    view = session.chat_view(display=False, sim=QUICK)
    view.send("Review Globex").wait(30)
    idle(view)
    view.send("And Initech?").wait(30)
    idle(view)
    assert len(view.conversation) == 4
    click(view, "edit", index=0, text="Review Acme")
    view.handle.wait(30)  # type: ignore[union-attr]
    idle(view)
    assert [m.role for m in view.conversation] == ["user", "assistant"]
    assert view.conversation[0].content == "Review Acme"
    assert view.messages[0]["content"] == "Review Acme"
    assert view.messages[1]["status"] == "done"
    click(view, "edit", index=1, text="not a user message")
    assert "not a user message" in view.notice


def test_clear_empties_the_view(session: Session) -> None:
    view = session.chat_view(display=False, sim=QUICK)
    view.send("Review Globex").wait(30)
    idle(view)
    click(view, "clear")
    coalescer().flush(view)
    assert view.messages == []
    assert len(view.conversation) == 0
    assert view.totals["answers"] == 0


def test_a_tool_call_is_shown_with_its_result(session: Session) -> None:
    def account_revenue(account: str) -> str:
        """The account's revenue."""
        return f"{account}: $1.2M"

    view = session.chat_view(display=False, tools=[account_revenue], sim=QUICK)
    view.send("What is Globex's revenue?").wait(30)
    idle(view)
    roles = [m.role for m in view.conversation]
    assert roles == ["user", "assistant", "tool", "assistant"]
    # The tool message goes with its call, not as a message of its own.
    assert [m["role"] for m in view.messages] == ["user", "assistant", "assistant"]
    (call,) = view.messages[1]["tool_calls"]
    assert call["name"] == "account_revenue"
    assert "account" in call["arguments"]
    assert call["result"] == view.conversation[2].content
    assert call["result"].endswith(": $1.2M")
    assert view.messages[2]["status"] == "done"


def test_totals_are_the_usage_the_server_sent(session: Session) -> None:
    view = session.chat_view(display=False, sim=QUICK)
    usages = []
    for prompt in ("Review Globex", "And Initech?", "And Acme?"):
        handle = view.send(prompt)
        handle.wait(30)
        idle(view)
        usages.append(handle.completion.usage)
    assert view.totals == view.conversation.totals()
    assert view.totals["answers"] == 3
    assert view.totals["prompt_tokens"] == sum(u["prompt_tokens"] for u in usages)
    assert view.totals["completion_tokens"] == sum(u["completion_tokens"] for u in usages)
    assert view.totals["total_tokens"] == sum(u["total_tokens"] for u in usages)
    assert view.totals["cost"] is None  # no prices configured: none guessed


def test_the_cost_shows_with_prices(comms: CommLog) -> None:
    prices = {"glm-4.6-sim": {"input": 0.6, "output": 2.2}}
    with glm_live.connect(hub=False, prices=prices) as session:
        view = session.chat_view(display=False, sim=QUICK)
        handle = view.send("Review Globex")
        handle.wait(30)
        idle(view)
    usage = handle.completion.usage
    expected = (usage["prompt_tokens"] * 0.6 + usage["completion_tokens"] * 2.2) / 1e6
    assert view.totals["cost"] == pytest.approx(expected)


def test_the_endpoint_never_carries_the_token(session: Session, comms: CommLog) -> None:
    view = session.chat_view(display=False, sim=QUICK)
    token = session.runtime.token  # type: ignore[union-attr]
    assert token
    assert view.endpoint == session.url
    assert token not in view.endpoint
    view.send("Review Globex").wait(30)
    idle(view)
    assert not any(token in str(data) for _, _, data, _ in comms.messages)


def test_errors_from_the_page_land_in_notice(session: Session) -> None:
    view = session.chat_view(display=False, sim=SLOW)
    click(view, "regenerate")
    assert "no user message" in view.notice
    click(view, "send", text="   ")
    assert "empty" in view.notice
    click(view, "send", text="Review Globex")
    assert view.notice == ""
    wait_for(lambda: len(view.handle.items) > 2)  # type: ignore[union-attr]
    click(view, "send", text="And Initech?")
    assert "still streaming" in view.notice
    click(view, "clear")
    assert "stop" in view.notice
    click(view, "edit", index="zero", text="x")  # a broken message from the page
    assert view.notice
    click(view, "stop")
    idle(view)
    assert [m.role for m in view.conversation] == ["user", "assistant"]


def test_a_display_only_view_follows_a_conversation_fed_by_hand(comms: CommLog) -> None:
    """The contract a replay uses: answers added streaming, fed, then updated."""
    conversation = Conversation([{"role": "user", "content": "Review Globex"}])
    view = ChatView(conversation, title="replay")
    assert view.interactive is False
    answer = conversation.add("assistant", status="streaming", model="glm-4.6")
    coalescer().flush(view)
    assert view.live_id == answer.id
    assert view.status == "streaming"
    for word in ("Revenue ", "is ", "up."):
        view.feed(word)
    coalescer().flush(view)
    conversation.update(answer, content="Revenue is up.", status="done")
    coalescer().flush(view)
    updates = comms.updates(view.comm.comm_id)
    text = "".join(u["_delta"].get("text", "") for u in updates if "_delta" in u)
    assert text == "Revenue is up."
    assert view.live_id == ""
    assert view.status == "idle"
    assert view.messages[-1]["content"] == "Revenue is up."
    click(view, "send", text="more")
    assert "no session" in view.notice


def test_resync_sends_the_live_text_with_its_seq(comms: CommLog) -> None:
    conversation = Conversation([{"role": "user", "content": "x"}])
    view = ChatView(conversation)
    conversation.add("assistant", status="streaming")
    view.feed("alpha ")
    coalescer().flush(view)
    view.feed("beta ")  # pending, not yet flushed
    click(view, "resync", have=0, got=2)
    view.feed("gamma")
    coalescer().flush(view)
    updates = comms.updates(view.comm.comm_id)
    full = [u for u in updates if u.get("live_text")][-1]
    assert full["live_text"] == "alpha beta "
    after = [u["_delta"] for u in updates if "_delta" in u][-1]
    assert after == {"seq": full["live_seq"] + 1, "text": "gamma"}


def test_session_chat_view_in_a_script_displays_nothing(session: Session) -> None:
    view = session.chat_view(sim=QUICK)
    assert isinstance(view, ChatView)
    assert view.status == "idle"
    assert "ChatView" in repr(view)
