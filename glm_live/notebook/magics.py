"""``%%glm`` and ``%glm``: chat from a cell, streamed into a view (``%load_ext glm_live``).

::

    %%glm -s "You answer in one paragraph."
    Explain server-sent events.

    %glm And WebSockets?

The cell's body (``%%glm``) or the rest of the line (``%glm``) is the prompt. The answer
streams into a :class:`~glm_live.widgets.StreamView` in the cell's output, and the cell's
result (``Out[n]``, ``_``) is the :class:`~glm_live.Completion` once it is done: the magic
blocks its cell until the end, as a person running a magic expects.

Decisions:

- **One conversation by default.** Turns continue across cells: the history lives in the
  user namespace as ``_glm_conversation`` (a :class:`~glm_live.Conversation`;
  :func:`current` returns it), so it can be read, saved or cleared like any variable.
  ``-c NAME`` uses (or creates) another variable instead; ``--new`` starts that conversation
  over; ``--no-history`` sends only this prompt and keeps nothing.
- **One session by default.** The extension connects on first use and reuses it:
  ``glm_live.connect(GLM_LIVE_URL)`` when that environment variable is set, else the
  embedded simulator (both without a hub connection, which a magic does not need).
  ``--session NAME`` uses a :class:`~glm_live.Session` of yours instead (its panel, prices
  and recorder).
- **Blocking, interruptible.** The kernel's Interrupt cancels the chat: the partial answer
  stays in the conversation with ``status`` ``cancelled``, and the cell ends with a one-line
  ``KeyboardInterrupt`` (an error, so that "Run all" stops there, as for any interrupt).
- **Errors in one paragraph.** A bad option is IPython's ``UsageError`` (no traceback). A
  chat that fails raises its :mod:`glm_live.errors` exception, shown as one paragraph
  without a traceback; the view shows it failed, and the conversation keeps the answer with
  ``status`` ``error``.
- A line that ends in ``?`` never reaches the magic: IPython reads it as a help request
  (``%glm And WebSockets?`` looks up ``WebSockets``). Questions go in the cell form.
- The cell's body is sent as written: no ``{var}`` expansion (prompts often hold code and
  JSON). In the line form the prompt is expanded (``{expr}``, ``$name``) as IPython expands
  a line magic's line; the options are not (``--sim '{"tokens":60}'`` stays JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from collections.abc import Callable
from typing import Any, cast

from IPython.core import magic_arguments as _arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.utils.text import DollarFormatter

from .conversation import Conversation
from .session import ChatHandle, Session, connect

__all__ = ["CONVERSATION", "GlmMagics", "current", "load_ipython_extension", "parse"]

# IPython's argparse decorators carry no annotations, which mypy --strict refuses on a typed
# method: the same objects, typed as what they do.
_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
magic_arguments = cast("Callable[..., _Decorator]", _arguments.magic_arguments)
argument = cast("Callable[..., _Decorator]", _arguments.argument)

#: The user-namespace variable that holds the default conversation.
CONVERSATION = "_glm_conversation"

#: How often the blocked cell wakes up (seconds): the kernel's interrupt lands in a wait.
_POLL_S = 0.1
#: How long a cancelled chat gets to end after an interrupt.
_CANCEL_S = 10.0


def current() -> Conversation | None:
    """The magic's default conversation (``_glm_conversation``), if a cell made one."""
    from IPython import get_ipython

    shell = get_ipython()
    found = None if shell is None else shell.user_ns.get(CONVERSATION)
    return found if isinstance(found, Conversation) else None


