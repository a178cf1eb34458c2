"""Reading a chat-completions request: JSON in, a checked :class:`ChatRequest` or a GLM-style
400 out (:class:`BadRequest`, whose message names the field and says what was expected)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import ConfigError, SimConfig

__all__ = ["KNOWN_MODELS", "BadRequest", "ChatRequest", "error_body", "parse_chat_request"]

#: Models the simulator answers for; it answers as ``<model>-sim``.
KNOWN_MODELS = frozenset(
    {"glm-4.6", "glm-4.5", "glm-4.5-air", "glm-4.5-flash", "glm-4.5-x", "glm-4.7", "glm-5"}
)
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


class BadRequest(Exception):
    """A request the server refuses, with the GLM business code and HTTP status to answer."""

    def __init__(self, message: str, code: str = "1214", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def body(self) -> bytes:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> bytes:
    """``{"error": {"code": ..., "message": ...}}`` as GLM sends it (the code a string)."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


@dataclass(frozen=True)
class ChatRequest:
    """A checked request. ``body`` is the JSON object as received (``sim`` removed)."""

    body: dict[str, Any]
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    thinking: bool
    tools: list[dict[str, Any]]
    tool_choice: Any
    tool_stream: bool
    max_tokens: int | None
    sim: SimConfig


def _model_name(model: str) -> str:
    return model[: -len("-sim")] if model.endswith("-sim") else model


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`BadRequest` saying why not."""
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object with model and messages")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        msg = f"the request body is not valid JSON ({exc}); send a JSON object"
        raise BadRequest(msg) from None
    if not isinstance(body, dict):
        msg = f"the request body must be a JSON object, got {type(body).__name__}"
        raise BadRequest(msg)
    return body


def parse_chat_request(body: dict[str, Any], defaults: SimConfig) -> ChatRequest:
    """Check a chat-completions body field by field; :class:`BadRequest` names the first fault."""
    body = dict(body)
    sim_overrides = body.pop("sim", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: a string such as 'glm-4.6'")
    if _model_name(model) not in KNOWN_MODELS:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise BadRequest(
            f"model {model!r} does not exist on this simulator; use one of {known}", code="1211"
        )
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("messages is required: a non-empty list of {role, content} objects")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list of {role, content} objects")
    for i, message in enumerate(messages):
        _check_message(i, message)
    stream = _optional(body, "stream", bool, "true or false") or False
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise BadRequest(f"{name} must be a number, got {value!r}")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise BadRequest(f"max_tokens must be a whole number >= 1, got {max_tokens!r}")
    stop = body.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise BadRequest(f"stop must be a string or a list of strings, got {stop!r}")
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise BadRequest("tools must be a list of {type: 'function', function: {...}} objects")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise BadRequest(f"tools[{i}] must be {{type: 'function', function: {{name, ...}}}}")
    tool_stream = _optional(body, "tool_stream", bool, "true or false") or False
    thinking = body.get("thinking")
    enabled = False
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, Mapping) else None
        if kind not in ("enabled", "disabled"):
            raise BadRequest(
                f'thinking must be {{"type": "enabled"}} or {{"type": "disabled"}}, '
                f"got {thinking!r}"
            )
        enabled = kind == "enabled"
    try:
        sim = defaults if sim_overrides is None else defaults.with_overrides(sim_overrides)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    return ChatRequest(
        body=body,
        model=model,
        messages=messages,
        stream=stream,
        thinking=enabled,
        tools=list(tools),
        tool_choice=body.get("tool_choice"),
        tool_stream=tool_stream,
        max_tokens=max_tokens,
        sim=sim,
    )


def _optional(body: Mapping[str, Any], name: str, kind: type, expected: str) -> Any:
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        raise BadRequest(f"{name} must be {expected}, got {value!r}")
    return value


def _check_message(i: int, message: Any) -> None:
    if not isinstance(message, Mapping):
        raise BadRequest(f"messages[{i}] must be an object with role and content")
    role = message.get("role")
    if role not in _ROLES:
        raise BadRequest(f"messages[{i}].role must be one of {sorted(_ROLES)}, got {role!r}")
    content = message.get("content")
    if content is None:
        if role == "assistant" and message.get("tool_calls"):
            return
        raise BadRequest(f"messages[{i}].content is required for role {role!r}")
    if not isinstance(content, str | list):
        raise BadRequest(
            f"messages[{i}].content must be a string or a list of parts, "
            f"got {type(content).__name__}"
        )
