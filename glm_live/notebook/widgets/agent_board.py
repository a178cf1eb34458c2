"""``AgentBoard``: one card per agent of a run, the run's shared state and its final report.

Each card shows a one-line plain-text summary of the agent's last message
(:func:`plain_summary` strips the markdown; CSS ellipsizes it; the full text is the tooltip).
Ended agents and ended runs show their elapsed time as ``finished - started`` and the page's
clock stops for them. When an ended run still lists an agent as pending or running (an older
runtime that did not close it), the card shows the run's end state instead, with the time
frozen at the moment the board learned of the end.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection
from typing import Any

import traitlets

from ...protocols.agui import RunState
from ._base import LiveWidget, esm, static

__all__ = ["AgentBoard", "plain_summary", "rounded"]

_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]+\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_QUOTE = re.compile(r"^\s*>\s?")
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])([*_])(?=[^\s*_])(.+?)(?<=[^\s*_])\1(?![\w*])")
_STRAY = re.compile(r"(?<! )\*+|\*+(?! )|__|~~|`+")
_SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=1024)  # show() runs per event; most cards have not changed
def plain_summary(markdown: str, limit: int = 2000) -> str:
    """``markdown`` as one line of plain text, for a card's summary and its tooltip.

    Headings, emphasis, inline code, links, images, list and quote marks, rules, code fences
    and table pipes go; a heading is followed by `` — ``; whitespace collapses to single
    spaces. Markup cut in half by streaming (a lone ``**``) goes too. At most ``limit``
    characters, ending in ``…`` when cut.
    """
    parts: list[str] = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if not line.strip() or _FENCE.match(line) or _RULE.match(line):
            continue
        if "|" in line and _TABLE_RULE.match(line) and "-" in line:
            continue
        heading = bool(_HEADING.match(line))
        line = _HEADING.sub("", line)
        line = _QUOTE.sub("", line)
        line = _LIST_MARK.sub("", line)
        if line.lstrip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            line = ", ".join(c for c in cells if c) + ";"
        line = _IMAGE.sub(r"\1", line)
        line = _LINK.sub(r"\1", line)
        line = _STRONG.sub(r"\2", line)
        line = _EMPHASIS.sub(r"\2", line)
        line = _STRAY.sub("", line)
        line = _SPACE.sub(" ", line).strip()
        if not line:
            continue
        if heading and not line.endswith((".", ":", "!", "?")):
            line += " —"
        parts.append(line)
    text = " ".join(parts).strip()
    text = text.removesuffix(" —")
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def rounded(value: Any) -> Any:
    """``value`` with every float rounded for display: 1 decimal from 10 up, else 3."""
    if isinstance(value, float):
        return round(value, 1) if abs(value) >= 10 else round(value, 3)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def report_markdown(result: Any, agents: Collection[str] = ()) -> str:
    """A run's final result as markdown: a string as it is; a workflow's results by agent
    (keys all among ``agents``, in the order they finished) as the text of the last one,
    when it returned text (the agent that finished last, after the ones it depends on,
    wrote the report); anything else as a JSON block."""
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    if (
        isinstance(result, dict)
        and result
        and set(result) <= set(agents)
        and isinstance(last := [*result.values()][-1], str)
    ):
        return last
    text = json.dumps(rounded(result), indent=1, default=str, ensure_ascii=False)
    return f"```json\n{text[:50_000]}\n```"


class AgentBoard(LiveWidget):
    """Cards for a run's agents: status, progress, current step, elapsed time, last message;
    the run's final report under them once it has finished.

    All agents travel in one ``agents`` list, so 64 parallel agents are one coalesced update
    stream (at most 20 messages a second), not one per agent.
    """

    _esm = esm("markdown.js", "agent_board.js")
    _css = static("widgets.css")

    title = traitlets.Unicode("").tag(sync=True)
    #: pending, running, finished, cancelled, error or interrupted.
    status = traitlets.Unicode("pending").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    agents: traitlets.List[Any] = traitlets.List().tag(sync=True)
    state = traitlets.Unicode("{}").tag(sync=True)  # JSON, shown as it is
    #: The finished run's result, as markdown (empty until the run has finished).
    report = traitlets.Unicode("").tag(sync=True)

    def show(self, run: RunState) -> None:
        """Bring the board up to ``run`` at the next flush."""
        # An agent's message is the tail of its text while it streams: summarize the whole
        # text (its beginning) when the run's messages have it.
        texts = {m.get("name"): m.get("content") for m in run.messages if m.get("name")}
        self.update(
            status=run.status,
            error=run.error or "",
            agents=[_card(a, texts.get(a.name)) for a in run.agents.values()],
            state=json.dumps(rounded(run.state), indent=1, default=str)[:20_000],
            report=report_markdown(run.result, run.agents) if run.status == "finished" else "",
        )


def _card(agent: Any, full: str | None = None) -> dict[str, Any]:
    # A run that ends ends its open agents too (RunState.end), so an ended agent has its
    # finished_at: its time is fixed here, and only a running agent's clock counts (in JS).
    status = agent.status
    started, finished = agent.started_at, agent.finished_at
    elapsed = None
    if started is not None and finished is not None:
        elapsed = round(max(0.0, finished - started), 1)
    text = agent.error or agent.message
    if not agent.error and full and agent.message and full.endswith(agent.message):
        text = full
    text = text[:4000]  # the summary is of the beginning
    return {
        "name": agent.name,
        "status": status,
        "progress": round(agent.progress, 3),
        "step": agent.step or "",
        "summary": plain_summary(text, limit=240),
        "message": plain_summary(text),
        "error": agent.error or "",
        "started": started,
        "finished": finished,
        "elapsed": elapsed,
    }