@magics_class
class GlmMagics(Magics):
    """The ``%%glm`` cell magic and ``%glm`` line magic (see the module docstring)."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        #: The session the extension connected (on first use), unless ``--session`` is given.
        self.session: Session | None = None

    @magic_arguments("glm")
    @argument("-m", "--model", help="the model (default: the session's, glm-4.6)")
    @argument(
        "--thinking",
        dest="thinking",
        action="store_const",
        const=True,
        default=None,
        help="ask the model to think (GLM-4.7 and later do by default)",
    )
    @argument(
        "--no-thinking", dest="thinking", action="store_const", const=False, help="no thinking"
    )
    @argument(
        "-s",
        "--system",
        help="the system prompt of a new conversation (or of the current one, if it has none)",
    )
    @argument("-t", "--temperature", type=float, help="sampling temperature")
    @argument("--max-tokens", type=int, help="the most tokens the answer may have")
    @argument("--new", action="store_true", help="start the conversation over")
    @argument(
        "-c",
        "--conversation",
        default=CONVERSATION,
        help=f"the variable holding the Conversation (made if missing; default {CONVERSATION})",
    )
    @argument("--no-history", action="store_true", help="send only this prompt, keep nothing")
    @argument("--sim", help='simulator knobs as JSON, e.g. \'{"tokens": 60, "itl_ms": 5}\'')
    @argument("--session", help="the variable holding a glm_live.Session to use")
    @argument("-q", "--quiet", action="store_true", help="no view (the result is still returned)")
    @argument(
        "prompt", nargs="*", help="the prompt, in the line form (the cell form's is its body)"
    )
    @no_var_expand  # the options' JSON must stay as written: the prompt is expanded below
    @line_cell_magic
    def glm(self, line: str, cell: str | None = None) -> Any:
        """Chat with GLM: ``%%glm [options]`` with the prompt as the cell's body, or
        ``%glm [options] prompt`` on one line. The answer streams into a view; the cell's
        result is the Completion. Turns continue across cells (``_glm_conversation``); the
        session is the embedded simulator unless GLM_LIVE_URL is set (or --session). The
        kernel's Interrupt cancels the chat; the partial answer stays in the conversation."""
        options, prompt = parse(line, cell=cell is not None)
        prompt = cell if cell is not None else self._expand(prompt)
        return self._chat(options, prompt)

    def _expand(self, text: str) -> str:
        """``{expr}`` and ``$name`` in the line form's prompt, as IPython expands a line
        magic's line (left as written when they do not evaluate)."""
        user_ns = self.shell.user_ns if self.shell is not None else {}
        try:
            return str(DollarFormatter().vformat(text, args=[], kwargs=user_ns))
        except Exception:
            return text

    def _chat(self, options: Any, prompt: str) -> Any:
        prompt = prompt.strip()
        if not prompt:
            raise UsageError("nothing to send: %%glm's cell (or %glm's line) is the prompt")
        params: dict[str, Any] = {
            key: value
            for key, value in (
                ("model", options.model),
                ("thinking", options.thinking),
                ("temperature", options.temperature),
                ("max_tokens", options.max_tokens),
                ("sim", _sim(options.sim)),
            )
            if value is not None
        }
        session = self._session(options.session)
        display = False if options.quiet else None
        if options.no_history:
            messages: Any = prompt
            if options.system:
                messages = [
                    {"role": "system", "content": options.system},
                    {"role": "user", "content": prompt},
                ]
            handle = session.chat(messages, display=display, **params)
        else:
            conversation = self._conversation(options.conversation, options.new, options.system)
            try:
                handle = session.chat(prompt, conversation=conversation, display=display, **params)
            except (RuntimeError, ValueError) as exc:  # an answer still streaming into it
                raise UsageError(str(exc)) from None
        return _finish(handle)

    def _session(self, name: str | None) -> Session:
        if name is not None:
            found = self.shell.user_ns.get(name) if self.shell is not None else None
            if not isinstance(found, Session):
                what = "nothing" if found is None else type(found).__name__
                msg = f"--session {name}: that variable holds {what}, not a glm_live.Session"
                raise UsageError(msg)
            return found
        if self.session is None:
            self.session = connect(os.environ.get("GLM_LIVE_URL") or None, hub=False)
        return self.session

    def _conversation(self, name: str, new: bool, system: str | None) -> Conversation:
        if not name.isidentifier():
            raise UsageError(f"--conversation {name!r}: not a variable name")
        user_ns = self.shell.user_ns if self.shell is not None else {}
        found = None if new else user_ns.get(name)
        if found is None:
            found = user_ns[name] = Conversation(system=system)
        elif not isinstance(found, Conversation):
            msg = (
                f"--conversation {name}: that variable holds a {type(found).__name__}, not a "
                "glm_live.Conversation (give another name, or --new to replace it)"
            )
            raise UsageError(msg)
        elif system is not None and found.system != system:
            if found.system is not None:
                msg = (
                    f"the conversation {name} has a system prompt already ({found.system!r:.60}):"
                    " add --new to start one with this system prompt"
                )
                raise UsageError(msg)
            found.system = system
        return found


