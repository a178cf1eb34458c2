"""The simulator's prefix cache: shared prefixes report ``cached_tokens`` in whole 64-token
blocks and are answered sooner; cache busting, eviction and switching it off report none.
Over loopback against the real runtime, and on the engine where the arithmetic is exact."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from glm_live.server import ServerHandle, serve
from glm_live.server.chatreq import parse_chat_request
from glm_live.server.config import SimConfig
from glm_live.server.sim.engine import Simulator
from glm_live.server.sim.text import tokenize
from glm_live.wire.sse import Decoder

BLOCK = 64
FAST = {"ttft_ms": 1, "itl_ms": 1, "tokens": 4}
WORDS = ("alpha", "beta", "gamma", "delta", "kappa", "sigma", "omega", "river", "stone", "cloud")


def text_of(tokens: int, seed: int) -> str:
    """Text of exactly ``tokens`` simulator tokens (short words: one token each)."""
    rng = random.Random(seed)
    text = "".join(tokenize(" ".join(rng.choice(WORDS) for _ in range(tokens)))[:tokens])
    assert len(tokenize(text)) == tokens
    return text


SYSTEM = text_of(1000, seed=1)
# Each message is framed by 4 template tokens, 3 before its content ("<|start|>", role, "\n")
# and 1 after, as usage.prompt_tokens counts them. Two prompts that share the system message
# and differ from the user content's first token share the system message and the user
# message's header: 4 + 1000 + 3 tokens, of which the cache serves the whole blocks.
SHARED = 4 + 1000 + 3
EXPECTED = SHARED // BLOCK * BLOCK  # 960


def messages(user: str, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def body(user: str, system: str = SYSTEM, **sim: Any) -> dict[str, Any]:
    return {"model": "glm-4.6", "messages": messages(user, system), "sim": {**FAST, **sim}}


def usage(handle: ServerHandle, payload: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(handle.base_url + "/chat/completions", json=payload, headers=handle.headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["usage"])


def cached(handle: ServerHandle, payload: dict[str, Any]) -> int:
    return int(usage(handle, payload)["prompt_tokens_details"]["cached_tokens"])


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(seed=5) as handle:
        yield handle


def test_a_shared_system_prompt_is_served_from_the_cache(runtime: ServerHandle) -> None:
    system = text_of(1000, seed=2)  # this test's own prefix: nothing cached it before
    first = usage(runtime, body("Where do rivers start?", system))
    second = usage(runtime, body("Why is the sky blue?", system))
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["prompt_tokens_details"]["cached_tokens"] == EXPECTED == 960
    assert second["prompt_tokens"] > EXPECTED


def ttft(handle: ServerHandle, client: httpx.Client, payload: dict[str, Any]) -> float:
    """Seconds from sending the request to the first content chunk, measured here."""
    decoder = Decoder()
    url = handle.base_url + "/chat/completions"
    start = time.perf_counter()
    with client.stream("POST", url, json={**payload, "stream": True}) as r:
        assert r.status_code == 200
        for piece in r.iter_bytes():
            if decoder.feed(piece):
                return time.perf_counter() - start
    raise AssertionError("no chunk")


def test_a_cached_prefix_is_answered_sooner(runtime: ServerHandle) -> None:
    # 200 ms per 1,000 uncached tokens: the first request prefills ~1,015 tokens (~200 ms),
    # the second ~55 (~11 ms). Only the order is asserted, with half the saving as margin.
    system = text_of(1000, seed=3)
    slow = {"prefill_ms_per_1k_tokens": 200}
    with httpx.Client(headers=runtime.headers) as client:
        ttft(runtime, client, body("warm up the connection", "x", **slow))
        cold = ttft(runtime, client, body("Where do rivers start?", system, **slow))
        warm = ttft(runtime, client, body("Why is the sky blue?", system, **slow))
    saving = 0.2 * EXPECTED / 1000  # the prefill of the cached tokens: 192 ms
    assert warm < cold - saving / 2, (cold, warm)


def test_cache_busting_prefixes_report_nothing(runtime: ServerHandle) -> None:
    # A unique random prefix per request (what a benchmark should send to measure cold
    # prefill): the first block differs every time, so nothing after it can match.
    counts = [
        cached(runtime, body("Summarise the text.", f"{uuid.uuid4().hex} {SYSTEM}"))
        for _ in range(5)
    ]
    assert counts == [0] * 5


def test_per_request_switch_bypasses_the_cache(runtime: ServerHandle) -> None:
    system = text_of(1000, seed=4)
    off = {"prefix_cache": False}
    # Neither read nor filled: a bypassing request leaves nothing for the next one.
    assert cached(runtime, body("one", system, **off)) == 0
    assert cached(runtime, body("two", system, **off)) == 0
    assert cached(runtime, body("three", system)) == 0
    assert cached(runtime, body("four", system)) == EXPECTED
    assert cached(runtime, body("five", system, **off)) == 0


def test_a_request_may_not_resize_the_cache(runtime: ServerHandle) -> None:
    url = runtime.base_url + "/chat/completions"
    payload = body("hi", prefix_cache_tokens=10)
    r = httpx.post(url, json=payload, headers=runtime.headers)
    assert r.status_code == 400
    assert '"prefix_cache": false' in r.json()["error"]["message"]


def test_zero_capacity_disables_the_cache() -> None:
    with serve(sim={"prefix_cache_tokens": 0}) as handle:
        counts = [cached(handle, body(user)) for user in ("one", "two", "three")]
    assert counts == [0, 0, 0]


@pytest.mark.parametrize(("capacity", "kept"), [(2 * EXPECTED, EXPECTED), (EXPECTED, 0)])
def test_least_recently_used_prefixes_are_evicted(capacity: int, kept: int) -> None:
    # Each prompt fills 15 blocks (960 tokens). Room for 30: both prefixes stay. Room for
    # 15: the second evicts the first.
    first, second = text_of(1000, seed=6), text_of(1000, seed=7)
    with serve(sim={"prefix_cache_tokens": capacity}) as handle:
        assert cached(handle, body("one", first)) == 0
        assert cached(handle, body("two", second)) == 0
        assert cached(handle, body("three", second)) == EXPECTED
        assert cached(handle, body("four", first)) == kept


async def test_openai_sdk_parses_cached_tokens(runtime: ServerHandle) -> None:
    client = openai.AsyncOpenAI(base_url=runtime.base_url, api_key=runtime.token)
    system = text_of(1000, seed=8)
    for user, expected in (("Where do rivers start?", 0), ("Why is the sky blue?", EXPECTED)):
        whole = await client.chat.completions.create(
            model="glm-4.6", messages=messages(user, system), extra_body={"sim": FAST}
        )
        assert whole.usage is not None
        assert whole.usage.prompt_tokens_details is not None
        assert whole.usage.prompt_tokens_details.cached_tokens == expected
    stream = await client.chat.completions.create(
        model="glm-4.6",
        messages=messages("Name three clouds.", system),
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"sim": FAST},
    )
    chunks = [chunk async for chunk in stream]
    last = chunks[-1].usage
    assert last is not None
    assert last.prompt_tokens_details is not None
    assert last.prompt_tokens_details.cached_tokens == EXPECTED
    await client.close()


# --- the engine: exact arithmetic, no clock ----------------------------------------------------


def engine_run(sim: Simulator, payloads: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(cached_tokens, planned time to first token in ms) for each request, in order."""
    out = []
    for payload in payloads:
        request = parse_chat_request({**payload, "stream": True}, sim.config)
        answer = sim.answer(request)
        plan = sim.stream_plan(request, answer, 1)
        out.append((answer.usage["prompt_tokens_details"]["cached_tokens"], plan.gaps[0] * 1000))
    return out


