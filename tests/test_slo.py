"""Goodput against service-level objectives, on hand-made requests with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glm_live import bench
from glm_live.measure.bench import SLO, BenchResult, goodput_frame
from glm_live.measure.bench.slo import DEFINITIONS

NAN = float("nan")


def hand_made(**config: object) -> BenchResult:
    """Eight requests (one warm-up, one failed); latencies in ms, schedule in s."""
    rows = [
        # status, phase, ttft, tpot, e2e, scheduled (s)
        ("ok", "warmup", 900.0, 90.0, 900.0, -1.0),  # not measured
        ("ok", "measure", 100.0, 10.0, 300.0, 0.0),  # meets all
        ("ok", "measure", 200.0, 20.0, 500.0, 0.5),  # meets all
        ("ok", "measure", 600.0, 10.0, 800.0, 1.0),  # TTFT misses
        ("ok", "measure", 150.0, 60.0, 700.0, 1.5),  # ITL misses
        ("error", "measure", NAN, NAN, NAN, 2.0),  # failed: meets nothing
        ("ok", "measure", 120.0, NAN, 120.0, 2.5),  # one token: no gap, meets ITL
        ("ok", "measure", 100.0, 10.0, 1400.0, 2.6),  # ends last, at 4.0 s
    ]
    frame = pd.DataFrame(rows, columns=["status", "phase", "ttft_ms", "tpot_ms", "e2e_ms", "at"])
    frame.insert(0, "request", range(len(frame)))
    frame["scheduled_ns"] = (frame.pop("at") * 1e9).astype("int64")
    frame["sent_ns"] = frame["scheduled_ns"]
    frame["queue_ms"] = 0.0
    frame["completion_tokens"] = 10
    return BenchResult(frame, pd.DataFrame(), {"concurrency": 2, **config}, {})


def test_goodput_and_fractions_by_hand() -> None:
    result = hand_made()
    g = result.goodput({"ttft_ms": 500, "itl_ms": 50})
    assert (g.requests, g.failed, g.met) == (7, 1, 4)
    assert g.seconds == pytest.approx(4.0)  # from the first scheduled send to 4.0 s
    assert g.goodput == pytest.approx(1.0)  # 4 requests meeting every target in 4 s
    assert g.fractions == pytest.approx({"ttft_ms": 5 / 7, "itl_ms": 5 / 7, "all": 4 / 7})
    assert g.goodput_low <= g.goodput <= g.goodput_high
    assert g.goodput_low < g.goodput_high
    # An end-to-end target too: the last request (1400 ms) misses it.
    g = result.goodput(SLO(ttft_ms=500, itl_ms=50, e2e_ms=1000))
    assert g.met == 3
    assert g.goodput == pytest.approx(0.75)
    assert g.fractions["e2e_ms"] == pytest.approx(5 / 7)


def test_failed_requests_never_meet_and_spend_the_error_budget() -> None:
    result = hand_made()
    loose = {"ttft_ms": 10_000, "itl_ms": 10_000, "e2e_ms": 10_000}
    g = result.goodput(loose, percentile=50)
    assert g.met == 6  # every finished one; the failed one never
    assert g.passes  # 1 failure in 7 is within the 50% a median leaves out
    # p90: the latencies pass, but 1 failure in 7 (14%) is more than the 10% p90 leaves out.
    g = result.goodput(loose, percentile=90)
    assert all(p["passes"] for p in g.percentiles.values())
    assert not g.passes
    # A cancelled request counts as failed too.
    cancelled = hand_made()
    cancelled.requests.loc[1, "status"] = "cancelled"
    assert cancelled.goodput(loose, percentile=50).met == 5


def test_percentiles_verdicts_and_intervals() -> None:
    result = hand_made()
    g = result.goodput({"ttft_ms": 500, "itl_ms": 50, "percentile": 50})
    ttft = g.percentiles["ttft_ms"]
    # Finished TTFTs: 100 100 120 150 200 600; their median is (120 + 150) / 2.
    assert ttft["value"] == pytest.approx(135.0)
    assert ttft["low"] <= ttft["value"] <= ttft["high"]
    # Finished ITLs (the one-token request's counts as 0): 0 10 10 10 20 60.
    assert g.percentiles["itl_ms"]["value"] == pytest.approx(10.0)
    assert g.passes
    assert g.verdict.startswith("passes")
    g = result.goodput({"ttft_ms": 500}, percentile=99)
    finished = [100, 100, 120, 150, 200, 600]
    assert g.percentiles["ttft_ms"]["value"] == pytest.approx(np.percentile(finished, 99))
    # The p99's interval reaches from well below 500 to 600: that metric is uncertain...
    assert g.percentiles["ttft_ms"]["uncertain"]
    # ... but 1 failure in 7 is over p99's 1% budget: the run fails, certainly.
    assert (g.passes, g.uncertain) == (False, False)
    without = hand_made()
    without.requests = without.requests[without.requests["status"] == "ok"]
    g = without.goodput({"ttft_ms": 500}, percentile=99)
    assert (g.passes, g.uncertain) == (False, True)
    assert "fails (uncertain)" in str(g)


def test_slo_forms_and_frame() -> None:
    assert SLO.of({"ttft_ms": 500, "percentile": 90}) == SLO(ttft_ms=500, percentile=90)
    assert SLO.of(SLO(itl_ms=50), percentile=95).percentile == 95
    assert str(SLO(ttft_ms=500, itl_ms=50)) == "p99 TTFT ≤ 500 ms, ITL ≤ 50 ms"
    with pytest.raises(ValueError, match="at least one target"):
        SLO()
    with pytest.raises(ValueError, match="unknown SLO keys"):
        SLO.of({"tpot": 50})
    assert {"slo.itl_ms", "goodput", "passes", "uncertain"} <= set(DEFINITIONS)
    assert "TPOT" in DEFINITIONS["slo.itl_ms"]
    frame = goodput_frame([hand_made(), hand_made(concurrency=4)], {"ttft_ms": 500})
    assert list(frame.index) == ["concurrency 2", "concurrency 4"]
    assert {"goodput", "goodput_low", "fraction_all", "ttft_ms_p99", "passes"} <= set(frame.columns)
    assert bench.goodput_frame is goodput_frame
    assert bench.SLO is SLO
