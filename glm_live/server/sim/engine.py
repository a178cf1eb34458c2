"""The simulated GLM (GLM-4.5 to GLM-5.1): what it answers, in GLM's wire format, and when.

:meth:`Simulator.answer` decides the content (text, reasoning, a tool call), the finish reason
and the usage: the text is exactly ``sim.tokens`` tokens and ends at a natural boundary
(:func:`.text.answer_text`), with ``finish_reason: "stop"``; a smaller ``max_tokens`` cuts that
same text where the budget runs out, mid-sentence if it falls there, with ``"length"``. Given
``tools`` (and ``tool_choice`` not ``"none"``) it calls one, every time: the one ``tool_choice``
names, else the first whose name the last user message mentions, else the first; a
conversation that ends with tool results is answered, quoting them first (``Tool results:
...``), so a test can see a result reach the model.
:meth:`Simulator.stream_plan` turns that into a :class:`StreamPlan`: the frames to send and the
gap before each, with the fault (if any) placed. Frames are prepared up to the ``"x_sent_ns":``
stamp, which the pacer appends at the moment it writes them.

The output is labelled as simulated: ``model`` is ``<requested>-sim`` and ids start with
``chatcmpl-sim-``. Latency: time to first token and per-token gaps are drawn from the
configured distributions, and both stretch by ``active / capacity`` once more than
``capacity`` streams are in flight, which gives a concurrency sweep its knee.

Per model (:data:`glm_live.wire.models.CATALOG`): GLM-4.7, GLM-5 and GLM-5.1 stream reasoning
first unless thinking is disabled. Usage always carries ``prompt_tokens_details.cached_tokens``,
from :attr:`Simulator.prefix_cache`: a :class:`.prefix.BlockPrefixCache` of
``prefix_cache_tokens`` tokens (:class:`NoPrefixCache` when that is 0). The prompt tokens it
does not serve are prefilled: the time to first token grows by ``prefill_ms_per_1k_tokens``
per 1,000 of them (0 by default), so that, when it is set, a shared prefix is answered sooner.
A client's ``request_id`` is echoed as ``request_id`` (every chunk, and the whole response);
``id`` stays the simulator's own. On ``/v1`` with ``stream_options.include_usage`` the stream
ends as OpenAI's does: ``"usage": null`` on every chunk, then one chunk with ``choices: []``
and the usage.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..chatreq import ChatRequest
from ..config import SimConfig
from .prefix import BlockPrefixCache
from .text import (
    answer_text,
    content_text,
    prompt_text,
    reasoning_text,
    seeded_rng,
    tokenize,
    tool_arguments,
)

__all__ = ["DONE", "Answer", "HTTPFault", "NoPrefixCache", "PrefixCache", "Simulator", "StreamPlan"]

DONE = b"data: [DONE]\n\n"
_CACHE_SIZE = 256  # distinct requests whose composed answers are kept
_OPEN_TAIL = b',"finish_reason":null}],"x_sent_ns":'
# With include_usage (OpenAI), every chunk but the last says "usage": null.
_OPEN_TAIL_NULL_USAGE = b',"finish_reason":null}],"usage":null,"x_sent_ns":'


class PrefixCache(Protocol):
    """How many of a request's prompt tokens a provider would serve from its prefix cache.

    :meth:`Simulator.answer` asks it once per request, after the answer is composed, and
    reports the count as ``usage.prompt_tokens_details.cached_tokens``; the uncached rest is
    prefilled (``prefill_ms_per_1k_tokens``). :class:`.prefix.BlockPrefixCache` is the model
    of a provider's automatic prefix cache.
    """

    def cached_tokens(self, request: ChatRequest, prompt_tokens: int) -> int:
        """Cached prompt tokens for ``request`` (``0 <= n <= prompt_tokens``)."""
        ...


class NoPrefixCache:
    """No prefix cache: ``cached_tokens`` is always 0 (GLM reports 0 on a cache miss)."""

    def cached_tokens(self, request: ChatRequest, prompt_tokens: int) -> int:
        return 0


_encode_str = json.JSONEncoder(ensure_ascii=False).encode


class HTTPFault(Exception):
    """An injected fault answered with an HTTP error status and a GLM error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


