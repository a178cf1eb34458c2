"""Conversations: the history a chat sends and keeps, its export and load, and its ledger.

Against a byte-exact server on loopback (what was sent, and usage it sent back, seen as bytes)
and the embedded runtime (whole chats, stopped ones, failed ones, tools). The views of a
conversation are in test_chat_view.py; replay in test_replay.py.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import glm_live
from glm_live import Cancelled, Conversation, ConversationFormatError, Message, Price
from glm_live.measure.ledger import cost, usage_row
from tests.byteserver import ByteServer, sse

FAST = {"ttft_ms": 1, "itl_ms": 1, "tokens": 30}
SLOW = {"ttft_ms": 1, "itl_ms": 20, "tokens": 2000}


def _chunk(
    content: str = "", usage: dict[str, Any] | None = None, finish: str | None = None
) -> str:
    body: dict[str, Any] = {
        "id": "c1",
        "model": "glm-4.6",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


def _answer(text: str, usage: dict[str, Any]) -> Any:
    return sse(
        _chunk(text[:3]), _chunk(text[3:]), _chunk(usage=usage, finish="stop"), "data: [DONE]\n\n"
    )


USAGE_1 = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 2},
}
USAGE_2 = {
    "prompt_tokens": 25,
    "completion_tokens": 9,
    "total_tokens": 34,
    "prompt_tokens_details": {"cached_tokens": 16},
}


async def test_the_history_goes_out_and_the_answers_come_back_into_it(server: ByteServer) -> None:
    server.play(_answer("Hello there.", USAGE_1), _answer("Second answer.", USAGE_2))
    session = glm_live.Session(server.url, hub=False)
    try:
        conv = Conversation(system="Be brief.")
        first = session.chat("Hi", conversation=conv)
        assert conv[-1].role == "assistant"
        assert conv[-1].status in ("streaming", "done")  # appended as it starts
        await first
        second = session.chat("And then?", conversation=conv, temperature=0.2)
        await second
    finally:
        session.close()

    sent = [r.json()["messages"] for r in server.requests]
    assert sent[0] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert sent[1] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there."},
        {"role": "user", "content": "And then?"},
    ]
    assert server.requests[1].json()["temperature"] == 0.2
    assert [m.role for m in conv] == ["system", "user", "assistant", "user", "assistant"]
    assert conv[2].content == "Hello there."
    assert conv[4].content == "Second answer."
    assert conv[2].usage == USAGE_1
    assert conv[4].status == "done"
    assert conv[2].model == "glm-4.6"
    # when each chunk with text arrived, and the text then: 3 then 12 characters
    assert [c[1:] for c in conv[2].timing["chunks"]] == [[3, 0], [12, 0]]
    times = [c[0] for c in conv[2].timing["chunks"]]
    assert times == sorted(times)
    assert times[0] >= 0


async def test_the_ledger_sums_the_usage_the_server_sent(server: ByteServer) -> None:
    server.play(_answer("Hello there.", USAGE_1), _answer("Second answer.", USAGE_2))
    prices = {"glm-4.6": {"input": 0.6, "output": 2.2, "cached_input": 0.11}}
    session = glm_live.Session(server.url, hub=False, prices=prices)
    try:
        conv = Conversation(prices=prices)
        await session.chat("Hi", conversation=conv)
        await session.chat("And then?", conversation=conv)
        by_session = session.ledger()
    finally:
        session.close()

    ledger = conv.ledger()
    assert list(ledger["turn"]) == [1, 2]
    assert list(ledger["prompt_tokens"]) == [11, 25]
    assert list(ledger["completion_tokens"]) == [7, 9]
    assert list(ledger["reasoning_tokens"].fillna(-1)) == [2, -1]  # not sent the second time
    assert list(ledger["cached_tokens"]) == [0, 16]
    # 11 x 0.6 + 7 x 2.2 per million; then 9 x 0.6 + 16 x 0.11 + 9 x 2.2
    assert ledger["cost"].tolist() == pytest.approx([22.0e-6, 26.96e-6])
    totals = conv.totals()
    assert totals["prompt_tokens"] == 36
    assert totals["completion_tokens"] == 16
    assert totals["cached_tokens"] == 16
    assert totals["total_tokens"] == 52
    assert totals["cost"] == pytest.approx(48.96e-6)
    assert totals["currency"] == "USD"
    # the session's ledger: the same requests, the same sums
    assert list(by_session["prompt_tokens"]) == [11, 25]
    assert by_session["cost"].sum() == pytest.approx(48.96e-6)


def test_the_ledger_of_a_simulated_conversation_matches_each_completions_usage() -> None:
    with glm_live.connect(hub=False) as session:
        conv = Conversation()
        completions = []
        for prompt in ("Review the Globex account", "What are the risks?", "And the latency?"):
            handle = session.chat(prompt, conversation=conv, thinking=True, sim=FAST)
            completions.append(handle.wait(30))
    ledger = conv.ledger()
    assert len(ledger) == 3
    for column, key in [
        ("prompt_tokens", "prompt_tokens"),
        ("completion_tokens", "completion_tokens"),
    ]:
        assert list(ledger[column]) == [c.usage[key] for c in completions]
    assert list(ledger["reasoning_tokens"]) == [c.reasoning_tokens for c in completions]
    assert conv.totals()["total_tokens"] == sum(c.usage["total_tokens"] for c in completions)
    # each turn sends the whole history: the server counts the earlier answer's 30 tokens
    # (its reasoning is not sent back) in the next prompt
    prompts = [c.usage["prompt_tokens"] for c in completions]
    assert prompts[1] > prompts[0] + FAST["tokens"]
    assert prompts[2] > prompts[1] + FAST["tokens"]
    # and the simulator's follow-ups quote the question before: it received the history
    assert '"Review the Globex account"' in conv[3].content
    assert "turn 2" in conv[3].content.lower()
    assert "turn 3" in conv[5].content.lower()
    assert conv.ledger()["cost"].isna().all()  # no prices: no cost
    assert conv.totals()["cost"] is None


def test_prices_are_never_guessed_and_the_simulator_is_priced_as_its_model() -> None:
    row = usage_row(USAGE_2, "glm-4.6")
    assert cost(row, None) is None
    assert cost(row, Price(input=1.0, output=2.0)) == pytest.approx((25 + 18) * 1e-6)
    assert cost(usage_row(None, "glm-4.6"), Price(1.0, 1.0)) is None  # no usage: no cost
    conv = Conversation(prices={"glm-4.6": Price(input=1.0, output=1.0)})
    conv.add("user", "hi")
    conv.add(
        "assistant", "yo", model="glm-4.6-sim", usage={"prompt_tokens": 3, "completion_tokens": 2}
    )
    conv.add(
        "assistant", "yo", model="other-model", usage={"prompt_tokens": 3, "completion_tokens": 2}
    )
    costs = conv.ledger()["cost"].tolist()
    assert costs[0] == pytest.approx(5e-6)
    assert math.isnan(costs[1])
    assert conv.totals()["cost"] is None  # one answer has no price: no total
    with pytest.raises(ValueError, match="per million tokens"):
        Price(input=-1, output=1)
    with pytest.raises(ValueError, match="unknown fields"):
        Conversation(prices={"glm-4.6": {"input": 1, "output": 1, "per": "token"}})
    with pytest.raises(ValueError, match="needs input and output"):
        Conversation(prices={"glm-4.6": {"input": 1}})


def test_export_and_load_round_trip_every_message(tmp_path: Path) -> None:
    with glm_live.connect(hub=False) as session:
        conv = Conversation(system="You review accounts.", title="Globex")
        session.chat("Review the Globex account", conversation=conv, thinking=True, sim=FAST).wait(
            30
        )
        stopped = session.chat("Now write the whole report", conversation=conv, sim=SLOW)
        deadline = time.monotonic() + 10
        while stopped.completion.chunks < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        stopped.cancel()
        with pytest.raises(Cancelled):
            stopped.wait(30)
        failed = session.chat("Try once more", conversation=conv, sim={"fault": "server_error"})
        with pytest.raises(glm_live.GLMError):
            failed.wait(30)

    statuses = [(m.role, m.status) for m in conv]
    assert statuses == [
        ("system", "done"),
        ("user", "done"),
        ("assistant", "done"),
        ("user", "done"),
        ("assistant", "cancelled"),
        ("user", "done"),
        ("assistant", "error"),
    ]
    assert conv[4].content  # the partial answer is kept
    assert conv[6].error is not None
    assert conv[6].error.startswith("ServerError")
    sent = conv.to_openai_messages()
    # the failed answer said nothing: it is not sent again; the stopped one is
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert sent[4]["content"] == conv[4].content
    assert "reasoning_content" not in sent[2]  # no tools: GLM does not need it back
    assert conv[2].reasoning

    path = conv.save(tmp_path / "globex.json")
    loaded = Conversation.load(path)
    assert loaded == conv
    assert loaded.to_openai_messages() == sent
    assert [m.to_dict() for m in loaded] == [m.to_dict() for m in conv]
    assert Conversation.from_json(conv.to_json(indent=None)) == conv
    assert loaded.title == "Globex"

    markdown = conv.to_markdown()
    assert markdown.startswith("# Globex\n")
    assert "## User\n\nReview the Globex account" in markdown
    assert "## Assistant (glm-4.6-sim, cancelled)" in markdown
    assert "> " in markdown  # the reasoning, quoted


def test_openai_messages_load_as_they_are() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "look "}, {"type": "text", "text": "here"}],
        },
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "thinking",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
    ]
    conv = Conversation(messages)
    assert conv.system == "sys"
    assert conv[1].content == "look here"
    out = conv.to_openai_messages()
    assert out[2] == {
        "role": "assistant",
        "content": "",
        "reasoning_content": "thinking",  # an answer that called tools sends it back
        "tool_calls": messages[2]["tool_calls"],
    }
    assert out[3] == {"role": "tool", "content": "42", "tool_call_id": "t1"}


def test_bad_input_gets_typed_errors_that_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="role is one of"):
        Message("robot", "hi")
    with pytest.raises(TypeError, match="content must be text"):
        Message("user", 3)  # type: ignore[arg-type]
    with pytest.raises(ConversationFormatError, match="fields this version does not know"):
        Conversation([{"role": "user", "content": "x", "mood": "happy"}])
    (tmp_path / "run.json").write_text(json.dumps({"format": "glm_live.runlog/1", "events": []}))
    with pytest.raises(ConversationFormatError, match=r"glm_live\.replay"):
        Conversation.load(tmp_path / "run.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConversationFormatError, match="must be JSON"):
        Conversation.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        Conversation.load(tmp_path / "missing.json")


def test_a_conversation_refuses_what_would_lose_or_tangle_its_history() -> None:
    with glm_live.connect(hub=False) as session:
        conv = Conversation()
        with pytest.raises(ValueError, match="does not end with the user's message"):
            session.chat(conversation=conv)
        with pytest.raises(ValueError, match="nothing to send"):
            session.chat()
        with pytest.raises(ValueError, match="as a string"):
            session.chat([{"role": "user", "content": "x"}], conversation=conv)
        handle = session.chat("Write a long report", conversation=conv, sim=SLOW)
        with pytest.raises(RuntimeError, match="still receiving an answer"):
            session.chat("Another question", conversation=conv)
        with pytest.raises(RuntimeError, match="stop it"):
            conv.clear()
        with pytest.raises(RuntimeError, match="stop it"):
            conv.truncate(0)
        handle.cancel()
        with pytest.raises(Cancelled):
            handle.wait(30)
        assert conv[-1].status == "cancelled"
        # regenerate: drop the answer, answer the same question again
        conv.truncate(conv.last_user_index() + 1)
        again = session.chat(conversation=conv, sim=FAST)
        again.wait(30)
        assert [m.role for m in conv] == ["user", "assistant"]
        assert conv[-1].status == "done"


def test_a_chat_with_python_tools_runs_them_and_keeps_every_round() -> None:
    calls: list[str] = []

    def weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        calls.append(city)
        return {"city": city, "celsius": 21}

    with glm_live.connect(hub=False) as session:
        conv = Conversation()
        handle = session.chat(
            "What is the weather in Paris?", conversation=conv, tools=[weather], sim=FAST
        )
        final = handle.wait(30)
        requests = session.ledger()
    assert calls == ["Paris"]
    assert [m.role for m in conv] == ["user", "assistant", "tool", "assistant"]
    call = conv[1].tool_calls[0]
    assert call["function"]["name"] == "weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert conv[2].tool_call_id == call["id"]
    assert json.loads(conv[2].content) == {"city": "Paris", "celsius": 21}
    # the simulator answers tool results by quoting them: it received them
    assert "21" in conv[3].content
    assert final.text == conv[3].content
    assert len(requests) == 2  # one request per round, both in the session's ledger
    assert len(conv.ledger()) == 2


def test_listeners_see_every_change() -> None:
    seen: list[tuple[str, str | None]] = []
    conv = Conversation()
    conv.add_listener(lambda kind, m: seen.append((kind, m.role if m else None)))
    message = conv.add("user", "hi")
    conv.update(message, content="hello")
    conv.truncate(0)
    assert seen == [("added", "user"), ("updated", "user"), ("reset", None)]
    with pytest.raises(ValueError, match="not in this conversation"):
        conv.update(message, content="again")
    assert isinstance(conv.ledger(), pd.DataFrame)
    assert conv.totals()["answers"] == 0
