"""Write the example Mooncake trace shipped with glm_live:
``glm_live/measure/bench/traces/example.jsonl``.

Run ``python scripts/example_trace.py`` (it is deterministic: the same file every time).

The format is Mooncake's (kvcache-ai/Mooncake, FAST'25 "Mooncake: A KVCache-centric
Disaggregated Architecture for LLM Serving"; its ``mooncake_trace.jsonl``): one request a line,
``{"timestamp": ms after the first request, "input_length": tokens, "output_length": tokens,
"hash_ids": [...]}``, each hash id standing for a block of 512 prompt tokens, so requests that
share a prefix share its first hash ids, and the last block may be partial
(``input_length <= 512 * len(hash_ids)``). No line of Mooncake's own trace is copied: this one
is synthetic, shaped like it at a rate the simulator replays in about 20 s:

- 200 requests, Poisson arrivals at 10 per second (timestamps in whole ms, some equal);
- three system prompts of two blocks each (hash ids 0-5), shared by every conversation that
  starts with them;
- conversations: 40% of requests continue an earlier conversation (its hash ids, plus one or
  two new blocks: the history grows), the others start one (a system prompt plus one to
  three new blocks); a conversation stops growing at ten blocks;
- answers of 16 to 128 tokens.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "glm_live/measure/bench/traces/example.jsonl"
BLOCK = 512


def main() -> None:
    rng = random.Random(2025)
    next_id = 6  # 0-5: the three system prompts' blocks
    conversations: list[list[int]] = []
    t = 0.0
    lines = []
    for _ in range(200):
        growing = [c for c in conversations if len(c) < 10]
        if growing and rng.random() < 0.4:
            ids = rng.choice(growing)
            new = rng.randint(1, 2)
        else:
            system = rng.randrange(3)
            ids = [2 * system, 2 * system + 1]
            conversations.append(ids)
            new = rng.randint(1, 3)
        ids.extend(range(next_id, next_id + new))
        next_id += new
        lines.append(
            {
                "timestamp": round(t * 1000),
                "input_length": (len(ids) - 1) * BLOCK + rng.randint(1, BLOCK),
                "output_length": rng.randint(16, 128),
                "hash_ids": list(ids),
            }
        )
        t += rng.expovariate(10.0)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"wrote {len(lines)} requests over {lines[-1]['timestamp'] / 1000:.1f} s to {OUT}")


if __name__ == "__main__":
    main()
