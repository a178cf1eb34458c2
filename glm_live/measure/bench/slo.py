"""Service-level objectives and goodput: how many requests a run served well enough.

An :class:`SLO` sets a target on some of a request's latencies, and a percentile at which the
run as a whole is judged. The definitions (also in :data:`DEFINITIONS`, for reports):

- **A request meets the SLO** when it finished (status ``ok``) and each metric with a
  target is within it (``≤``):

  - ``ttft_ms``: its time to first token (of any kind: reasoning, content or a tool call),
    counted from its *scheduled* send, so queueing in the client counts;
  - ``itl_ms``: its own mean inter-token latency, ``(last token − first token) /
    (output tokens − 1)``, i.e. its TPOT as vLLM defines it. This is the definition of
    DistServe and of vLLM's ``--goodput`` (which compares each request's TPOT with the
    ``tpot`` target), not a percentile of its individual gaps. A request with a single
    output token has no gap and meets it;
  - ``e2e_ms``: its end-to-end latency, from the scheduled send to the end of the response.

  A failed or cancelled request meets no target.
- **Goodput** is the number of measured (non-warm-up) requests that meet every target,
  per second of the measured window (the window of
  :meth:`~.results.BenchResult.throughput`: from the first measured request's scheduled
  send to the end of the last one that finished). Its 95% interval is a percentile
  bootstrap over requests: the requests are resampled with replacement, the window kept.
- **A run passes the SLO at percentile p** when, for each metric with a target, the p-th
  percentile of that metric over the requests that finished is within the target, *and*
  no more than ``100 − p`` percent of the measured requests failed (the tail the
  percentile leaves out is the whole budget for failures). The percentile is computed as
  :func:`~.stats.describe` does (linear interpolation), with a 95% bootstrap interval from
  :func:`~.stats.bootstrap_ci`; when that interval straddles the target, the verdict is
  **uncertain**: more requests would be needed to tell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .stats import bootstrap_ci

__all__ = ["DEFINITIONS", "SLO", "Goodput", "SLOLike", "goodput", "goodput_frame"]


class Measured(Protocol):
    """What goodput needs of a run (a :class:`~.results.BenchResult`, which imports this
    module: naming it here would be a cycle)."""

    requests: pd.DataFrame
    config: dict[str, Any]

    def throughput(self) -> dict[str, float]: ...


#: Each SLO metric and the per-request column it is judged on.
COLUMNS = {"ttft_ms": "ttft_ms", "itl_ms": "tpot_ms", "e2e_ms": "e2e_ms"}

#: What each term means, worded for a report's definitions.
DEFINITIONS = {
    "slo.ttft_ms": "time to first token (any kind), from the scheduled send, per request",
    "slo.itl_ms": (
        "the request's own mean inter-token latency, (last token − first token) / "
        "(output tokens − 1): vLLM's TPOT, as vLLM's and DistServe's goodput use it"
    ),
    "slo.e2e_ms": "end of the response − scheduled send, per request",
    "meets": "finished (status ok) and every metric with a target within it; failures never",
    "goodput": (
        "measured requests meeting every target, per second of the measured window, "
        "with a 95% bootstrap interval over requests"
    ),
    "passes": (
        "at percentile p: each metric's p-th percentile over finished requests is within its "
        "target, and at most 100 − p percent of measured requests failed"
    ),
    "uncertain": "the 95% bootstrap interval of a metric's percentile straddles its target",
}


@dataclass(frozen=True)
class SLO:
    """Targets on a request's latencies (ms; ``None``: no target) and the percentile at
    which a run is judged. See the module for the definitions.

    Example: ``SLO(ttft_ms=500, itl_ms=50, percentile=99)``.
    """

    ttft_ms: float | None = None
    itl_ms: float | None = None
    e2e_ms: float | None = None
    percentile: float = 99.0

    def __post_init__(self) -> None:
        if not self.targets:
            msg = "an SLO needs at least one target: ttft_ms, itl_ms or e2e_ms"
            raise ValueError(msg)
        if not 0 < self.percentile <= 100:
            msg = f"the percentile must be in (0, 100], not {self.percentile}"
            raise ValueError(msg)

    @classmethod
    def of(cls, slo: SLOLike, percentile: float | None = None) -> SLO:
        """An :class:`SLO` from itself or a dict (``{"ttft_ms": 500, "itl_ms": 50}``, which
        may hold ``percentile`` too); ``percentile`` overrides.

        Raises:
            ValueError: An unknown key, or no target.
        """
        if isinstance(slo, SLO):
            if percentile is None:
                return slo
            slo = slo.as_dict()
        unknown = set(slo) - {*COLUMNS, "percentile"}
        if unknown:
            msg = f"unknown SLO keys {sorted(unknown)}: use ttft_ms, itl_ms, e2e_ms, percentile"
            raise ValueError(msg)

        def number(key: str) -> float | None:
            value = slo.get(key)
            return None if value is None else float(value)

        return cls(
            ttft_ms=number("ttft_ms"),
            itl_ms=number("itl_ms"),
            e2e_ms=number("e2e_ms"),
            percentile=float(percentile if percentile is not None else number("percentile") or 99),
        )

    @property
    def targets(self) -> dict[str, float]:
        """The metrics with a target, and their targets (ms)."""
        values = {"ttft_ms": self.ttft_ms, "itl_ms": self.itl_ms, "e2e_ms": self.e2e_ms}
        return {k: float(v) for k, v in values.items() if v is not None}

    def as_dict(self) -> dict[str, float | None]:
        """The SLO as a dict (what :meth:`of` takes back)."""
        return {
            "ttft_ms": self.ttft_ms,
            "itl_ms": self.itl_ms,
            "e2e_ms": self.e2e_ms,
            "percentile": self.percentile,
        }

    def __str__(self) -> str:
        parts = [f"{k.removesuffix('_ms').upper()} ≤ {v:g} ms" for k, v in self.targets.items()]
        return f"p{self.percentile:g} " + ", ".join(parts)

    def meets(self, requests: pd.DataFrame) -> pd.DataFrame:
        """Per request: whether it meets each target, and ``all`` of them (booleans)."""
        ok = (requests["status"] == "ok").to_numpy()
        out = pd.DataFrame(index=requests.index)
        every = ok.copy()
        for metric, target in self.targets.items():
            values = requests[COLUMNS[metric]].to_numpy(dtype=float)
            within = values <= target
            if metric == "itl_ms":  # one output token: no gap to judge
                within |= np.isnan(values)
            met = ok & within
            out[metric] = met
            every &= met
        out["all"] = every
        return out


#: An :class:`SLO`, or a dict of its fields.
SLOLike = SLO | Mapping[str, float | None]


@dataclass(frozen=True)
class Goodput:
    """A run judged against an :class:`SLO` (see the module for the definitions).

    Attributes:
        slo: The SLO.
        requests: Measured requests (finished, failed or cancelled; no warm-up).
        failed: Of those, how many did not finish.
        met: How many met every target.
        seconds: The measured window.
        goodput: ``met / seconds`` (requests/s).
        goodput_low: 95% bootstrap bounds of the goodput.
        goodput_high:
        fractions: Per metric, and ``all``: the fraction of measured requests meeting it.
        percentiles: Per metric with a target: ``value`` (its percentile over finished
            requests), ``low``/``high`` (95% bootstrap), ``target``, ``passes``,
            ``uncertain``.
        passes: Whether the run passes the SLO at its percentile.
        uncertain: Whether any metric's interval straddles its target.
    """

    slo: SLO
    requests: int
    failed: int
    met: int
    seconds: float
    goodput: float
    goodput_low: float
    goodput_high: float
    fractions: dict[str, float] = field(default_factory=dict)
    percentiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    passes: bool = False
    uncertain: bool = False

    @property
    def verdict(self) -> str:
        """``"passes"``, ``"fails"``, or either with ``" (uncertain)"``."""
        word = "passes" if self.passes else "fails"
        return f"{word} (uncertain)" if self.uncertain else word

    def row(self) -> dict[str, Any]:
        """One flat row: counts, goodput and bounds, fractions, and each percentile."""
        out: dict[str, Any] = {
            "requests": self.requests,
            "failed": self.failed,
            "met": self.met,
            "seconds": self.seconds,
            "goodput": self.goodput,
            "goodput_low": self.goodput_low,
            "goodput_high": self.goodput_high,
        }
        out.update({f"fraction_{k}": v for k, v in self.fractions.items()})
        q = f"p{self.slo.percentile:g}"
        for metric, p in self.percentiles.items():
            out[f"{metric}_{q}"] = p["value"]
            out[f"{metric}_{q}_low"] = p["low"]
            out[f"{metric}_{q}_high"] = p["high"]
            out[f"{metric}_target"] = p["target"]
        out["passes"] = self.passes
        out["uncertain"] = self.uncertain
        return out

    def __str__(self) -> str:
        return (
            f"goodput {self.goodput:.3g}/s [{self.goodput_low:.3g}, {self.goodput_high:.3g}]: "
            f"{self.met}/{self.requests} requests meet {self.slo}; the run {self.verdict}"
        )


def goodput(
    result: Measured,
    slo: SLOLike,
    *,
    percentile: float | None = None,
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> Goodput:
    """Judge ``result`` against ``slo`` (see the module for the definitions)."""
    slo = SLO.of(slo, percentile)
    r = result.requests
    measured = r[r["phase"] == "measure"] if "phase" in r else r
    n = len(measured)
    meets = slo.meets(measured)
    finished = measured[measured["status"] == "ok"]
    failed = n - len(finished)
    seconds = float(result.throughput().get("seconds", 0.0)) if len(finished) else 0.0
    met = int(meets["all"].sum())
    rate = met / seconds if seconds > 0 else 0.0
    low, high = _bootstrap_goodput(meets["all"].to_numpy(), seconds, level, resamples, seed)
    fractions = {k: float(meets[k].mean()) if n else 0.0 for k in meets.columns}
    q = slo.percentile
    percentiles: dict[str, dict[str, Any]] = {}
    for metric, target in slo.targets.items():
        values = finished[COLUMNS[metric]].to_numpy(dtype=float)
        if metric == "itl_ms":
            values = np.where(np.isnan(values), 0.0, values)  # no gap: nothing to wait for
        values = values[~np.isnan(values)]
        value = float(np.percentile(values, q)) if len(values) else np.nan
        p_low, p_high = bootstrap_ci(values, q, level=level, resamples=resamples, seed=seed)
        percentiles[metric] = {
            "value": value,
            "low": p_low,
            "high": p_high,
            "target": target,
            "passes": bool(value <= target),
            "uncertain": bool(p_low <= target < p_high),
        }
    errors_ok = n > 0 and failed <= n * (100 - q) / 100
    passes = errors_ok and all(p["passes"] for p in percentiles.values())
    return Goodput(
        slo=slo,
        requests=n,
        failed=failed,
        met=met,
        seconds=seconds,
        goodput=rate,
        goodput_low=low,
        goodput_high=high,
        fractions=fractions,
        percentiles=percentiles,
        passes=passes,
        uncertain=errors_ok and any(p["uncertain"] for p in percentiles.values()),
    )


def goodput_frame(
    results: Sequence[Measured] | Mapping[str, Measured],
    slo: SLOLike,
    *,
    percentile: float | None = None,
) -> pd.DataFrame:
    """One :meth:`Goodput.row` per result, indexed by label (a mapping's keys, else each
    run's concurrency or rate), as :func:`~.stats.describe` makes rows of latencies."""
    items = (
        list(results.items())
        if isinstance(results, Mapping)
        else [(_label(result), result) for result in results]
    )
    rows = {label: goodput(result, slo, percentile=percentile).row() for label, result in items}
    return pd.DataFrame(rows).T


def _label(result: Measured) -> str:
    rate = result.config.get("rate")
    if rate is not None:
        return f"rate {rate:g}"
    return f"concurrency {result.config.get('concurrency')}"


def _bootstrap_goodput(
    met: np.ndarray, seconds: float, level: float, resamples: int, seed: int
) -> tuple[float, float]:
    """A percentile-bootstrap interval of ``met.sum() / seconds``, resampling requests
    (as :func:`~.stats.bootstrap_ci` does for a percentile)."""
    if seconds <= 0 or len(met) < 2:
        return (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    samples = rng.choice(met.astype(float), size=(resamples, len(met)), replace=True)
    estimates = samples.sum(axis=1) / seconds
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return float(low), float(high)