def parse(line: str, cell: bool = False) -> tuple[Any, str]:
    """Split a magic's line into its options (an ``argparse.Namespace``) and the prompt.

    The options are the leading words that are options (with their values); the prompt is
    the rest of the line as written (its quotes and spacing kept), from the first other
    word, or after ``--``. With ``cell`` (``%%glm``'s line) every word is an option's.

    Raises:
        UsageError: An unknown option, a missing or bad value, unbalanced quotes, words
            that are not options on a cell's line.
    """
    parser = cast(Any, GlmMagics.glm).parser  # made by magic_arguments
    options, prompt = (line, "") if cell else _split(line, parser)
    try:
        # shlex (POSIX) as the words were found here: IPython's own splitting would cut
        # --system="be brief" at the space.
        namespace = parser.parse_args(shlex.split(options))
    except ValueError as exc:  # shlex: "No closing quotation"
        raise UsageError(f"%glm options: {exc}") from None
    if namespace.prompt and cell:
        msg = (
            f"%%glm takes only options on its line, and {' '.join(namespace.prompt)!r} is "
            "not one: the cell's body is the prompt"
        )
        raise UsageError(msg)
    return namespace, prompt


def _split(line: str, parser: Any) -> tuple[str, str]:
    """A line magic's line: its leading options, and the rest (see :func:`parse`)."""
    takes_value = {
        string: action.nargs != 0 for action in parser._actions for string in action.option_strings
    }
    expect_value = False
    for match in _WORD.finditer(line):
        word = match.group()
        if expect_value:
            expect_value = False
        elif word == "--":
            return line[: match.start()], line[match.end() :]
        elif not word.startswith("-") or _NUMBER.match(word):
            return line[: match.start()], line[match.start() :]
        else:
            # An unknown option stays with the options: argparse names it in its error.
            expect_value = takes_value.get(word.split("=", 1)[0], False) and "=" not in word
    return line, ""


# A word of a magic's line: quoted strings (with their quotes) and runs of other characters.
_WORD = re.compile(r"""(?:"(?:\\.|[^"\\])*"?|'[^']*'?|[^\s"']+)+""")
_NUMBER = re.compile(r"-\d")


def _sim(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        knobs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--sim takes a JSON object, e.g. '{{\"tokens\": 60}}': {exc}") from None
    if not isinstance(knobs, dict):
        raise UsageError(f"--sim takes a JSON object, e.g. '{{\"tokens\": 60}}'; got {text}")
    return knobs


def _finish(handle: ChatHandle) -> Any:
    """Block until the chat ends; its completion, or its error shown in one paragraph.

    The wait wakes up every :data:`_POLL_S` seconds, so the kernel's interrupt
    (``KeyboardInterrupt`` in this thread) lands here: the chat is cancelled, given
    :data:`_CANCEL_S` seconds to end (its partial answer is then in its conversation, status
    ``cancelled``), and the interrupt goes on, in one line.
    """
    try:
        while True:
            try:
                return handle.wait(timeout=_POLL_S)
            except TimeoutError:
                continue
    except KeyboardInterrupt:
        handle.cancel()
        # Cancelled is the expected end; a second interrupt or a slow end must not leave a
        # traceback in place of the one-line note.
        with contextlib.suppress(Exception, KeyboardInterrupt):
            handle.wait(timeout=_CANCEL_S)
        status = handle.status
        if status == "cancelled":
            where = "kept in the conversation" if handle.conversation is not None else "on its view"
            note = (
                f"the chat was stopped after {handle.completion.chunks} chunks and "
                f"{handle.elapsed:.1f} s; the partial answer is {where} (status cancelled)"
            )
        else:
            note = f"the chat had ended ({status}) when the interrupt came"
        raise _brief(KeyboardInterrupt(note)) from None
    except Exception as exc:
        raise _brief(exc) from None


def _brief(exc: BaseException) -> BaseException:
    """``exc`` shown by IPython as one paragraph (``Type: message``), not a traceback.

    IPython renders an exception that has ``_render_traceback_`` with it. It is set on this
    instance rather than wrapped in another class, so the error keeps its type (``except
    glm_live.ServerError`` still catches it, and the kernel reports its real name).
    """
    text = f"{type(exc).__name__}: {exc}"
    exc._render_traceback_ = lambda: [text]  # type: ignore[attr-defined]
    return exc


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext glm_live``: register ``%%glm`` and ``%glm``."""
    ipython.register_magics(GlmMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext glm_live``: remove the magics and close the session they connected."""
    magics = ipython.magics_manager.registry.pop("GlmMagics", None)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("glm", None)
    if magics is not None and magics.session is not None:
        magics.session.close()
        magics.session = None
