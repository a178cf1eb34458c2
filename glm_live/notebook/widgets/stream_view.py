"""``StreamView``: an answer streaming in, rendered as markdown, with its reasoning, tool calls,
token count, tokens/s, a Stop button, and an end state that keeps the partial text.

The end states, each with its own look (``static/widgets.css``, light and dark themes):

- ``done``: the answer is complete;
- ``cancelled``: stopped on purpose (the Stop button, ``handle.cancel()``);
- ``error``: failed, labelled "failed", the error in a box;
- ``interrupted``: the stream broke off (a dropped connection, an inference failure mid-answer)
  and was not resumed.

In every end state the page renders the full text once more as final markdown: a table or
code block the stream left open is closed, never left half drawn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import traitlets

from ._base import LiveWidget, esm, static
from ._coalescer import coalescer

__all__ = ["END_STATES", "StreamView"]

#: The statuses :meth:`StreamView.finish` accepts.
END_STATES = ("done", "cancelled", "error", "interrupted")
_ALIASES = {"finished": "done", "failed": "error", "canceled": "cancelled"}


class StreamView(LiveWidget):
    """Streamed text, appended as deltas; the full text lands in ``text`` at the end.

    Feed it with :meth:`feed` (or :meth:`feed_chunk`), end it with :meth:`finish`.
    """

    _esm = esm("vendor/markdown-it.js", "markdown.js", "stream_view.js")
    _css = static("widgets.css")

    title = traitlets.Unicode("").tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)
    #: waiting, streaming, then an end state: done, cancelled, error or interrupted.
    status = traitlets.Unicode("waiting").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)  # why it failed (status error)
    detail = traitlets.Unicode("").tag(sync=True)  # a note on another end (why it stopped)
    text = traitlets.Unicode("").tag(sync=True)  # the full text as of text_seq
    reasoning = traitlets.Unicode("").tag(sync=True)
    text_seq = traitlets.Int(0).tag(sync=True)
    tool_calls: traitlets.List[Any] = traitlets.List().tag(sync=True)
    tokens = traitlets.Int(0).tag(sync=True)
    tokens_per_s = traitlets.Float(0.0).tag(sync=True)
    simulated = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self, title: str = "", on_stop: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(title=title, **kwargs)
        self._on_stop = on_stop
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._count = 0
        self._first: float | None = None
        self._lock = threading.Lock()  # a full-text snapshot and its seq go together
        self.on_msg(self._message)

    # -- feeding (any thread) -------------------------------------------------------------------

    def feed(self, content: str = "", reasoning: str = "", tokens: int = 1) -> None:
        """Append ``content`` and ``reasoning``, counting ``tokens`` tokens."""
        now = time.monotonic()
        if self._first is None:
            self._first = now
        self._count += tokens
        elapsed = now - self._first
        rate = (self._count - 1) / elapsed if elapsed > 0 and self._count > 1 else 0.0
        hub = coalescer()
        with self._lock:
            if content:
                self._text.append(content)
            if reasoning:
                self._reasoning.append(reasoning)
            hub.append(self, text=content, reasoning=reasoning)
        hub.set(self, tokens=self._count, tokens_per_s=round(rate, 1), status="streaming")

    def feed_chunk(self, chunk: Any, completion: Any = None) -> None:
        """Feed a :class:`~glm_live.Chunk` (and the completion's tool calls so far)."""
        counted = 1 if (chunk.content or chunk.reasoning) else 0
        self.feed(chunk.content, chunk.reasoning, tokens=counted)
        if chunk.tool_calls and completion is not None:
            calls = [{"name": c.name, "arguments": c.arguments} for c in completion.tool_calls]
            coalescer().set(self, tool_calls=calls)
        model = getattr(completion, "model", None)
        if model and model != self.model:
            coalescer().set(self, model=model, simulated=model.endswith("-sim"))

    def finish(
        self,
        status: str = "done",
        detail: BaseException | str | None = None,
        usage_tokens: int | None = None,
        *,
        error: BaseException | str | None = None,
    ) -> None:
        """End the stream: the full text goes to ``text`` (for reloads and static export).

        Args:
            status: ``done``, ``cancelled``, ``error`` or ``interrupted``.
            detail: Why it ended: for ``error`` the error (an exception is shown as
                ``Type: message``), for the others a note shown beside the status.
            usage_tokens: The server's token count, which replaces the count of chunks.
            error: The same as ``detail`` (the name this argument had before).

        Raises:
            ValueError: For a status that is not an end state.

        .. versionchanged:: 0.2 ``interrupted``; ``detail`` (was ``error``) is a note unless
           the status is ``error``.
        """
        status = _ALIASES.get(status, status)
        if status not in END_STATES:
            msg = f"unknown end status {status!r}: use one of {', '.join(END_STATES)}"
            raise ValueError(msg)
        why = detail if detail is not None else error
        hub = coalescer()
        hub.flush(self)  # pending traits (token counts) go out first
        traits: dict[str, Any] = {"status": status, **self._full()}
        if why is not None:
            text = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
            traits["error" if status == "error" else "detail"] = text[:2000]
        if usage_tokens is not None:
            traits["tokens"] = usage_tokens
        self.apply_flush(traits, None)
        hub.forget(self)

    @property
    def full_text(self) -> str:
        """Everything fed so far."""
        return "".join(self._text)

    # -- from the browser ----------------------------------------------------------------------

    def _message(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "stop" and self._on_stop is not None:
            self._on_stop()
        elif kind == "resync":
            self.apply_flush(self._full(), None)

    def _full(self) -> dict[str, Any]:
        with self._lock:
            seq = coalescer().settle(self)
            return {
                "text": "".join(self._text),
                "reasoning": "".join(self._reasoning),
                "text_seq": seq,
            }
