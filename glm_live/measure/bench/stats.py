"""Statistics for latency samples: percentiles with bootstrap confidence intervals, and the
metric dialects of vLLM, GuideLLM and genai-perf computed from the same raw events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CHOICE_KINDS",
    "DEFINITIONS",
    "PERCENTILES",
    "bootstrap_ci",
    "describe",
    "dialect_samples",
    "dialects",
    "permutation_test",
]

#: The percentiles every summary reports.
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    q: float,
    *,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile-bootstrap confidence interval for the ``q``-th percentile."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    if len(data) < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    samples = rng.choice(data, size=(resamples, len(data)), replace=True)
    estimates = np.percentile(samples, q, axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)


def describe(values: Sequence[float] | np.ndarray, *, ci: bool = True) -> dict[str, float]:
    """Count, mean, p50/p90/p95/p99/p99.9 and (with ``ci``) 95% bootstrap bounds of each."""
    data = np.asarray(values, dtype=float)
    data = data[~np.isnan(data)]
    out: dict[str, float] = {
        "count": float(len(data)),
        "mean": float(data.mean()) if len(data) else np.nan,
    }
    for q in PERCENTILES:
        name = f"p{q:g}"
        out[name] = float(np.percentile(data, q)) if len(data) else np.nan
        if ci:
            out[f"{name}_low"], out[f"{name}_high"] = bootstrap_ci(data, q)
    return out


def permutation_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    statistic: str = "median",
    resamples: int = 2000,
    seed: int = 0,
) -> float:
    """Two-sided p-value that ``a`` and ``b`` differ in their median (or mean)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) < 2 or len(y) < 2:
        return np.nan
    stat = np.median if statistic == "median" else np.mean
    observed = abs(stat(x) - stat(y))
    pooled = np.concatenate([x, y])
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(resamples):
        rng.shuffle(pooled)
        if abs(stat(pooled[: len(x)]) - stat(pooled[len(x) :])) >= observed:
            hits += 1
    return (hits + 1) / (resamples + 1)


#: The SSE message kinds vLLM counts as "choice-bearing" (its TTFT and ITL stamps).
CHOICE_KINDS = ("role", "reasoning", "content", "tool", "usage")

#: What each tool's metric measures, from which stamp to which: ``(tool, metric)`` keys. The
#: one place these rules are written; :func:`dialects`, the HTML report and the exports quote it.
DEFINITIONS = {
    ("glm_live", "ttft_ms"): "first token of any kind (reasoning, content, tool) − scheduled send",
    ("glm_live", "ttft_content_ms"): "first content token − scheduled send",
    ("glm_live", "tpot_ms"): "(last token − first token) / (usage.completion_tokens − 1)",
    ("glm_live", "e2e_ms"): "end of the response − scheduled send",
    ("glm_live", "queue_ms"): "actual send − scheduled send (time spent waiting for a slot)",
    ("glm_live", "ttft_reasoning_ms"): "first reasoning token − scheduled send",
    ("glm_live", "ttft_first_byte_ms"): "first response byte − scheduled send",
    (
        "glm_live",
        "requests_per_s",
    ): "measured requests finished / (last end − first scheduled send)",
    ("glm_live", "output_tokens_per_s"): "Σ usage.completion_tokens / the same window",
    ("glm_live", "timing_error_ms"): "client arrival (wall clock) − the server's x_sent_ns stamp, "
    "per SSE message: network + the harness's own delay",
    ("glm_live", "loop_lag_ms"): "how late the client's event loop woke from a timed sleep",
    ("vLLM", "ttft_ms"): "first SSE message with non-empty choices (the role chunk counts) − send",
    ("vLLM", "itl_ms"): "gap between consecutive choice-bearing messages, pooled, not divided",
    ("vLLM", "tpot_ms"): "(E2EL − TTFT) / (output tokens − 1), per request",
    ("vLLM", "e2el_ms"): "last token-bearing chunk − send (usage-only chunk excluded)",
    ("GuideLLM", "ttft_ms"): "first token-bearing iteration (reasoning counts) − request start",
    ("GuideLLM", "itl_ms"): "(last token − first token) / (output tokens − 1)  [vLLM's TPOT]",
    ("GuideLLM", "tpot_ms"): "(last token − request start) / output tokens  [includes TTFT]",
    ("genai-perf", "ttft_ms"): "first non-empty response (content) − request start",
    ("genai-perf", "itl_ms"): "(latency − TTFT) / (OSL − 1), latency to the last response",
}


