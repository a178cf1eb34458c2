"""Capacity search against the simulator's knee, early stops, and the live views."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from glm_live import bench
from glm_live.measure.bench import Saturation, SearchResult
from glm_live.measure.bench.search import SaturationMonitor
from glm_live.server import ServerHandle, serve

# Streams slow down by active / 8 beyond 8 in flight: at concurrency 9 some requests wait
# 600 × 9/8 = 675 ms for their first token. A p99 TTFT target of 637 ms puts the knee at 8,
# with room for the harness's own delays on a loaded machine (~20 ms measured).
KNEE = {"ttft_ms": 600, "itl_ms": 2, "tokens": 5, "capacity": 8}


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


async def search_the_knee(runtime: ServerHandle, **options: Any) -> SearchResult:
    """A concurrency search from 4 to 32 with 16 requests a level, p99 TTFT ≤ 637 ms, against
    the simulator's knee at 8 (``options``: e.g. ``cluster=``)."""
    return await bench.search(
        runtime.url,
        api_key=runtime.token,
        slo={"ttft_ms": 637},
        over="concurrency",
        low=4,
        high=32,
        requests=16,
        sim=KNEE,
        **options,
    )


async def test_search_recovers_the_knee(
    runtime: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    found = await search_the_knee(runtime)
    assert isinstance(found, SearchResult)
    passed, failed = found.capacity
    assert passed is not None
    assert failed is not None
    assert passed <= 8 < failed  # the highest load meeting the SLO is 8
    assert [lv.value for lv in found.levels][:3] == [4, 8, 16]  # doubling, then bisection
    assert all(lv.stopped is None for lv in found.levels)  # a closed loop never runs away
    frame = found.frame()
    assert list(frame["concurrency"]) == sorted(frame["concurrency"])
    assert {"passed", "uncertain", "stopped", "goodput", "ttft_ms_p99_low"} <= set(frame.columns)
    assert frame.set_index("concurrency").loc[8, "passed"]
    assert "capacity for p99 TTFT ≤ 637 ms: concurrency: between" in found.describe()
    # Each level records the SLO it was judged by: its report gives the same verdict.
    page = bench.render_report(
        [lv.result for lv in found.levels], labels=[f"level {lv.value}" for lv in found.levels]
    )
    assert "Goodput against SLOs" in page
    for lv in found.levels:
        assert lv.result.config["slo"]["ttft_ms"] == 637
        assert str(lv.goodput) in page
    # In a script, each level's progress and what the search knows go to stderr as lines.
    err = capsys.readouterr().err
    assert "concurrency 16: 16/16 done" in err
    assert "concurrency 16: fails. capacity for p99 TTFT" in err


async def test_a_level_far_past_saturation_stops_early(runtime: ServerHandle) -> None:
    # Two streams at full speed, ~90 ms each: about 22 requests/s. Ask for 220/s.
    found = await bench.search(
        runtime.url,
        api_key=runtime.token,
        slo={"ttft_ms": 500},
        over="rate",
        low=220,
        high=220,
        requests=440,
        saturation=Saturation(window_s=0.75),
        sim={"ttft_ms": 50, "itl_ms": 10, "tokens": 5, "capacity": 2},
        display=False,
    )
    (level,) = found.levels
    assert level.stopped is not None
    assert level.stopped.startswith("queue growing without bound")
    assert not level.passed
    assert level.result.config["cancelled"] is True
    assert (level.result.requests["status"] == "ok").sum() < 440
    assert found.capacity == (None, 220)
    assert "below 220/s" in found.describe()
    assert found.frame().loc[0, "stopped"] == level.stopped


def test_saturation_monitor_rules() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def snap(done: int, errors: int = 0, p50: float | None = 10.0) -> dict[str, object]:
        return {"done": done, "total": 1000, "errors": errors, "ttft_p50_ms": p50}

    # Open loop at 100/s, keeping up: completions follow arrivals, nothing is said.
    steady = SaturationMonitor(Saturation(window_s=1.0), rate=100, total=1000, clock=clock)
    for tick in range(1, 20):
        now[0] = tick * 0.25
        assert steady(snap(max(1, int(100 * now[0]) - 10))) is None
    # Falling behind: 10/s done while 100/s arrive.
    now[0] = 0.0
    behind = SaturationMonitor(Saturation(window_s=1.0), rate=100, total=1000, clock=clock)
    reasons = []
    for tick in range(1, 12):
        now[0] = tick * 0.25
        reasons.append(behind(snap(int(10 * now[0]) + 1)))
    assert reasons[-1] is None  # said once
    said = [r for r in reasons if r]
    assert len(said) == 1
    assert said[0].startswith("queue growing without bound")
    # Errors.
    failing = SaturationMonitor(Saturation(max_error_rate=0.1), rate=None, total=100, clock=clock)
    assert failing(snap(5, errors=5)) is None  # too few done to judge
    assert failing(snap(20, errors=3)) == "error rate 3/20 (15%) above 10%"
    # Closed loop: a running median TTFT that keeps rising.
    now[0] = 0.0
    rising = SaturationMonitor(Saturation(window_s=1.0), rate=None, total=100, clock=clock)
    out = None
    for tick in range(1, 10):
        now[0] = tick * 0.25
        out = out or rising(snap(tick, p50=10.0 * 1.3**tick))
    assert out is not None
    assert out.startswith("TTFT growing through the run")


def test_search_in_a_notebook_shows_each_level(runtime: ServerHandle) -> None:
    from glm_live.notebook.widgets import BenchProgress, coalescer

    found = bench.search_sync(
        runtime.url,
        api_key=runtime.token,
        slo={"ttft_ms": 500, "itl_ms": 50},
        low=1,
        high=2,
        requests=4,
        display=True,
        sim={"ttft_ms": 5, "itl_ms": 1, "tokens": 5},
    )
    assert found.capacity == (2, None)
    views = [lv.result.view for lv in found.levels]
    assert all(isinstance(v, BenchProgress) for v in views)
    for view in views:
        coalescer().flush(view)
    assert [v.status for v in views] == ["done", "done"]
    assert "at least 2" in found.describe()


def test_search_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        bench.search_sync("http://127.0.0.1:1", slo={"ttft_ms": 1}, over="tokens")
    with pytest.raises(ValueError, match="low <= high"):
        bench.search_sync("http://127.0.0.1:1", slo={"ttft_ms": 1}, low=8, high=4)
