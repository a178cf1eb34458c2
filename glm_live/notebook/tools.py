"""Frontend tools: Python functions a run's model may call, run here in the notebook.

``session.run("account-review", tools=[show_chart])`` offers ``show_chart`` to the run
(AG-UI ``RunAgentInput.tools``). Its JSON schema comes from the function's signature and type
hints (:func:`tool_schema`), its description from the first paragraph of its docstring; wrap it
in :func:`tool` to name or describe it otherwise, or to give the schema yourself.

When the run ends with calls to them (AG-UI: a ``TOOL_CALL_*`` with no ``TOOL_CALL_RESULT``
before ``RUN_FINISHED``), the :class:`~glm_live.notebook.session.RunHandle` runs them
(:func:`call_tool`) and continues the thread with their results, on the same handle. What a
tool returns is sent as it is when it is a string, as JSON otherwise (``default=str``). A tool
that raises does not stop the run: the model gets ``{"error": "<Type>: <message>"}`` as the
result (so it can say so, or call again), and a warning is logged. A sync function runs in a
worker thread (the background loop goes on streaming meanwhile); an async one runs on the
background loop. Cancelling the run cancels an async tool; a sync one cannot be stopped and
runs to its end, its result unused.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from ..protocols.agui import RunState, ToolCallState, tool_messages

__all__ = [
    "Tool",
    "ToolsLike",
    "call_tool",
    "docstring_summary",
    "run_calls",
    "tool",
    "tool_result_text",
    "tool_schema",
    "tools_of",
    "unknown_calls",
]

logger = logging.getLogger("glm_live.tools")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Tool:
    """A frontend tool: what the run is told (name, description, JSON schema of the
    arguments) and the function that runs it.

    Attributes:
        name: The name the model calls it by (letters, digits, ``_`` and ``-``; 64 at most).
        description: What it does, for the model.
        parameters: The JSON schema (an object) of its keyword arguments.
        function: Called with the arguments as keywords; sync or async.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] = field(compare=False)

    def wire(self) -> dict[str, Any]:
        """The tool as an entry of ``RunAgentInput.tools``."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


#: What ``session.run(..., tools=...)`` takes: functions (or :class:`Tool`) in a list, or
#: by name in a mapping.
ToolsLike = Iterable[Callable[..., Any] | Tool] | Mapping[str, Callable[..., Any] | Tool]


def tool(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> Tool:
    """``function`` as a frontend tool: name, description and schema derived from it
    (:func:`tool_schema`) unless given.

    Raises:
        ValueError: The name is not one a model can call (a lambda's needs ``name=``).
        TypeError: ``function`` is not callable, or ``parameters`` is not an object schema.
    """
    if not callable(function):
        msg = f"a tool is a function, not {type(function).__name__}"
        raise TypeError(msg)
    name = name or str(getattr(function, "__name__", ""))
    if not _NAME.match(name):
        msg = (
            f"{name!r} is not a tool name a model can call (letters, digits, _ and -, at most "
            "64): give one with glm_live.tool(fn, name=...)"
        )
        raise ValueError(msg)
    if parameters is None:
        parameters = tool_schema(function)
    elif parameters.get("type", "object") != "object":
        msg = f"a tool's parameters are an object schema, not {parameters.get('type')!r}"
        raise TypeError(msg)
    if description is None:
        description = docstring_summary(function)
    return Tool(name, description, dict(parameters), function)


def tools_of(tools: ToolsLike | None) -> dict[str, Tool]:
    """The tools by name, from a list (of functions or :class:`Tool`) or a name mapping.

    Raises:
        ValueError: Two tools have the same name, or a name is not callable by a model.
    """
    if tools is None:
        return {}
    pairs: list[tuple[str | None, Callable[..., Any] | Tool]]
    if isinstance(tools, Mapping):
        pairs = [(str(k), v) for k, v in tools.items()]
    else:
        pairs = [(None, v) for v in tools]
    out: dict[str, Tool] = {}
    for key, value in pairs:
        made = value if isinstance(value, Tool) else tool(value, name=key)
        if key is not None and made.name != key:
            made = Tool(key, made.description, made.parameters, made.function)
        if made.name in out:
            msg = f"two tools are named {made.name!r}: give one another name"
            raise ValueError(msg)
        out[made.name] = made
    return out


def docstring_summary(function: Callable[..., Any]) -> str:
    """The first paragraph of the function's docstring, as one line (``""`` without one)."""
    doc = inspect.getdoc(function) or ""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())


