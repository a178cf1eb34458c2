"""Reading a chat-completions request: JSON in, a checked :class:`ChatRequest` or a GLM-style
400 out (:class:`BadRequest`, whose message names the field and says what was expected).

The model decides the defaults (:data:`glm_live.wire.models.CATALOG`): GLM-4.7, GLM-5 and
GLM-5.1 think unless ``thinking.type`` is ``"disabled"``; GLM-4.5 and GLM-4.6 only when asked
(today's simulator behaviour for them). A model not in the catalog is refused as GLM refuses
it: HTTP 400 with business code 1211 ("model does not exist").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..wire.models import CATALOG, ModelInfo, base_model_name
from .config import ConfigError, SimConfig

__all__ = ["KNOWN_MODELS", "BadRequest", "ChatRequest", "error_body", "parse_chat_request"]

#: Models the simulator answers for (the catalog's); it answers as ``<model>-sim``.
KNOWN_MODELS = frozenset(CATALOG)
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
    """A checked request. ``body`` is the JSON object as received (``sim`` removed).

    Attributes:
        thinking: Whether the answer reasons: ``thinking.type``, else the model's default.
        clear_thinking: ``thinking.clear_thinking`` when given (``None``: GLM's default, true).
        include_usage: Usage goes in an extra last chunk with empty ``choices`` and every
            other chunk carries ``"usage": null`` (OpenAI's ``stream_options``, honoured on
            ``/v1`` only; GLM's path keeps usage on the finishing chunk).
        request_id: The client's ``request_id``, echoed in the response.
        info: The model's catalog entry.
    """

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
    info: ModelInfo
    clear_thinking: bool | None = None
    include_usage: bool = False
    request_id: str | None = None


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


def parse_chat_request(
    body: dict[str, Any], defaults: SimConfig, *, openai: bool = False
) -> ChatRequest:
    """Check a chat-completions body field by field; :class:`BadRequest` names the first fault.

    ``openai`` says the request came on the OpenAI-style path (``/v1``), where
    ``stream_options.include_usage`` is honoured.
    """
    body = dict(body)
    sim_overrides = body.pop("sim", None)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: a string such as 'glm-4.6'")
    info = CATALOG.get(base_model_name(model))
    if info is None:
        known = ", ".join(CATALOG)
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
    enabled = info.thinks_by_default
    clear_thinking = None
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, Mapping) else None
        if kind not in ("enabled", "disabled"):
            raise BadRequest(
                f'thinking must be {{"type": "enabled"}} or {{"type": "disabled"}}, '
                f"got {thinking!r}"
            )
        assert isinstance(thinking, Mapping)
        enabled = kind == "enabled"
        clear_thinking = _optional(thinking, "clear_thinking", bool, "true or false")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, Mapping):
            raise BadRequest(
                f'stream_options must be an object like {{"include_usage": true}}, got {options!r}'
            )
        include_usage = bool(_optional(options, "include_usage", bool, "true or false"))
    request_id = _optional(body, "request_id", str, "a string")
    try:
        sim = (
            defaults
            if sim_overrides is None
            else defaults.with_overrides(sim_overrides, per_request=True)
        )
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
        info=info,
        clear_thinking=clear_thinking,
        include_usage=openai and stream and include_usage,
        request_id=request_id,
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
