"""What a benchmark sends, whichever strategy sends it: the resolved options (:class:`Load`),
one process's share of them (:class:`Shard`), and what every strategy offers (:class:`Strategy`).

A :class:`Load` is a value: the same in every process that drives part of a run, so a request
(its prompt, its body, whether it is warm-up, its arrival) is the same whoever sends it.
Nothing here does I/O but :func:`prompts_from`, which reads a prompt file.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .results import BenchResult
from .workloads import Sessions, Trace, counter_name, seeded, text_of, unique_prefix

__all__ = [
    "Load",
    "Progress",
    "Shard",
    "Strategy",
    "arrival_offsets",
    "chat_url",
    "monotonic_at",
    "prompts_from",
    "snapshot",
]

#: Called with a :func:`snapshot` as the run goes (every 0.25 s locally, as each worker's
#: shard comes back on a cluster).
Progress = Callable[[dict[str, Any]], None]

_WORDS = (
    "latency",
    "account",
    "review",
    "revenue",
    "stream",
    "agent",
    "quarter",
    "risk",
    "trend",
    "report",
    "metric",
    "growth",
    "customer",
    "usage",
)


def monotonic_at(wall_ns: int, tries: int = 8) -> int:
    """The ``perf_counter_ns`` reading at the wall-clock instant ``wall_ns`` (``time.time_ns``).

    The two clocks are read as wall, monotonic, wall, a few times, and the tightest bracket
    is kept: a process preempted between two reads (on a loaded machine, for a millisecond or
    more) would otherwise shift every time it derives from this by that long.
    """
    best: tuple[int, int, int] | None = None
    for _ in range(tries):
        before = time.time_ns()
        mono = time.perf_counter_ns()
        after = time.time_ns()
        if best is None or after - before < best[0]:
            best = (after - before, mono, (before + after) // 2)
        if after - before <= 20_000:  # 20 µs: as tight as it gets
            break
    assert best is not None
    _, mono, wall = best
    return mono + (wall_ns - wall)


@dataclass(frozen=True)
class Shard:
    """One process's share of a run that several processes drive together.

    Attributes:
        indices: The global request indices this process sends, in order. Prompts cycle by
            global index and requests below the run's ``warmup`` are the warm-up, so a
            request is the same whichever process sends it.
        offsets: Open loop: each request's arrival, in seconds after ``start_wall_ns`` (drawn
            once for the whole run). ``None`` in a closed loop.
        start_wall_ns: The common start, on the wall clock (``time.time_ns()``); each process
            turns it into an instant on its own monotonic clock and waits for it. ``None``:
            start at once.
    """

    indices: tuple[int, ...]
    offsets: tuple[float, ...] | None = None
    start_wall_ns: int | None = None

    def __post_init__(self) -> None:
        if self.offsets is not None and len(self.offsets) != len(self.indices):
            msg = (
                f"a shard's offsets ({len(self.offsets)}) must match its indices "
                f"({len(self.indices)}), one arrival per request"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class Load:
    """A run's options, resolved: what to send, how fast, and how long to wait.

    Attributes:
        url: The chat-completions URL.
        concurrency: Closed loop: the number of workers; open loop: the cap on requests in
            flight (``None``: no cap).
        requests: Requests measured, after the warm-up.
        rate: Open loop: requests per second (``None``: closed loop).
        arrivals: The open loop's arrival process: ``poisson``, ``gamma`` or ``constant``.
        burstiness: The gamma process's shape (1 is Poisson; below 1, burstier).
        warmup: Requests sent first and marked ``warmup``.
        prompts: The prompts, cycled by global request index.
        model: The ``model`` of every request.
        seed: Seeds the arrival schedule and generated prompts.
        params: Extra request-body fields (e.g. ``sim``, ``max_tokens``).
        timeout: Seconds one response may take, from the request to the end of its body.
        api_key: Sent as a bearer token; never in the repr (a dask worker logs a failed
            task's arguments) nor in :meth:`config`.
        shared_prefix_tokens: A system prompt of this many tokens, the same on every request
            (drawn from ``seed``): what a prefix cache should serve.
        unique_prefix_tokens: A system prompt of this many tokens unique to each request and
            to each run (drawn from ``prefix_seed``): cache busting. It comes before the
            shared prefix, when both are given.
        prefix_seed: Seeds the unique prefixes (the runner draws it at random unless given).
        trace: Replay this trace: its arrivals, lengths and shared blocks
            (:class:`~.workloads.Trace`); ``requests`` and ``rate`` do not apply.
        sessions: Multi-turn conversations (:class:`~.workloads.Sessions`); ``concurrency``
            is the conversations in flight.
        tokenizer: What counts tokens client-side (:class:`~.workloads.TokenCounter`):
            ``None`` for words, ``"tiktoken:<encoding>"`` or a ``tokenizer.json`` path.
    """

    url: str
    concurrency: int | None = 1
    requests: int = 100
    rate: float | None = None
    arrivals: str = "poisson"
    burstiness: float = 1.0
    warmup: int = 0
    prompts: tuple[str, ...] = ("hello",)
    model: str = "glm-4.6"
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    timeout: float = 300.0
    api_key: str | None = field(default=None, repr=False)
    shared_prefix_tokens: int = 0
    unique_prefix_tokens: int = 0
    prefix_seed: int | None = None
    trace: Trace | None = None
    sessions: Sessions | None = None
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if self.trace is not None and self.sessions is not None:
            msg = "a run replays a trace or holds sessions, not both"
            raise ValueError(msg)
        if self.sessions is not None and self.rate is not None:
            msg = (
                "sessions run a closed loop per conversation (each turn waits for the "
                "previous answer): give concurrency=..., the conversations in flight, not rate"
            )
            raise ValueError(msg)
        if self.trace is None and self.rate is None and not self.concurrency:
            msg = "give a concurrency (closed loop) or a rate (open loop)"
            raise ValueError(msg)
        if self.arrivals not in ("poisson", "gamma", "constant"):
            msg = f"arrivals must be poisson, gamma or constant, got {self.arrivals!r}"
            raise ValueError(msg)

    @property
    def total(self) -> int:
        """Requests in the whole run, warm-up included."""
        if self.trace is not None:
            return len(self.trace)
        if self.sessions is not None:
            return self.sessions.total
        return self.warmup + self.requests

    @property
    def open_loop(self) -> bool:
        """Whether arrivals are scheduled in advance (a rate, or a trace)."""
        return self.trace is not None or self.rate is not None

    @property
    def per_request(self) -> bool:
        """Whether every request has a body of its own (not one per prompt, cycled)."""
        return self.trace is not None or self.unique_prefix_tokens > 0

    def config(self) -> dict[str, Any]:
        """How the run was asked for, as results report it (no API key)."""
        return {
            "url": self.url,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "rate": self.rate,
            "arrivals": self.arrivals,
            "burstiness": self.burstiness,
            "warmup": self.warmup,
            "model": self.model,
            "seed": self.seed,
            "params": self.params,
            "token_counter": counter_name(self.tokenizer),
            **self._workload_config(),
        }

    def _workload_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.shared_prefix_tokens:
            out["shared_prefix_tokens"] = self.shared_prefix_tokens
        if self.unique_prefix_tokens:
            out["unique_prefix_tokens"] = self.unique_prefix_tokens
            out["prefix_seed"] = self.prefix_seed
        if self.trace is not None:
            out["trace"] = self.trace.config()
        if self.sessions is not None:
            out["sessions"] = self.sessions.config()
        return out

    def headers(self) -> dict[str, str]:
        """The request headers besides the ones every request has."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def prompt(self, index: int) -> str:
        """The user prompt of global request ``index``: the trace's, or the prompts' (cycled)."""
        if self.trace is not None:
            return self.trace.prompt(index)
        return self.prompts[index % len(self.prompts)]

    def system(self, index: int) -> str:
        """The system prompt of global request ``index`` (unique prefix, then shared), or ``""``."""
        parts = []
        if self.unique_prefix_tokens:
            parts.append(
                unique_prefix(self.unique_prefix_tokens, self.prefix_seed or 0, index, self.total)
            )
        if self.shared_prefix_tokens:
            parts.append(_shared_prefix(self.seed, self.shared_prefix_tokens))
        return " ".join(parts)

    def body(self, index: int, history: Sequence[dict[str, Any]] = ()) -> bytes:
        """The JSON body of global request ``index``; ``history``: a conversation's earlier
        messages, sent between the system prompt and this prompt."""
        system = self.system(index)
        messages = [{"role": "system", "content": system}] if system else []
        messages.extend(history)
        messages.append({"role": "user", "content": self.prompt(index)})
        params = self.params if self.trace is None else self.trace.params(index, self.params)
        body = {"model": self.model, "messages": messages, "stream": True, **params}
        return json.dumps(body).encode()

    def schedule(self) -> list[float] | None:
        """The open loop's arrivals for the whole run (s after the start), drawn from the
        seed, or a trace's; ``None`` in a closed loop."""
        if self.trace is not None:
            return self.trace.offsets()
        if self.rate is None:
            return None
        return arrival_offsets(self.total, self.rate, self.arrivals, self.burstiness, self.seed)


class Strategy(Protocol):
    """How a :class:`Load` is run: in this process, or sharded over workers."""

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled."""

    def cancel(self) -> None:
        """Stop the run; :meth:`run` returns what it has."""

    async def run(self, progress: Progress | None = None) -> BenchResult:
        """Run the load to the end (or to a cancel) and return the result."""


def _shared_prefix(seed: int, tokens: int) -> str:
    return text_of(tokens, seeded(seed, "shared-prefix"))


def arrival_offsets(n: int, rate: float, kind: str, burstiness: float, seed: int) -> list[float]:
    """``n`` arrivals at ``rate`` per second (s from the start): ``poisson``, ``gamma`` (shape
    ``burstiness``) or ``constant``, the same for the same seed."""
    rng = random.Random(seed)
    t = 0.0
    times = []
    for _ in range(n):
        times.append(t)
        if kind == "constant":
            t += 1.0 / rate
        elif kind == "gamma":
            t += rng.gammavariate(burstiness, 1.0 / (rate * burstiness))
        else:
            t += rng.expovariate(rate)
    return times


def snapshot(done: int, total: int, ttfts_ms: Sequence[float], errors: int) -> dict[str, Any]:
    """A progress report: requests done of total, running TTFT p50/p99, errors."""
    ordered = sorted(ttfts_ms)

    def pick(q: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

    return {
        "done": done,
        "total": total,
        "ttft_p50_ms": pick(0.5),
        "ttft_p99_ms": pick(0.99),
        "errors": errors,
    }


def chat_url(url: str) -> str:
    """The chat-completions URL for a runtime root URL or an OpenAI-compatible base URL."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    _, _, rest = url.partition("://")
    if "/" not in rest:  # a bare root: the runtime's OpenAI-style path
        return url + "/v1/chat/completions"
    return url + "/chat/completions"


def prompts_from(
    prompts: str | Path | Sequence[str] | None, prompt_tokens: int | None, seed: int
) -> list[str]:
    """Prompts from a list, a file (one per line, or JSONL with ``prompt``), or generated to
    about ``prompt_tokens`` tokens (a word is counted as a token)."""
    if prompts is None:
        rng = random.Random(seed)
        length = prompt_tokens or 16
        return [" ".join(rng.choice(_WORDS) for _ in range(length)) for _ in range(64)]
    if isinstance(prompts, str | Path) and Path(prompts).is_file():
        lines = [line for line in Path(prompts).read_text().splitlines() if line.strip()]
        out = []
        for line in lines:
            if line.lstrip().startswith("{"):
                out.append(str(json.loads(line).get("prompt", "")))
            else:
                out.append(line)
        return out
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, Path):
        msg = f"no prompt file at {prompts}"
        raise FileNotFoundError(msg)
    return list(prompts)
