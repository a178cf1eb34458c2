"""What the simulator says: deterministic, readable, markdown-rich text on the prompt's topic.

Nothing here pretends to be a model. The text is assembled from templates chosen by keywords in
the prompt (an account review reads like one, a latency question gets percentiles), filled in
with the prompt's own words and numbers drawn from a generator seeded by ``(seed, prompt)``, so
the same request always gets the same answer.

:func:`tokenize` splits text into the units the simulator streams and counts: a word piece of
at most six letters, a run of up to three digits, or one other character, each carrying the
whitespace before it. Joining the tokens gives the text back exactly.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "answer_text",
    "content_text",
    "prompt_text",
    "reasoning_text",
    "seeded_rng",
    "tokenize",
    "tool_arguments",
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


_VERBS = frozenset(
    {
        "review", "analyse", "analyze", "summarise", "summarize", "write", "create", "plan",
        "compare", "assess", "evaluate", "draft", "prepare", "check", "find", "build", "run",
        "audit",
    }
)  # fmt: skip


def _company(rng: random.Random, words: Sequence[str]) -> str:
    # A capitalised word that is not just the first word of an instruction names the subject.
    capitalised = [w for w in words if w[:1].isupper() and w.lower() not in _VERBS]
    if capitalised:
        return capitalised[0]
    return rng.choice(["Northwind", "Contoso", "Globex", "Initech", "Umbrella", "Tyrell"])


def _section_account(rng: random.Random, words: Sequence[str]) -> str:
    name = _company(rng, words)
    arr = rng.randint(120, 980)
    growth = rng.uniform(-8, 24)
    nps = rng.randint(18, 71)
    tickets = rng.randint(3, 40)
    return (
        f"## Account review: {name}\n\n"
        f"**Summary.** {name} is a {'growing' if growth > 0 else 'contracting'} account with "
        f"annual recurring revenue of ${arr}k ({growth:+.1f}% year on year) and a net promoter "
        f"score of {nps}. Support load is {'light' if tickets < 15 else 'elevated'} at "
        f"{tickets} tickets this quarter.\n\n"
        "### Key metrics\n\n"
        "| Metric | This quarter | Last quarter | Trend |\n"
        "|---|---:|---:|:---:|\n"
        f"| ARR ($k) | {arr} | {round(arr / (1 + growth / 100))} | {'▲' if growth > 0 else '▼'} |\n"
        f"| Active seats | {rng.randint(40, 900)} | {rng.randint(40, 900)} | ● |\n"
        f"| NPS | {nps} | {nps + rng.randint(-9, 9)} | ● |\n"
        f"| Open tickets | {tickets} | {tickets + rng.randint(-5, 12)} | ● |\n\n"
        "### Risks\n\n"
        f"1. **Renewal timing**: the contract renews in {rng.randint(2, 11)} months; the "
        "economic buyer changed this year.\n"
        f"2. **Adoption**: {rng.randint(35, 80)}% of seats were active in the last 30 days.\n"
        "3. **Concentration**: one team drives most usage; a reorganisation would hurt.\n\n"
        "### Recommendations\n\n"
        "- Schedule an executive business review before the renewal window opens.\n"
        "- Run an enablement session for the two least active teams.\n"
        "- Track weekly active seats as the leading indicator.\n\n"
        "```sql\n"
        "SELECT date_trunc('week', seen_at) AS week, count(DISTINCT seat_id) AS active\n"
        f"FROM usage WHERE account = '{name}'\nGROUP BY 1 ORDER BY 1;\n"
        "```\n\n"
    )


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
    "account": _section_account,
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


def answer_text(prompt: str, rng: random.Random, tokens: int) -> str:
    """A markdown answer of exactly ``tokens`` tokens (at least 1) on the prompt's topic."""
    words = _keywords(prompt)
    section = _SECTIONS[_topic(prompt)]
    parts = [section(rng, words)]
    count = len(tokenize(parts[0]))
    while count < tokens:
        extra = rng.choice(_FOLLOW_UPS) if rng.random() < 0.5 else section(rng, words)
        parts.append(extra)
        count += len(tokenize(extra))
    return "".join(tokenize("".join(parts))[: max(1, tokens)])


def reasoning_text(prompt: str, rng: random.Random, tokens: int) -> str:
    """A short plan of the answer, as reasoning content, of exactly ``tokens`` tokens."""
    words = _keywords(prompt) or ["the", "question"]
    subject = " ".join(words).lower()
    steps = [
        f"The user asks about {subject}.",
        " I should lead with a summary, then give the details in a list and a table.",
        " A short code example will make it concrete.",
        " Numbers should be labelled as illustrative.",
        f" Let me check the key terms: {', '.join(words)}.",
        " Then close with next steps.",
    ]
    text = "".join(steps)
    while len(tokenize(text)) < tokens:
        text += rng.choice(steps)
    return "".join(tokenize(text)[: max(1, tokens)])


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
