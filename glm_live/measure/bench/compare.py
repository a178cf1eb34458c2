"""Comparing runs: percentile differences with bootstrap confidence intervals, a significance
test, and CDFs overlaid (:func:`glm_live.bench.plots.cdf`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .results import BenchResult
from .stats import PERCENTILES, permutation_test

__all__ = ["compare"]


def compare(
    a: BenchResult,
    b: BenchResult,
    metric: str = "ttft_ms",
    *,
    labels: tuple[str, str] = ("a", "b"),
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Percentiles of ``metric`` in ``a`` and ``b``, their difference ``b - a`` with a 95%
    bootstrap interval, and the relative change. ``.attrs["p_value"]`` holds a permutation
    test of the medians (two-sided); ``.attrs["significant"]`` is ``p < 0.05``."""
    x = a.measured[metric].to_numpy(dtype=float)
    y = b.measured[metric].to_numpy(dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
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
        metric=metric, p_value=p_value, significant=bool(p_value < 0.05), n=(len(x), len(y))
    )
    return table
