"""Realistic workloads: what a request's prompt is made of, beyond one prompt per request.

- :class:`Sessions`: multi-turn conversations. Each turn sends the history so far (the earlier
  prompts and the answers actually received) after a think time drawn from the seed.
- Prefixes: a system prompt of ``shared_prefix_tokens`` tokens common to every request (what a
  prefix cache should serve), or a prefix of ``unique_prefix_tokens`` tokens unique to each
  request *and* each run (cache busting; vLLM#54227 is a fixed seed benchmarking the prefix
  cache by accident), drawn from a ``prefix_seed`` that is random unless given, and reported.
- :class:`Trace`: a Mooncake trace (FAST'25; JSONL, one request a line:
  ``{"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]}``), replayed
  at its timestamps with prompts built so that requests sharing a hash id share that block.
- :class:`TokenCounter`: how tokens are counted client-side: words unless a tokenizer is given
  (a ``tokenizer.json`` through the ``tokenizers`` library, or ``"tiktoken:<encoding>"``).

Generated text is made of lowercase words of at most six letters, one per token: one word is
one token for the word counter and for the simulator's tokenizer
(:func:`glm_live.server.sim.text.tokenize`), so lengths asked for are the lengths the simulator
sees. A real tokenizer counts them otherwise, and says so in the result's columns.

Nothing here does I/O but :func:`read_trace` and loading a tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "EXAMPLE_TRACE",
    "Sessions",
    "TokenCounter",
    "Trace",
    "TraceRequest",
    "counter_name",
    "read_trace",
    "seeded",
    "text_of",
    "unique_prefix",
]

#: The example trace shipped with glm_live (see ``traces/README.md``).
EXAMPLE_TRACE = Path(__file__).with_name("traces") / "example.jsonl"

#: Mooncake's block: each hash id stands for this many tokens of the prompt.
MOONCAKE_BLOCK = 512

# 64 words of at most six letters (four, in fact): each is one token for the simulator and one word.
_VOCAB = tuple(
    """
    able acid aged also area army away baby back ball band bank base bath bear beat bell belt
    best bird blow blue boat body bone book boot born boss both bowl burn bush busy cake call
    calm camp card care case cash cast cell chat chip city club coal coat code cold cook cool
    copy core cost crew dark data dawn deal deep desk
    """.split()  # noqa: SIM905 - a word list reads better as text
)


def seeded(seed: int | None, *parts: object) -> random.Random:
    """A generator seeded stably (not by Python's randomised ``hash``) from a seed and parts."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(str(seed).encode())
    for part in parts:
        digest.update(b"\0" + str(part).encode())
    return random.Random(int.from_bytes(digest.digest(), "big"))


def text_of(tokens: int, rng: random.Random) -> str:
    """``tokens`` words (one token each) drawn from ``rng``, joined by spaces."""
    return " ".join(rng.choice(_VOCAB) for _ in range(tokens))


def unique_prefix(tokens: int, seed: int, index: int, total: int) -> str:
    """Request ``index``'s cache-busting prefix: ``tokens`` words drawn from ``(seed, index)``,
    the last few of which spell ``index`` (so prefixes of one run are distinct for certain,
    and those of runs with different seeds differ from their first word on).

    Raises:
        ValueError: ``tokens`` is too short to spell every index up to ``total``.
    """
    digits = 1
    while len(_VOCAB) ** digits < total:
        digits += 1
    if tokens < digits:
        msg = (
            f"unique_prefix_tokens={tokens} cannot make {total} distinct prefixes: "
            f"give at least {digits}"
        )
        raise ValueError(msg)
    words = text_of(tokens - digits, seeded(seed, "unique", index)).split()
    spelled = []
    for _ in range(digits):
        index, digit = divmod(index, len(_VOCAB))
        spelled.append(_VOCAB[digit])
    return " ".join(words + spelled[::-1])


# -- multi-turn sessions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sessions:
    """Multi-turn conversations: ``bench.run(url, workload=Sessions(...), concurrency=C)``.

    ``count`` conversations of ``turns`` turns each; ``concurrency`` of them are in flight at
    once (a closed loop of conversations: one ends, the next starts). Turn ``t`` of
    conversation ``s`` is global request ``s * turns + t``; its prompt is the run's prompt of
    that index (prompts cycle), sent with the history so far: the earlier prompts and the
    answers actually received. A turn after the first is scheduled ``think`` seconds after
    the previous answer ended; its latencies count from then. A failed turn ends its
    conversation (what would a user answer?).

    Attributes:
        count: Conversations in the run.
        turns: Turns per conversation.
        think_time_s: Seconds between an answer and the next turn: a number, or ``(low,
            high)`` for a uniform draw from the run's seed, per conversation and turn.
    """

    count: int = 8
    turns: int = 4
    think_time_s: float | tuple[float, float] = (1.0, 3.0)

    def __post_init__(self) -> None:
        if self.count < 1 or self.turns < 1:
            msg = f"Sessions needs count >= 1 and turns >= 1, got {self.count} and {self.turns}"
            raise ValueError(msg)
        low, high = self._bounds()
        if low < 0 or high < low:
            msg = f"think_time_s must be >= 0 (low <= high), got {self.think_time_s!r}"
            raise ValueError(msg)

    def _bounds(self) -> tuple[float, float]:
        if isinstance(self.think_time_s, int | float):
            return float(self.think_time_s), float(self.think_time_s)
        low, high = self.think_time_s
        return float(low), float(high)

    @property
    def total(self) -> int:
        """Requests in the run: every turn of every conversation."""
        return self.count * self.turns

    def think(self, seed: int, session: int, turn: int) -> float:
        """The think time before ``turn`` of ``session`` (s; 0 before the first turn)."""
        if turn == 0:
            return 0.0
        low, high = self._bounds()
        return seeded(seed, "think", session, turn).uniform(low, high) if high > low else low

    def config(self) -> dict[str, Any]:
        """How the conversations were asked for, as results report it."""
        return {"count": self.count, "turns": self.turns, "think_time_s": self.think_time_s}


# -- trace replay --------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceRequest:
    """One line of a Mooncake trace: when (ms after the trace's first request), how long the
    prompt is and the answer should be (tokens), and the prompt's blocks' hash ids."""

    timestamp: int
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


@dataclass(frozen=True)
class Trace:
    """A Mooncake trace, ready to replay (:func:`read_trace` reads one).

    Request ``k`` (in timestamp order) is sent ``(timestamp_k - timestamp_0) / speed`` ms
    after the start. Its prompt is the blocks of its hash ids, in order (block ``h`` is
    ``block_size`` words drawn from ``(seed, h)``: requests sharing a hash id share that
    block's text), cut or padded (with words unique to the request) to ``input_length``
    tokens; it asks for ``output_length`` tokens (``max_tokens``, and ``sim.tokens`` for the
    simulator).

    Attributes:
        requests: The trace's requests, in timestamp order.
        source: Where it was read from.
        speed: Replay speed: 2 sends twice as fast as recorded.
        block_size: Tokens per hash id (512 in Mooncake's traces).
        seed: Seeds the blocks' text.
    """

    requests: tuple[TraceRequest, ...]
    source: str = ""
    speed: float = 1.0
    block_size: int = MOONCAKE_BLOCK
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.requests:
            msg = f"the trace {self.source or ''} has no requests".replace("  ", " ")
            raise ValueError(msg)
        if self.speed <= 0 or self.block_size < 1:
            msg = (
                f"trace_speed must be > 0 and block_size >= 1, got {self.speed}, {self.block_size}"
            )
            raise ValueError(msg)

    def __len__(self) -> int:
        return len(self.requests)

    def offsets(self) -> list[float]:
        """Each request's send time, in seconds after the first's."""
        first = self.requests[0].timestamp
        return [(r.timestamp - first) / 1000 / self.speed for r in self.requests]

    def block(self, hash_id: int) -> str:
        """The text of block ``hash_id``: ``block_size`` words drawn from ``(seed, hash_id)``."""
        return _block(self.seed, hash_id, self.block_size)

    def prompt(self, index: int) -> str:
        """Request ``index``'s prompt: its blocks, to ``input_length`` words."""
        request = self.requests[index]
        words: list[str] = []
        for hash_id in request.hash_ids:
            if len(words) >= request.input_length:
                break
            words.extend(self.block(hash_id).split())
        if len(words) < request.input_length:
            rng = seeded(self.seed, "tail", index)
            words.extend(text_of(request.input_length - len(words), rng).split())
        return " ".join(words[: request.input_length])

    def params(self, index: int, params: dict[str, Any]) -> dict[str, Any]:
        """The body fields of request ``index``: ``params`` with ``max_tokens`` and the
        simulator's ``sim.tokens`` set to its ``output_length``."""
        tokens = self.requests[index].output_length
        sim = params.get("sim")
        return {
            **params,
            "max_tokens": tokens,
            "sim": {**(sim if isinstance(sim, dict) else {}), "tokens": tokens},
        }

    def config(self) -> dict[str, Any]:
        """How the trace was replayed, as results report it."""
        return {
            "source": self.source,
            "requests": len(self.requests),
            "speed": self.speed,
            "block_size": self.block_size,
            "seed": self.seed,
            "duration_s": self.offsets()[-1],
        }


@lru_cache(maxsize=4096)
def _block(seed: int, hash_id: int, size: int) -> str:
    return text_of(size, seeded(seed, "block", hash_id))


def read_trace(
    path: str | Path,
    *,
    speed: float = 1.0,
    block_size: int = MOONCAKE_BLOCK,
    seed: int = 0,
) -> Trace:
    """Read a Mooncake JSONL trace: ``timestamp`` (ms), ``input_length``, ``output_length``
    and ``hash_ids`` on each line; blank lines are skipped, requests sorted by timestamp
    (stably).

    Raises:
        ValueError: A line is not such an object (the message names the line).
    """
    path = Path(path)
    requests = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            request = TraceRequest(
                timestamp=int(raw["timestamp"]),
                input_length=int(raw["input_length"]),
                output_length=int(raw["output_length"]),
                hash_ids=tuple(int(h) for h in raw.get("hash_ids", ())),
            )
        except (ValueError, KeyError, TypeError) as exc:
            msg = (
                f"{path}:{number} is not a Mooncake trace line ({exc!r}): each line needs "
                '{"timestamp": ms, "input_length": n, "output_length": m, "hash_ids": [...]}'
            )
            raise ValueError(msg) from exc
        requests.append(request)
    requests.sort(key=lambda r: r.timestamp)
    return Trace(tuple(requests), str(path), speed, block_size, seed)


# -- token counts ----------------------------------------------------------------------------


def counter_name(spec: str | Path | None) -> str:
    """What :class:`TokenCounter` ``(spec)`` counts with: ``words``, ``tiktoken:<encoding>``
    or ``tokenizers:<path>`` (without loading it)."""
    if spec is None or str(spec) == "words":
        return "words"
    if str(spec).startswith("tiktoken:"):
        return str(spec)
    return f"tokenizers:{spec}"


class TokenCounter:
    """Counts tokens client-side: words (whitespace-separated) unless given a tokenizer.

    Args:
        spec: ``None`` or ``"words"``: words; ``"tiktoken:<encoding>"`` (e.g.
            ``"tiktoken:cl100k_base"``; needs ``tiktoken``); or the path of a Hugging Face
            ``tokenizer.json`` (needs ``pip install 'glm_live[tokenizers]'``).

    Attributes:
        name: What counts: ``words``, ``tiktoken:<encoding>`` or ``tokenizers:<path>``.

    Raises:
        ImportError: The library the tokenizer needs is not installed.
        FileNotFoundError: No ``tokenizer.json`` at the path.
    """

    def __init__(self, spec: str | Path | None = None) -> None:
        self._encode: Any = None
        if spec is None or str(spec) == "words":
            self.name = "words"
        elif str(spec).startswith("tiktoken:"):
            encoding = str(spec).partition(":")[2]
            try:
                import tiktoken
            except ImportError as exc:
                msg = f"tokenizer={spec!r} needs tiktoken: pip install tiktoken"
                raise ImportError(msg) from exc
            self._encode = tiktoken.get_encoding(encoding).encode_ordinary
            self.name = f"tiktoken:{encoding}"
        else:
            path = Path(spec)
            if not path.is_file():
                msg = f"no tokenizer.json at {path}"
                raise FileNotFoundError(msg)
            try:
                import tokenizers
            except ImportError as exc:
                msg = (
                    f"tokenizer={str(spec)!r} needs tokenizers: pip install 'glm_live[tokenizers]'"
                )
                raise ImportError(msg) from exc
            tokenizer = tokenizers.Tokenizer.from_file(str(path))

            def encode(text: str) -> list[int]:
                return list(tokenizer.encode(text, add_special_tokens=False).ids)

            self._encode = encode
            self.name = counter_name(spec)

    def __repr__(self) -> str:
        return f"TokenCounter({self.name!r})"

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        if self._encode is None:
            return len(text.split())
        return len(self._encode(text)) if text else 0

    def count_messages(self, messages: Sequence[Any]) -> int:
        """Tokens in the messages' contents (each counted alone, summed; no chat template)."""
        total = 0
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                total += self.count(content)
        return total
