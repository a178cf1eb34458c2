"""Results in other tools' file formats, both ways: vLLM's ``bench serve --save-result`` JSON
and GuideLLM's benchmark report JSON.

Theory of operation
-------------------
An export writes what the other tool would have written had it measured the same run: each
number follows *that tool's* rule (:data:`.stats.DEFINITIONS`, computed once in
:func:`.stats.dialect_samples`), so a vLLM TTFT counts from the actual send and includes the
role chunk, while glm_live's counts from the scheduled send. A load reads such a file, ours or
the tool's own, into a :class:`BenchResult` whose ``requests`` frame uses glm_live's column
names (``ttft_ms``, ``tpot_ms``, ``e2e_ms``, token counts) filled with what the file has and NaN
otherwise, and whose ``config`` says which tool measured it (``source``) and by which rule
(``definitions``, per column). :func:`glm_live.bench.compare` quotes both.

Schemas followed
----------------
- vLLM: the ``result_json`` that ``vllm bench serve --save-result --save-detailed`` writes,
  ``vllm/benchmarks/serve.py`` (``main_async`` and ``benchmark``; before that
  ``benchmarks/benchmark_serving.py``): top-level fields, the per-request lists in seconds
  (``ttfts``, ``itls``, and since 0.33 ``latencies``, ``start_times``, ``queue_times``), the
  statistics in milliseconds. Checked against a file vLLM 0.33.0 wrote (tests/data).
- GuideLLM: the report ``guidellm run --output kind=json`` writes, ``metadata.version`` 2
  (GuideLLM 0.8.1): ``benchmarks[].metrics.<metric>.<status>`` distribution summaries and
  ``benchmarks[].requests.<status>[]`` per-request stats, times in seconds since the epoch.
  Checked against a report GuideLLM 0.8.1 wrote (tests/data). An export writes the subset of
  fields a reader needs (per-request timings and counts, the latency and token summaries),
  every one named and typed as GuideLLM names and types it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .results import WRITERS, BenchResult
from .stats import CHOICE_KINDS, DEFINITIONS, dialect_samples

__all__ = [
    "GUIDELLM_SCHEMA",
    "VLLM_PERCENTILES",
    "from_guidellm",
    "from_vllm",
    "load_foreign",
    "to_guidellm",
    "to_vllm",
]

#: The GuideLLM report schema we write and read: ``metadata.version`` and the release it
#: was checked against.
GUIDELLM_SCHEMA = {"version": 2, "guidellm_version": "0.8.1"}
#: The percentiles an export to vLLM writes (``--metric-percentiles 50,90,95,99``).
VLLM_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
_GUIDELLM_PERCENTILES = {
    "p001": 0.1,
    "p01": 1.0,
    "p05": 5.0,
    "p10": 10.0,
    "p25": 25.0,
    "p50": 50.0,
    "p75": 75.0,
    "p90": 90.0,
    "p95": 95.0,
    "p99": 99.0,
    "p999": 99.9,
}


def _glm_live_version() -> str:
    try:
        return version("glm_live")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0.0.0"


def _json_number(value: Any) -> Any:
    """NaN and infinities are not JSON: they travel as ``None``."""
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _run_config(result: BenchResult) -> dict[str, Any]:
    """How the run was asked for; for a combined result (:meth:`BenchResult.combine`), its
    first run's settings, with the ``by`` column of each level."""
    config = result.config
    runs = config.get("runs")
    if runs and isinstance(runs, list):
        return {**runs[0], "runs": len(runs), "by": config.get("by")}
    return config


def _measured_rows(result: BenchResult) -> pd.DataFrame:
    r = result.requests
    if r.empty:
        return r
    phase = r["phase"] if "phase" in r else pd.Series("measure", index=r.index)
    return r[phase == "measure"].sort_values("scheduled_ns")


