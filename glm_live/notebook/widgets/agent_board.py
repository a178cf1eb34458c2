"""``AgentBoard``: one card per agent of a run, the run's shared state and its final report.

Each card shows a one-line plain-text summary of the agent's last message
(:func:`plain_summary` strips the markdown; CSS ellipsizes it; the full text is the tooltip).
Ended agents and ended runs show their elapsed time as ``finished - started`` and the page's
clock stops for them. When an ended run still lists an agent as pending or running (an older
runtime that did not close it), the card shows the run's end state instead, with the time
frozen at the moment the board learned of the end.

A run that asks a person (``waiting``) shows its questions under the cards, each with
controls to answer in place, made from the question's ``responseSchema`` in JS: Approve /
Reject (and a note box) for a boolean ``approved``; a small form of the top-level properties
otherwise; a text box without a schema. The browser sends the answer as a custom message
(``model.send``; a board made without ``on_answer``, a replay's, shows the questions with no
controls)::

    {"type": "answer", "id": <interrupt id>, "status": "resolved", "payload": <answer>}
    {"type": "answer", "id": <interrupt id>, "status": "cancelled"}   # Reject

and :meth:`AgentBoard._message` calls ``on_answer(id, payload, reject)`` (the session wires it
to :meth:`~glm_live.notebook.session.RunHandle.resume`). The question then shows
``answered: ...`` with its controls disabled until the continuation arrives; a refused answer
(it does not fit the schema, the run is not waiting) shows the refusal and the controls again.

The run's tool calls show as one line each under the cards, ``⚙ name(args) → result``
(``→ …`` until the result comes; a frontend tool that raised shows its error).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Collection
from typing import Any

import traitlets

from ...protocols.agui import Interrupt, RunState, ToolCallState, tool_line
from ._base import LiveWidget, esm, static

__all__ = ["AgentBoard", "plain_summary", "rounded"]

logger = logging.getLogger("glm_live.widgets")

#: ``on_answer(interrupt_id, payload, reject)``: what answering on the board calls.
AnswerCallback = Callable[[str, Any, bool], None]

_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]+\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+|$)")
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


def ask_row(q: Interrupt, answered: str = "", refused: str = "", tries: int = 0) -> dict[str, Any]:
    """A question as the page's question form (``static/asks.js``) takes it."""
    return {
        "id": q.id,
        "reason": q.reason,
        "message": q.message,
        "agent": q.agent or "",
        "schema": q.response_schema,
        "expires_at": q.expires_at or "",
        "answered": answered,
        "refused": refused,
        "tries": tries,
    }


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

    _esm = esm("vendor/markdown-it.js", "markdown.js", "asks.js", "agent_board.js")
    _css = static("widgets.css")

    title = traitlets.Unicode("").tag(sync=True)
    #: pending, running, finished, cancelled, error, interrupted or waiting.
    status = traitlets.Unicode("pending").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    agents: traitlets.List[Any] = traitlets.List().tag(sync=True)
    state = traitlets.Unicode("{}").tag(sync=True)  # JSON, shown as it is
    #: The finished run's result, as markdown (empty until the run has finished).
    report = traitlets.Unicode("").tag(sync=True)
    #: The questions of a waiting run: ``id``, ``reason``, ``message``, ``agent``, ``schema``
    #: (the response schema, or ``None``), ``expires_at``, ``answered`` (the answer given
    #: here, as text; ``""`` until then), ``refused`` (why an answer was not taken) and
    #: ``tries`` (answers sent: a refusal repeated still redraws the controls).
    interrupts: traitlets.List[Any] = traitlets.List().tag(sync=True)
    #: The run's tool calls: ``id``, ``line`` (``name(args) → result``) and ``status``
    #: (``running`` until the result, then ``done``, or ``error`` when the tool raised).
    tools: traitlets.List[Any] = traitlets.List().tag(sync=True)
    #: Whether questions get controls to answer them: only a board with ``on_answer`` (a
    #: replayed board shows its run's questions, and nothing to click).
    answerable = traitlets.Bool(True).tag(sync=True)

    def __init__(self, on_answer: AnswerCallback | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("answerable", on_answer is not None)
        super().__init__(**kwargs)
        self._on_answer = on_answer
        self._questions: list[Interrupt] = []
        self._answered: dict[str, str] = {}
        self._refused: dict[str, str] = {}
        self._tries: dict[str, int] = {}  # answers sent per question: each redraws it
        self.on_msg(self._message)

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
            interrupts=self._interrupts(run.interrupts if run.waiting else []),
            tools=[_tool_row(c) for c in run.tool_calls[-50:]],
        )

    def _interrupts(self, questions: list[Interrupt]) -> list[dict[str, Any]]:
        if [q.id for q in questions] != [q.id for q in self._questions]:
            asked = {q.id for q in questions}  # new questions: earlier marks are moot
            self._answered = {k: v for k, v in self._answered.items() if k in asked}
            self._refused = {k: v for k, v in self._refused.items() if k in asked}
            self._tries = {k: v for k, v in self._tries.items() if k in asked}
        self._questions = list(questions)
        return [
            ask_row(
                q,
                self._answered.get(q.id, ""),
                self._refused.get(q.id, ""),
                self._tries.get(q.id, 0),
            )
            for q in questions
        ]

    # -- from the browser ----------------------------------------------------------------------

    def _message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "answer":
            return
        interrupt_id = str(content.get("id", ""))
        reject = content.get("status") == "cancelled"
        payload = None if reject else content.get("payload")
        self.answer(interrupt_id, payload, reject=reject)

    def answer(self, interrupt_id: str, payload: Any = None, *, reject: bool = False) -> None:
        """Answer a question as its controls do: call ``on_answer`` and mark the question
        answered (or refused, with the reason, when ``on_answer`` raises)."""
        self._tries[interrupt_id] = self._tries.get(interrupt_id, 0) + 1
        if self._on_answer is None:
            self._refused[interrupt_id] = "this board is not connected to its run"
        else:
            try:
                self._on_answer(interrupt_id, payload, reject)
            except (RuntimeError, ValueError) as exc:
                self._refused[interrupt_id] = str(exc)
            except Exception as exc:  # the comm handler must not raise into the kernel
                logger.exception("answering %s failed", interrupt_id)
                self._refused[interrupt_id] = f"{type(exc).__name__}: {exc}"
            else:
                self._refused.pop(interrupt_id, None)
                self._answered[interrupt_id] = _answer_text(payload, reject)
        # At once, not at the next flush: the person is looking at this question. Through
        # the coalescer too, so a value it still holds from before cannot undo the mark.
        interrupts = self._interrupts(self._questions)
        self.update(interrupts=interrupts)
        self.apply_flush({"interrupts": interrupts}, None)


def _answer_text(payload: Any, reject: bool) -> str:
    """An answer as the board repeats it: ``rejected``, ``approved — note``, or the JSON."""
    if reject:
        return "rejected"
    if isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
        word = "approved" if payload["approved"] else "rejected"
        note = payload.get("note")
        return f"{word} — {note}" if note else word
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, default=str, ensure_ascii=False)[:200]


def _tool_row(call: ToolCallState) -> dict[str, Any]:
    status = "running" if call.result is None else "error" if call.error else "done"
    return {"id": call.id, "line": tool_line(call), "status": status}


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
