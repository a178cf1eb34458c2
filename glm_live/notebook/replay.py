"""``glm_live.replay()``: play a saved conversation or run again, as it came, with no server.

- A :class:`~glm_live.Conversation` (or a file :meth:`~glm_live.Conversation.save` wrote)
  plays into a display-only ``ChatView`` of a new conversation: each message is added at its
  original time (``Message.at``), and each answer streams chunk by chunk at the times its
  ``timing`` recorded, then gets its final fields. At the end the new conversation equals the
  original.
- A :class:`~glm_live.notebook.runlog.RunLog` (or a file ``run.save`` wrote) plays into an
  :class:`~glm_live.widgets.AgentBoard`: its AG-UI events fold into a fresh
  :class:`~glm_live.RunState` at the times they arrived, and the run ends as it ended. The
  board shows the run's questions but cannot answer them: nothing is connected to it.

Timing: each wait is the original one divided by ``speed`` (``speed=None``: no waits, as fast
as possible), and no wait is longer than ``max_pause`` seconds (a person who thought for ten
minutes between two turns is not worth waiting ten minutes for; ``max_pause=None``: no cap).
A step is never played earlier than its (scaled, capped) time. The agents' clocks on the
board show the original times, whatever the speed.

Nothing here opens a connection: no session, no runtime, no network.
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..protocols.agui import RunState, parse_event
from ._env import display_once, in_kernel
from .aio import Handle, background_loop
from .conversation import FORMAT as CONVERSATION_FORMAT
from .conversation import Conversation, ConversationFormatError, Message
from .runlog import FORMAT as RUNLOG_FORMAT
from .runlog import ReplayFormatError, RunLog, read_saved, wrong_format

__all__ = ["ReplayHandle", "Step", "plan", "replay"]

#: What a replay plays.
Replayable = Conversation | RunLog

#: Events after which an agent's clock may have started or stopped (times set to the
#: original ones, see :meth:`ReplayHandle._fix_clocks`).
_CLOCK_EVENTS = frozenset(
    {
        "RUN_STARTED",
        "RUN_FINISHED",
        "RUN_ERROR",
        "SUBAGENT_STARTED",
        "SUBAGENT_FINISHED",
        "SUBAGENT_ERROR",
    }
)


@dataclass(frozen=True)
class Step:
    """One thing a replay does, and when.

    Attributes:
        at: Seconds after the replay starts (scaled by ``speed``, gaps capped).
        recorded: Seconds after the start of the original (the first message's ``at``, or
            the run handle's start).
        kind: ``add`` (a message as it is), ``begin`` (an answer starts streaming), ``feed``
            (``content`` and ``reasoning`` arrive), ``finish`` (the answer's final fields);
            for a run ``event`` (``payload``: its wire JSON), ``result`` (a frontend tool's)
            or ``end`` (the stream stopped: ``payload`` is ``[status, error]``).
        index: The message's index in the original conversation (``-1`` for a run).
    """

    at: float
    recorded: float
    kind: str
    index: int = -1
    content: str = ""
    reasoning: str = ""
    payload: Any = None


def _check_speed(speed: float | None, max_pause: float | None) -> float | None:
    if speed is not None and (isinstance(speed, bool) or not speed > 0):
        msg = (
            f"speed is a factor above 0 (2.0: twice as fast) or None (as fast as possible); "
            f"got {speed!r}"
        )
        raise ValueError(msg)
    if max_pause is not None and not max_pause >= 0:
        msg = f"max_pause is seconds (0 or more), or None for no cap; got {max_pause!r}"
        raise ValueError(msg)
    return None if speed is None or math.isinf(speed) else float(speed)


def plan(
    source: Replayable, speed: float | None = 1.0, max_pause: float | None = 5.0
) -> list[Step]:
    """The steps replaying ``source`` takes, with their times (see the module docstring).

    Raises:
        ValueError: ``speed`` is not above 0, or ``max_pause`` is negative.
    """
    factor = _check_speed(speed, max_pause)
    recorded = (
        _conversation_steps(source) if isinstance(source, Conversation) else _run_steps(source)
    )
    out: list[Step] = []
    at, previous = 0.0, 0.0
    for step in recorded:
        gap = max(0.0, step.recorded - previous)
        previous = max(previous, step.recorded)
        if factor is not None:
            wait = gap / factor
            at += wait if max_pause is None else min(wait, max_pause)
        out.append(
            Step(
                at, step.recorded, step.kind, step.index, step.content, step.reasoning, step.payload
            )
        )
    return out


def _conversation_steps(conversation: Conversation) -> list[Step]:
    messages = conversation.messages
    if not messages:
        return []
    origin = messages[0].at
    steps: list[Step] = []
    for index, message in enumerate(messages):
        start = max(0.0, message.at - origin)
        timing = message.timing if message.role == "assistant" else None
        if not isinstance(timing, Mapping):
            steps.append(Step(0.0, start, "add", index))
            continue
        steps.append(Step(0.0, start, "begin", index))
        content = reasoning = 0
        last = 0.0
        for row in timing.get("chunks") or []:
            t, text, thought = float(row[0]), int(row[1]), int(row[2])
            last = max(last, t)
            steps.append(
                Step(
                    0.0,
                    start + t,
                    "feed",
                    index,
                    message.content[content:text],
                    message.reasoning[reasoning:thought],
                )
            )
            content, reasoning = max(content, text), max(reasoning, thought)
        end = timing.get("e2e_s")
        end = last if not isinstance(end, int | float) else max(float(end), last)
        steps.append(Step(0.0, start + end, "finish", index))
    return steps


def _run_steps(log: RunLog) -> list[Step]:
    rows: list[tuple[float, int, Step]] = []
    for t, event in log.events:
        rows.append((t, 0, Step(0.0, t, "event", payload=event)))
    for t, *result in log.results:
        rows.append((t, 1, Step(0.0, t, "result", payload=result)))
    for t, *end in log.ends:
        rows.append((t, 2, Step(0.0, t, "end", payload=end)))
    rows.sort(key=lambda row: (row[0], row[1]))  # stable: the events in the order they came
    return [step for _, _, step in rows]


class ReplayHandle(Handle[Any, Any]):
    """A replay on the background loop: ``status``, ``wait()``, ``await``, ``cancel()``.

    Its items are the replayed conversation's messages as each is complete, or the run's
    AG-UI events; its result the new :attr:`conversation`, or the run's :attr:`state`.
    :attr:`view` is the ChatView or AgentBoard it plays into. A cancelled replay stops where
    it is (an answer it was streaming ends ``cancelled`` with the text played so far; a run
    ends ``cancelled``).

    As a cell's last expression it shows its view, unless this cell showed it already.
    """

    noun = "replay"

    def __init__(
        self, source: Replayable, *, speed: float | None = 1.0, max_pause: float | None = 5.0
    ) -> None:
        super().__init__(background_loop())
        self.source = source
        #: The steps, with the replay time of each (see :func:`plan`).
        self.steps = plan(source, speed, max_pause)
        self.speed, self.max_pause = _check_speed(speed, max_pause), max_pause
        #: The background loop's clock (``time.monotonic()``) when the first step's wait
        #: began: step ``s`` is played at ``origin + s.at`` or later.
        self.origin: float | None = None
        self.conversation: Conversation | None = None
        self.state: RunState | None = None
        self.view: Any
        self._answer: Message | None = None
        self._fed = ["", ""]
        if isinstance(source, Conversation):
            from .widgets import ChatView

            self.conversation = Conversation(title=source._title, prices=source.prices)
            self.view = ChatView(self.conversation)
        else:
            from .widgets import AgentBoard

            self.state = RunState(client_tools=frozenset(source.tools))
            self.view = AgentBoard(title=source.name)
            self.view.show(self.state)

    def _begin(self, display: bool | None) -> ReplayHandle:
        if in_kernel() if display is None else display:
            if in_kernel():
                display_once(self.view)
            else:
                from IPython.display import display as show

                show(self.view)  # type: ignore[no-untyped-call]
        self._start()
        return self

    async def _produce(self) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        self.origin = origin = loop.time()
        try:
            for n, step in enumerate(self.steps):
                if self.speed is None:
                    if n % 64 == 63:
                        await asyncio.sleep(0)  # let a cancel in
                else:
                    # asyncio may wake a timer up to its clock's resolution early: never
                    # play a step before its time.
                    while (delay := origin + step.at - loop.time()) > 0:  # noqa: ASYNC110
                        await asyncio.sleep(delay)
                item = self._play(step)
                if item is not None:
                    yield item
        except asyncio.CancelledError:
            self._stop_here()
            raise

    def _play(self, step: Step) -> Any:
        if self.state is not None:
            return self._play_run(step)
        conversation, source = self.conversation, self.source
        assert conversation is not None
        assert isinstance(source, Conversation)
        original = source[step.index]
        if step.kind == "add":
            return conversation.append(copy.deepcopy(original))
        if step.kind == "begin":
            self._fed = ["", ""]
            self._answer = conversation.add(
                "assistant",
                status="streaming",
                model=original.model,
                id=original.id,
                at=original.at,
            )
            return None
        if step.kind == "feed":
            self._fed[0] += step.content
            self._fed[1] += step.reasoning
            self.view.feed(content=step.content, reasoning=step.reasoning, tokens=1)
            return None
        answer, self._answer = self._answer, None
        assert answer is not None
        final = {f.name: copy.deepcopy(getattr(original, f.name)) for f in fields(Message)}
        del final["role"]
        return conversation.update(answer, **final)

    def _play_run(self, step: Step) -> Any:
        state, source = self.state, self.source
        assert state is not None
        assert isinstance(source, RunLog)
        item = None
        kind = step.payload.get("type") if step.kind == "event" else step.kind
        clocked = kind == "end" or kind in _CLOCK_EVENTS
        before = {n: (a.started_at, a.finished_at) for n, a in state.agents.items()}
        if step.kind == "event":
            item = parse_event(step.payload)
            state.apply(item)
        elif step.kind == "result":
            call_id, content, error = step.payload
            if str(call_id) in {c.id for c in state.tool_calls}:
                state.tool_result(str(call_id), str(content), error=bool(error))
        else:
            status, error = step.payload
            state.end(str(status), error)
        if clocked:
            self._fix_clocks(before, source.at + step.recorded)
        self.view.show(state)
        return item

    def _fix_clocks(self, before: Mapping[str, tuple[Any, Any]], wall: float) -> None:
        """The agents' clocks as the original run's: a start or end the last step made is
        dated at the step's original time, not now."""
        assert self.state is not None
        for name, agent in self.state.agents.items():
            started, finished = before.get(name, (None, None))
            if agent.started_at is not None and agent.started_at != started:
                agent.started_at = wall
            if agent.finished_at is not None and agent.finished_at != finished:
                agent.finished_at = wall

    def _stop_here(self) -> None:
        """Cancelled: end what was playing (the view then stops showing it as live)."""
        if self.state is not None:
            self.state.end("cancelled", "the replay was cancelled")
            self.view.show(self.state)
            return
        answer, self._answer = self._answer, None
        if answer is not None and self.conversation is not None:
            self.conversation.update(
                answer,
                content=self._fed[0],
                reasoning=self._fed[1],
                status="cancelled",
                error="the replay was cancelled",
            )

    def _result(self) -> Any:
        return self.conversation if self.conversation is not None else self.state

    def _partial(self) -> Any:
        return self._result()

    def __repr__(self) -> str:
        source = self.source
        what = f"run {source.name!r}" if isinstance(source, RunLog) else "conversation"
        speed = "as fast as possible" if self.speed is None else f"speed {self.speed:g}"
        return f"<ReplayHandle of a {what} ({speed}), {self.status}, {len(self.steps)} steps>"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if not in_kernel():
            display({"text/plain": repr(self)}, raw=True)  # type: ignore[no-untyped-call]
            return
        display_once(self.view)


def replay(
    source: str | Path | Conversation | RunLog,
    *,
    speed: float | None = 1.0,
    max_pause: float | None = 5.0,
    display: bool | None = None,
) -> ReplayHandle:
    """Play a conversation or a run again into its widget, with its original timing.

    Args:
        source: A :class:`~glm_live.Conversation`, a :class:`~glm_live.RunLog`, or the path
            of a file either was saved to (told apart by its ``format`` tag).
        speed: How much faster than the original (``2.0``: twice as fast); ``None`` (or
            ``float("inf")``): as fast as possible.
        max_pause: The longest wait, in seconds of the replay: a longer silence in the
            original (between two turns, a long think) is cut to this; ``None``: none cut.
        display: Show the view (by default only inside a Jupyter kernel).

    Returns:
        A :class:`ReplayHandle` (already playing): ``.view``, ``.conversation`` or
        ``.state``; ``await`` it or ``.wait()`` for the end, ``.cancel()`` to stop.

    Raises:
        FileNotFoundError: ``source`` is a path and there is no such file.
        ReplayFormatError: The file is not JSON, not a saved conversation or run log, or
            one that is damaged or from a newer glm_live.
        ValueError: ``speed`` is not above 0, or ``max_pause`` is negative.
    """
    if isinstance(source, str | Path):
        source = load(source)
    elif not isinstance(source, Conversation | RunLog):
        msg = (
            f"replay plays a Conversation, a RunLog (run.log()) or the path of a saved one; "
            f"got {type(source).__name__}"
        )
        raise TypeError(msg)
    return ReplayHandle(source, speed=speed, max_pause=max_pause)._begin(display)


def load(path: str | Path) -> Conversation | RunLog:
    """The conversation or run log saved at ``path`` (see :func:`replay`'s errors)."""
    data = read_saved(path)
    kind = data.get("format") if isinstance(data, dict) else None
    if kind == RUNLOG_FORMAT:
        return RunLog.from_dict(data)
    if kind == CONVERSATION_FORMAT:
        try:
            return Conversation.from_dict(data)
        except ConversationFormatError as exc:
            msg = f"a damaged saved conversation ({exc}): save it again with conversation.save"
            raise ReplayFormatError(msg) from None
    what = "a saved conversation or run log"
    raise ReplayFormatError(wrong_format(kind, (CONVERSATION_FORMAT, RUNLOG_FORMAT), what))