def _per_request_gaps(result: BenchResult, requests: Sequence[int]) -> dict[int, list[float]]:
    """vLLM's ITL per request: seconds between consecutive choice-bearing messages."""
    ev = result.events
    ev = ev[ev["request"].isin(requests) & ev["kind"].isin(CHOICE_KINDS)]
    out: dict[int, list[float]] = {}
    for request, group in ev.sort_values(["request", "index"]).groupby("request"):
        gaps = np.diff(group["arrival_ns"].to_numpy(dtype="int64")) / 1e9
        out[int(request)] = [float(g) for g in gaps]
    return out


# -- vLLM -------------------------------------------------------------------------------------


def to_vllm(result: BenchResult) -> dict[str, Any]:
    """``result`` as ``vllm bench serve --save-result --save-detailed`` writes a run: TTFT from
    the actual send with the role chunk counting, ITL between choice-bearing messages, TPOT as
    ``(E2EL − TTFT) / (output tokens − 1)``; the requests outside the warm-up, in send order."""
    rows = _measured_rows(result)
    ok = rows[rows["status"] == "ok"]
    samples = dialect_samples(result.requests, result.events)
    # dialect_samples follows the order of result.requests' measured rows; index them by request.
    ok_order = result.requests[
        (result.requests["status"] == "ok") & (result.requests.get("phase", "measure") == "measure")
    ]["request"].to_list()
    ttft = dict(zip(ok_order, samples["vLLM", "ttft_ms"], strict=True))
    e2el = dict(zip(ok_order, samples["vLLM", "e2el_ms"], strict=True))
    gaps = _per_request_gaps(result, ok_order)
    config = _run_config(result)
    throughput = result.throughput()
    seconds = float(throughput.get("seconds", 0.0)) or float("nan")
    input_lens = [int(v) if v == v else 0 for v in rows["prompt_tokens"].fillna(0)]
    output_lens = [
        int(t) if s == "ok" and t == t else 0
        for t, s in zip(rows["completion_tokens"].fillna(0), rows["status"], strict=True)
    ]
    ttfts = [
        float(ttft[r]) / 1000 if s == "ok" else 0.0
        for r, s in zip(rows["request"], rows["status"], strict=True)
    ]
    itls = [
        gaps.get(int(r), []) if s == "ok" else []
        for r, s in zip(rows["request"], rows["status"], strict=True)
    ]
    errors = [
        "" if s == "ok" else f"{row.get('error_type') or ''}: {row.get('error') or ''}"
        for s, (_, row) in zip(rows["status"], rows.iterrows(), strict=True)
    ]
    total_input = int(ok["prompt_tokens"].fillna(0).sum())
    total_output = int(ok["completion_tokens"].fillna(0).sum())
    rate = config.get("rate")
    out: dict[str, Any] = {
        "date": time.strftime(
            "%Y%m%d-%H%M%S", time.localtime(config.get("started_wall") or time.time())
        ),
        "endpoint_type": "openai-chat",
        "backend": "openai-chat",
        "label": config.get("label"),
        "model_id": str(config.get("model") or "unknown"),
        "tokenizer_id": str(config.get("model") or "unknown"),
        "num_prompts": len(rows),
        "request_rate": float(rate) if rate is not None else "inf",
        "burstiness": float(config.get("burstiness") or 1.0),
        "max_concurrency": config.get("concurrency"),
        "duration": seconds,
        "completed": len(ok),
        "failed": len(rows) - len(ok),
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": len(ok) / seconds,
        "request_goodput": None,
        "output_throughput": total_output / seconds,
        "total_token_throughput": (total_input + total_output) / seconds,
        "input_lens": input_lens,
        "output_lens": output_lens,
        "ttfts": ttfts,
        "itls": itls,
        # vLLM 0.33 adds these three: E2EL, the send (perf_counter s) and the wait for a slot.
        "latencies": [
            float(e2el[r]) / 1000 if s == "ok" else 0.0
            for r, s in zip(rows["request"], rows["status"], strict=True)
        ],
        "start_times": [float(v) / 1e9 for v in rows["sent_ns"]],
        "queue_times": [float(v) / 1000 if v == v else 0.0 for v in rows["queue_ms"]],
        "generated_texts": ["" for _ in ttfts],  # the harness keeps timings, not text
        "errors": errors,
        **_vllm_peaks(result, ok),
    }
    tokens = ok.set_index("request")["completion_tokens"].astype(float)
    tpot = [(e2el[r] - ttft[r]) / (tokens[r] - 1) for r in ok_order if tokens.get(r, 0) > 1]
    pooled = [g * 1000 for r in ok_order for g in gaps.get(r, [])]
    for name, values in (
        ("ttft", [ttft[r] for r in ok_order]),
        ("tpot", tpot),
        ("itl", pooled),
        ("e2el", [e2el[r] for r in ok_order]),
    ):
        out.update(_vllm_statistics(name, values))
    out["glm_live"] = {
        "version": _glm_live_version(),
        "note": "exported by glm_live: vLLM's metric rules applied to glm_live's raw events",
        "url": config.get("url"),
    }
    return {k: _json_number(v) for k, v in out.items()}


