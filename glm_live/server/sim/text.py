"""What the simulator says: deterministic, readable, markdown-rich text on the prompt's topic.

Nothing here pretends to be a model. The text is assembled from templates chosen by keywords in
the prompt (an account review reads like one, a latency question gets percentiles), filled in
with the prompt's own words and numbers drawn from a generator seeded by ``(seed, prompt)``, so
the same request always gets the same answer.

A prompt about an account is answered from that account's facts
(:func:`glm_live.wire.accounts.facts`, drawn once per account and seed), never from numbers of
its own: every answer about Globex under one seed quotes the same revenue, the same renewal
date, the same people, and so do the ``account-review`` workflow's state and summaries.

A follow-up (a conversation with an earlier user message) opens with one sentence that shows
the history arrived: the previous question's first words, quoted, and the turn number; a
question about the conversation itself ("what did I ask first?") gets the earlier questions
as a numbered list. A single-turn answer does not change.

Lengths: :func:`answer_text` gives exactly the tokens asked for (so the ``tokens`` knob and the
usage stay exact), and still ends where a writer would stop: after a sentence, a list item, a
table row (never inside a table's header) or a code block. It takes the longest run of such
pieces that fits and closes with a short paragraph of closing sentences whose lengths make up
the difference. Only ``max_tokens`` cuts an answer anywhere, and then the engine says
``finish_reason: "length"``.

:func:`tokenize` splits text into the units the simulator streams and counts: a word piece of
at most six letters, a run of up to three digits, or one other character, each carrying the
whitespace before it. Joining the tokens gives the text back exactly.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from ...wire.accounts import AccountFacts, facts, find_account

__all__ = [
    "answer_text",
    "asks_about_history",
    "content_text",
    "prompt_text",
    "reasoning_text",
    "seeded_rng",
    "tokenize",
    "tool_arguments",
    "user_questions",
]

_TOKEN = re.compile(r"\s*(?:[^\W\d_]{1,6}|\d{1,3}|[^\s])|\s+")

_STOPWORDS = frozenset(
    """
    a an the and or but if then else of to in on at by for with about from into over under is
    are was were be been being do does did have has had can could should would will shall may
    might must i me my we our you your he she it its they them their this that these those what
    which who whom whose when where why how please give write tell explain show make let some
    any all each more most less few many much very just also not no yes so as than too one two
    three up down out off again once here there me us his her hers him let's i'm it's can't
    don't won't isn't aren't summary summarize describe brief short long list
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into simulator tokens; ``"".join(tokenize(t)) == t``."""
    return _TOKEN.findall(text)


def seeded_rng(seed: int | None, *parts: str) -> random.Random:
    """A generator seeded stably (not by Python's randomised ``hash``) from a seed and text."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(str(seed).encode())
    for part in parts:
        digest.update(b"\0" + part.encode("utf-8", "replace"))
    return random.Random(int.from_bytes(digest.digest(), "big"))


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message (the topic), or of all messages if there is none."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return " ".join(content_text(m.get("content")) for m in messages)


def content_text(content: Any) -> str:
    """The text of a message content (a string, or a list of parts with ``text``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _keywords(prompt: str, limit: int = 4) -> list[str]:
    words = re.findall(r"[^\W\d_][\w'-]*", prompt)
    seen: list[str] = []
    for word in words:
        lowered = word.lower()
        if lowered in _STOPWORDS or len(lowered) < 3 or lowered in (w.lower() for w in seen):
            continue
        seen.append(word)
        if len(seen) == limit:
            break
    return seen


def _title(words: Sequence[str]) -> str:
    return " ".join(w if w.isupper() else w.capitalize() for w in words) or "Your Question"


def _topic(prompt: str) -> str:
    lowered = prompt.lower()
    rules = [
        ("account", ("account", "customer", "client", "portfolio", "churn", "renewal")),
        ("risk", ("risk", "exposure", "compliance", "fraud", "threat")),
        ("latency", ("latency", "benchmark", "throughput", "p99", "percentile", "ttft")),
        ("report", ("report", "findings", "executive", "write-up")),
        ("data", ("data", "dataset", "analy", "metric", "trend", "statistic")),
        ("code", ("python", "code", "function", "bug", "implement", "script", "class ")),
    ]
    for topic, needles in rules:
        if any(needle in lowered for needle in needles):
            return topic
    return "general"


# -- accounts: every figure comes from the account's facts (glm_live.wire.accounts) -----------


def _rating(value: float, medium: float, high: float) -> str:
    return "High" if value >= high else "Medium" if value >= medium else "Low"


def _figures_table(f: AccountFacts) -> str:
    return (
        "| Metric | Value |\n|---|---:|\n"
        f"| Annual recurring revenue | {f.revenue} |\n"
        f"| Revenue a year ago | {f.revenue_last_year} |\n"
        f"| Growth year on year | {f.growth_signed} |\n"
        f"| Active seats | {f.active_seats} of {f.seats} ({f.adoption_pct}%) |\n"
        f"| Net promoter score | {f.nps} |\n"
        f"| Open tickets | {f.open_tickets} |\n"
        f"| Churn risk | {f.churn_risk} ({f.risk_score}) |\n"
        f"| Renewal | {f.renewal} |\n"
    )


def _account_review(f: AccountFacts) -> str:
    trend = "growing" if f.growth_pct > 0 else "contracting" if f.growth_pct < 0 else "steady"
    return (
        f"## Account review: {f.name}\n\n"
        f"**Summary.** {f.name} is a {trend} account with annual recurring revenue of "
        f"{f.revenue}, {f.growth} year on year. Churn risk is {f.churn_risk}, and the "
        f"contract renews on {f.renewal}.\n\n"
        "### Key metrics\n\n"
        f"{_figures_table(f)}\n"
        "### Risks\n\n"
        f"1. **Renewal**: the contract renews on {f.renewal}; {f.sponsor} is the executive "
        "sponsor.\n"
        f"2. **Adoption**: {f.active_seats} of {f.seats} seats were active in the last 30 "
        "days.\n"
        f"3. **Support**: {f.open_tickets} tickets are open.\n\n"
        "### Recommendations\n\n"
        f"- {f.owner} should hold a business review with {f.sponsor} before the renewal.\n"
        "- Run an enablement session for the least active teams.\n"
        "- Track weekly active seats as the leading indicator.\n\n"
        "```sql\n"
        "SELECT date_trunc('week', seen_at) AS week, count(DISTINCT seat_id) AS active\n"
        f"FROM usage WHERE account = '{f.name}'\nGROUP BY 1 ORDER BY 1;\n"
        "```\n\n"
    )


def _account_analysis(f: AccountFacts) -> str:
    adoption = "a healthy level" if f.adoption_pct >= 70 else "room to grow"
    return (
        f"## Usage and revenue: {f.name}\n\n"
        f"Annual recurring revenue is {f.revenue}, {f.growth} year on year from "
        f"{f.revenue_last_year}. Of {f.seats} seats, {f.active_seats} were active in the last "
        f"30 days: {f.adoption_pct}%, {adoption}. "
        f"There are {f.open_tickets} open support tickets.\n\n"
        "| Metric | Now | A year ago |\n|---|---:|---:|\n"
        f"| Annual recurring revenue | {f.revenue} | {f.revenue_last_year} |\n"
        f"| Active seats | {f.active_seats} | n/a |\n"
        f"| Net promoter score | {f.nps} | n/a |\n\n"
        "### Observations\n\n"
        f"1. Revenue is {f.growth} year on year.\n"
        f"2. Adoption stands at {f.adoption_pct}% of seats.\n"
        "3. Usage is concentrated in a few teams, so a reorganisation would show.\n\n"
        "```python\n"
        f"usage[usage.account == {f.name!r}].groupby('team')['seat_id'].nunique()\n"
        "```\n\n"
    )


def _account_risk(f: AccountFacts) -> str:
    return (
        f"## Risk assessment: {f.name}\n\n"
        f"Churn risk is **{f.churn_risk}**: a likelihood of {f.likelihood} times an impact of "
        f"{f.impact} gives a score of {f.risk_score}. The contract renews on {f.renewal}.\n\n"
        "| Risk | Rating | Evidence |\n|---|---|---|\n"
        f"| Renewal | {f.churn_risk.capitalize()} | Renews on {f.renewal} |\n"
        f"| Adoption | {_rating(100 - f.adoption_pct, 30, 50)} | "
        f"{f.adoption_pct}% of seats active |\n"
        f"| Support | {_rating(f.open_tickets, 15, 30)} | {f.open_tickets} open tickets |\n"
        f"| Revenue | {_rating(-f.growth_pct, 0, 5)} | {f.revenue}, {f.growth} |\n\n"
        "### Mitigations\n\n"
        f"- Agree a renewal plan with {f.sponsor} well before {f.renewal}.\n"
        "- Give every High rating an owner and a review date.\n"
        f"- {f.owner} tracks active seats weekly until the renewal.\n\n"
    )


def _account_report(f: AccountFacts) -> str:
    if f.churn_risk == "high":
        advice = f"Escalate now: {f.owner} and an executive meet {f.sponsor} this month."
    elif f.churn_risk == "medium":
        advice = f"Hold a business review with {f.sponsor} before {f.renewal}."
    else:
        advice = f"Renew on the current terms and propose an expansion to {f.sponsor}."
    return (
        f"# Account review: {f.name}\n\n"
        "## Executive summary\n\n"
        f"{f.name} brings {f.revenue} in annual recurring revenue, {f.growth} year on year. "
        f"Churn risk is {f.churn_risk} (score {f.risk_score}), and the contract renews on "
        f"{f.renewal}.\n\n"
        "## Key figures\n\n"
        f"{_figures_table(f)}\n"
        "## Risks\n\n"
        f"- **Renewal**: due on {f.renewal}, with {f.sponsor} as executive sponsor.\n"
        f"- **Adoption**: {f.adoption_pct}% of seats are active.\n"
        f"- **Support**: {f.open_tickets} tickets are open.\n\n"
        "## Recommendation\n\n"
        f"{advice} {f.owner} owns the follow-up.\n\n"
    )


def _account_sections(prompt: str) -> list[Callable[[AccountFacts], str]]:
    """The account sections in the order an answer uses them: the one the prompt asks for
    first, then the others (for answers longer than one section)."""
    lowered = prompt.lower()
    if "report" in lowered:
        first = _account_report
    elif "risk" in lowered:
        first = _account_risk
    elif any(word in lowered for word in ("analy", "usage", "data", "trend", "revenue")):
        first = _account_analysis
    else:
        first = _account_review
    if first is _account_report:
        return [first]  # a report already says everything: notes follow it, not sections
    others = [_account_review, _account_analysis, _account_risk]
    return [first, *(s for s in others if s is not first)]


def _account_closers(f: AccountFacts) -> list[str]:
    return [
        f"Revenue: {f.revenue}.",
        f"Renewal: {f.renewal}.",
        f"Churn risk is {f.churn_risk}.",
        f"{f.owner} owns the account.",
        "Figures are simulated.",
    ]


def _section_risk(rng: random.Random, words: Sequence[str]) -> str:
    subject = _title(words[:2])
    rows = [
        ("Credit", rng.choice(["Low", "Medium", "High"]), rng.randint(5, 60)),
        ("Operational", rng.choice(["Low", "Medium"]), rng.randint(5, 60)),
        ("Regulatory", rng.choice(["Low", "Medium", "High"]), rng.randint(5, 60)),
        ("Concentration", rng.choice(["Medium", "High"]), rng.randint(5, 60)),
    ]
    table = "\n".join(f"| {a} | {b} | {c}% |" for a, b, c in rows)
    return (
        f"## Risk assessment: {subject}\n\n"
        "The assessment weighs likelihood against impact for each category and flags what "
        "needs an owner this quarter.\n\n"
        "| Category | Rating | Likelihood |\n|---|---|---:|\n"
        f"{table}\n\n"
        "### Mitigations\n\n"
        "- Assign an owner and a review date to every *High* rating.\n"
        "- Add an early-warning metric where the likelihood exceeds 40%.\n"
        "- Re-run the assessment after any change in terms or counterparties.\n\n"
        "```python\n"
        "def risk_score(likelihood: float, impact: float) -> float:\n"
        "    return round(likelihood * impact, 2)\n"
        "```\n\n"
    )


def _section_latency(rng: random.Random, words: Sequence[str]) -> str:
    p50 = rng.randint(180, 600)
    return (
        "## Measuring latency honestly\n\n"
        "Report **time to first token** (TTFT) and **inter-token latency** separately: the "
        "first tells how long a reader waits, the second how fast the answer flows.\n\n"
        "| Percentile | TTFT (ms) | Inter-token (ms) |\n|---|---:|---:|\n"
        f"| p50 | {p50} | {rng.randint(15, 40)} |\n"
        f"| p90 | {int(p50 * 1.6)} | {rng.randint(40, 70)} |\n"
        f"| p99 | {int(p50 * 2.9)} | {rng.randint(70, 160)} |\n\n"
        "- Measure from the *scheduled* send time, or queueing hides in the client.\n"
        "- Warm up first, and report the concurrency every figure was taken at.\n"
        "- Give confidence intervals: tail percentiles move a lot between runs.\n\n"
        "```python\n"
        "import numpy as np\n"
        "p50, p99 = np.percentile(ttft_ms, [50, 99])\n"
        "```\n\n"
    )


def _section_data(rng: random.Random, words: Sequence[str]) -> str:
    subject = _title(words[:3])
    values = [rng.randint(100, 999) for _ in range(4)]
    return (
        f"## Analysis: {subject}\n\n"
        f"Across the {rng.randint(3, 12)} segments examined, the top quartile accounts for "
        f"{rng.randint(40, 75)}% of the total, and the trend over the period is "
        f"{rng.choice(['upward', 'flat', 'seasonal', 'downward'])}.\n\n"
        "| Segment | Count | Share |\n|---|---:|---:|\n"
        + "".join(
            f"| {name} | {value} | {value * 100 // sum(values)}% |\n"
            for name, value in zip(("North", "South", "East", "West"), values, strict=True)
        )
        + "\n### Observations\n\n"
        "1. The distribution is skewed; report medians beside means.\n"
        "2. Two segments drive most of the variance.\n"
        "3. Missing values cluster in one source and should be imputed with care.\n\n"
        "```python\n"
        "df.groupby('segment')['value'].describe()\n"
        "```\n\n"
    )


def _section_report(rng: random.Random, words: Sequence[str]) -> str:
    subject = _title(words[:3])
    return (
        f"# Report: {subject}\n\n"
        "## Executive summary\n\n"
        f"The work reviewed {rng.randint(3, 9)} areas. Most are on track; "
        f"{rng.randint(1, 3)} need attention before the next review.\n\n"
        "## Findings\n\n"
        "- **Strengths**: steady delivery, clear ownership, good documentation.\n"
        "- **Gaps**: monitoring coverage, and decisions that live only in chat threads.\n\n"
        "| Area | Status | Owner |\n|---|---|---|\n"
        "| Delivery | On track | Team A |\n| Quality | Watch | Team B |\n"
        "| Operations | At risk | Team C |\n\n"
        "## Next steps\n\n"
        "1. Close the monitoring gaps.\n2. Write down the open decisions.\n"
        "3. Review again in four weeks.\n\n"
    )


def _section_code(rng: random.Random, words: Sequence[str]) -> str:
    name = "_".join(w.lower() for w in words[:2]) or "solve"
    name = re.sub(r"\W", "_", name)
    return (
        f"## A function for {_title(words[:3])}\n\n"
        "Keep the function pure, type it, and test its edge cases:\n\n"
        "```python\n"
        f"def {name}(items: list[int]) -> int:\n"
        '    """Return the sum of the positive items."""\n'
        "    return sum(item for item in items if item > 0)\n\n\n"
        f"assert {name}([1, -2, 3]) == 4\n"
        "```\n\n"
        "| Input | Output |\n|---|---:|\n| `[]` | 0 |\n| `[1, -2, 3]` | 4 |\n\n"
        "- Empty input returns zero rather than raising.\n"
        "- Negative items are ignored, by design.\n\n"
    )


def _section_general(rng: random.Random, words: Sequence[str]) -> str:
    subject = _title(words)
    aspects = [w.lower() for w in words] or ["scope", "cost", "time"]
    return (
        f"## {subject}\n\n"
        f"Here is a structured overview of **{subject.lower()}**, with the main points first "
        "and details after.\n\n"
        "### Key points\n\n"
        + "".join(f"- **{aspect.capitalize()}**: {rng.choice(_REMARKS)}\n" for aspect in aspects)
        + "\n| Aspect | Importance | Notes |\n|---|:---:|---|\n"
        + "".join(
            f"| {aspect.capitalize()} | {'★' * rng.randint(1, 5)} | {rng.choice(_NOTES)} |\n"
            for aspect in aspects
        )
        + "\n```python\n"
        f"topics = {json.dumps(aspects)}\n"
        "for topic in topics:\n    print(topic)\n"
        "```\n\n"
    )


_REMARKS = [
    "matters most when requirements change late.",
    "is easy to measure and worth tracking weekly.",
    "depends on the constraints you start from.",
    "is where most projects underestimate the effort.",
    "benefits from a short written decision record.",
]
_NOTES = ["start here", "revisit later", "measure first", "cheap to change", "hard to undo"]
_SECTIONS = {
    "risk": _section_risk,
    "latency": _section_latency,
    "data": _section_data,
    "report": _section_report,
    "code": _section_code,
    "general": _section_general,
}
_FOLLOW_UPS = [
    "### Further notes\n\nThe figures above come from a simulator and illustrate the format, "
    "not facts about the world.\n\n",
    "### Open questions\n\n- Which of these matters most to you?\n- What constraints apply?\n\n",
    "### In short\n\nStart with the highest-impact item, measure, then iterate.\n\n",
]
#: A report's follow-ups: no questions back to the reader.
_ACCOUNT_FOLLOW_UPS = [_FOLLOW_UPS[0], _FOLLOW_UPS[2]]


# -- composing an answer of a given length that ends at a natural boundary ---------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z*`$\d])")
_LIST_ITEM = re.compile(r"(?:[-*]|\d+\.) ")


def _units(markdown: str) -> list[tuple[str, str]]:
    """Split ``markdown`` into the pieces an answer may end after, as ``(separator, text)``.

    A piece is a sentence, a list item, a code block, or a table row (the first row comes with
    the header, so a cut table is still a whole table with fewer rows). Headings, and
    paragraphs that end with a colon, lead into the next piece and stay with it: an answer
    never ends on one. ``separator`` is the whitespace before the piece in the full text
    (a paragraph break, a line break, or a space between sentences).
    """
    blocks: list[list[str]] = []
    lines: list[str] = []
    fenced = False
    for line in markdown.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and not line.strip():
            if lines:
                blocks.append(lines)
                lines = []
            continue
        lines.append(line)
    if lines:
        blocks.append(lines)
    units: list[tuple[str, str]] = []
    lead = ""
    for block in blocks:
        first = block[0]
        if first.startswith("```"):
            pieces = ["\n".join(block)]
            joints = [""]
        elif first.startswith("|"):
            pieces = ["\n".join(block[:3]), *block[3:]]
            joints = ["", *["\n"] * (len(pieces) - 1)]
        elif _LIST_ITEM.match(first):
            pieces = block
            joints = ["", *["\n"] * (len(pieces) - 1)]
        else:
            text = " ".join(block)
            if first.startswith("#") or text.endswith(":"):
                lead = f"{lead}\n\n{text}" if lead else text
                continue
            pieces = _SENTENCE_END.split(text)
            joints = ["", *[" "] * (len(pieces) - 1)]
        for i, (joint, piece) in enumerate(zip(joints, pieces, strict=True)):
            if i == 0:
                units.append(("\n\n", f"{lead}\n\n{piece}" if lead else piece))
                lead = ""
            else:
                units.append((joint, piece))
    return units


def _fill(closers: Sequence[str], gap: int) -> list[str] | None:
    """The fewest closing sentences (each at most once, kept in their given order) of exactly
    ``gap`` tokens together, or ``None`` if no combination adds up."""
    best: dict[int, list[int]] = {0: []}
    for index, sentence in enumerate(closers):
        size = len(tokenize(" " + sentence))
        for total in sorted(best, reverse=True):  # each sentence once: larger totals first
            chosen = best[total]
            grown = total + size
            if grown <= gap and (grown not in best or len(best[grown]) > len(chosen) + 1):
                best[grown] = [*chosen, index]
    found = best.get(gap)
    return None if found is None else [closers[i] for i in found]


def _fit(
    units: Sequence[tuple[str, str]],
    closers: Sequence[str],
    tokens: int,
    later_blocks: bool = False,
) -> str:
    """Pieces of ``units``, in order, and a closing paragraph of ``closers``: exactly
    ``tokens`` tokens in all.

    A piece that does not fit is left out with the rest of its block (the remaining rows of a
    table, sentences of a paragraph, items of a list), and a later block that fits is taken
    instead; then closing sentences make up the difference (dropping the last piece taken
    until they can). If nothing adds up even so (the closers are too short for what is left
    when the first block goes), ``later_blocks`` starts again from the next block; without it
    the answer is the first tokens of the text.
    """
    sizes = [len(tokenize(joint + text)) for joint, text in units]
    chosen: list[int] = []
    total = 0
    skipping = False
    for index, (joint, _) in enumerate(units):
        if joint == "\n\n":
            skipping = False  # a new block
        elif skipping:
            continue
        if total + sizes[index] <= tokens:
            chosen.append(index)
            total += sizes[index]
        else:
            skipping = True
    while True:
        gap = tokens - total
        ending = [] if gap == 0 else _fill(closers, gap)
        if ending is not None:
            break
        if not chosen:
            later = [i for i, (joint, _) in enumerate(units) if i and joint == "\n\n"]
            if later_blocks and later:
                return _fit(units[later[0] :], closers, tokens, later_blocks)
            # Nothing closes at exactly this length (one token): the first tokens it is.
            text = "".join(joint + text for joint, text in units).lstrip()
            return "".join(tokenize(text)[: max(1, tokens)])
        total -= sizes[chosen.pop()]
    parts = [units[i][0] + units[i][1] for i in chosen]
    if ending:
        parts.append(("\n\n" if parts else "") + " ".join(ending))
    # Token counts add up piece by piece: each piece starts with whitespace (which joins the
    # token after it) and ends with a non-space character.
    return "".join(parts).lstrip()


def answer_text(
    prompt: str,
    rng: random.Random,
    tokens: int,
    seed: int = 0,
    messages: Sequence[Mapping[str, Any]] = (),
) -> str:
    """A markdown answer on the prompt's topic of exactly ``tokens`` tokens (at least 1),
    ending at a natural boundary: the end of a sentence, a list item, a table row or a code
    block. (A caller that must stop earlier, at ``max_tokens``, cuts the tokens itself.)

    A prompt that names an account (:func:`~glm_live.wire.accounts.find_account`), or asks
    about accounts in general, is answered from that account's facts under ``seed``: the
    same figures as every other text about it.

    ``messages`` is the conversation (OpenAI format). A follow-up (an earlier user message
    before the last one) opens with a sentence that shows the history arrived: the previous
    question's first words, quoted, and the turn number (:func:`_opening`); a follow-up that
    asks about the conversation itself (:func:`asks_about_history`) then lists the earlier
    questions. With one user message (or none) the answer is what it always was.
    """
    questions = user_questions(messages)
    if len(questions) < 2:
        return _answer_body(prompt, rng, tokens, seed)
    answers = sum(1 for m in messages if m.get("role") == "assistant")
    full = _opening(questions, answers)
    short = _short_opening(questions)
    lead = _history_list(questions) if asks_about_history(questions[-1]) else ""
    # The opening one token longer ("this is now turn 2") keeps it whole when the budget is
    # one token more than the opening: no closing sentence is a single token.
    for opening in (full, _opening(questions, answers, now=True), short):
        rest = tokens - len(tokenize(opening))
        if rest == 0:
            return opening
        if rest >= 2:  # (one token left could end nowhere natural)
            return opening + "\n\n" + _answer_body(prompt, rng, rest, seed, lead)
    # A tiny budget: the opening's first tokens (the short one's, while they reach).
    cut = short if tokens < len(tokenize(short)) else full
    return "".join(tokenize(cut)[: max(1, tokens)])


def user_questions(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The text of each user message of a conversation, in order."""
    return [content_text(m.get("content")) for m in messages if m.get("role") == "user"]


_HISTORY_QUESTION = re.compile(
    r"\bwhat (?:did|have|was it) i (?:just )?(?:ask|asked|say|said|want)"
    r"|\b(?:my|the) (?:first|earlier|previous|last|other|original) (?:question|message|prompt)s?\b"
    r"|\b(?:my|the) questions\b"
    r"|\b(?:summar(?:ise|ize)|recap)\b.{0,20}\b(?:conversation|chat|discussion)"
    r"|\b(?:conversation|chat) so far\b",
    re.IGNORECASE,
)


def asks_about_history(question: str) -> bool:
    """Whether a question is about the conversation itself ("what did I ask first?", "what
    was my first question", "summarize our conversation")."""
    return _HISTORY_QUESTION.search(question) is not None


def _plain(text: str) -> str:
    """``text`` on one line, without quotes or markdown marks (it is quoted inside a sentence)."""
    text = re.sub(r"```.*?(?:```|$)", " ", text, flags=re.DOTALL)
    text = re.sub(r"^\s*(?:>|#+)\s", " ", text, flags=re.MULTILINE)
    text = re.sub(r"[\"“”«»`*]", " ", text)
    return " ".join(text.split())


def _quote(text: str, words: int = 8, ellipsis: str = "…") -> str:
    """The first ``words`` words of ``text``, plain, with an ellipsis if cut."""
    found = _plain(text).split()
    if not found:
        return ellipsis
    if len(found) <= words:
        return " ".join(found)
    return " ".join(found[:words]).rstrip(",;:-–—") + ellipsis


def _opening(questions: Sequence[str], answers: int, now: bool = False) -> str:
    """The sentence a follow-up opens with: the previous question, quoted, and the turn (the
    first question instead, when the follow-up asks about the conversation)."""
    turn = f"{'now ' if now else ''}turn {len(questions)}"
    if asks_about_history(questions[-1]):
        return (
            f"This is {turn} of our conversation, and your first question was "
            f'"{_quote(questions[0])}".'
        )
    earlier = "earlier" if len(questions) == 2 else "previous"
    seen = (
        ""
        if answers == 0
        else ", building on my earlier answer"
        if answers == 1
        else f", building on my {answers} earlier answers"
    )
    return (
        f'Following up on your {earlier} question, "{_quote(questions[-2])}", this is '
        f"{turn} of our conversation{seen}."
    )


def _short_opening(questions: Sequence[str]) -> str:
    if asks_about_history(questions[-1]):
        return f'Turn {len(questions)}; you first asked "{_quote(questions[0], 4)}".'
    return f'Turn {len(questions)}, following up on "{_quote(questions[-2], 4)}".'


def _history_list(questions: Sequence[str]) -> str:
    """The user's earlier questions, numbered (a list the answer starts with)."""
    earlier = questions[:-1]
    intro = (
        "You asked one question before this one:"
        if len(earlier) == 1
        else f"You asked {len(earlier)} questions before this one, in order:"
    )
    quoted = [_quote(q, 24, "...") for q in earlier]  # each item ends like a sentence
    items = "".join(
        f"{i}. {q if q.endswith(('.', '!', '?')) else q + '.'}\n" for i, q in enumerate(quoted, 1)
    )
    return f"{intro}\n\n{items}\n"


def _answer_body(
    prompt: str, rng: random.Random, tokens: int, seed: int, lead: str | None = None
) -> str:
    """The answer proper (:func:`answer_text` without an opening). A follow-up's body
    (``lead`` given: markdown to start with, maybe ``""``) may start from a later block when
    its first cannot end at exactly ``tokens``; a single-turn answer stays as it always was."""
    words = _keywords(prompt)
    topic = _topic(prompt)
    account = find_account(prompt)
    sections: list[Callable[[], str]]
    account_facts: AccountFacts | None = None
    if topic not in ("latency", "code") and (account is not None or topic == "account"):
        account_facts = facts(account or "Your account", seed)
        sections = [partial(s, account_facts) for s in _account_sections(prompt)]
        closers = _account_closers(account_facts)
    else:
        sections = [partial(_SECTIONS[topic], rng, words)]
        closers = []
    general = list(_CLOSERS)
    rng.shuffle(general)
    closers += general
    units = _units((lead or "") + sections[0]())
    count = sum(len(tokenize(joint + text)) for joint, text in units)
    extra = 1
    # Some pieces may be left out to end on a boundary: compose a little more than needed.
    while count < tokens + 40:
        if extra < len(sections):
            more = sections[extra]()
            extra += 1
        elif account_facts is not None:
            more = rng.choice(_ACCOUNT_FOLLOW_UPS)  # an account's sections are not said twice
        elif rng.random() < 0.5:
            more = rng.choice(_FOLLOW_UPS)
        else:
            more = sections[0]()
        added = _units(more)
        units += added
        count += sum(len(tokenize(joint + text)) for joint, text in added)
    return _fit(units, closers, tokens, later_blocks=True)


_CLOSERS = [
    "Thanks.",
    "Start small.",
    "Happy to go deeper.",
    "That is the picture today.",
    "Hope this helps.",
    "Happy to expand.",
    "Measure before you change.",
    "Ask if anything is unclear.",
    "The figures are illustrative.",
    "Those are the main points.",
    "Revisit this in a month.",
    "Next, pick one item and start.",
]


def reasoning_text(
    prompt: str, rng: random.Random, tokens: int, messages: Sequence[Mapping[str, Any]] = ()
) -> str:
    """A short plan of the answer, as reasoning content, of exactly ``tokens`` tokens, ending
    at the end of a sentence (as :func:`answer_text` does). In a follow-up (``messages`` has
    an earlier user message) the plan starts from the previous question."""
    words = _keywords(prompt) or ["the", "question"]
    subject = " ".join(words).lower()
    questions = user_questions(messages)
    if len(questions) < 2:
        first = f"The user asks about {subject}."
    elif asks_about_history(questions[-1]):
        first = f"The user asks about our conversation: {len(questions) - 1} earlier questions."
    else:
        first = f'The user follows up on "{_quote(questions[-2])}" and now asks about {subject}.'

    steps = [
        first,
        " I should lead with a summary, then give the details in a list and a table.",
        " A short code example will make it concrete.",
        " Numbers should be labelled as illustrative.",
        f" Let me check the key terms: {', '.join(words)}.",
        " Then close with next steps.",
    ]
    text = "".join(steps)
    while len(tokenize(text)) < tokens + 40:
        text += rng.choice(steps[1:])
    return _fit(_units(text), _REASONING_CLOSERS, tokens)


_REASONING_CLOSERS = [
    "OK.",
    "Good.",
    "Right.",
    "That works.",
    "Keep it short.",
    "Now the answer.",
    "Lead with the point.",
    "Let me write it.",
    "The plan is clear.",
    "Check the numbers twice.",
    "A table will help the reader here.",
]


def tool_arguments(schema: Mapping[str, Any], prompt: str, rng: random.Random) -> dict[str, Any]:
    """Plausible arguments for a JSON-schema ``object`` of parameters, from the prompt."""
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(properties, Mapping):
        return {}
    words = _keywords(prompt, limit=8)
    capitalised = [w for w in re.findall(r"\b[A-Z][a-z]+\b", prompt)]
    args: dict[str, Any] = {}
    for name, spec in properties.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = spec.get("type", "string")
        if spec.get("enum"):
            args[name] = spec["enum"][0]
        elif kind in ("integer", "number"):
            args[name] = rng.randint(1, 100)
        elif kind == "boolean":
            args[name] = True
        elif kind == "array":
            args[name] = words[:2]
        elif kind == "object":
            args[name] = {}
        elif name.lower() in ("city", "location", "place", "country") and capitalised:
            args[name] = capitalised[-1]
        else:
            args[name] = " ".join(words[:3]) or prompt[:40]
    return args
