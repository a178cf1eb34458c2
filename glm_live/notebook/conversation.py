"""``Conversation``: a multi-turn chat's history, with or without a view.

Messages are kept in the OpenAI format (``role``, ``content``, ``tool_calls``,
``tool_call_id``) plus what a person and a replay need and a model is never sent: each
message's id, wall-clock time, model, end status, error, the server's usage, and for an
answer the timing of its stream (when each chunk arrived), so that
:func:`glm_live.replay` can play it again as it came.

- ``session.chat(prompt, conversation=conv)`` sends ``conv``'s history with ``prompt`` and
  appends the user's message and the answer (with its usage and timing) to ``conv``;
- :meth:`Conversation.to_openai_messages` is the history as a model is sent it;
  :meth:`~Conversation.to_markdown` a readable transcript; :meth:`~Conversation.to_json`,
  :meth:`~Conversation.save` and :meth:`Conversation.load` round-trip everything;
- :meth:`~Conversation.ledger` is a DataFrame of the tokens (and cost, when prices are
  configured) of every answer, from the usage the server sent.

An answer that was stopped or cut off stays in the history with what had arrived (its
``status`` says so); one that failed before any text is kept for the record, with its
error, but is not sent to the model again.

A Conversation is safe to change from several threads (a cell, and the background loop a
chat streams on); views subscribe with :meth:`~Conversation.add_listener`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SavedFileError
from ..measure.ledger import Price, Prices, ledger_frame, prices_of, usage_row

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMAT", "ROLES", "Conversation", "ConversationFormatError", "Message"]

#: The ``format`` tag of a saved conversation (:meth:`Conversation.to_json`).
FORMAT = "glm_live.conversation/1"
#: The roles a message can have.
ROLES = ("system", "user", "assistant", "tool")
#: A message's end states (``streaming`` while its answer arrives).
STATUSES = ("done", "streaming", "cancelled", "error", "interrupted")

Listener = Callable[[str, "Message | None"], None]


class ConversationFormatError(SavedFileError):
    """A file or mapping is not a saved conversation this version can read."""


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(slots=True)
class Message:
    """One message: what the model is sent (``role``, ``content``, ``tool_calls``,
    ``tool_call_id``, ``name``), and what it is not.

    Attributes:
        reasoning: The answer's reasoning (``reasoning_content``); sent back only when the
            model needs it (an answer that called tools: GLM's interleaved thinking).
        status: ``done``; ``streaming`` while it arrives; ``cancelled`` (stopped),
            ``interrupted`` (the stream broke off) or ``error`` for an answer that ended so.
        error: Why it failed or stopped (``Type: message``), for those end states.
        usage: The server's usage for the request that produced this answer.
        timing: For an answer: ``{"ttft_s", "e2e_s", "chunks": [[t_s, content_chars,
            reasoning_chars], ...]}``: when each chunk arrived (seconds after the request was
            sent) and how much text there was then. :func:`glm_live.replay` plays it.
        at: When the message was made (seconds since the epoch).
    """

    role: str
    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    id: str = field(default_factory=_new_id)
    at: float = field(default_factory=time.time)
    model: str | None = None
    status: str = "done"
    error: str | None = None
    usage: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            msg = f"a message's role is one of {', '.join(ROLES)}; got {self.role!r}"
            raise ValueError(msg)
        if self.status not in STATUSES:
            msg = f"a message's status is one of {', '.join(STATUSES)}; got {self.status!r}"
            raise ValueError(msg)
        if not isinstance(self.content, str):
            msg = (
                f"a message's content must be text, got {type(self.content).__name__}: "
                "join multi-part content into one string"
            )
            raise TypeError(msg)

    @property
    def sendable(self) -> bool:
        """Whether the model is sent this message with the history (not an answer still
        streaming, nor one that failed before it said anything)."""
        if self.role != "assistant":
            return True
        if self.status == "streaming":
            return False
        return bool(self.content or self.tool_calls)

    def to_openai(self, reasoning: bool | None = None) -> dict[str, Any]:
        """The message as a model is sent it.

        Args:
            reasoning: Whether to include ``reasoning_content``; ``None`` (the default) keeps
                it for an answer that called tools (GLM's interleaved thinking needs it back).
        """
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name:
            message["name"] = self.name
        if self.role == "assistant":
            keep = bool(self.tool_calls) if reasoning is None else reasoning
            if keep and self.reasoning:
                message["reasoning_content"] = self.reasoning
            if self.tool_calls:
                message["tool_calls"] = [dict(c) for c in self.tool_calls]
        if self.role == "tool":
            message["tool_call_id"] = self.tool_call_id or ""
        return message

    def to_dict(self) -> dict[str, Any]:
        """Every field, for JSON (only those that are set besides role and content)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("role", "content", "id", "at", "status") or value:
                out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        """A message from :meth:`to_dict`'s mapping or an OpenAI-format message
        (``reasoning_content`` is read as ``reasoning``; ``content`` may be a list of text
        parts).

        Raises:
            ConversationFormatError: It is not a message (no known role, unknown fields).
        """
        if not isinstance(data, Mapping):
            msg = f"a message must be a mapping with a role and content; got {data!r:.80}"
            raise ConversationFormatError(msg)
        known = {f.name for f in fields(cls)}
        values = dict(data)
        if "reasoning_content" in values:
            values.setdefault("reasoning", values.pop("reasoning_content") or "")
        content = values.get("content")
        if content is None:
            values["content"] = ""
        elif isinstance(content, list):  # OpenAI content parts: the text ones
            values["content"] = "".join(
                str(p.get("text", "")) for p in content if isinstance(p, Mapping)
            )
        unknown = set(values) - known
        if unknown:
            msg = (
                f"a message has fields this version does not know: {sorted(unknown)} "
                f"(known: {sorted(known)})"
            )
            raise ConversationFormatError(msg)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise ConversationFormatError(f"not a message: {exc}") from None


class Conversation:
    """A chat's history (see the module docstring).

    Args:
        messages: Messages to start from: :class:`Message` objects, or mappings in the
            OpenAI format.
        system: A system prompt (the first message), if ``messages`` has none.
        title: What views call it (the first user message's start by default).
        prices: Per model, for :meth:`ledger`'s cost column: :class:`~glm_live.Price`
            objects or ``{"input": ..., "output": ..., "cached_input": ...}`` per million
            tokens. None are guessed.
    """

    def __init__(
        self,
        messages: Iterable[Message | Mapping[str, Any]] = (),
        *,
        system: str | None = None,
        title: str = "",
        prices: Prices | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._messages: list[Message] = [
            m if isinstance(m, Message) else Message.from_dict(m) for m in messages
        ]
        if system and not any(m.role == "system" for m in self._messages):
            self._messages.insert(0, Message("system", system))
        self._title = title
        self.prices: dict[str, Price] = prices_of(prices)
        self._listeners: list[Listener] = []
        #: Bumped on every change: a view compares it to know what it has shown.
        self.version = 0

    # -- reading -------------------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """The messages, oldest first (a copy of the list; the messages themselves)."""
        with self._lock:
            return list(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __getitem__(self, index: int) -> Message:
        return self._messages[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Conversation):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def title(self) -> str:
        """The title given, or the first user message's first 60 characters."""
        if self._title:
            return self._title
        first = next((m for m in self._messages if m.role == "user"), None)
        if first is None:
            return "conversation"
        line = " ".join(first.content.split())
        return line if len(line) <= 60 else line[:59] + "…"

    @title.setter
    def title(self, value: str) -> None:
        self._title = value

    @property
    def system(self) -> str | None:
        """The system prompt (the first message's content, when it is a system message)."""
        first = self._messages[0] if self._messages else None
        return first.content if first is not None and first.role == "system" else None

    @system.setter
    def system(self, value: str | None) -> None:
        with self._lock:
            has = bool(self._messages) and self._messages[0].role == "system"
            if value is None:
                if has:
                    self._messages.pop(0)
            elif has:
                self._messages[0].content = value
            else:
                self._messages.insert(0, Message("system", value))
        self._changed("reset", None)

    @property
    def answering(self) -> Message | None:
        """The answer still streaming, if there is one."""
        with self._lock:
            last = self._messages[-1] if self._messages else None
        return last if last is not None and last.status == "streaming" else None

    def to_openai_messages(self, reasoning: bool | None = None) -> list[dict[str, Any]]:
        """The history as a model is sent it: every message but an answer still streaming or
        one that failed before saying anything (see :meth:`Message.to_openai`)."""
        with self._lock:
            return [m.to_openai(reasoning) for m in self._messages if m.sendable]

    def __repr__(self) -> str:
        with self._lock:
            counts: dict[str, int] = {}
            for m in self._messages:
                counts[m.role] = counts.get(m.role, 0) + 1
        parts = ", ".join(f"{n} {role}" for role, n in counts.items()) or "empty"
        return f"<glm_live.Conversation {self.title!r}: {parts}>"

    # -- changing ------------------------------------------------------------------------------

    def append(self, message: Message | Mapping[str, Any]) -> Message:
        """Add a message at the end (a :class:`Message` or an OpenAI-format mapping)."""
        if not isinstance(message, Message):
            message = Message.from_dict(message)
        with self._lock:
            self._messages.append(message)
        self._changed("added", message)
        return message

    def add(self, role: str, content: str = "", **fields: Any) -> Message:
        """Add a message made of ``role``, ``content`` and any other :class:`Message` field."""
        return self.append(Message(role, content, **fields))

    def update(self, message: Message, **changes: Any) -> Message:
        """Change fields of one of its messages (views are told)."""
        with self._lock:
            if not any(m is message for m in self._messages):
                msg = "that message is not in this conversation (it was cleared or truncated)"
                raise ValueError(msg)
            for name, value in changes.items():
                if not hasattr(message, name):
                    msg = f"a Message has no field {name!r}"
                    raise AttributeError(msg)
                setattr(message, name, value)
        self._changed("updated", message)
        return message

    def truncate(self, index: int) -> list[Message]:
        """Remove the messages from ``index`` on (a negative index counts from the end);
        returns them. For editing a message or regenerating an answer.

        Raises:
            RuntimeError: An answer is still streaming (stop it first).
        """
        with self._lock:
            self._refuse_while_answering("truncate it")
            removed = self._messages[index:]
            del self._messages[index:]
        self._changed("reset", None)
        return removed

    def clear(self, keep_system: bool = True) -> None:
        """Remove every message (but the system prompt, unless ``keep_system=False``).

        Raises:
            RuntimeError: An answer is still streaming (stop it first).
        """
        with self._lock:
            self._refuse_while_answering("clear it")
            keep = keep_system and self.system is not None
            self._messages = self._messages[:1] if keep else []
        self._changed("reset", None)

    def _refuse_while_answering(self, what: str) -> None:
        if self._messages and self._messages[-1].status == "streaming":
            msg = (
                f"an answer is still streaming into this conversation: stop it (its handle's "
                f".cancel(), or the view's Stop) before you {what}"
            )
            raise RuntimeError(msg)

    def last_user_index(self) -> int | None:
        """The index of the last user message, or ``None``."""
        with self._lock:
            for i in range(len(self._messages) - 1, -1, -1):
                if self._messages[i].role == "user":
                    return i
        return None

    # -- listeners -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(kind, message)`` after every change: ``added``, ``updated`` (that
        message), ``reset`` (``None``: truncated, cleared, the system prompt changed)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self, kind: str, message: Message | None) -> None:
        with self._lock:
            self.version += 1
        for listener in list(self._listeners):
            listener(kind, message)

    # -- the ledger ----------------------------------------------------------------------------

    def ledger(self, prices: Prices | None = None) -> pd.DataFrame:
        """One row per answer (indexed by message id): its model and status, the prompt,
        completion, reasoning and cached tokens the server reported, and the cost at
        ``prices`` (or the conversation's :attr:`prices`), ``NaN`` where no price is
        configured or no usage came. ``.sum()`` gives the conversation's totals."""
        table = prices_of(prices) if prices is not None else self.prices
        rows = [
            {"message": m.id, "turn": turn, "status": m.status, **usage_row(m.usage, m.model)}
            for turn, m in self._answers()
        ]
        frame = ledger_frame(rows, table, ("message", "turn", "status"), index="message")
        frame["turn"] = frame["turn"].astype("Int64")
        return frame

    def totals(self, prices: Prices | None = None) -> dict[str, Any]:
        """The ledger's sums: tokens of each kind, ``cost`` (``None`` unless every answer
        with usage has a price) and ``answers``."""
        frame = self.ledger(prices)
        out: dict[str, Any] = {"answers": len(frame)}
        for column in (
            "prompt_tokens",
            "completion_tokens",
            "reasoning_tokens",
            "cached_tokens",
            "total_tokens",
        ):
            out[column] = int(frame[column].sum()) if len(frame) else 0
        priced = frame[frame["prompt_tokens"].notna()]
        known = bool(len(priced)) and bool(priced["cost"].notna().all())
        out["cost"] = float(priced["cost"].sum()) if known else None
        currencies = set(priced["currency"].dropna()) if known else set()
        out["currency"] = currencies.pop() if len(currencies) == 1 else None
        return out

    def _answers(self) -> list[tuple[int, Message]]:
        with self._lock:
            out, turn = [], 0
            for m in self._messages:
                if m.role == "user":
                    turn += 1
                elif m.role == "assistant":
                    out.append((turn, m))
            return out

    # -- export --------------------------------------------------------------------------------

    def to_markdown(self) -> str:
        """A transcript: a heading per message (the role, and the model and status of an
        answer), reasoning as a quote, tool calls and results as code."""
        lines = [f"# {self.title}", ""]
        with self._lock:
            messages = list(self._messages)
        for m in messages:
            head = {"system": "System", "user": "User", "assistant": "Assistant"}.get(
                m.role, f"Tool result{f' ({m.name})' if m.name else ''}"
            )
            notes = [n for n in (m.model, None if m.status == "done" else m.status) if n]
            lines.append(f"## {head}" + (f" ({', '.join(notes)})" if notes else ""))
            lines.append("")
            if m.reasoning:
                lines += ["> " + line if line else ">" for line in m.reasoning.splitlines()]
                lines.append("")
            if m.role == "tool":
                lines += [_fence(m.content), ""]
            elif m.content:
                lines += [m.content, ""]
            for call in m.tool_calls:
                function = call.get("function") or {}
                lines.append(f"Tool call `{function.get('name', '?')}`:")
                lines += ["", _fence(function.get("arguments", ""), "json"), ""]
            if m.error:
                lines += [f"*{m.error}*", ""]
        return "\n".join(lines).rstrip() + "\n"

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain data: ``format``, ``title``, ``prices``, ``messages``."""
        with self._lock:
            messages = [m.to_dict() for m in self._messages]
        return {
            "format": FORMAT,
            "title": self._title,
            "prices": {
                model: {
                    "input": p.input,
                    "output": p.output,
                    "cached_input": p.cached_input,
                    "currency": p.currency,
                }
                for model, p in self.prices.items()
            },
            "messages": messages,
        }

    def to_json(self, indent: int | None = 1) -> str:
        """:meth:`to_dict` as JSON; :meth:`from_json` reads it back, equal."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` (UTF-8); returns the path."""
        target = Path(path)
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        """A conversation from :meth:`to_dict`'s mapping.

        Raises:
            ConversationFormatError: It is not a saved conversation (a run's event log, a
                newer format, a damaged file).
        """
        kind = data.get("format") if isinstance(data, Mapping) else None
        if kind != FORMAT:
            found = f"format {kind!r}" if kind else "no format tag"
            msg = (
                f"not a saved glm_live conversation ({found}; expected {FORMAT!r}): "
                "Conversation.load reads what Conversation.save wrote; a run's event log is "
                "played with glm_live.replay"
            )
            raise ConversationFormatError(msg)
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise ConversationFormatError("a saved conversation's 'messages' must be a list")
        return cls(
            [Message.from_dict(m) for m in messages],
            title=str(data.get("title") or ""),
            prices=data.get("prices") or None,
        )

    @classmethod
    def from_json(cls, text: str) -> Conversation:
        """A conversation from :meth:`to_json`'s text.

        Raises:
            ConversationFormatError: The text is not JSON, or not a saved conversation.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"a saved conversation must be JSON; this is not ({exc})"
            raise ConversationFormatError(msg) from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> Conversation:
        """Read a conversation :meth:`save` wrote.

        Raises:
            FileNotFoundError: No such file.
            ConversationFormatError: The file is not a saved conversation.
        """
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _fence(text: str, language: str = "") -> str:
    """``text`` in a code fence longer than any backtick run inside it."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text}\n{ticks}"
