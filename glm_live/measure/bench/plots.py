"""The plots a researcher expects, as matplotlib figures: CDFs, percentiles against load,
the throughput-latency curve, and a per-request timeline.

Every figure has a legend or labelled points, and a constrained layout, so that labels and
annotations stay inside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .results import BenchResult

__all__ = ["cdf", "percentiles_vs", "throughput_latency", "timeline"]


def _figure() -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4), layout="constrained")
    return figure, axes


def _label(result: BenchResult) -> str:
    config = result.config
    if config.get("rate") is not None:
        return f"rate {config['rate']:g}/s"
    return f"concurrency {config.get('concurrency')}"


def _metric(metric: str) -> str:
    """``ttft_ms`` as a person reads it: ``TTFT (ms)``."""
    name, _, unit = metric.rpartition("_")
    if unit != "ms":
        name, unit = metric, ""
    words = name.replace("_", " ").split()
    label = " ".join(w.upper() if w in ("ttft", "tpot", "itl", "e2e", "e2el") else w for w in words)
    return f"{label} (ms)" if unit else label


def cdf(
    results: Sequence[BenchResult] | BenchResult,
    metric: str = "ttft_ms",
    labels: Sequence[str] | None = None,
) -> Any:
    """Empirical CDFs of ``metric``, one line per result."""
    runs = [results] if isinstance(results, BenchResult) else list(results)
    figure, axes = _figure()
    for i, result in enumerate(runs):
        values = np.sort(result.measured[metric].dropna().to_numpy(dtype=float))
        if len(values):
            axes.step(
                values,
                np.arange(1, len(values) + 1) / len(values),
                where="post",
                label=labels[i] if labels else _label(result),
            )
    axes.set_xlabel(_metric(metric))
    axes.set_ylabel("fraction of requests")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def percentiles_vs(
    results: Sequence[BenchResult],
    metric: str = "ttft_ms",
    percentiles: Sequence[float] = (50, 90, 99),
) -> Any:
    """``metric``'s percentiles against concurrency (or rate), with bootstrap error bars."""
    from .stats import bootstrap_ci

    figure, axes = _figure()
    by = "rate" if results and results[0].config.get("rate") is not None else "concurrency"
    xs = [r.config.get(by) for r in results]
    for q in percentiles:
        ys, lows, highs = [], [], []
        for result in results:
            values = result.measured[metric].dropna().to_numpy(dtype=float)
            ys.append(np.percentile(values, q) if len(values) else np.nan)
            low, high = bootstrap_ci(values, q)
            lows.append(ys[-1] - low)
            highs.append(high - ys[-1])
        axes.errorbar(xs, ys, yerr=[lows, highs], marker="o", capsize=3, label=f"p{q:g}")
    axes.set_xscale("log", base=2)
    axes.set_xticks(xs, [f"{x:g}" for x in xs])  # the levels run, not powers of two
    axes.minorticks_off()
    axes.set_xlabel(by)
    axes.set_ylabel(_metric(metric))
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def throughput_latency(
    results: Sequence[BenchResult], metric: str = "ttft_ms", q: float = 99
) -> Any:
    """Output tokens/s against ``metric``'s ``q``-th percentile: the load-latency curve."""
    figure, axes = _figure()
    xs = [r.throughput()["output_tokens_per_s"] for r in results]
    ys = [np.percentile(r.measured[metric].dropna().to_numpy(dtype=float), q) for r in results]
    axes.plot(xs, ys, marker="o")
    middle = (min(xs) + max(xs)) / 2 if xs else 0.0
    for x, y, result in zip(xs, ys, results, strict=True):
        # Labels of the right-hand points go to their left, so that none runs off the frame.
        right = x > middle
        axes.annotate(
            _label(result),
            (x, y),
            textcoords="offset points",
            xytext=(-6 if right else 6, 6),
            ha="right" if right else "left",
            fontsize=8,
        )
    axes.margins(x=0.08, y=0.15)
    axes.set_xlabel("output tokens/s")
    axes.set_ylabel(f"p{q:g} {_metric(metric)}")
    axes.grid(alpha=0.3)
    return figure


def timeline(result: BenchResult, limit: int = 200) -> Any:
    """One line per request: queued (grey), waiting for the first token (orange), streaming
    (blue), on a shared time axis from the run's first scheduled send."""
    figure, axes = _figure()
    r = result.requests.sort_values("scheduled_ns").head(limit)
    origin = r["scheduled_ns"].min()
    for row, (_, req) in enumerate(r.iterrows()):
        start = (req["scheduled_ns"] - origin) / 1e6
        queue = req.get("queue_ms") or 0.0
        ttft = req.get("ttft_ms")
        e2e = req.get("e2e_ms")
        axes.hlines(row, start, start + queue, color="0.7", linewidth=2)
        if ttft == ttft and ttft is not None:
            axes.hlines(row, start + queue, start + ttft, color="tab:orange", linewidth=2)
            if e2e == e2e and e2e is not None:
                axes.hlines(row, start + ttft, start + e2e, color="tab:blue", linewidth=2)
        if req["status"] != "ok":
            axes.plot(start + (e2e if e2e == e2e else 0), row, "x", color="red")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="0.7", linewidth=2, label="queued"),
        Line2D([], [], color="tab:orange", linewidth=2, label="waiting for the first token"),
        Line2D([], [], color="tab:blue", linewidth=2, label="streaming"),
    ]
    if (r["status"] != "ok").any():
        handles.append(Line2D([], [], color="red", marker="x", linestyle="", label="failed"))
    axes.legend(handles=handles, loc="upper left", fontsize=8)
    axes.set_xlabel("ms since the first scheduled send")
    axes.set_ylabel("request (in order of scheduled send)")
    axes.set_title(f"{_label(result)}: {len(r)} requests", fontsize=10)
    return figure
