"""``ChatView``: a multi-turn chat in the notebook, following a
:class:`~glm_live.Conversation`.

The view shows its conversation and follows it through the conversation's listener: each
message added, updated (an answer's end) or removed (truncated, cleared) becomes the
``messages`` trait, at message boundaries only. The answer being streamed travels as text
deltas, as a :class:`~glm_live.widgets.StreamView`'s do: :meth:`ChatView.feed` appends to it
through the kernel's coalescer (``_delta = {seq, text, reasoning}``), and ``live_id`` says
which message the deltas belong to. At each boundary the live answer's full text goes out
once with its sequence number (``live_text``, ``live_reasoning``, ``live_seq``), and the
page continues from there; a page that missed a delta asks for a ``resync`` and gets the same.

That is the public contract a replay uses too: add an answer with status ``streaming`` to the
conversation, :meth:`~ChatView.feed` its text, update it with its end. Without a session the
view only shows (no input box); with one it chats:

- :meth:`~ChatView.send` a prompt (``session.chat(text, conversation=...)``, followed here);
- :meth:`~ChatView.stop` the answer, keeping what came (status ``cancelled``);
- :meth:`~ChatView.regenerate` the last answer, :meth:`~ChatView.edit` a user message and
  answer again, :meth:`~ChatView.clear`.

With ``agent="account-review"`` (and that workflow's inputs as keyword arguments, say
``approval=True``) each message starts a run of the agent workflow instead
(``session.run(agent, prompt=text, ...)``): its answer streams the text of the run's agent
that started writing last, and ends with the run's report. A run that asks a person (an
AG-UI interrupt) shows its question under the answer, with Approve / Reject (the agent
board's controls, ``.glm-ask-*``); answering resumes the run on the same handle and the
answer goes on. Each message is a run of its own: the workflow is sent the prompt, not the
history.

The page's buttons send ``{"type": "send", "text"}``, ``stop``, ``regenerate``,
``{"type": "edit", "index", "text"}``, ``clear``, ``{"type": "answer", "id", "status",
"payload"}`` (a question's answer, as on the agent board) and ``resync``; what they cannot
do (sending while an answer streams, say) is shown in the view's ``notice``, never raised
into the kernel's comm handler.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import traitlets

from ...protocols.agui import Interrupt
from .._env import display_once, in_kernel
from ..conversation import Conversation, Message
from ._base import LiveWidget, esm, static
from ._coalescer import coalescer
from .agent_board import _answer_text, ask_row, report_markdown

# The session and its handles are typed Any here: glm_live.notebook.session imports the
# widgets, and the floors allow no cycle between sibling modules.
Session = Any
ChatHandle = Any
RunHandle = Any

__all__ = ["ChatView", "message_row"]

logger = logging.getLogger("glm_live.widgets")


class ChatView(LiveWidget):
    """A chat: the conversation's messages, the answer streaming in, an input box.

    Args:
        conversation: What to show and continue (a new, empty one by default).
        session: The session to chat through; ``None`` makes a display-only view (a
            replay, a saved conversation).
        title: The header's title (the conversation's title by default).
        agent: A workflow the session's runtime serves (``"account-review"``): each message
            runs it (see the module docstring) instead of a chat.
        **params: Passed to every chat: ``model``, ``thinking``, ``temperature``,
            ``sim={...}``, ``tools=[fn, ...]``...; with ``agent``, to every run (its
            inputs, ``approval=True``, ``sim=``, ``tools=``).
    """

    _esm = esm("vendor/markdown-it.js", "markdown.js", "asks.js", "chat_view.js")
    _css = static("widgets.css")

    title = traitlets.Unicode("").tag(sync=True)
    #: The model asked for, or the one that answered last.
    model = traitlets.Unicode("").tag(sync=True)
    #: The session's URL (never its token).
    endpoint = traitlets.Unicode("").tag(sync=True)
    simulated = traitlets.Bool(False).tag(sync=True)
    #: Whether the view chats (it has a session) or only shows.
    interactive = traitlets.Bool(False).tag(sync=True)
    #: ``idle``; ``streaming`` while an answer (or a chat's tool round) is under way;
    #: ``waiting`` while an agent's run waits for a person's answer (:attr:`asks`).
    status = traitlets.Unicode("idle").tag(sync=True)
    #: The questions of a waiting run, as the agent board has them (``id``, ``reason``,
    #: ``message``, ``agent``, ``schema``, ``answered``, ``refused``), and the answer they go
    #: under (``asks_for``: its message id).
    asks: traitlets.List[Any] = traitlets.List().tag(sync=True)
    asks_for = traitlets.Unicode("").tag(sync=True)
    #: One plain dict per message shown (see :func:`message_row`).
    messages: traitlets.List[Any] = traitlets.List().tag(sync=True)
    #: The conversation's :meth:`~glm_live.Conversation.totals`.
    totals = traitlets.Dict().tag(sync=True)
    #: What the last action from the page could not do (``""``: nothing to say).
    notice = traitlets.Unicode("").tag(sync=True)
    #: The id of the answer the deltas go to (``""``: none streams).
    live_id = traitlets.Unicode("").tag(sync=True)
    live_text = traitlets.Unicode("").tag(sync=True)  # its full text as of live_seq
    live_reasoning = traitlets.Unicode("").tag(sync=True)
    live_seq = traitlets.Int(0).tag(sync=True)
    live_tokens = traitlets.Int(0).tag(sync=True)
    live_tokens_per_s = traitlets.Float(0.0).tag(sync=True)

    def __init__(
        self,
        conversation: Conversation | None = None,
        *,
        session: Session | None = None,
        title: str = "",
        agent: str | None = None,
        **params: Any,
    ) -> None:
        if agent is not None and session is None:
            raise ValueError("agent= needs a session= to run it through")
        if conversation is None:
            prices = session.prices if session is not None else None
            conversation = Conversation(prices=prices)
        asked = agent or str(params.get("model") or (session.client.model if session else ""))
        super().__init__(
            title=title,
            model=asked,
            endpoint=_public_url(session.url) if session is not None else "",
            simulated=asked.endswith("-sim")
            or (session is not None and session.runtime is not None),
            interactive=session is not None,
        )
        self.conversation = conversation
        self.session = session
        self._title = title
        self.params = dict(params)
        #: The workflow each message runs, or ``None`` (each message is a chat).
        self.agent = agent
        #: The chat (or the agent's run) being followed: the last one started here, if any.
        self.handle: ChatHandle | RunHandle | None = None
        self._questions: list[Interrupt] = []
        self._answered: dict[str, str] = {}
        self._refused: dict[str, str] = {}
        self._asks_for = ""  # the id of the answer the questions go under
        self._lock = threading.Lock()  # the live text and its seq go together
        # One boundary at a time: a cell's (or the page's) and the loop thread's must not
        # send what each read in the other's order (an answer's end, then its start).
        self._boundary_lock = threading.RLock()
        self._live: Message | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._count = 0
        self._first: float | None = None
        self._live = conversation.answering  # a view made while an answer streams
        conversation.add_listener(self._changed)
        self.on_msg(self._message)
        self._boundary()

    def close(self) -> None:
        """Stop following the conversation, and close the widget."""
        self.conversation.remove_listener(self._changed)
        super().close()

    # -- following the conversation (any thread) ------------------------------------------------

    def _changed(self, kind: str, message: Message | None) -> None:
        if kind == "added" and message is not None and message.status == "streaming":
            self._start_live(message)
        elif message is not None and message is self._live and message.status != "streaming":
            self._start_live(None)  # its text is in the messages now
        elif kind == "reset" and self._live is not None and self.conversation.answering is None:
            self._start_live(None)
        self._boundary()

    def _start_live(self, message: Message | None) -> None:
        with self._lock:
            self._live = message
            self._text, self._reasoning = [], []
            self._count, self._first = 0, None

    def _boundary(self, **extra: Any) -> None:
        """Send the messages, totals, status and the live answer's full text, at once."""
        with self._boundary_lock:
            self._send_boundary(extra)

    def _send_boundary(self, extra: dict[str, Any]) -> None:
        hub = coalescer()
        traits = {
            "messages": rows(self.conversation),
            "totals": self.conversation.totals(),
            "status": self._status(),
            **self._asks(),
            **self._full(),
            **extra,
        }
        if not self._title:  # the conversation's: its first question
            asked = self.conversation.last_user_index() is not None
            traits["title"] = self.conversation.title if asked else ""
        answered = next(
            (m.model for m in reversed(self.conversation.messages) if m.role == "assistant"),
            None,
        )
        if answered:
            traits["model"] = answered
            traits["simulated"] = self.simulated or answered.endswith("-sim")
        # Through the coalescer, so a value it still holds cannot undo this one later.
        hub.set(self, **traits)
        hub.flush(self)

    def _status(self) -> str:
        status = self.handle.status if self.handle is not None else None
        if status == "running" or self.conversation.answering is not None:
            return "streaming"
        return "waiting" if status == "waiting" and self._questions else "idle"

    def _asks(self) -> dict[str, Any]:
        rows = [
            ask_row(q, self._answered.get(q.id, ""), self._refused.get(q.id, ""))
            for q in self._questions
        ]
        return {"asks": rows, "asks_for": self._asks_for if rows else ""}

    def _full(self) -> dict[str, Any]:
        with self._lock:
            live = self._live
            return {
                "live_id": live.id if live is not None else "",
                "live_text": "".join(self._text),
                "live_reasoning": "".join(self._reasoning),
                "live_seq": coalescer().settle(self),
                "live_tokens": self._count,
            }

    # -- feeding the streaming answer (any thread) ----------------------------------------------

    def feed(self, content: str = "", reasoning: str = "", tokens: int = 1) -> None:
        """Append ``content`` and ``reasoning`` to the answer being streamed (the
        conversation's :attr:`~glm_live.Conversation.answering`), counting ``tokens``.

        Only the page sees it: the conversation gets the full text at the answer's end.
        """
        now = time.monotonic()
        hub = coalescer()
        with self._lock:
            if self._first is None:
                self._first = now
            self._count += tokens
            elapsed = now - self._first
            rate = (self._count - 1) / elapsed if elapsed > 0 and self._count > 1 else 0.0
            if content:
                self._text.append(content)
            if reasoning:
                self._reasoning.append(reasoning)
            hub.append(self, text=content, reasoning=reasoning)
            count = self._count
        hub.set(self, live_tokens=count, live_tokens_per_s=round(rate, 1))

    def follow(self, handle: ChatHandle) -> ChatHandle:
        """Feed ``handle``'s chunks into the view (those that came already first), and note
        its end; returns it. The handle must be answering this view's conversation."""
        self.handle = handle

        def item(chunk: Any) -> None:
            counted = 1 if (chunk.content or chunk.reasoning) else 0
            if counted:
                self.feed(chunk.content, chunk.reasoning, tokens=counted)

        def done(result: Any, error: BaseException | None) -> None:
            self._boundary()

        handle.follow(item, done)
        self._boundary()
        return handle

    # -- chatting (needs a session) -------------------------------------------------------------

    def send(self, text: str) -> ChatHandle:
        """Send ``text`` as the user's next message and follow the answer.

        Raises:
            RuntimeError: The view has no session, or an answer is still streaming.
            ValueError: ``text`` is empty.
        """
        if not text.strip():
            raise ValueError("nothing to send: the message is empty")
        return self._chat(text)

    def stop(self) -> None:
        """Stop the answer streaming (its text so far stays, ``cancelled``)."""
        if self.handle is not None:
            self.handle.cancel()

    def regenerate(self) -> ChatHandle:
        """Drop the last answer (and its tool calls' results) and answer the last user
        message again.

        Raises:
            RuntimeError: No session, an answer is streaming, or no user message to answer.
        """
        index = self._ready().last_user_index()
        if index is None:
            raise RuntimeError("nothing to regenerate: the conversation has no user message")
        self.conversation.truncate(index + 1)
        return self._chat(None)

    def edit(self, index: int, text: str) -> ChatHandle:
        """Replace the user message at ``index`` (of the conversation) with ``text``, drop
        everything after it, and answer again.

        Raises:
            RuntimeError: No session, or an answer is streaming.
            ValueError: No user message at ``index``, or ``text`` is empty.
        """
        conversation = self._ready()
        messages = conversation.messages
        if not 0 <= index < len(messages) or messages[index].role != "user":
            msg = f"message {index} is not a user message: only the user's messages are edited"
            raise ValueError(msg)
        if not text.strip():
            raise ValueError("the edited message is empty")
        conversation.truncate(index + 1)
        conversation.update(messages[index], content=text)
        return self._chat(None)

    def clear(self) -> None:
        """Remove every message but the system prompt.

        Raises:
            RuntimeError: An answer is streaming (stop it first).
        """
        self.conversation.clear()

    def _ready(self) -> Conversation:
        if self.session is None:
            raise RuntimeError("this view only shows a conversation: it has no session")
        status = self._status()
        if status == "streaming":
            raise RuntimeError("an answer is still streaming: stop it first")
        if status == "waiting":
            msg = "the run waits for your answer to its question: approve or reject it first"
            raise RuntimeError(msg)
        return self.conversation

    def _chat(self, text: str | None) -> ChatHandle | RunHandle:
        conversation = self._ready()
        assert self.session is not None
        if self.agent is not None:
            return self._run(text)
        handle = self.session.chat(text, conversation=conversation, display=False, **self.params)
        return self.follow(handle)

    # -- an agent's runs ------------------------------------------------------------------------

    def _run(self, text: str | None) -> RunHandle:
        """Run the agent on ``text`` (``None``: the last user message, again)."""
        conversation, session = self.conversation, self.session
        assert session is not None
        assert self.agent is not None
        if text is None:
            index = conversation.last_user_index()
            if index is None:
                raise RuntimeError("nothing to answer: the conversation has no user message")
            text = conversation[index].content
        else:
            conversation.add("user", text)
        answer = conversation.add("assistant", status="streaming", model=self.agent)
        self._questions, self._answered, self._refused = [], {}, {}
        try:
            handle = session.run(self.agent, prompt=text, display=False, **self.params)
        except Exception as exc:
            conversation.update(answer, status="error", error=f"{type(exc).__name__}: {exc}")
            raise
        self.handle = handle
        featured: list[str] = []  # the message streamed into the answer: the last started

        def item(event: Any) -> None:
            kind = getattr(event, "type", "")
            if kind == "TEXT_MESSAGE_START":
                featured[:] = [event.message_id]
                self._start_live(answer)
                self._boundary()
            elif kind == "TEXT_MESSAGE_CONTENT" and featured == [event.message_id]:
                self.feed(event.delta)

        def done(result: Any, error: BaseException | None) -> None:
            folded, status = handle.folded, handle.status
            with self._lock:
                text = "".join(self._text)
            if status == "done":
                text = report_markdown(folded.result, folded.agents) or text
            # (handle.interrupts waits for the handle's end; this runs just before it)
            self._questions = [
                q for q in folded.interrupts if status == "waiting" and q.id not in handle.answers
            ]
            self._asks_for = answer.id
            end = {"waiting": "done", "running": "done"}.get(status, status)
            why = folded.error or (None if error is None else f"{type(error).__name__}: {error}")
            conversation.update(
                answer,
                content=text,
                status=end,
                error=why if end != "done" else None,
            )
            self._boundary()

        handle.follow(item, done)
        self._boundary()
        return handle

    def answer(self, interrupt_id: str, payload: Any = None, *, reject: bool = False) -> None:
        """Answer a waiting run's question as its buttons do: resume the run, and stream its
        continuation into the same answer.

        Raises:
            RuntimeError: No run waits for an answer.
            ValueError: The question is unknown, or the answer does not fit its schema.
        """
        handle, conversation = self.handle, self.conversation
        if self.agent is None or handle is None or handle.status != "waiting":
            raise RuntimeError("no run here waits for an answer")
        if not handle.done:
            # This view hears of the wait just before the handle ends: its end is moments
            # away, and resume() needs it.
            with contextlib.suppress(Exception):
                handle.wait(10)
        others = [q for q in self._questions if q.id not in self._answered]
        continues = [q.id for q in others] == [interrupt_id]  # the last one: the run goes on
        answer = next((m for m in reversed(conversation.messages) if m.role == "assistant"), None)
        if continues and answer is not None:
            # Streaming again before the run does: its first text must land in this answer.
            self._start_live(answer)
            conversation.update(answer, status="streaming")
        try:
            handle.resume(payload, interrupt_id=interrupt_id, reject=reject)
        except (RuntimeError, ValueError) as exc:
            if continues and answer is not None:
                conversation.update(answer, status="done")
            self._refused[interrupt_id] = str(exc)
            raise
        self._refused.pop(interrupt_id, None)
        self._answered[interrupt_id] = _answer_text(payload, reject)
        if continues:
            self._questions = []
        self._boundary()

    # -- from the browser -----------------------------------------------------------------------

    def _message(self, widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "resync":
            self.apply_flush(self._full(), None)
            return
        actions: dict[str, Callable[[], Any]] = {
            "send": lambda: self.send(str(content.get("text", ""))),
            "stop": self.stop,
            "regenerate": self.regenerate,
            "edit": lambda: self.edit(int(content.get("index", -1)), str(content.get("text", ""))),
            "clear": self.clear,
            "answer": lambda: self.answer(
                str(content.get("id", "")),
                None if content.get("status") == "cancelled" else content.get("payload"),
                reject=content.get("status") == "cancelled",
            ),
        }
        action = actions.get(str(kind))
        if action is None:
            return
        try:
            action()
        except (RuntimeError, ValueError, TypeError) as exc:
            self._boundary(notice=str(exc))
        except Exception as exc:  # the comm handler must not raise into the kernel
            logger.exception("the chat view's %s failed", kind)
            self._boundary(notice=f"{type(exc).__name__}: {exc}")
        else:
            self._boundary(notice="")

    def _ipython_display_(self) -> None:
        if in_kernel():
            # Its own bundle, raw: display(self) would come back here.
            bundle = self._repr_mimebundle_()
            data, _ = bundle if isinstance(bundle, tuple) else (bundle or {}, {})
            display_once(self, data)
        else:
            from IPython.display import display

            display({"text/plain": repr(self)}, raw=True)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        return f"<glm_live ChatView {self.status}: {self.conversation!r}>"


def rows(conversation: Conversation) -> list[dict[str, Any]]:
    """The ``messages`` trait of a view of ``conversation``: tool results go with their
    calls (a result no call asked for is shown as its own message)."""
    messages = conversation.messages
    results = {m.tool_call_id: m for m in messages if m.role == "tool" and m.tool_call_id}
    asked = {c.get("id") for m in messages for c in m.tool_calls}
    return [
        message_row(index, m, results)
        for index, m in enumerate(messages)
        if m.role != "tool" or m.tool_call_id not in asked
    ]


def message_row(
    index: int, message: Message, results: dict[str, Message] | None = None
) -> dict[str, Any]:
    """One message as the page shows it: ``index`` (in the conversation), ``id``, ``role``,
    ``content``, ``reasoning``, ``tool_calls`` (``id``, ``name``, ``arguments``, ``result``:
    the tool message's content, ``None`` until it came), ``status``, ``error``, ``model``
    and ``usage`` (prompt, completion, reasoning and cached tokens, or ``None``)."""
    results = results or {}
    calls = []
    for call in message.tool_calls:
        function = call.get("function") or {}
        result = results.get(call.get("id") or "")
        calls.append(
            {
                "id": call.get("id") or "",
                "name": function.get("name") or "?",
                "arguments": function.get("arguments") or "",
                "result": None if result is None else result.content,
            }
        )
    usage = message.usage or {}
    return {
        "index": index,
        "id": message.id,
        "role": message.role,
        "name": message.name or "",
        "content": message.content,
        "reasoning": message.reasoning,
        "tool_calls": calls,
        "status": message.status,
        "error": message.error or "",
        "model": message.model or "",
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get(
                "reasoning_tokens"
            ),
            "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        }
        if message.usage
        else None,
    }


def _public_url(url: str) -> str:
    """``url`` without credentials, query or fragment (a token never reaches the page)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