def _vllm_peaks(result: BenchResult, ok: pd.DataFrame) -> dict[str, Any]:
    """vLLM's ``max_output_tokens_per_s`` and ``max_concurrent_requests``: the busiest
    one-second bucket from the first send, of token arrivals and of requests in flight."""
    if ok.empty:
        return {"max_output_tokens_per_s": 0.0, "max_concurrent_requests": 0}
    origin = float(ok["sent_ns"].min())
    ev = result.events
    token = ev[
        ev["request"].isin(ok["request"]) & (ev["kind"].isin(["reasoning", "content", "tool"]))
    ]
    ends = ok["sent_ns"].astype(float) + (ok["e2e_ms"] - ok["queue_ms"].fillna(0)) * 1e6
    buckets = int(np.ceil((float(ends.max()) - origin) / 1e9)) + 1
    tokens = np.bincount(
        ((token["arrival_ns"].astype(float) - origin) // 1e9).astype(int).clip(0, buckets - 1),
        minlength=buckets,
    )
    active = np.zeros(buckets, dtype=int)
    for start, end in zip(ok["sent_ns"].astype(float), ends, strict=True):
        active[int((start - origin) // 1e9) : int((end - origin) // 1e9) + 1] += 1
    return {
        "max_output_tokens_per_s": float(tokens.max()),
        "max_concurrent_requests": int(active.max()),
    }


def _vllm_statistics(name: str, values: Sequence[float]) -> dict[str, float]:
    """``mean_/median_/std_/pNN_<name>_ms`` as vLLM computes them (``np.… (values or 0)``)."""
    data = np.asarray(values, dtype=float) if len(values) else np.zeros(1)
    out = {
        f"mean_{name}_ms": float(np.mean(data)),
        f"median_{name}_ms": float(np.median(data)),
        f"std_{name}_ms": float(np.std(data)),
    }
    for p in VLLM_PERCENTILES:
        word = str(int(p)) if int(p) == p else str(p)
        out[f"p{word}_{name}_ms"] = float(np.percentile(data, p))
    return out


def from_vllm(data: dict[str, Any] | str | Path) -> BenchResult:
    """A vLLM ``--save-result`` file (or its parsed JSON) as a :class:`BenchResult`.

    Per-request rows need ``--save-detailed`` (``ttfts``, ``itls``, ``output_lens``); without
    them the result has no rows and only ``config["reported"]``, the file's statistics.
    ``e2e_ms`` is vLLM's E2EL (``latencies``, vLLM ≥ 0.33; before, TTFT plus the request's
    ITLs), ``tpot_ms`` vLLM's ``(E2EL − TTFT) / (output tokens − 1)``, ``queue_ms`` its
    ``queue_times`` (the wait for a ``--max-concurrency`` slot, outside its latencies).
    """
    data = _read(data)
    ttfts = data.get("ttfts") or []
    itls = data.get("itls") or [[] for _ in ttfts]
    n = len(ttfts)
    errors = data.get("errors") or ["" for _ in range(n)]
    outputs = data.get("output_lens") or [None] * n
    inputs = data.get("input_lens") or [None] * n
    latencies = data.get("latencies")  # vLLM ≥ 0.33; before, E2EL is TTFT + the ITLs
    starts = data.get("start_times") or [0.0] * n
    queues = data.get("queue_times")
    rows, events = [], []
    for i in range(n):
        ok = not errors[i]
        first = float(ttfts[i]) * 1e9 if ok else math.nan
        gaps = [float(g) * 1e9 for g in (itls[i] or [])]
        arrivals = np.cumsum([first, *gaps]) if ok else np.array([])
        e2e = (arrivals[-1] / 1e6) if ok else math.nan
        if ok and latencies is not None:
            e2e = float(latencies[i]) * 1000
        out_tokens = outputs[i] if ok else None
        sent = round(float(starts[i]) * 1e9)
        queue = float(queues[i]) if queues is not None else math.nan
        rows.append(
            {
                "request": i,
                "phase": "measure",
                "status": "ok" if ok else "error",
                "error": errors[i] or None,
                "scheduled_ns": sent - round(queue * 1e9) if queue == queue else sent,
                "sent_ns": sent,
                # vLLM starts its clocks once a slot is free: the wait is apart, not in them.
                "queue_ms": queue * 1000,
                "ttft_ms": first / 1e6,
                "tpot_ms": (e2e - first / 1e6) / (out_tokens - 1)
                if out_tokens and out_tokens > 1
                else math.nan,
                "e2e_ms": e2e,
                "prompt_tokens": inputs[i],
                "completion_tokens": out_tokens,
            }
        )
        for index, arrival in enumerate(arrivals):
            events.append(
                {
                    "request": i,
                    "index": index,
                    "arrival_ns": sent + round(arrival),
                    "kind": "content",
                }
            )
    requests = pd.DataFrame(rows, columns=_REQUEST_COLUMNS)
    stats = {k: v for k, v in data.items() if not isinstance(v, list)}
    rate = data.get("request_rate")
    config = {
        "source": "vLLM bench serve",
        "source_version": data.get("vllm_version") or data.get("version"),
        "url": (data.get("glm_live") or {}).get("url") or data.get("base_url"),
        "model": data.get("model_id"),
        "concurrency": data.get("max_concurrency"),
        "rate": None if rate in (None, "inf") else float(rate),
        "requests": data.get("num_prompts", n),
        "date": data.get("date"),
        "reported": stats,
        "definitions": {
            "ttft_ms": DEFINITIONS["vLLM", "ttft_ms"],
            "tpot_ms": DEFINITIONS["vLLM", "tpot_ms"],
            "e2e_ms": DEFINITIONS["vLLM", "e2el_ms"],
            "itl_ms": DEFINITIONS["vLLM", "itl_ms"],
        },
    }
    return BenchResult(requests, _events_frame(events), config, _no_calibration("vLLM"))


# -- GuideLLM ---------------------------------------------------------------------------------


def to_guidellm(results: BenchResult | Sequence[BenchResult]) -> dict[str, Any]:
    """One GuideLLM report (``metadata.version`` 2) with a benchmark per result: per-request
    stats and distribution summaries by GuideLLM's rules (TTFT from the request start, ITL
    ``(last − first token) / (output tokens − 1)``, TPOT ``(last token − start) / output
    tokens``). Times are seconds since the epoch, from the run's wall-clock stamps."""
    runs = [results] if isinstance(results, BenchResult) else list(results)
    return {
        "metadata": {
            "version": GUIDELLM_SCHEMA["version"],
            "guidellm_version": GUIDELLM_SCHEMA["guidellm_version"],
            "exported_by": f"glm_live {_glm_live_version()}",
        },
        "config": {"benchmarks": []},
        "benchmarks": [_guidellm_benchmark(r, i) for i, r in enumerate(runs)],
        "conclusions": [],
    }


def _wall_s(result: BenchResult, perf_ns: float) -> float:
    """A ``perf_counter_ns`` stamp as seconds since the epoch (the events carry both)."""
    ev = result.events
    if not ev.empty and "arrival_wall_ns" in ev:
        offset = float(ev["arrival_wall_ns"].iloc[0]) - float(ev["arrival_ns"].iloc[0])
    else:
        offset = (_run_config(result).get("started_wall") or 0.0) * 1e9
    return (perf_ns + offset) / 1e9


def _guidellm_benchmark(result: BenchResult, index: int) -> dict[str, Any]:
    rows = _measured_rows(result)
    ev = result.events[result.events["kind"].isin(["reasoning", "content", "tool"])]
    first = ev.groupby("request")["arrival_ns"].min()
    last = ev.groupby("request")["arrival_ns"].max()
    successful: list[dict[str, Any]] = []
    errored: list[dict[str, Any]] = []
    for _, row in rows.iterrows():
        r = int(row["request"])
        start = float(row["scheduled_ns"])
        end = start + float(row["e2e_ms"]) * 1e6 if row["e2e_ms"] == row["e2e_ms"] else start
        ft, lt = first.get(r), last.get(r)
        out_tokens = row.get("completion_tokens")
        out_tokens = int(out_tokens) if out_tokens == out_tokens and out_tokens is not None else 0
        stats: dict[str, Any] = {
            "type_": "generative_request_stats",
            "request_id": f"glm-live-{r}",
            "info": {
                "status": "completed" if row["status"] == "ok" else "errored",
                "error": None if row["status"] == "ok" else str(row.get("error")),
                "timings": {
                    "targeted_start": _wall_s(result, start),
                    "request_start": _wall_s(result, start),
                    "first_token_iteration": _wall_s(result, ft) if ft is not None else None,
                    "last_token_iteration": _wall_s(result, lt) if lt is not None else None,
                    "request_end": _wall_s(result, end),
                },
            },
            "request_start_time": _wall_s(result, start),
            "request_end_time": _wall_s(result, end),
            "request_latency": (end - start) / 1e9,
            "prompt_tokens": _json_number(row.get("prompt_tokens")),
            "output_tokens": out_tokens,
            "time_to_first_token_ms": (ft - start) / 1e6 if ft is not None else None,
            "inter_token_latency_ms": (lt - ft) / 1e6 / (out_tokens - 1)
            if ft is not None and lt is not None and out_tokens > 1
            else None,
            "time_per_output_token_ms": (lt - start) / 1e6 / out_tokens
            if lt is not None and out_tokens
            else None,
        }
        (successful if row["status"] == "ok" else errored).append(
            {k: _json_number(v) for k, v in stats.items()}
        )
    config = _run_config(result)
    strategy: dict[str, Any]
    if config.get("rate") is not None:
        kind = "poisson" if config.get("arrivals", "poisson") == "poisson" else "constant"
        strategy = {"type_": kind, "rate": float(config["rate"])}
        if config.get("concurrency"):
            strategy["max_concurrency"] = config["concurrency"]
    else:
        strategy = {
            "type_": "concurrent",
            "streams": config.get("concurrency"),
            "max_concurrency": config.get("concurrency"),
        }
    start_s = min((s["request_start_time"] for s in successful + errored), default=0.0)
    end_s = max((s["request_end_time"] for s in successful + errored), default=0.0)
    duration = max(end_s - start_s, 1e-9)

    def summary(field: str) -> dict[str, Any]:
        by_status = {
            "successful": [s[field] for s in successful],
            "errored": [s[field] for s in errored],
            "incomplete": [],
            "total": [s[field] for s in successful + errored],
        }
        return {k: _distribution([v for v in vs if v is not None]) for k, vs in by_status.items()}

    tokens = sum(s["output_tokens"] for s in successful)
    metrics = {
        "request_totals": {
            "successful": len(successful),
            "errored": len(errored),
            "incomplete": 0,
            "total": len(successful) + len(errored),
        },
        "requests_per_second": {"successful": {"mean": len(successful) / duration}},
        "output_tokens_per_second": {"successful": {"mean": tokens / duration}},
        "request_latency": summary("request_latency"),
        "time_to_first_token_ms": summary("time_to_first_token_ms"),
        "inter_token_latency_ms": summary("inter_token_latency_ms"),
        "time_per_output_token_ms": summary("time_per_output_token_ms"),
        "prompt_token_count": summary("prompt_tokens"),
        "output_token_count": summary("output_tokens"),
    }
    return {
        "type_": "generative_benchmark",
        "config": {
            "id_": f"glm-live-{index}",
            "run_index": index,
            "strategy": strategy,
            "backend": {
                "kind": "openai_http",
                "target": config.get("url"),
                "model": config.get("model"),
            },
        },
        "start_time": start_s,
        "end_time": end_s,
        "duration": duration,
        "metrics": metrics,
        "requests": {
            "successful": successful,
            "errored": errored,
            "incomplete": [],
            "total": None,
        },
        "warnings": [],
    }


def _distribution(values: Sequence[float]) -> dict[str, Any]:
    """GuideLLM's ``DistributionSummary`` fields for ``values``."""
    data = np.asarray(values, dtype=float)
    if not len(data):
        zero = dict.fromkeys(_GUIDELLM_PERCENTILES, 0.0)
        return {
            "mean": 0.0,
            "median": 0.0,
            "variance": 0.0,
            "std_dev": 0.0,
            "min": 0.0,
            "max": 0.0,
            "count": 0,
            "total_sum": 0.0,
            "percentiles": zero,
        }
    return {
        "mean": float(data.mean()),
        "median": float(np.median(data)),
        "variance": float(data.var()),
        "std_dev": float(data.std()),
        "min": float(data.min()),
        "max": float(data.max()),
        "count": len(data),
        "total_sum": float(data.sum()),
        "percentiles": {k: float(np.percentile(data, q)) for k, q in _GUIDELLM_PERCENTILES.items()},
    }


def from_guidellm(data: dict[str, Any] | str | Path, benchmark: int | None = None) -> Any:
    """A GuideLLM report (or its parsed JSON) as :class:`BenchResult` objects: a list, one per
    benchmark in the report, or the one numbered ``benchmark``.

    Columns follow glm_live's meaning, filled by GuideLLM's numbers: ``ttft_ms`` its TTFT,
    ``tpot_ms`` its *ITL* (the same rule as glm_live's TPOT), ``e2e_ms`` its request latency;
    its own TPOT (which includes the TTFT) is kept as ``guidellm_tpot_ms``.

    Raises:
        ValueError: Not a GuideLLM report, or a schema version this does not read.
    """
    data = _read(data)
    meta = data.get("metadata") or {}
    if "benchmarks" not in data:
        msg = "not a GuideLLM report: no 'benchmarks'"
        raise ValueError(msg)
    schema = meta.get("version", 1)
    if schema not in (1, 2):
        msg = f"GuideLLM report schema version {schema} is not one this reads (1, 2)"
        raise ValueError(msg)
    results = [_from_guidellm_benchmark(b, meta, i) for i, b in enumerate(data["benchmarks"])]
    return results if benchmark is None else results[benchmark]


def _from_guidellm_benchmark(b: dict[str, Any], meta: dict[str, Any], index: int) -> BenchResult:
    rows, events = [], []
    by_status = b.get("requests") or {}
    number = 0
    for status in ("successful", "errored", "incomplete"):
        for req in by_status.get(status) or []:
            timings = (req.get("info") or {}).get("timings") or {}
            start_s = req.get("request_start_time") or timings.get("request_start")
            end_s = req.get("request_end_time") or timings.get("request_end")
            start_ns = round(start_s * 1e9) if start_s else 0
            latency = req.get("request_latency")
            if latency is None and start_s and end_s:
                latency = end_s - start_s
            targeted = timings.get("targeted_start")
            rows.append(
                {
                    "request": number,
                    "phase": "measure",
                    "status": "ok" if status == "successful" else "error",
                    "error": (req.get("info") or {}).get("error"),
                    "scheduled_ns": start_ns,
                    "sent_ns": start_ns,
                    # GuideLLM counts from the request start: the wait after the targeted
                    # start is its own column, not in its latencies.
                    "queue_ms": (start_s - targeted) * 1000 if start_s and targeted else math.nan,
                    "ttft_ms": _nan(req.get("time_to_first_token_ms")),
                    "tpot_ms": _nan(req.get("inter_token_latency_ms")),
                    "e2e_ms": _nan(latency) * 1000,
                    "prompt_tokens": req.get("prompt_tokens"),
                    "completion_tokens": req.get("output_tokens"),
                }
            )
            rows[-1]["guidellm_tpot_ms"] = _nan(req.get("time_per_output_token_ms"))
            for i, key in enumerate(("first_token_iteration", "last_token_iteration")):
                if timings.get(key):
                    events.append(
                        {
                            "request": number,
                            "index": i,
                            "arrival_ns": round(timings[key] * 1e9),
                            "kind": "content",
                        }
                    )
            number += 1
    requests = pd.DataFrame(rows, columns=[*_REQUEST_COLUMNS, "guidellm_tpot_ms"])
    cfg = b.get("config") or {}
    strategy = cfg.get("strategy") or {}
    backend = cfg.get("backend") or {}
    metrics = b.get("metrics") or {}
    reported = {
        name: (metrics.get(name) or {}).get("successful")
        for name in (
            "requests_per_second",
            "output_tokens_per_second",
            "time_to_first_token_ms",
            "inter_token_latency_ms",
            "time_per_output_token_ms",
            "request_latency",
        )
    }
    config = {
        "source": "GuideLLM",
        "source_version": meta.get("guidellm_version"),
        "schema_version": meta.get("version"),
        "url": backend.get("target"),
        "model": backend.get("model"),
        "concurrency": strategy.get("streams") or strategy.get("max_concurrency"),
        "rate": strategy.get("rate"),
        "strategy": strategy.get("type_"),
        "requests": len(rows),
        "benchmark": index,
        "started_wall": b.get("start_time"),
        "reported": reported,
        "definitions": {
            "ttft_ms": DEFINITIONS["GuideLLM", "ttft_ms"],
            "tpot_ms": DEFINITIONS["GuideLLM", "itl_ms"] + " (GuideLLM calls it ITL)",
            "e2e_ms": "request end − request start (GuideLLM's request_latency)",
            "guidellm_tpot_ms": DEFINITIONS["GuideLLM", "tpot_ms"],
        },
    }
    return BenchResult(requests, _events_frame(events), config, _no_calibration("GuideLLM"))


def load_foreign(path: str | Path) -> BenchResult | list[BenchResult]:
    """A vLLM or GuideLLM JSON file, told apart by its fields."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and "benchmarks" in data:
        return from_guidellm(data)  # type: ignore[no-any-return]
    if isinstance(data, dict) and ("ttfts" in data or "mean_ttft_ms" in data):
        return from_vllm(data)
    msg = f"{path}: neither a vLLM --save-result file nor a GuideLLM report"
    raise ValueError(msg)


WRITERS["export:vllm"] = to_vllm
WRITERS["export:guidellm"] = to_guidellm


# -- shared -----------------------------------------------------------------------------------

_REQUEST_COLUMNS = [
    "request",
    "phase",
    "status",
    "error",
    "scheduled_ns",
    "sent_ns",
    "queue_ms",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "prompt_tokens",
    "completion_tokens",
]


def _read(data: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    parsed = json.loads(Path(data).read_text())
    if not isinstance(parsed, dict):
        msg = f"{data}: a JSON object was expected"
        raise ValueError(msg)
    return parsed


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def _events_frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(events, columns=["request", "index", "arrival_ns", "kind"])
    frame["tokens"] = (frame["kind"] == "content").astype("int8")
    return frame


def _no_calibration(tool: str) -> dict[str, Any]:
    return {
        "timing_error_p50_ms": None,
        "timing_error_p99_ms": None,
        "loop_lag_p50_ms": None,
        "loop_lag_p99_ms": None,
        "warning": None,
        "note": f"measured by {tool}: it does not calibrate its timing against server stamps",
    }
