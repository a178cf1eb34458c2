"""Capacity search: the highest load at which an endpoint still meets a service-level objective.

:func:`search` runs one benchmark per load level (a concurrency, or a rate): it probes up from
``low``, doubling, until a level fails the :class:`~.slo.SLO` (or ``high`` passes), then
bisects between the highest level that passed and the lowest that failed until they are
adjacent (concurrency) or within ``resolution`` of each other (rate, relative). It assumes
that a higher load never does better; a level that passes above one that failed is reported
as such.

The answer is an interval, :attr:`SearchResult.capacity`: ``(passed, failed)``, the highest
level that passed and the lowest above it that failed. At those two boundary levels the
SLO's percentile has a bootstrap interval; when that interval straddles the target the
verdict at that level is *uncertain* (more requests per level would settle it), and the
search says so.

A level is stopped early, and fails, when it is clearly saturated (:class:`Saturation`):

- open loop (``over="rate"``): the requests due so far (``rate × elapsed``) minus those done,
  i.e. requests in flight or waiting to be sent, grew at every progress report for
  ``window_s`` seconds, and by at least ``growth × rate × window_s`` in all: completions fall
  behind arrivals, and the queue grows without bound;
- closed loop: the running median TTFT rose at every report for ``window_s`` seconds, by at
  least the factor ``1 + growth``;
- either: more than ``max_error_rate`` of the requests done so far failed (after
  ``min_done`` of them).

The reason is recorded on the level (:attr:`Level.stopped`). Stopping is
:meth:`~.runner.Benchmark.cancel`: the level's run returns what it measured.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape as html_escape
from typing import Any

import pandas as pd

from .cluster import Connection, connect
from .load import Progress
from .results import BenchResult
from .runner import Benchmark
from .slo import SLO, Goodput, SLOLike

__all__ = ["Level", "Saturation", "SaturationMonitor", "SearchResult", "search"]

#: Shows a level as it runs: called with its label (``"concurrency 8"``) as it starts, it
#: returns the level's progress callback and what to call with its result at the end.
View = Callable[[str], tuple[Progress, Callable[[BenchResult], None]]]


@dataclass(frozen=True)
class Saturation:
    """When a level counts as clearly saturated, and is stopped early (see the module).

    Attributes:
        window_s: How long the growth must persist.
        growth: Open loop: the queue's growth over the window, as a fraction of the requests
            that arrived in it; closed loop: the running median TTFT's relative growth.
        max_error_rate: The fraction of failed requests that stops a level.
        min_done: Requests done before the error rate is judged.
    """

    window_s: float = 2.0
    growth: float = 0.5
    max_error_rate: float = 0.1
    min_done: int = 10


class SaturationMonitor:
    """A progress callback that tells when a level is saturated: call it with each snapshot;
    it returns the reason once (and keeps it in :attr:`reason`), else ``None``.

    Args:
        saturation: The thresholds.
        rate: The level's arrival rate (requests/s), or ``None`` for a closed loop.
        total: Requests the level sends, warm-up included.
        clock: Monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        saturation: Saturation,
        *,
        rate: float | None,
        total: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.saturation = saturation
        self.rate = rate
        self.total = total
        self.clock = clock
        self.started = clock()
        self.reason: str | None = None
        self._history: list[tuple[float, float, dict[str, Any]]] = []  # (t, signal, snapshot)

    def __call__(self, snapshot: dict[str, Any]) -> str | None:
        if self.reason is not None:
            return None
        s = self.saturation
        t = self.clock() - self.started
        done, errors = snapshot["done"], snapshot["errors"]
        if done >= s.min_done and errors > s.max_error_rate * done:
            self.reason = (
                f"error rate {errors}/{done} ({errors / done:.0%}) above {s.max_error_rate:.0%}"
            )
            return self.reason
        if self.rate is not None:
            due = min(self.total, self.rate * t)
            if due >= self.total or done == 0:
                return None  # every request sent, or none back yet: nothing to judge
            signal = due - done
        else:
            p50 = snapshot.get("ttft_p50_ms")
            if p50 is None:
                return None
            signal = float(p50)
        self._history.append((t, signal, snapshot))
        window = [h for h in self._history if h[0] >= t - s.window_s]
        earlier = [h for h in self._history if h[0] < t - s.window_s]
        if not earlier:
            return None  # not watched for a whole window yet
        series = [earlier[-1][1]] + [h[1] for h in window]
        if any(b < a for a, b in itertools.pairwise(series)):
            return None
        first, last = series[0], series[-1]
        if self.rate is not None:
            span = t - earlier[-1][0]
            if last - first >= s.growth * self.rate * span:
                self.reason = (
                    f"queue growing without bound: {last:.0f} requests in flight or waiting, "
                    f"up from {first:.0f} {span:.1f} s earlier, while {self.rate:g}/s arrive"
                )
        elif last >= (1 + s.growth) * first:
            self.reason = (
                f"TTFT growing through the run: running median {last:.0f} ms, up from "
                f"{first:.0f} ms {s.window_s:g} s earlier, at every report"
            )
        return self.reason