_HTTP_FAULTS = {
    "rate_limit": (
        429,
        "1302",
        "High concurrency usage of this API, please reduce concurrency "
        "or contact customer service to increase limits (simulated)",
    ),
    "balance": (
        429,
        "1113",
        "Your account is in arrears, please recharge and try again (simulated)",
    ),
    "auth": (
        401,
        "1002",
        "Authorization Token is invalid, please ensure that the "
        "Authorization Token is correctly provided. (simulated)",
    ),
    "server_error": (500, "500", "Internal server error (simulated)"),
}


@dataclass(frozen=True)
class _Piece:
    kind: str  # "reasoning", "content" or "tool"
    delta: bytes  # the delta object, as JSON
    tokens: int


@dataclass
class Answer:
    """What the simulator says to one request, before timing."""

    id: str
    created: int
    model: str
    reasoning: list[str]
    content: list[str]
    tool_call: dict[str, Any] | None
    finish_reason: str
    usage: dict[str, Any]
    pieces: list[_Piece] = field(default_factory=list, repr=False)
    request_id: str | None = None  # the client's, echoed

    @property
    def completion_tokens(self) -> int:
        return int(self.usage["completion_tokens"])


@dataclass
class StreamPlan:
    """What to send for one streamed answer, and when.

    Frames are built when sent (``head + delta + tail``, then the pacer appends the
    ``x_sent_ns`` stamp and ``}\\n\\n``), so planning a request costs no per-token work.

    Attributes:
        head: ``data: {"id":...,"choices":[{"index":0,"delta":`` for this response.
        pieces: The deltas to send (shared with the cached answer).
        final: The finishing chunk (up to its stamp), or ``None`` when a fault cuts first.
        gaps: Seconds before each frame, after the previous one (the first: time to first
            token); the finishing chunk's gap is 0, so it leaves with the last token.
        end: After the last frame: ``"done"`` (send ``[DONE]``), ``"drop"`` (cut the
            connection) or ``"stall"`` (send nothing more, hold the connection).
    """

    head: bytes
    pieces: list[_Piece]
    final: bytes | None
    gaps: list[float]
    end: str = "done"
    stall_s: float = 600.0
    final_tokens: dict[str, int] = field(default_factory=dict)
    tail: bytes = _OPEN_TAIL
    usage_frame: bytes | None = None  # OpenAI's usage-only last chunk (include_usage)

    @property
    def count(self) -> int:
        """Frames in the plan."""
        return len(self.pieces) + (self.final is not None) + (self.usage_frame is not None)

    def frame(self, index: int) -> bytes:
        """Frame ``index`` up to its stamp."""
        if index < len(self.pieces):
            return self.head + self.pieces[index].delta + self.tail
        if index == len(self.pieces) and self.final is not None:
            return self.final
        assert self.usage_frame is not None
        return self.usage_frame

    def tokens_in(self, frames_sent: int) -> dict[str, int]:
        """Tokens carried by the first ``frames_sent`` frames, by kind."""
        counts = {"content": 0, "reasoning": 0, "tool": 0}
        for piece in self.pieces[:frames_sent]:
            counts[piece.kind] += piece.tokens
        if frames_sent > len(self.pieces):
            for kind, n in self.final_tokens.items():
                counts[kind] += n
        return counts


