"""Comparing runs: percentile differences with bootstrap confidence intervals, a significance
test, and CDFs overlaid (:func:`glm_live.bench.plots.cdf`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .results import BenchResult
from .stats import DEFINITIONS, PERCENTILES, permutation_test

__all__ = ["compare"]


def compare(
    a: BenchResult,
    b: BenchResult,
    metric: str = "ttft_ms",
    *,
    labels: tuple[str, str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentiles of ``metric`` in ``a`` and ``b``, their difference ``b - a`` with a 95%
    bootstrap interval, and the relative change. ``.attrs["p_value"]`` holds a permutation
    test of the medians (two-sided); ``.attrs["significant"]`` is ``p < 0.05``.

    Either side may be a run another tool measured (:func:`glm_live.bench.load_vllm`,
    :func:`glm_live.bench.load_guidellm`): the default labels then name the tools, and
    ``.attrs["measured_by"]`` says, per label, which tool measured ``metric`` and by which rule.

    Raises:
        ValueError: A side has no finished samples of ``metric``.
    """
    if labels is None:
        sources = (a.source, b.source)
        labels = (
            ("a", "b")
            if sources == ("glm_live", "glm_live") or sources[0] == sources[1]
            else sources
        )
    samples = []
    for result, label in ((a, labels[0]), (b, labels[1])):
        measured = result.measured
        values = measured[metric].to_numpy(dtype=float) if metric in measured else np.asarray([])
        values = values[~np.isnan(values)]
        if not len(values):
            msg = f"{label} ({result.source}) has no measured {metric} to compare"
            raise ValueError(msg)
        samples.append(values)
    x, y = samples
    rng = np.random.default_rng(seed)
    rows = []
    for q in PERCENTILES:
        px, py = np.percentile(x, q), np.percentile(y, q)
        boot = np.percentile(rng.choice(y, (resamples, len(y))), q, axis=1) - np.percentile(
            rng.choice(x, (resamples, len(x))), q, axis=1
        )
        low, high = np.percentile(boot, [2.5, 97.5])
        rows.append(
            {
                "percentile": f"p{q:g}",
                labels[0]: px,
                labels[1]: py,
                "diff": py - px,
                "diff_low": low,
                "diff_high": high,
                "change": (py - px) / px if px else np.nan,
            }
        )
    table = pd.DataFrame(rows).set_index("percentile")
    p_value = permutation_test(x, y, resamples=2000, seed=seed)
    table.attrs.update(
        metric=metric,
        p_value=p_value,
        significant=bool(p_value < 0.05),
        n=(len(x), len(y)),
        measured_by={labels[0]: _measured_by(a, metric), labels[1]: _measured_by(b, metric)},
    )
    return table


def _measured_by(result: BenchResult, metric: str) -> str:
    """``"<tool>: <rule>"`` for ``metric`` as ``result``'s tool measured it."""
    rules = result.config.get("definitions") or {}
    rule = rules.get(metric) or DEFINITIONS.get((result.source, metric), "")
    version = result.config.get("source_version")
    tool = f"{result.source} {version}" if version else result.source
    return f"{tool}: {rule}" if rule else tool
