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

The page's buttons send ``{"type": "send", "text"}``, ``stop``, ``regenerate``,
``{"type": "edit", "index", "text"}``, ``clear`` and ``resync``; what they cannot do (sending
while an answer streams, say) is shown in the view's ``notice``, never raised into the
kernel's comm handler.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import traitlets

from .._env import display_once, in_kernel
from ..conversation import Conversation, Message
from ._base import LiveWidget, esm, static
from ._coalescer import coalescer

# The session and its chat handles are typed Any here: glm_live.notebook.session imports
# the widgets, and the floors allow no cycle between sibling modules.
Session = Any
ChatHandle = Any

__all__ = ["ChatView", "message_row"]

logger = logging.getLogger("glm_live.widgets")


def _modules() -> list[str]:
    """The JS modules, markdown-it first when it is vendored (``static/vendor``)."""
    vendored = ["vendor/markdown-it.js"] if static("vendor/markdown-it.js").exists() else []
    return [*vendored, "markdown.js", "chat_view.js"]


class ChatView(LiveWidget):
    """A chat: the conversation's messages, the answer streaming in, an input box.

    Args:
        conversation: What to show and continue (a new, empty one by default).
        session: The session to chat through; ``None`` makes a display-only view (a
            replay, a saved conversation).
        title: The header's title (the conversation's title by default).
        **params: Passed to every chat: ``model``, ``thinking``, ``temperature``,
            ``sim={...}``, ``tools=[fn, ...]``...
    """

    _esm = esm(*_modules())
    _css = static("widgets.css")

    title = traitlets.Unicode("").tag(sync=True)
    #: The model asked for, or the one that answered last.
    model = traitlets.Unicode("").tag(sync=True)
    #: The session's URL (never its token).
    endpoint = traitlets.Unicode("").tag(sync=True)
    simulated = traitlets.Bool(False).tag(sync=True)
    #: Whether the view chats (it has a session) or only shows.
    interactive = traitlets.Bool(False).tag(sync=True)
    #: ``idle``, or ``streaming`` while an answer (or a chat's tool round) is under way.
    status = traitlets.Unicode("idle").tag(sync=True)
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
        **params: Any,
    ) -> None:
        if conversation is None:
            prices = session.prices if session is not None else None
            conversation = Conversation(prices=prices)
        asked = str(params.get("model") or (session.client.model if session else ""))
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
        self.params = dict(params)
        #: The chat being followed (the last one started here), if any.
        self.handle: ChatHandle | None = None
        self._lock = threading.Lock()  # the live text and its seq go together
        self._live: Message | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._count = 0
        self._first: float | None = None
        conversation.add_listener(self._changed)
        self.on_msg(self._message)
        self._boundary()

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
        hub = coalescer()
        traits = {
            "messages": rows(self.conversation),
            "totals": self.conversation.totals(),
            "status": self._status(),
            **self._full(),
            **extra,
        }
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
        running = self.handle is not None and self.handle.status == "running"
        return "streaming" if running or self.conversation.answering is not None else "idle"

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
        if self._status() == "streaming":
            raise RuntimeError("an answer is still streaming: stop it first")
        return self.conversation

    def _chat(self, text: str | None) -> ChatHandle:
        self._ready()
        assert self.session is not None
        handle = self.session.chat(
            text, conversation=self.conversation, display=False, **self.params
        )
        return self.follow(handle)

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
