"""The GLM models glm_live knows, and what each does by default: one pure table.

The GLM client reads it to fill in a request's defaults (:func:`apply_defaults`), the
simulator to answer as the model asked for, and ``GET /v1/models`` to list what the runtime
serves. A model not in the table gets nothing guessed: its requests go out as written.

Sources (checked in December 2026):

- Thinking by default: GLM-4.7, GLM-5 and GLM-5.1 think unless told
  ``thinking: {"type": "disabled"}``; GLM-4.5 and GLM-4.6 are "hybrid": the model decides
  (docs.bigmodel.cn/cn/guide/capabilities/thinking-mode: "GLM-4.7 默认开启 Thinking,这一点
  不同于 GLM-4.6 的默认'混合 thinking'"; docs.infini-ai.com's GLM page says the same of
  glm-5.1, glm-5 and glm-4.7).
- Preserved thinking (``thinking.clear_thinking: false``: reasoning of earlier assistant turns
  stays in context) came with GLM-4.7; it is off on the standard API endpoint
  (``clear_thinking`` defaults to true) and on for the Coding Plan endpoint (same page).
- Interleaved thinking (since GLM-4.5): in a tool-call loop the assistant message must carry
  its ``reasoning_content`` back, unmodified (same page).
- Context and output limits: docs.z.ai/guides/llm/glm-5.1 (200K / 128K); the chat-completion
  reference's ``max_tokens`` text (GLM-4.6 128K, GLM-4.5 96K output); GLM-4.5's context of
  128K (vercel.com/ai-gateway/models/glm-4.5).
- ``created`` is the public release day (GLM-4.5 2025-07-28, GLM-4.7 2025-12-22 per Vercel's
  model pages, GLM-5.1 2026-04-07 per apxml.com); GLM-4.6's and GLM-5's are from memory of
  the announcements and may be a day off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["CATALOG", "ModelInfo", "apply_defaults", "base_model_name", "model_info"]

_SIM_SUFFIX = "-sim"


def _day(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What one GLM model does when a request does not say.

    Attributes:
        name: The model code sent as ``model``.
        thinks_by_default: Thinks unless ``thinking.type`` is ``"disabled"``. ``False`` for the
            hybrid models (GLM-4.5, GLM-4.6), which decide for themselves when thinking is
            left out; the simulator answers those without reasoning unless asked.
        clear_thinking: Accepts ``thinking.clear_thinking`` (preserved thinking).
        context_window: Tokens of context (prompt plus answer).
        max_output: The largest ``max_tokens`` accepted.
        created: Release day, Unix seconds (the ``created`` of ``GET /v1/models``).
        owned_by: Who publishes it.
    """

    name: str
    thinks_by_default: bool
    clear_thinking: bool
    context_window: int
    max_output: int
    created: int
    owned_by: str = "z-ai"

    def to_openai(self, suffix: str = "") -> dict[str, Any]:
        """The model as an OpenAI ``model`` object (``GET /v1/models``)."""
        return {
            "id": self.name + suffix,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }


_K = 1024


def _family(
    names: tuple[str, ...], *, thinks: bool, clear: bool, context: int, output: int, day: str
) -> dict[str, ModelInfo]:
    created = _day(day)
    return {
        name: ModelInfo(name, thinks, clear, context * _K, output * _K, created) for name in names
    }


#: Every known model by name, oldest first.
CATALOG: Mapping[str, ModelInfo] = {
    **_family(
        ("glm-4.5", "glm-4.5-air", "glm-4.5-x", "glm-4.5-flash"),
        thinks=False,
        clear=False,
        context=128,
        output=96,
        day="2025-07-28",
    ),
    **_family(("glm-4.6",), thinks=False, clear=False, context=200, output=128, day="2025-09-30"),
    **_family(("glm-4.7",), thinks=True, clear=True, context=200, output=128, day="2025-12-22"),
    **_family(("glm-5",), thinks=True, clear=True, context=200, output=128, day="2026-02-11"),
    **_family(("glm-5.1",), thinks=True, clear=True, context=200, output=128, day="2026-04-07"),
}


def base_model_name(model: str) -> str:
    """``model`` without the simulator's ``-sim`` label (``glm-4.7-sim`` → ``glm-4.7``)."""
    return model[: -len(_SIM_SUFFIX)] if model.endswith(_SIM_SUFFIX) else model


def model_info(model: str | None) -> ModelInfo | None:
    """The catalog entry for ``model`` (with or without ``-sim``), ``None`` if unknown."""
    if not model:
        return None
    return CATALOG.get(base_model_name(model.lower()))


def apply_defaults(
    model: str, params: Mapping[str, Any], clear_thinking: bool | None = None
) -> dict[str, Any]:
    """``params`` with the model's defaults filled in; what the caller set always wins.

    - A model that thinks by default gets an explicit ``thinking: {"type": "enabled"}`` when
      the caller left ``thinking`` out, so the request says what will happen (a gateway in
      between may otherwise switch thinking off: some do by default).
    - ``clear_thinking`` goes into the ``thinking`` object (made ``{"type": "enabled"}`` when
      absent) unless the caller's ``thinking`` dict already has it. For a model that does not
      take it (GLM-4.5, GLM-4.6) it is still sent: the caller asked, and GLM ignores it.
    - ``thinking`` given as ``True``/``False`` or a type string becomes the object.

    A model not in :data:`CATALOG` gets no defaults; ``clear_thinking`` is still honoured.
    """
    result = dict(params)
    thinking = _thinking_object(result.get("thinking"))
    info = model_info(model)
    if thinking is None and info is not None and info.thinks_by_default:
        thinking = {"type": "enabled"}
    if clear_thinking is not None:
        thinking = dict(thinking) if thinking is not None else {"type": "enabled"}
        thinking.setdefault("clear_thinking", clear_thinking)
    if thinking is not None:
        result["thinking"] = thinking
    return result


def _thinking_object(value: Any) -> Any:
    if isinstance(value, bool):
        return {"type": "enabled" if value else "disabled"}
    if isinstance(value, str):
        return {"type": value}
    return value
