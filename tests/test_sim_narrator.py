"""The simulator as a coherent narrator: one account's figures everywhere, whole answers.

Everything runs through the real runtime (uvicorn on loopback): the ``account-review`` workflow
over AG-UI SSE, chats over both the GLM and the OpenAI paths. Figures are parsed out of the
texts and compared with the run's shared state (never with values computed here the way the
simulator computes them).
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from glm_live import GLMClient
from glm_live.protocols.agui import RunState
from glm_live.server import ServerHandle, serve
from glm_live.server.sim.text import (
    answer_text,
    prompt_text,
    reasoning_text,
    seeded_rng,
    tokenize,
)
from glm_live.wire.accounts import facts, find_account
from glm_live.wire.sse import Decoder

FAST = {"ttft_ms": 1, "itl_ms": 1}
NAMES = ("Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Tyrell")
GLM_PATH = "/api/paas/v4/chat/completions"
OPENAI_PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(seed=5) as handle:
        yield handle


# --- helpers: a run, a chat, and the figures in a text ------------------------------------------


@dataclass
class Review:
    folded: RunState
    texts: dict[str, str]  # each agent's chat answer, by agent
    summaries: dict[str, str] = field(default_factory=dict)  # last progress message, by agent

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.folded.state["analysis"]["metrics"])

    @property
    def report(self) -> str:
        return str(self.folded.result["report-writer"])


def review(handle: ServerHandle, sim: dict[str, Any], **inputs: Any) -> Review:
    body = {
        "threadId": "t",
        "runId": uuid.uuid4().hex,
        "state": {},
        "messages": [{"id": "m", "role": "user", "content": inputs.pop("prompt", "Go")}],
        "tools": [],
        "context": [],
        "forwardedProps": {"inputs": inputs, "sim": {**FAST, **sim}},
    }
    decoder = Decoder()
    folded = RunState()
    summaries: dict[str, str] = {}
    with httpx.stream(
        "POST", handle.url + "/agents/account-review", json=body, headers=handle.headers, timeout=60
    ) as r:
        assert r.status_code == 200
        for piece in r.iter_bytes():
            for sse in decoder.feed(piece):
                event = json.loads(sse.data)
                folded.apply(event)
    assert folded.status == "finished", folded.error
    # Each agent's last progress message, as its progress activity ended up.
    for activity in folded.activities.values():
        if activity["activityType"] == "progress":
            summaries[activity["content"]["agent"]] = activity["content"]["message"]
    texts: dict[str, str] = {}
    for message in folded.messages:
        if message["name"] != "orchestrator":
            assert message["name"] not in texts  # one answer per agent
            texts[message["name"]] = message["content"]
    assert set(texts) == {"data-analyzer", "risk-assessor", "report-writer"}
    return Review(folded, texts, summaries)


@dataclass
class Answer:
    text: str
    finish_reason: str
    usage: dict[str, Any]
    content_chunks: int | None = None  # streamed: chunks that carried content


def chat(handle: ServerHandle, path: str, prompt: str, stream: bool, **extra: Any) -> Answer:
    body = {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
        **extra,
        "sim": {**FAST, **extra.get("sim", {})},
    }
    url = handle.url + path
    if not stream:
        r = httpx.post(url, json=body, headers=handle.headers, timeout=30)
        assert r.status_code == 200
        choice = r.json()["choices"][0]
        return Answer(choice["message"]["content"], choice["finish_reason"], r.json()["usage"])
    decoder = Decoder()
    text, finish, usage, chunks = "", "", {}, 0
    with httpx.stream("POST", url, json=body, headers=handle.headers, timeout=30) as r:
        assert r.status_code == 200
        data = [e.data for piece in r.iter_bytes() for e in decoder.feed(piece)]
    assert data[-1] == "[DONE]"
    for item in data[:-1]:
        chunk = json.loads(item)
        usage = chunk.get("usage") or usage
        for choice in chunk["choices"]:
            content = choice["delta"].get("content")
            if content:
                text += content
                chunks += 1
            finish = choice.get("finish_reason") or finish
    return Answer(text, finish, usage, chunks)


def dollars(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\$(\d+)k\b", text)}


def percents(text: str) -> set[int]:
    return {int(n) for n in re.findall(r"(\d+)%", text)}


def dates(text: str) -> set[str]:
    return set(re.findall(r"\b\d{4}-\d{2}-\d{2}\b", text))


def accounts_named(text: str) -> set[str]:
    return {name for name in NAMES if name in text}


def assert_ends_naturally(text: str) -> None:
    """The end of a sentence, a list item, a table row or a code block; nothing left open."""
    assert text == text.rstrip(), repr(text[-20:])
    last_line = text.rsplit("\n", 1)[-1]
    assert not last_line.startswith("#"), last_line  # never on a heading
    assert text.count("```") % 2 == 0, "a code block left open"
    if last_line.startswith("|"):
        assert last_line.endswith("|")
        assert not re.fullmatch(r"\|[-:| ]+\|", last_line), "ends on a table's header"
    elif text.endswith("```"):
        pass
    else:
        assert text[-1] in ".!?", repr(text[-40:])
        assert last_line.count("**") % 2 == 0, last_line
    for table in tables(text):
        assert len(table) >= 3, table  # header, separator, at least one row


def tables(text: str) -> list[list[str]]:
    found: list[list[str]] = []
    rows: list[str] = []
    for line in [*text.split("\n"), ""]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            found.append(rows)
            rows = []
    return found


def cells(row: str) -> int:
    return row.strip().strip("|").count("|") + 1


# --- the facts and the account a prompt is about (pure) -----------------------------------------


def test_facts_are_one_draw_per_account_and_seed() -> None:
    assert facts("Globex", 3) == facts("globex", 3) == facts(" Globex ", 3)
    assert facts("Globex", 3).name == "Globex"
    assert facts("Globex", 3) != facts("Globex", 4)
    assert facts("Globex", 3) != facts("Initech", 3)
    acme = facts("acme", 3)
    assert acme.name == "Acme"
    assert acme == facts("Acme", 3)
    assert 0 < acme.active_seats <= acme.seats
    assert acme.churn_risk in ("low", "medium", "high")


@pytest.mark.parametrize(
    ("prompt", "account"),
    [
        ("Review the Globex account", "Globex"),
        ("how is initech doing?", "Initech"),
        ("Please review the Acme account", "Acme"),
        ("Review Acme", "Acme"),
        ("Account review for Acme Corp: risks first", "Acme"),
        ("What changed on account Hooli this quarter?", "Hooli"),
        ("Review the account", None),
        ("How do I reduce customer churn?", None),
        ("Summarise the quarter", None),
    ],
)
def test_the_account_a_prompt_is_about(prompt: str, account: str | None) -> None:
    assert find_account(prompt) == account


# --- one run: the same account and the same figures everywhere ---------------------------------


@pytest.fixture(scope="module")
def globex(runtime: ServerHandle) -> Review:
    return review(runtime, {"seed": 3}, account="Globex")


def test_state_agents_and_report_agree_on_the_account_and_its_figures(globex: Review) -> None:
    state = globex.folded.state
    metrics = globex.metrics
    assert state["account"] == "Globex"
    revenue, last_year = metrics["revenue_k"], metrics["revenue_last_year_k"]
    growth, adoption = metrics["growth_pct"], metrics["adoption_pct"]
    assert (revenue, last_year) != (0, 0)
    every_text = {**globex.texts, "report": globex.report}
    for who, text in every_text.items():
        assert accounts_named(text) == {"Globex"}, who
        assert dollars(text) <= {revenue, last_year}, who
        assert dates(text) <= {metrics["renewal"]}, who
        assert percents(text) <= {abs(growth), adoption}, who
    assert revenue in dollars(globex.texts["data-analyzer"])
    assert metrics["renewal"] in dates(globex.texts["risk-assessor"])
    assert str(state["risk"]["score"]) in globex.texts["risk-assessor"]
    assert state["risk"]["level"] in globex.texts["risk-assessor"]
    # The report carries them all.
    report = globex.report
    assert revenue in dollars(report)
    assert last_year in dollars(report)
    assert metrics["renewal"] in dates(report)
    assert str(state["risk"]["score"]) in report
    assert state["risk"]["level"] in report
    assert metrics["owner"] in report
    assert metrics["sponsor"] in report


def test_the_result_is_the_whole_report_with_a_whole_table(globex: Review) -> None:
    report = globex.report
    assert report == globex.texts["report-writer"]  # not clipped on the way
    assert report.startswith("# Account review: Globex")
    assert "## Recommendation" in report
    assert_ends_naturally(report)
    found = tables(report)
    assert found
    for table in found:
        header = cells(table[0])
        assert header >= 2
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", table[1])
        assert all(cells(row) == header for row in table), table
    body = "\n".join(found[0])
    metrics = globex.metrics
    for figure in (f"${metrics['revenue_k']}k", str(metrics["nps"]), metrics["renewal"]):
        assert figure in body  # the key figures, all of them, in the one table
    assert f"{metrics['active_seats']} of {metrics['seats']}" in body
    state = globex.folded.state
    assert state["report"] == {"status": "done", "length": len(report)}


def test_each_agent_ends_with_a_one_line_plain_summary_of_its_findings(globex: Review) -> None:
    metrics = globex.metrics
    risk = globex.folded.state["risk"]
    assert set(globex.summaries) == {"data-analyzer", "risk-assessor", "report-writer"}
    for who, line in globex.summaries.items():
        assert line, who
        assert "\n" not in line, who
        assert not set("#*|`") & set(line), (who, line)
        assert len(line) <= 120, (who, line)
        assert dollars(line) <= {metrics["revenue_k"]}, who
        assert dates(line) <= {metrics["renewal"]}, who
    analysis = globex.summaries["data-analyzer"]
    assert dollars(analysis) == {metrics["revenue_k"]}
    assert percents(analysis) == {abs(metrics["growth_pct"]), metrics["adoption_pct"]}
    assessed = globex.summaries["risk-assessor"]
    assert risk["level"] in assessed
    assert str(risk["score"]) in assessed
    assert dates(assessed) == {metrics["renewal"]}
    assert "Globex" in globex.summaries["report-writer"]
    # The card's line is also what the agent returned.
    assert globex.folded.result["data-analyzer"]["summary"] == analysis
    assert globex.folded.result["risk-assessor"]["summary"] == assessed


# --- chats about an account, and seeds ---------------------------------------------------------


@pytest.mark.parametrize("path", [GLM_PATH, OPENAI_PATH])
def test_a_chat_about_the_account_quotes_the_runs_figures(
    runtime: ServerHandle, globex: Review, path: str
) -> None:
    answer = chat(runtime, path, "Review the Globex account", False, sim={"seed": 3})
    metrics = globex.metrics
    assert accounts_named(answer.text) == {"Globex"}
    assert metrics["revenue_k"] in dollars(answer.text)
    assert dollars(answer.text) <= {metrics["revenue_k"], metrics["revenue_last_year_k"]}
    assert dates(answer.text) == {metrics["renewal"]}
    assert globex.folded.state["risk"]["level"] in answer.text


def test_an_unknown_account_has_facts_of_its_own_found_in_the_prompt(
    runtime: ServerHandle,
) -> None:
    acme = review(runtime, {"seed": 3}, prompt="Please review the Acme account")
    assert acme.folded.state["account"] == "Acme"
    metrics = acme.metrics
    for who, text in {**acme.texts, "report": acme.report}.items():
        assert "Acme" in text, who
        assert not accounts_named(text), who
        assert dollars(text) <= {metrics["revenue_k"], metrics["revenue_last_year_k"]}, who
        assert dates(text) <= {metrics["renewal"]}, who
    answer = chat(runtime, OPENAI_PATH, "How is the Acme account doing?", False, sim={"seed": 3})
    assert metrics["revenue_k"] in dollars(answer.text)
    assert dates(answer.text) == {metrics["renewal"]}


def test_another_seed_is_another_world(runtime: ServerHandle, globex: Review) -> None:
    other = review(runtime, {"seed": 4}, account="Globex")
    assert other.metrics != globex.metrics
    assert other.metrics["revenue_k"] in dollars(other.report)
    # Without a seed in the run, the runtime's own (5) is the run's and its chats' seed.
    default = review(runtime, {}, account="Globex")
    answer = chat(runtime, GLM_PATH, "Review the Globex account", False)
    assert default.metrics["revenue_k"] in dollars(answer.text)
    assert dates(answer.text) == {default.metrics["renewal"]}
    assert default.metrics != globex.metrics


def test_a_chat_without_an_account_is_consistent_with_itself(runtime: ServerHandle) -> None:
    answer = chat(runtime, OPENAI_PATH, "How do I reduce customer churn?", False)
    assert not accounts_named(answer.text)
    assert len(dollars(answer.text)) <= 2  # this year's revenue and last year's
    assert len(dates(answer.text)) == 1  # one renewal date
    assert_ends_naturally(answer.text)


# --- lengths and finish reasons -----------------------------------------------------------------

PROMPTS = [
    "Review the Globex account",
    "Assess the risks of the Initech account",
    "Summarise the quarter",
    "What is our p99 latency?",
    "Write a python function that sums a list",
]


@pytest.mark.parametrize("path", [GLM_PATH, OPENAI_PATH])
@pytest.mark.parametrize("stream", [False, True])
def test_answers_end_at_a_natural_boundary_with_stop(
    runtime: ServerHandle, path: str, stream: bool
) -> None:
    for prompt in PROMPTS:
        for tokens in (3, 17, 58, 141, 256):
            answer = chat(runtime, path, prompt, stream, sim={"tokens": tokens})
            where = (prompt, tokens)
            assert answer.finish_reason == "stop", where
            assert answer.usage["completion_tokens"] == tokens, where
            if stream:
                assert answer.content_chunks == tokens, where
            assert_ends_naturally(answer.text)


@pytest.mark.parametrize("path", [GLM_PATH, OPENAI_PATH])
@pytest.mark.parametrize("stream", [False, True])
def test_max_tokens_cuts_with_length(runtime: ServerHandle, path: str, stream: bool) -> None:
    prompt = "Review the Globex account"
    whole = chat(runtime, path, prompt, False, sim={"tokens": 120})
    cut = chat(runtime, path, prompt, stream, sim={"tokens": 120}, max_tokens=37)
    assert cut.finish_reason == "length"
    assert cut.usage["completion_tokens"] == 37
    assert cut.usage["total_tokens"] == cut.usage["prompt_tokens"] + 37
    if stream:
        assert cut.content_chunks == 37
    assert whole.text.startswith(cut.text)  # the same answer, stopped where the budget ran out
    assert len(cut.text) < len(whole.text)
    roomy = chat(runtime, path, prompt, stream, sim={"tokens": 120}, max_tokens=500)
    assert roomy.finish_reason == "stop"  # a budget the answer fits in does not cut it
    assert roomy.text == whole.text
    assert roomy.usage["completion_tokens"] == 120


@pytest.mark.parametrize("path", [GLM_PATH, OPENAI_PATH])
def test_reasoning_ends_at_the_end_of_a_sentence(runtime: ServerHandle, path: str) -> None:
    for thinking in (5, 23, 64):
        body = {
            "model": "glm-4.7",  # thinks unless told not to
            "messages": [{"role": "user", "content": "Review the Globex account"}],
            "sim": {**FAST, "tokens": 40, "reasoning_tokens": thinking},
        }
        r = httpx.post(runtime.url + path, json=body, headers=runtime.headers, timeout=30)
        assert r.status_code == 200
        message, usage = r.json()["choices"][0]["message"], r.json()["usage"]
        assert message["reasoning_content"].endswith("."), message["reasoning_content"]
        assert usage["completion_tokens_details"]["reasoning_tokens"] == thinking
        assert usage["completion_tokens"] == 40 + thinking
        assert_ends_naturally(message["content"])


# --- follow-ups: the answer shows the conversation's history arrived ---------------------------

FIRST = "How is the **Globex** account doing this quarter, compared to last year?"
FIRST_WORDS = "How is the Globex account doing this quarter"  # its first 8 words, plain
TWO_TURNS: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful analyst."},
    {"role": "user", "content": FIRST},
    {"role": "assistant", "content": "Globex is growing."},
    {"role": "user", "content": "And what about the risks?"},
]
THREE_TURNS: list[dict[str, Any]] = [
    *TWO_TURNS,
    {"role": "assistant", "content": "Renewal is the main one."},
    {"role": "user", "content": "Write a python function that sums a list"},
]


def answer(messages: list[dict[str, Any]], tokens: int, seed: int = 3) -> str:
    """What the engine does: the rng seeded from the whole conversation."""
    rng = seeded_rng(seed, "glm-4.6", json.dumps(messages, sort_keys=True))
    return answer_text(prompt_text(messages), rng, tokens, seed, messages)


def test_a_follow_up_opens_with_the_earlier_question_and_the_turn() -> None:
    text = answer(TWO_TURNS, 300)
    first_line = text.split("\n", 1)[0]
    assert FIRST_WORDS in first_line
    assert "turn 2" in first_line
    assert "**" not in first_line  # the quote is plain text, its markdown stripped
    assert first_line.endswith("building on my earlier answer.")
    assert text == answer(TWO_TURNS, 300)  # deterministic
    assert_ends_naturally(text)
    # The body is still an answer to the last question (risks), after a paragraph break.
    assert "## Risk assessment" in text


def test_three_turns_say_turn_3_and_quote_the_previous_question() -> None:
    text = answer(THREE_TURNS, 300)
    first_line = text.split("\n", 1)[0]
    assert "turn 3" in first_line
    assert '"And what about the risks?"' in first_line
    assert "my 2 earlier answers" in first_line
    assert "```python" in text  # the last question's topic (code) is answered
    # Without assistant answers in between, the turn still counts user messages.
    users = [m for m in THREE_TURNS if m["role"] == "user"]
    assert "turn 3 of our conversation." in answer(users, 300).split("\n", 1)[0]


@pytest.mark.parametrize(
    "question",
    ["what did I ask first?", "What was my first question?", "Summarize our conversation"],
)
def test_a_question_about_the_history_lists_the_earlier_questions(question: str) -> None:
    messages = [*THREE_TURNS, {"role": "assistant", "content": "Done."}]
    messages.append({"role": "user", "content": question})
    text = answer(messages, 300)
    first_line = text.split("\n", 1)[0]
    assert "turn 4" in first_line
    assert f'your first question was "{FIRST_WORDS}…"' in first_line
    assert "You asked 3 questions before this one, in order:" in text
    listed = re.findall(r"^(\d+)\. (.*)$", text, re.MULTILINE)
    assert listed[:3] == [
        ("1", "How is the Globex account doing this quarter, compared to last year?"),
        ("2", "And what about the risks?"),
        ("3", "Write a python function that sums a list."),
    ]
    assert_ends_naturally(text)


@pytest.mark.parametrize("messages", [TWO_TURNS, THREE_TURNS], ids=["two", "three"])
def test_follow_ups_are_exactly_the_tokens_asked_for(messages: list[dict[str, Any]]) -> None:
    turn = f"turn {sum(m['role'] == 'user' for m in messages)}"
    full = answer(messages, 400).split("\n", 1)[0]
    opening = len(tokenize(full))
    for tokens in range(1, 401):
        text = answer(messages, tokens)
        assert len(tokenize(text)) == tokens, tokens
        if tokens == opening + 1:  # no closing sentence is one token: "this is now turn 2"
            assert text == full.replace("is turn", "is now turn"), tokens
        elif tokens >= opening:
            assert text.startswith(full), tokens  # the whole opening, kept
            assert_ends_naturally(text)
        elif tokens >= 20:  # a short opening still quotes the question
            assert text.startswith(f"T{turn[1:]}, following up on "), tokens
            assert_ends_naturally(text)
        else:  # a tiny budget: the opening's first tokens
            assert text.startswith(("Turn", "Follow")), tokens
    # Reasoning too: exact, and about the follow-up.
    for tokens in (5, 23, 64):
        rng = seeded_rng(3, "x")
        plan = reasoning_text(prompt_text(messages), rng, tokens, messages)
        assert len(tokenize(plan)) == tokens
    plan = reasoning_text(prompt_text(messages), seeded_rng(3, "x"), 64, messages)
    assert plan.startswith("The user follows up on")


def test_single_turn_answers_are_unchanged() -> None:
    for prompt in PROMPTS:
        single = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
        for tokens in (1, 3, 17, 58, 141, 256):
            rng = seeded_rng(3, "glm-4.6", json.dumps(single, sort_keys=True))
            same = seeded_rng(3, "glm-4.6", json.dumps(single, sort_keys=True))
            with_history = answer_text(prompt, rng, tokens, 3, single)
            assert with_history == answer_text(prompt, same, tokens, 3), (prompt, tokens)
            assert not with_history.startswith(("Following up", "Turn "))
            assert reasoning_text(prompt, seeded_rng(1), tokens, single) == reasoning_text(
                prompt, seeded_rng(1), tokens
            )


async def test_a_streamed_follow_up_through_the_runtime_quotes_the_first_question(
    runtime: ServerHandle,
) -> None:
    first = "Which regions grew fastest last quarter?"
    async with GLMClient(base_url=runtime.base_url, api_key=runtime.token) as client:
        one = await client.complete(first, sim={**FAST, "tokens": 80})
        history = [
            {"role": "user", "content": first},
            one.to_message(),
            {"role": "user", "content": "Why did they grow?"},
        ]
        chunks: list[str] = []
        stream = client.stream(history, sim={**FAST, "tokens": 120})
        async with stream:
            async for chunk in stream:
                chunks.append(chunk.content)
        completion = stream.completion
    text = "".join(chunks)
    assert "Following up" not in one.text  # the first turn has no history to show
    assert text == completion.text
    assert text.startswith(f'Following up on your earlier question, "{first}", this is turn 2')
    assert completion.usage is not None
    assert completion.usage["completion_tokens"] == 120
    assert_ends_naturally(text)


def test_single_turn_answers_end_naturally_at_every_length() -> None:
    """Also where the first block cannot close at the length asked for: the answer starts at
    a later block rather than stopping mid-table (a 96-token code answer ended on "|")."""
    for prompt in PROMPTS:
        for tokens in range(25, 401):
            for seed in (0, 1):
                text = answer_text(prompt, random.Random(seed), tokens)
                assert len(tokenize(text)) == tokens, (prompt, tokens, seed)
                assert_ends_naturally(text)