def tool_schema(function: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema (an object) of ``function``'s keyword arguments, from its signature.

    Types: ``str`` → string, ``int`` → integer, ``float`` → number, ``bool`` → boolean,
    ``list[X]``/``tuple`` → array (of X), ``dict[str, X]`` → object, ``X | None`` → X or
    null, ``Literal[...]`` and :class:`enum.Enum` → ``enum``, other unions → ``anyOf``; no
    annotation or ``Any`` → any value. A parameter with a default is not required (its
    default is given when it is a JSON scalar). ``*args``, ``**kwargs`` and positional-only
    parameters are left out (a tool is called with keywords).
    """
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve here: read them as they are
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        annotation = hints.get(name, param.annotation)
        schema = _schema_of(annotation)
        if param.default is param.empty:
            required.append(name)
        elif param.default is None or isinstance(param.default, str | int | float | bool):
            schema = {**schema, "default": param.default}
        properties[name] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema_of(annotation: Any) -> dict[str, Any]:
    if annotation in (inspect.Parameter.empty, Any, object):
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum([m.value for m in annotation])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return _enum(list(args))
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        if len(options) == 1:
            inner = _schema_of(options[0])
            if not nullable or not inner:
                return inner
            kind = inner.get("type")
            if isinstance(kind, str):
                return {**inner, "type": [kind, "null"]}
            return {"anyOf": [inner, {"type": "null"}]}
        schemas = [_schema_of(a) for a in options] + ([{"type": "null"}] if nullable else [])
        return {} if {} in schemas else {"anyOf": schemas}
    if annotation in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset):
        items = [a for a in args if a is not Ellipsis]
        out: dict[str, Any] = {"type": "array"}
        if len(set(items)) == 1:
            item = _schema_of(items[0])
            if item:
                out["items"] = item
        return out
    if annotation is dict or origin is dict or origin is Mapping or annotation is Mapping:
        out = {"type": "object"}
        if len(args) == 2:
            value = _schema_of(args[1])
            if value:
                out["additionalProperties"] = value
        return out
    return {}  # a type JSON schema has no word for: any value, the function checks


def _enum(values: list[Any]) -> dict[str, Any]:
    kinds = {_SCALARS.get(type(v)) for v in values}
    out: dict[str, Any] = {"enum": values}
    if len(kinds) == 1 and None not in kinds:
        out = {"type": kinds.pop(), "enum": values}
    return out


def tool_result_text(value: Any) -> str:
    """A tool's return value as a tool message's content: a string as it is, else JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


async def call_tool(found: Tool, arguments: str) -> tuple[str, bool]:
    """Run ``found`` with ``arguments`` (the call's JSON text); returns the result's content
    and whether it is an error.

    A tool that raises, or arguments that are not a JSON object or do not fit the function,
    give ``{"error": "..."}`` (and a logged warning) rather than an exception: the run goes
    on, and the model learns what went wrong. A sync function runs in a worker thread.
    Cancelling cancels an async tool; a sync one runs to its end in its thread.
    """
    try:
        args = json.loads(arguments) if arguments.strip() else {}
        if not isinstance(args, dict):
            msg = f"the arguments must be a JSON object, not {type(args).__name__}"
            raise TypeError(msg)
        function = found.function
        if inspect.iscoroutinefunction(function):
            value = await function(**args)
        else:
            value = await asyncio.to_thread(function, **args)
            if inspect.isawaitable(value):  # a sync wrapper around a coroutine function
                value = await value
        return tool_result_text(value), False
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.warning(
            "the tool %s(%s) raised %s: %s", found.name, arguments, type(exc).__name__, exc
        )
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"}, ensure_ascii=False), True


def unknown_calls(tools: Mapping[str, Tool], calls: Iterable[ToolCallState]) -> str | None:
    """Why the client cannot answer ``calls`` (some name a tool it was not given), or ``None``."""
    unknown = sorted({c.name for c in calls if c.name not in tools})
    if not unknown:
        return None
    names = ", ".join(repr(n) for n in unknown)
    given = ", ".join(repr(n) for n in tools) or "none"
    return (
        f"the run called {names}, which this run was not given as a tool (tools here: {given}): "
        "pass the function in session.run(..., tools=[...])"
    )


async def run_calls(tools: Mapping[str, Tool], state: RunState) -> list[dict[str, Any]]:
    """Run the client's tool calls ``state`` waits on (:attr:`RunState.tool_requests`, all
    named in ``tools``: see :func:`unknown_calls`), at the same time; record each result in
    ``state``; return the messages the continuation adds to the thread (:func:`tool_messages`).
    """
    calls = list(state.tool_requests)

    async def one(call: ToolCallState) -> None:
        content, error = await call_tool(tools[call.name], call.arguments)
        state.tool_result(call.id, content, error=error)

    await asyncio.gather(*(one(c) for c in calls))
    return tool_messages(calls)