@dataclass
class Level:
    """One load level the search ran.

    Attributes:
        value: The concurrency or rate.
        result: What the run measured (partial when stopped early).
        goodput: The run against the SLO.
        passed: Whether it met the SLO (a level stopped early never does).
        stopped: Why the level was stopped early, or ``None``.
    """

    value: float
    result: BenchResult
    goodput: Goodput
    passed: bool
    stopped: str | None = None

    @property
    def uncertain(self) -> bool:
        """Whether a percentile's interval straddles its target at this level."""
        return self.stopped is None and self.goodput.uncertain


@dataclass
class SearchResult:
    """What a capacity search found.

    Attributes:
        over: ``"concurrency"`` or ``"rate"``.
        slo: The objective.
        levels: Every level run, in the order run.
        passed: The highest level that passed, below :attr:`failed` (``None``: even
            ``low`` failed).
        failed: The lowest level above :attr:`passed` that failed (``None``: ``high``
            passed).
    """

    over: str
    slo: SLO
    levels: list[Level] = field(default_factory=list)
    passed: float | None = None
    failed: float | None = None

    @property
    def capacity(self) -> tuple[float | None, float | None]:
        """The interval the capacity lies in: ``(passed, failed)``; the highest load meeting
        the SLO is at least ``passed`` and below ``failed``."""
        return (self.passed, self.failed)

    def level(self, value: float | None) -> Level | None:
        """The (last) level run at ``value``."""
        found = [lv for lv in self.levels if lv.value == value]
        return found[-1] if found else None

    @property
    def uncertain(self) -> list[str]:
        """Notes on the boundary levels whose verdict is uncertain."""
        notes = []
        for value in self.capacity:
            lv = self.level(value)
            if lv is None or not lv.uncertain:
                continue
            for metric, p in lv.goodput.percentiles.items():
                if p["uncertain"]:
                    notes.append(
                        f"{self.over} {value:g} {'passed' if lv.passed else 'failed'} but is "
                        f"uncertain: {metric} p{self.slo.percentile:g} {p['value']:.1f} ms, 95% "
                        f"interval [{p['low']:.1f}, {p['high']:.1f}] around the target "
                        f"{p['target']:g}"
                    )
        return notes

    @property
    def non_monotonic(self) -> list[float]:
        """Levels that passed above a level that failed (the search assumes none)."""
        failed = [lv.value for lv in self.levels if not lv.passed]
        return sorted(
            lv.value for lv in self.levels if lv.passed and any(f < lv.value for f in failed)
        )

    def describe(self) -> str:
        """What the search knows so far, in a sentence or two."""
        unit = "/s" if self.over == "rate" else ""
        if self.passed is None and self.failed is None:
            text = f"{self.over}: nothing run yet"
        elif self.passed is None:
            text = f"{self.over}: below {self.failed:g}{unit} (the lowest level tried fails)"
        elif self.failed is None:
            text = f"{self.over}: at least {self.passed:g}{unit} (nothing tried fails)"
        else:
            text = (
                f"{self.over}: between {self.passed:g}{unit} (passes) and "
                f"{self.failed:g}{unit} (fails)"
            )
        notes = self.uncertain
        if notes:
            text += "; " + "; ".join(notes)
        if self.non_monotonic:
            text += f"; passed above a failure at {', '.join(f'{v:g}' for v in self.non_monotonic)}"
        return f"capacity for {self.slo}: {text}"

    def frame(self) -> pd.DataFrame:
        """One row per level, by value: verdict, why it stopped, and its goodput row."""
        rows = []
        for lv in self.levels:
            rows.append(
                {
                    self.over: lv.value,
                    "passed": lv.passed,
                    "uncertain": lv.uncertain,
                    "stopped": lv.stopped,
                    **lv.goodput.row(),
                }
            )
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        return frame.sort_values(self.over, kind="stable").reset_index(drop=True)

    def __repr__(self) -> str:
        return f"<SearchResult {self.describe()}; {len(self.levels)} levels>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        frame = self.frame()
        return {
            "text/plain": self.describe() + "\n" + frame.to_string(),
            "text/html": f"<p>{html_escape(self.describe())}</p>"
            + frame.to_html(float_format="{:.3g}".format),
        }