def dialect_samples(
    requests: pd.DataFrame, events: pd.DataFrame
) -> dict[tuple[str, str], np.ndarray]:
    """Each tool's samples, keyed ``(tool, metric)`` as in :data:`DEFINITIONS`: one value per
    measured request (in the order of ``requests``), except vLLM's ITL, pooled over gaps.

    The one place where each tool's rule is computed: :func:`dialects` summarises these, and
    the exports (:mod:`.interop`) write them in the tool's own file format."""
    measured = requests[
        (requests["status"] == "ok") & (requests.get("phase", "measure") == "measure")
    ]
    start = measured["scheduled_ns"].astype("float64").to_numpy()
    sent = measured["sent_ns"].astype("float64").to_numpy()
    tokens = measured["completion_tokens"].astype("float64").to_numpy()
    ev = events[events["request"].isin(measured["request"])]
    choice = ev[ev["kind"].isin(CHOICE_KINDS)]
    token = ev[ev["kind"].isin(["reasoning", "content", "tool"])]
    first_choice = choice.groupby("request")["arrival_ns"].min()
    first_token = token.groupby("request")["arrival_ns"].min()
    last_token = token.groupby("request")["arrival_ns"].max()
    first_content = ev[ev["kind"] == "content"].groupby("request")["arrival_ns"].min()
    last_content = ev[ev["kind"] == "content"].groupby("request")["arrival_ns"].max()
    index = measured["request"]

    def aligned(series: pd.Series) -> np.ndarray:
        values: np.ndarray = series.reindex(index).to_numpy(dtype=float)
        return values

    ft, lt = aligned(first_token), aligned(last_token)
    out: dict[tuple[str, str], np.ndarray] = {}
    out["glm_live", "ttft_ms"] = (ft - start) / 1e6
    out["glm_live", "ttft_content_ms"] = (aligned(first_content) - start) / 1e6
    out["glm_live", "tpot_ms"] = (lt - ft) / 1e6 / (tokens - 1)
    out["glm_live", "e2e_ms"] = measured["e2e_ms"].to_numpy(dtype=float) + (sent - start) / 1e6
    vllm_ttft = (aligned(first_choice) - sent) / 1e6
    vllm_e2el = (lt - sent) / 1e6
    out["vLLM", "ttft_ms"] = vllm_ttft
    gaps = choice.sort_values(["request", "index"]).groupby("request")["arrival_ns"].diff()
    out["vLLM", "itl_ms"] = gaps.dropna().to_numpy(dtype=float) / 1e6
    out["vLLM", "tpot_ms"] = (vllm_e2el - vllm_ttft) / (tokens - 1)
    out["vLLM", "e2el_ms"] = vllm_e2el
    out["GuideLLM", "ttft_ms"] = (ft - start) / 1e6
    out["GuideLLM", "itl_ms"] = (lt - ft) / 1e6 / (tokens - 1)
    out["GuideLLM", "tpot_ms"] = (lt - start) / 1e6 / tokens
    gp_ttft = (aligned(first_content) - start) / 1e6
    gp_latency = (aligned(last_content) - start) / 1e6
    out["genai-perf", "ttft_ms"] = gp_ttft
    out["genai-perf", "itl_ms"] = (gp_latency - gp_ttft) / (tokens - 1)
    return out


def dialects(requests: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Each tool's TTFT / ITL / TPOT from the same raw data, side by side, with definitions."""
    rows: list[dict[str, Any]] = []
    for (tool, metric), values in dialect_samples(requests, events).items():
        summary = describe(np.asarray(values, dtype=float), ci=False)
        rows.append(
            {
                "tool": tool,
                "metric": metric,
                "definition": DEFINITIONS[(tool, metric)],
                **{k: summary[k] for k in ("count", "mean", "p50", "p90", "p99")},
            }
        )
    return pd.DataFrame(rows)
