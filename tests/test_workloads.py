"""Realistic workloads: multi-turn sessions, shared and unique prefixes, Mooncake trace replay,
token counts by a real tokenizer. Bodies are checked server-side (the byte server keeps every
request); runs against the simulator check what it answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glm_live import bench
from glm_live.measure.bench import Benchmark
from glm_live.measure.bench.workloads import (
    EXAMPLE_TRACE,
    Sessions,
    TokenCounter,
    read_trace,
)
from glm_live.server import ServerHandle, serve
from glm_live.server.sim.text import tokenize
from tests.byteserver import ByteServer, Reply

SIM = {"ttft_ms": 2, "itl_ms": 1, "tokens": 8}


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


def answer(text: str) -> Reply:
    """A streamed answer of ``text`` in two chunks; the connection closes after it (the byte
    server reads one request per connection)."""
    chunks = [text[: len(text) // 2], text[len(text) // 2 :]]
    steps = [
        f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': c}}]})}\n\n".encode()
        for c in chunks
    ]
    steps.append(b"data: [DONE]\n\n")
    return Reply(
        headers={"content-type": "text/event-stream", "connection": "close"}, steps=list(steps)
    )


def bodies(server: ByteServer) -> list[dict[str, Any]]:
    return [request.json() for request in server.requests]


# -- multi-turn sessions ---------------------------------------------------------------------


async def test_sessions_send_the_history_received(server: ByteServer) -> None:
    server.play([answer(f"answer number {k} here") for k in range(6)])
    sessions = Sessions(count=2, turns=3, think_time_s=(0.01, 0.03))
    prompts = [f"question {k} about the quarter" for k in range(6)]
    result = await bench.run(server.url, workload=sessions, concurrency=1, prompts=prompts, seed=7)
    r = result.requests.sort_values("scheduled_ns").reset_index(drop=True)
    assert (r["status"] == "ok").all()
    assert list(r["session"]) == [0, 0, 0, 1, 1, 1]
    assert list(r["turn"]) == [0, 1, 2, 0, 1, 2]
    sent = bodies(server)
    assert len(sent) == 6
    for k, body in enumerate(sent):  # one conversation at a time: the server saw them in order
        turn = k % 3
        messages = body["messages"]
        assert len(messages) == 2 * turn + 1
        for t in range(turn):
            first = k - turn
            assert messages[2 * t] == {"role": "user", "content": prompts[first + t]}
            # the answer actually received, as the byte server streamed it
            assert messages[2 * t + 1] == {
                "role": "assistant",
                "content": f"answer number {first + t} here",
            }
        assert messages[-1] == {"role": "user", "content": prompts[k]}
    # Think times: drawn from the seed, and each turn scheduled that long after the previous
    # answer ended (the schedule, not the wall clock, is what is asserted).
    for k in range(6):
        session, turn = divmod(k, 3)
        assert r.loc[k, "think_s"] == pytest.approx(sessions.think(7, session, turn))
        if turn:
            assert 0.01 <= r.loc[k, "think_s"] <= 0.03
            previous_end = r.loc[k - 1, "scheduled_ns"] + r.loc[k - 1, "e2e_ms"] * 1e6
            gap_s = (r.loc[k, "scheduled_ns"] - previous_end) / 1e9
            assert gap_s == pytest.approx(r.loc[k, "think_s"], abs=1e-5)
            assert r.loc[k, "sent_ns"] >= r.loc[k, "scheduled_ns"]
    assert result.config["sessions"] == sessions.config()


async def test_sessions_against_the_simulator(runtime: ServerHandle) -> None:
    result = await bench.run(
        runtime.url,
        api_key=runtime.token,
        workload=Sessions(count=4, turns=3, think_time_s=0.005),
        concurrency=2,
        sim=SIM,
    )
    r = result.requests
    assert len(r) == 12
    assert (r["status"] == "ok").all()
    assert result.config["requests"] == 12
    # The history grows: each turn's prompt is longer than the one before, in every session.
    for _, conversation in r.sort_values("turn").groupby("session"):
        assert conversation["prompt_tokens"].is_monotonic_increasing
        assert conversation["prompt_tokens"].nunique() == 3


def test_sessions_cannot_be_sharded_or_open_loop() -> None:
    with pytest.raises(ValueError, match="cannot be sharded"):
        Benchmark("http://127.0.0.1:9", workload=Sessions(), concurrency=2, cluster=2)
    with pytest.raises(ValueError, match="closed loop per conversation"):
        Benchmark("http://127.0.0.1:9", workload=Sessions(), rate=5)


# -- prefixes ------------------------------------------------------------------------------


async def test_shared_prefix_on_every_request(server: ByteServer) -> None:
    server.play(answer("ok"))
    result = await bench.run(
        server.url, shared_prefix_tokens=40, requests=6, concurrency=2, prompt_tokens=5
    )
    assert (result.requests["status"] == "ok").all()
    systems = [body["messages"][0] for body in bodies(server)]
    assert all(m["role"] == "system" for m in systems)
    assert len({m["content"] for m in systems}) == 1
    assert len(tokenize(systems[0]["content"])) == 40  # the simulator's own count
    assert result.config["shared_prefix_tokens"] == 40


async def test_unique_prefixes_differ_per_request_and_per_run(server: ByteServer) -> None:
    server.play(answer("ok"))
    runs = [
        await bench.run(server.url, unique_prefix_tokens=12, requests=10, concurrency=2)
        for _ in range(2)
    ]
    prefixes = [body["messages"][0]["content"] for body in bodies(server)]
    assert len(prefixes) == 20
    assert len(set(prefixes)) == 20  # distinct within a run and across the two
    assert all(len(tokenize(p)) == 12 for p in prefixes)
    # Their first words differ too: a block-hashing prefix cache shares nothing across runs.
    first, second = prefixes[:10], prefixes[10:]
    assert {tuple(p.split()[:4]) for p in first}.isdisjoint(tuple(p.split()[:4]) for p in second)
    seeds = [run.config["prefix_seed"] for run in runs]
    assert seeds[0] != seeds[1]
    # A given prefix_seed repeats a run's prefixes exactly.
    again = Benchmark(server.url, unique_prefix_tokens=12, requests=10, prefix_seed=seeds[0])
    assert {again.load.system(i) for i in range(10)} == set(first)


# -- trace replay --------------------------------------------------------------------------


def write_trace(path: Path) -> list[dict[str, Any]]:
    lines = [
        {"timestamp": 0, "input_length": 40, "output_length": 5, "hash_ids": [0, 1, 2]},
        {"timestamp": 0, "input_length": 20, "output_length": 7, "hash_ids": [0, 3]},
        {"timestamp": 37, "input_length": 47, "output_length": 3, "hash_ids": [0, 1, 4]},
        {"timestamp": 120, "input_length": 16, "output_length": 9, "hash_ids": [5]},
        {"timestamp": 121, "input_length": 60, "output_length": 4, "hash_ids": [0, 1, 2, 6]},
        {"timestamp": 250, "input_length": 70, "output_length": 6, "hash_ids": [0, 3]},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return lines


async def test_trace_prompts_lengths_and_shared_blocks(server: ByteServer, tmp_path: Path) -> None:
    lines = write_trace(tmp_path / "t.jsonl")
    server.play(answer("ok"))
    result = await bench.run(server.url, trace=tmp_path / "t.jsonl", block_size=16)
    assert (result.requests["status"] == "ok").all()
    trace = read_trace(tmp_path / "t.jsonl", block_size=16)
    expected = {trace.prompt(i): i for i in range(len(lines))}
    assert len(expected) == len(lines)
    seen = set()
    for body in bodies(server):
        prompt = body["messages"][-1]["content"]
        index = expected[prompt]  # every body is the trace's request of that prompt
        seen.add(index)
        line = lines[index]
        assert len(tokenize(prompt)) == line["input_length"]
        assert body["max_tokens"] == line["output_length"]
        assert body["sim"]["tokens"] == line["output_length"]
    assert seen == set(range(len(lines)))
    # Requests sharing a hash id share that block's text, at the same place.
    words = {i: trace.prompt(i).split() for i in range(len(lines))}
    assert words[0][:32] == words[2][:32] == words[4][:32]  # blocks 0, 1
    assert words[0][32:40] == words[4][32:40]  # block 2 (request 0 has 8 tokens of it)
    assert words[1][:16] == words[0][:16]  # block 0
    assert words[1][16:20] == words[5][16:20]  # block 3
    assert words[0][16:20] != words[1][16:20]  # block 1 is not block 3
    assert words[2][32:47] != words[4][32:47]  # block 4 is not block 2
    assert words[5][:32] == words[1][:16] + trace.block(3).split()  # 0, 3, then its own tail
    assert len(words[5]) == 70


async def test_trace_replay_keeps_the_trace_schedule(runtime: ServerHandle) -> None:
    speed = 10.0
    result = await bench.run(
        runtime.url,
        api_key=runtime.token,
        trace=EXAMPLE_TRACE,
        trace_speed=speed,
        sim={"ttft_ms": 1, "itl_ms": 0.2},
    )
    trace = read_trace(EXAMPLE_TRACE)
    r = result.requests.sort_values("request")
    assert len(r) == len(trace) == 200
    assert (r["status"] == "ok").all()
    # The schedule is the trace's, to the nanosecond: offsets from the first request equal
    # the timestamps (ms, over the speed).
    offsets = (r["scheduled_ns"] - r["scheduled_ns"].min()).tolist()
    first = trace.requests[0].timestamp
    assert offsets == [round((q.timestamp - first) * 1e6 / speed) for q in trace.requests]
    assert list(r["completion_tokens"]) == [q.output_length for q in trace.requests]
    assert result.config["trace"]["requests"] == 200
    assert result.config["concurrency"] is None  # no cap unless asked
    # The first send's connection is made before the start, not at its timestamp.
    assert r["reused"].iloc[0]
    # How late the sends were is measured and reported (benchmarks/trace_replay.py gives the
    # figure); a test on a machine of unknown load asserts only that it is a distribution.
    error = result.send_error_ms
    assert error["p50"] is not None
    assert error["p99"] is not None
    assert 0 <= error["p50"] <= error["p99"] <= error["max"]


def test_trace_lines_are_checked(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 4, "output_length": 2}\n{"timestamp": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not a Mooncake trace line"):
        read_trace(bad)


# -- token counts --------------------------------------------------------------------------


def word_level(path: Path) -> Path:
    """A tiny WordLevel tokenizer.json that splits punctuation off words (no download)."""
    import tokenizers  # the dev extra installs it (glm_live[tokenizers])

    vocab = {"[UNK]": 0, "alpha": 1, "beta": 2, "gamma": 3, ",": 4, ";": 5, "delta": 6}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.save(str(path))
    return path


async def test_token_counts_by_a_tokenizer_or_words(runtime: ServerHandle, tmp_path: Path) -> None:
    path = word_level(tmp_path / "tokenizer.json")
    prompt = "alpha,beta;gamma delta"  # 2 words, 6 tokens
    counted = await bench.run(
        runtime.url, api_key=runtime.token, prompts=[prompt], requests=3, tokenizer=path, sim=SIM
    )
    words = await bench.run(
        runtime.url, api_key=runtime.token, prompts=[prompt], requests=3, sim=SIM
    )
    assert counted.config["token_counter"] == f"tokenizers:{path}"
    assert words.config["token_counter"] == "words"
    assert (counted.requests["input_tokens"] == 6).all()
    assert (words.requests["input_tokens"] == 2).all()
    # The answers too: the same text, counted both ways.
    assert (counted.requests["output_tokens"] != words.requests["output_tokens"]).any()
    assert "tokens counted as words" in repr(words)
    assert TokenCounter(path).count(prompt) == 6
    assert TokenCounter().count(prompt) == 2