class Simulator:
    """Answers chat requests like GLM-4.6 would, deterministically per seed and prompt."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._counter = 0
        self._prefix = f"{random.getrandbits(24):06x}"
        self._cache: dict[tuple[Any, ...], Answer] = {}
        #: Decides ``cached_tokens`` (replaceable, e.g. by a test).
        self.prefix_cache: PrefixCache = (
            BlockPrefixCache(config.prefix_cache_tokens)
            if config.prefix_cache_tokens
            else NoPrefixCache()
        )

    def _slowdown(self, sim: SimConfig, active: int) -> float:
        return max(1.0, active / sim.capacity) if sim.capacity else 1.0

    def check_http_fault(self, sim: SimConfig) -> None:
        """Raise :class:`HTTPFault` for the faults that are answered with a status."""
        if sim.fault in _HTTP_FAULTS:
            status, code, message = _HTTP_FAULTS[sim.fault]
            headers = {"retry-after": f"{sim.retry_after:g}"} if sim.fault == "rate_limit" else {}
            raise HTTPFault(status, code, message, headers)

    def answer(self, request: ChatRequest) -> Answer:
        """What to answer. The content is composed once per distinct request and cached (a
        benchmark sends the same prompt thousands of times); the id is new every time."""
        sim = request.sim
        key = (
            sim.seed,
            request.model,
            json.dumps(request.messages, sort_keys=True),
            request.thinking,
            json.dumps(request.tools, sort_keys=True),
            json.dumps(request.tool_choice, sort_keys=True),
            request.tool_stream,
            request.max_tokens,
            sim.tokens,
            sim.reasoning_tokens,
            sim.tokens_per_chunk,
        )
        composed = self._cache.get(key)
        if composed is None:
            composed = self._compose(request)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = composed
        self._counter += 1
        usage = composed.usage
        cached = self.prefix_cache.cached_tokens(request, usage["prompt_tokens"])
        if cached:
            usage = {**usage, "prompt_tokens_details": {"cached_tokens": cached}}
        return replace(
            composed,
            id=f"chatcmpl-sim-{self._prefix}{self._counter:08x}",
            created=int(time.time()),
            usage=usage,
            request_id=request.request_id,
        )

    def _compose(self, request: ChatRequest) -> Answer:
        sim = request.sim
        prompt = prompt_text(request.messages)
        rng = seeded_rng(sim.seed, request.model, json.dumps(request.messages, sort_keys=True))
        reasoning = (
            tokenize(reasoning_text(prompt, rng, sim.reasoning_tokens, request.messages))
            if request.thinking and sim.reasoning_tokens
            else []
        )
        tool_call = self._tool_call(request, prompt, rng)
        budget = request.max_tokens
        content: list[str] = []
        finish = "tool_calls" if tool_call else "stop"
        if tool_call is None:
            # The whole answer (it ends at a natural boundary), then max_tokens cuts it where it
            # falls: a prefix of the same text, as a real model's would be. An answer to tool
            # results quotes them first (what a model does with a tool's output, made visible).
            lead = tokenize(_quoted_results(request.messages))
            content = lead + tokenize(
                answer_text(
                    _with_tool_results(prompt, request.messages),
                    rng,
                    max(1, sim.tokens - len(lead)),
                    sim.seed,
                    request.messages,
                )
            )
            if budget is not None and budget < len(content):
                content, finish = content[:budget], "length"
        tool_tokens = len(tokenize(tool_call["function"]["arguments"])) if tool_call else 0
        prompt_tokens = sum(
            len(tokenize(content_text(m.get("content")))) + 4 for m in request.messages
        )
        completion = len(content) + len(reasoning) + tool_tokens
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": len(reasoning)},
        }
        model = request.model if request.model.endswith("-sim") else request.model + "-sim"
        answer = Answer(
            id="",
            created=0,
            model=model,
            reasoning=reasoning,
            content=content,
            tool_call=tool_call,
            finish_reason=finish,
            usage=usage,
        )
        answer.pieces = _pieces(request, answer)
        return answer

    def _tool_call(self, request: ChatRequest, prompt: str, rng: Any) -> dict[str, Any] | None:
        if not request.tools or request.tool_choice == "none":
            return None
        if request.messages[-1].get("role") == "tool":
            return None  # the tool has answered: now the model writes the reply
        chosen = request.tools[0]["function"]
        choice = request.tool_choice
        names = [t["function"]["name"] for t in request.tools]
        if isinstance(choice, Mapping):
            wanted = (choice.get("function") or {}).get("name")
            chosen = request.tools[names.index(wanted)]["function"] if wanted in names else chosen
        else:
            for tool in request.tools:
                if tool["function"]["name"].lower() in prompt.lower():
                    chosen = tool["function"]
                    break
        arguments = tool_arguments(chosen.get("parameters") or {}, prompt, rng)
        return {
            "id": f"call_sim_{rng.getrandbits(40):010x}",
            "type": "function",
            "function": {"name": chosen["name"], "arguments": json.dumps(arguments)},
        }

    def generation_seconds(self, request: ChatRequest, answer: Answer, active: int) -> float:
        """How long the whole answer takes to generate (for non-streamed responses)."""
        return sum(self._gaps(request, answer, answer.pieces, active))

    def _gaps(
        self, request: ChatRequest, answer: Answer, pieces: list[_Piece], active: int
    ) -> list[float]:
        """Seconds before each piece: time to first token, then one gap per token carried."""
        sim = request.sim
        scale = self._slowdown(sim, active) / 1000.0
        rng = seeded_rng(sim.seed, "latency", answer.id)
        itl = sim.itl_ms
        usage = answer.usage
        uncached = usage["prompt_tokens"] - usage["prompt_tokens_details"]["cached_tokens"]
        prefill = sim.prefill_ms_per_1k_tokens * uncached / 1000.0
        gaps = [(sim.ttft_ms.sample(rng) + prefill) * scale]
        for piece in pieces[1:]:
            steps = max(1, piece.tokens)
            if itl.is_constant:
                gaps.append(itl.a * steps * scale)
            else:
                gaps.append(sum(itl.sample(rng) for _ in range(steps)) * scale)
        return gaps

    def stream_plan(self, request: ChatRequest, answer: Answer, active: int) -> StreamPlan:
        """Frames and gaps for a streamed answer, with any in-stream fault placed."""
        sim = request.sim
        model = _encode_str(answer.model)
        echo = (
            "" if answer.request_id is None else f',"request_id":{_encode_str(answer.request_id)}'
        )
        start = (
            f'data: {{"id":"{answer.id}"{echo},"object":"chat.completion.chunk",'
            f'"created":{answer.created},"model":{model},'
        )
        head = f'{start}"choices":[{{"index":0,"delta":'.encode()
        openai_usage = request.include_usage
        tail = _OPEN_TAIL_NULL_USAGE if openai_usage else _OPEN_TAIL
        pieces = answer.pieces
        gaps = self._gaps(request, answer, pieces, active)
        cut = _fault_index(sim, pieces)
        if cut < len(pieces) and sim.fault in ("drop", "stall"):
            return StreamPlan(
                head, pieces[:cut], None, gaps[:cut], sim.fault, sim.stall_s, tail=tail
            )
        reason = answer.finish_reason
        usage = answer.usage
        if sim.fault == "network_error":
            reason = "network_error"
            done = sum(piece.tokens for piece in pieces[:cut])
            usage = {
                **usage,
                "completion_tokens": done,
                "total_tokens": usage["prompt_tokens"] + done,
            }
        final_delta: dict[str, Any] = {"role": "assistant", "content": ""}
        final_tokens = {}
        call = answer.tool_call
        if call is not None and not request.tool_stream and reason == "tool_calls":
            # Without tool_stream, GLM sends the whole call in the chunk that finishes.
            final_delta["tool_calls"] = [{"index": 0, **call}]
            final_tokens["tool"] = (
                answer.completion_tokens - len(answer.content) - len(answer.reasoning)
            )
        finishing = (
            f'{start}"choices":[{{"index":0,'
            f'"finish_reason":{_encode_str(reason)},"delta":{json.dumps(final_delta)}}}],'
        )
        usage_frame = None
        if openai_usage:
            # OpenAI: the finishing chunk says "usage": null, and the usage follows in a frame
            # of its own, with no choices, sent together with it.
            final = f'{finishing}"usage":null,"x_sent_ns":'
            usage_frame = f'{start}"choices":[],"usage":{json.dumps(usage)},"x_sent_ns":'.encode()
        else:
            final = f'{finishing}"usage":{json.dumps(usage)},"x_sent_ns":'
        # The finishing chunk leaves with the last token; alone, it waits the first-token time.
        plan_gaps = gaps[:cut]
        plan_gaps.append(0.0 if cut else gaps[0])
        if usage_frame is not None:
            plan_gaps.append(0.0)
        return StreamPlan(
            head,
            pieces[:cut],
            final.encode(),
            plan_gaps,
            "done",
            sim.stall_s,
            final_tokens,
            tail=tail,
            usage_frame=usage_frame,
        )

    def completion_body(self, answer: Answer, finish_reason: str | None = None) -> bytes:
        """The non-streamed response, in the shape GLM-4.6 returns."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.content)}
        if answer.reasoning:
            message["reasoning_content"] = "".join(answer.reasoning)
        if answer.tool_call is not None:
            message["tool_calls"] = [answer.tool_call]
        return json.dumps(
            {
                "id": answer.id,
                "request_id": answer.request_id or answer.id,
                "object": "chat.completion",
                "created": answer.created,
                "model": answer.model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": finish_reason or answer.finish_reason,
                        "message": message,
                    }
                ],
                "usage": answer.usage,
            }
        ).encode()