def test_prefill_is_charged_for_uncached_tokens_only() -> None:
    sim = Simulator(SimConfig())
    knobs = {"ttft_ms": 50, "prefill_ms_per_1k_tokens": 100}
    first, second = engine_run(
        sim, [body("Where do rivers start?", **knobs), body("Why is the sky blue?", **knobs)]
    )
    prompts = [
        4 + 1000 + 4 + len(tokenize(q)) for q in ("Where do rivers start?", "Why is the sky blue?")
    ]
    assert first == (0, pytest.approx(50 + 0.1 * prompts[0]))
    assert second == (EXPECTED, pytest.approx(50 + 0.1 * (prompts[1] - EXPECTED)))


def test_the_same_sequence_gives_the_same_counts() -> None:
    rng = random.Random(9)
    systems = [text_of(300 + 200 * i, seed=20 + i) for i in range(4)]
    payloads = [body(f"question {i}", rng.choice(systems)) for i in range(40)]

    def counts(capacity: int) -> list[int]:
        sim = Simulator(SimConfig(prefix_cache_tokens=capacity))
        return [c for c, _ in engine_run(sim, payloads)]

    small = counts(2048)
    assert small == counts(2048)
    assert any(small)
    assert sum(small) < sum(counts(1_000_000))  # 2,048 tokens hold fewer than the 4 prefixes


def test_an_exact_repeat_still_computes_its_last_token() -> None:
    # A prompt of exactly 128 tokens repeated: the last token is always prefilled (the model
    # needs its logits), so one block of two is served, as vLLM does.
    sim = Simulator(SimConfig())
    content = text_of(128 - 4, seed=10)
    payload = {"model": "glm-4.6", "messages": [{"role": "user", "content": content}]}
    counts = [c for c, _ in engine_run(sim, [payload, payload])]
    assert counts == [0, 64]
