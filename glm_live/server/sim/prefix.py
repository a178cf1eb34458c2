"""The simulator's automatic prefix cache, modelled on vLLM's and SGLang's.

A prompt is the simulator's tokens (:func:`.text.tokenize`) of its messages in order, each
framed as a chat template would frame it: ``<|start|>``, the role, ``\\n``, the content's tokens,
``<|end|>`` (4 tokens a message, the same count as ``usage.prompt_tokens``). The tokens are
cut into blocks of :data:`BLOCK_TOKENS`; a block's hash chains the hash of the block before
it (the first chains the model's name), so a block matches only under the same prefix.

A request's ``cached_tokens`` is the length of its longest run of leading blocks found in the
cache, in whole blocks. As in vLLM, the last prompt token is always computed (the model needs
its logits), so an exact repeat of a prompt of 128 tokens reports 64, not 128. Then all the
request's whole blocks are inserted or refreshed, at once: the cache is updated as a request
is admitted, not when it ends, so the same sequence of requests gives the same counts however
their streams overlap. The cache is a least-recently-used list bounded in tokens; a request's
blocks are refreshed last block first, so that the tail of a prefix is evicted before its
head (as vLLM frees blocks), and a surviving block always has its parent.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict

from ..chatreq import ChatRequest
from .text import content_text, tokenize

__all__ = ["BLOCK_TOKENS", "BlockPrefixCache", "prompt_blocks", "template_tokens"]

#: Tokens per cache block (vLLM's default is 16, SGLang's radix cache matches per token;
#: providers bill caching in coarser steps, e.g. OpenAI's 128 after the first 1,024).
BLOCK_TOKENS = 64
_MEMO_SIZE = 256  # distinct prompts whose block hashes are kept (a benchmark repeats them)


def template_tokens(messages: list[dict[str, object]]) -> list[str]:
    """The prompt as the cache sees it: each message's content tokens, framed by 4 tokens."""
    tokens: list[str] = []
    for message in messages:
        role = str(message.get("role", ""))
        tokens += ["<|start|>", role, "\n"]
        tokens += tokenize(content_text(message.get("content")))
        tokens.append("<|end|>")
    return tokens


def prompt_blocks(model: str, tokens: list[str], block: int = BLOCK_TOKENS) -> list[bytes]:
    """The chained hashes of the whole blocks of ``tokens`` (a partial last block has none)."""
    hashes: list[bytes] = []
    parent = model.encode()
    for start in range(0, len(tokens) - block + 1, block):
        digest = hashlib.blake2b(parent, digest_size=16)
        # \x1f between tokens: a block's hash depends on its split, not only on its text.
        digest.update("\x1f".join(tokens[start : start + block]).encode("utf-8", "replace"))
        parent = digest.digest()
        hashes.append(parent)
    return hashes


class BlockPrefixCache:
    """An LRU of prompt blocks, at most ``capacity_tokens`` tokens (whole blocks) in all.

    Implements :class:`~.engine.PrefixCache`. Requests whose ``sim.prefix_cache`` is false
    neither read nor fill it.
    """

    def __init__(self, capacity_tokens: int, block_tokens: int = BLOCK_TOKENS) -> None:
        self.block_tokens = block_tokens
        self.capacity_blocks = capacity_tokens // block_tokens
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self._memo: dict[tuple[str, str], tuple[int, list[bytes]]] = {}

    @property
    def tokens(self) -> int:
        """Tokens held now (whole blocks)."""
        return len(self._blocks) * self.block_tokens

    def clear(self) -> None:
        """Forget every block."""
        self._blocks.clear()

    def _hashes(self, request: ChatRequest) -> tuple[int, list[bytes]]:
        model = request.info.name
        key = (model, json.dumps(request.messages, sort_keys=True))
        found = self._memo.get(key)
        if found is None:
            tokens = template_tokens(request.messages)
            found = (len(tokens), prompt_blocks(model, tokens, self.block_tokens))
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = found
        return found

    def cached_tokens(self, request: ChatRequest, prompt_tokens: int) -> int:
        """Look ``request``'s prefix up, then insert or refresh its blocks; return the hit."""
        if not request.sim.prefix_cache or self.capacity_blocks <= 0:
            return 0
        length, hashes = self._hashes(request)
        blocks = self._blocks
        usable = (min(length, prompt_tokens) - 1) // self.block_tokens  # the last token is computed
        hit = 0
        while hit < min(usable, len(hashes)) and hashes[hit] in blocks:
            hit += 1
        for digest in reversed(hashes):  # the head ends up most recent: tails go first
            blocks[digest] = None
            blocks.move_to_end(digest)
        while len(blocks) > self.capacity_blocks:
            blocks.popitem(last=False)
        return hit * self.block_tokens