def _pieces(request: ChatRequest, answer: Answer) -> list[_Piece]:
    """The streamed deltas in order, ``tokens_per_chunk`` tokens each."""
    per_chunk = request.sim.tokens_per_chunk
    pieces: list[_Piece] = []
    for kind, key, tokens in (
        ("reasoning", "reasoning_content", answer.reasoning),
        ("content", "content", answer.content),
    ):
        for i in range(0, len(tokens), per_chunk):
            group = tokens[i : i + per_chunk]
            role = "" if pieces else '"role":"assistant",'
            text = _encode_str("".join(group))
            pieces.append(_Piece(kind, f'{{{role}"{key}":{text}}}'.encode(), len(group)))
    call = answer.tool_call
    if call is not None and request.tool_stream:
        start = {
            "index": 0,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        pieces.append(_Piece("tool", json.dumps({"tool_calls": [start]}).encode(), 0))
        for fragment in tokenize(call["function"]["arguments"]):
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}
            pieces.append(_Piece("tool", json.dumps(delta).encode(), 1))
    return pieces


def _fault_index(sim: SimConfig, pieces: list[_Piece]) -> int:
    """How many pieces go out before an in-stream fault (all of them when there is none)."""
    if sim.fault not in ("drop", "stall", "network_error"):
        return len(pieces)
    total = sum(p.tokens for p in pieces)
    after = total // 2 if sim.fault_after is None else min(sim.fault_after, total)
    sent = 0
    for index, piece in enumerate(pieces):
        if sent >= after:
            return index
        sent += piece.tokens
    return len(pieces)


def _quoted_results(messages: list[dict[str, Any]]) -> str:
    """``"Tool results: ...\n\n"`` when the conversation ends with tool messages (the model is
    answering them), quoting each (up to 200 characters); else ``""``."""
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, content_text(message.get("content"))[:200])
    if not results:
        return ""
    return f"Tool results: {'; '.join(results)}.\n\n"


def _with_tool_results(prompt: str, messages: list[dict[str, Any]]) -> str:
    results = [content_text(m.get("content")) for m in messages if m.get("role") == "tool"]
    return prompt + (" " + " ".join(results) if results else "")