async def search(
    url: str,
    *,
    slo: SLOLike,
    over: str = "concurrency",
    low: float = 1,
    high: float = 256,
    requests: int = 100,
    percentile: float | None = None,
    resolution: float = 0.1,
    max_levels: int = 16,
    saturation: Saturation | None = Saturation(),
    view: View | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> SearchResult:
    """Find the highest load on ``url`` that meets ``slo`` (see the module).

    Args:
        url: The endpoint (as for :func:`~.runner.run`).
        slo: An :class:`~.slo.SLO` or a dict (``{"ttft_ms": 500, "itl_ms": 50}``).
        over: ``"concurrency"`` (closed loop, integer levels) or ``"rate"`` (open loop,
            requests/s; no cap on requests in flight unless ``concurrency=`` is given).
        low: The first level tried.
        high: The highest level tried.
        requests: Requests measured per level.
        percentile: The percentile judged (default: the SLO's).
        resolution: Rate only: stop bisecting when ``failed ≤ passed × (1 + resolution)``.
        max_levels: At most this many levels.
        saturation: When to stop a level early; ``None``: never.
        view: Shows each level as it runs (:func:`glm_live.bench.search` passes a
            progress widget in a notebook, progress lines in a script).
        log: Called with a line saying what the search knows, after each level.
        **options: For every level's run (e.g. ``warmup``, ``sim={...}``, ``api_key``).

    Raises:
        ValueError: ``over`` is neither, or ``low``/``high`` are out of order.
    """
    if over not in ("concurrency", "rate"):
        msg = f'search over "concurrency" or "rate", not {over!r}'
        raise ValueError(msg)
    if not 0 < low <= high:
        msg = f"need 0 < low <= high, not low={low}, high={high}"
        raise ValueError(msg)
    objective = SLO.of(slo, percentile)
    cluster = options.get("cluster")
    if cluster is not None and cluster is not False and not isinstance(cluster, Connection):
        # One cluster for every level, as for a sweep.
        del options["cluster"]
        timeout = options.get("cluster_timeout", 30.0)
        async with connect(cluster, timeout=timeout) as connection:
            return await search(
                url,
                slo=objective,
                over=over,
                low=low,
                high=high,
                requests=requests,
                resolution=resolution,
                max_levels=max_levels,
                saturation=saturation,
                view=view,
                log=log,
                cluster=connection,
                **options,
            )
    out = SearchResult(over=over, slo=objective)
    integer = over == "concurrency"
    if integer:
        low, high = int(low), int(high)
    if over == "rate":
        options.setdefault("concurrency", None)
    progress: Progress | None = options.pop("progress", None)

    async def attempt(value: float) -> bool:
        total = requests + int(options.get("warmup", 0))
        monitor = (
            SaturationMonitor(saturation, rate=value if over == "rate" else None, total=total)
            if saturation is not None
            else None
        )
        label = f"{over} {value:g}"
        shown, finish = view(label) if view is not None else (None, None)

        def watch(snapshot: dict[str, Any]) -> None:
            if shown is not None:
                shown(snapshot)
            if progress is not None:
                progress(snapshot)
            # Only while requests remain: the run's final report must not mark it cancelled.
            if monitor is not None and snapshot["done"] < snapshot["total"] and monitor(snapshot):
                benchmark.cancel()  # the run stops and returns what it has

        load: dict[str, Any] = {**options, over: int(value) if integer else value}
        benchmark = Benchmark(url, requests=requests, progress=watch, **load)
        result = await benchmark.run()
        if finish is not None:
            finish(result)
        stopped = monitor.reason if monitor is not None else None
        result.config["slo"] = objective.as_dict()  # what the level was judged by (reports)
        judged = result.goodput(objective)
        level = Level(value, result, judged, judged.passes and stopped is None, stopped)
        out.levels.append(level)
        _bound(out)
        if log is not None:
            verdict = "passes" if level.passed else "fails"
            if level.uncertain:
                verdict += " (uncertain)"
            why = f", stopped early: {stopped}" if stopped else ""
            log(f"{label}: {verdict}{why}. {out.describe()}")
        return level.passed

    def done(passed: float, failed: float) -> bool:
        if integer:
            return failed - passed <= 1
        return failed <= passed * (1 + resolution)

    value: float = low
    passed: float | None = None
    failed: float | None = None
    while len(out.levels) < max_levels:  # probe up
        if await attempt(value):
            passed = value
            if value >= high:
                break
            value = min(high, value * 2)
        else:
            failed = value
            break
    while (
        passed is not None
        and failed is not None
        and not done(passed, failed)
        and len(out.levels) < max_levels
    ):
        middle = (passed + failed) // 2 if integer else (passed + failed) / 2
        if await attempt(middle):
            passed = middle
        else:
            failed = middle
    return out


def _bound(out: SearchResult) -> None:
    """Set the interval from every level run: the highest level that passed, and the lowest
    that failed above it (a pass above a failure, which a monotonic endpoint never gives,
    is listed by :attr:`SearchResult.non_monotonic`)."""
    passes = [lv.value for lv in out.levels if lv.passed]
    fails = [lv.value for lv in out.levels if not lv.passed]
    out.passed = max(passes) if passes else None
    above = [f for f in fails if out.passed is None or f > out.passed]
    out.failed = min(above) if above else None
