"""The pure part of a sharded benchmark (:mod:`glm_live.bench.cluster` does the I/O):
splitting the load over workers, merging what they send back into one result, and the
report of how well their clocks agreed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..recorder import Recorder
from .results import BenchResult, _calibrate

__all__ = ["ShardOutput", "ShardPlan", "clock_report", "merge", "plan"]


# -- planning ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardPlan:
    """One worker's share: its concurrency (slots, or its part of an open loop's cap), its
    global request indices and, open loop, their arrival offsets (s)."""

    concurrency: int | None
    indices: tuple[int, ...]
    offsets: tuple[float, ...] | None


def plan(
    workers: int, *, total: int, concurrency: int | None, offsets: Sequence[float] | None
) -> list[ShardPlan]:
    """Split a run of ``total`` requests over ``workers`` (how: :mod:`glm_live.bench.cluster`).

    ``offsets`` is the open loop's arrival schedule (``None``: closed loop).

    Raises:
        ValueError: Fewer concurrency slots than workers, or no workers.
    """
    if workers < 1:
        msg = "a sharded run needs at least one dask worker"
        raise ValueError(msg)

    def split(slots: int) -> list[int]:
        if slots < workers:
            msg = (
                f"concurrency={slots} cannot be split over {workers} workers: give a "
                f"concurrency of at least {workers}, or a cluster with fewer workers"
            )
            raise ValueError(msg)
        return [slots // workers + (w < slots % workers) for w in range(workers)]

    if offsets is None:
        if not concurrency:
            msg = "a closed-loop run needs a concurrency"
            raise ValueError(msg)
        slots = split(concurrency)
        shares: list[list[int]] = [[] for _ in range(workers)]
        for k in range(total):
            shares[k % concurrency % workers].append(k)
        return [ShardPlan(slots[w], tuple(shares[w]), None) for w in range(workers)]
    if len(offsets) != total:
        msg = f"an open loop needs one arrival per request: {len(offsets)} for {total}"
        raise ValueError(msg)
    caps: list[int | None] = list(split(concurrency)) if concurrency else [None] * workers
    return [
        ShardPlan(caps[w], tuple(range(w, total, workers)), tuple(offsets[w::workers]))
        for w in range(workers)
    ]


@dataclass
class ShardOutput:
    """What a worker sends back: its raw recorder (the frames are built once, on the driver),
    the global index of each of its requests, and how its run went."""

    address: str
    name: str
    recorder: Recorder
    indices: list[int]
    lag_s: list[float]
    late_ns: int
    cancelled: bool
    ttfts_ms: list[float]
    errors: int


# -- merging -------------------------------------------------------------------------------------


def merge(
    outputs: Sequence[ShardOutput],
    *,
    config: dict[str, Any],
    clocks: dict[str, tuple[int, int]],
    anchor_ns: int,
    anchor_wall_ns: int,
    cancelled: bool,
) -> BenchResult:
    """One :class:`BenchResult` from the workers' shards.

    Args:
        outputs: What the workers sent back.
        config: The run's configuration.
        clocks: Each worker's clock offset and the probe's round trip (ns).
        anchor_ns: The common start, on this process's monotonic clock...
        anchor_wall_ns: ...and on the wall clock: the merged frames' ``t`` counts from it.
        cancelled: Whether the run was cancelled.
    """
    applied = {o.address: _applied(*clocks[o.address]) for o in outputs}
    parts = [
        (
            o.recorder,
            o.recorder.anchor_wall_ns
            - o.recorder.anchor_ns
            - applied[o.address]
            - anchor_wall_ns
            + anchor_ns,
        )
        for o in outputs
    ]
    # Requests in global-index order: the numbering a single process would have given them.
    order = sorted(
        (index, p, r) for p, o in enumerate(outputs) for r, index in enumerate(o.indices)
    )
    recorder = Recorder.merged(
        parts, [(p, r) for _, p, r in order], anchor_ns=anchor_ns, anchor_wall_ns=anchor_wall_ns
    )
    lag = [x for o in outputs for x in o.lag_s]
    result = BenchResult.from_recorder(
        recorder, config=config, lag_s=lag, cancelled=cancelled, started_wall=anchor_wall_ns / 1e9
    )
    addresses = sorted(o.address for o in outputs)
    of_request = np.array([outputs[p].address for _, p, _ in order], dtype=object)
    correction = np.array([applied[outputs[p].address] for _, p, _ in order], dtype=np.int64)
    requests, events = result.requests, result.events
    if not requests.empty:
        requests["worker"] = pd.Categorical(of_request, categories=addresses)
        # Wall-clock columns stay each worker's own stamps: undo the offset applied above.
        wall = requests["start"].astype("int64").to_numpy() + correction
        requests["start"] = pd.to_datetime(wall, unit="ns", utc=True)
    else:
        requests["worker"] = pd.Categorical([], categories=addresses)
    numbers = events["request"].to_numpy()
    events["worker"] = pd.Categorical(of_request[numbers], categories=addresses)
    events["arrival_wall_ns"] = events["arrival_wall_ns"].to_numpy() + correction[numbers]
    events["arrival"] = pd.to_datetime(events["arrival_wall_ns"], unit="ns", utc=True)
    result.calibration = _calibrate(events, lag)
    result.calibration["clock"] = clock_report(outputs, clocks, applied, events)
    return result


def _applied(offset_ns: int, rtt_ns: int) -> int:
    """The offset corrected for: none when it is within the probe's uncertainty. On one
    machine every process reads the same clock, and a correction would only add the
    probe's noise."""
    return offset_ns if abs(offset_ns) > rtt_ns // 2 else 0


def clock_report(
    outputs: Sequence[ShardOutput],
    clocks: dict[str, tuple[int, int]],
    applied: dict[str, int],
    events: pd.DataFrame,
) -> dict[str, Any]:
    """How well the workers' clocks agreed: ``calibration["clock"]``."""
    stamped = events.dropna(subset=["sent_ns"])
    delay = (stamped["arrival_wall_ns"] - stamped["sent_ns"].astype("int64")) / 1e6
    server_min = delay.groupby(stamped["worker"], observed=True).min().to_dict()
    rows: list[dict[str, Any]] = []
    for o in sorted(outputs, key=lambda o: o.address):
        offset, rtt = clocks[o.address]
        least = server_min.get(o.address)
        rows.append(
            {
                "worker": o.address,
                "name": o.name,
                "offset_ms": offset / 1e6,
                "rtt_ms": rtt / 1e6,
                "applied_offset_ms": applied[o.address] / 1e6,
                "late_ms": o.late_ns / 1e6,
                "server_min_delay_ms": None if least is None else float(least),
            }
        )
    offsets = [row["offset_ms"] for row in rows]
    spread = max(offsets) - min(offsets) if offsets else 0.0
    uncertainty = max((row["rtt_ms"] / 2 for row in rows), default=0.0)
    mins = [row["server_min_delay_ms"] for row in rows if row["server_min_delay_ms"] is not None]
    server_spread = max(mins) - min(mins) if len(mins) == len(rows) and mins else None
    if not rows:
        agreement = "no worker sent its shard back: nothing to compare"
    elif len(rows) == 1:
        agreement = (
            f"1 worker, its clock {offsets[0]:+.2f} ms from this process's "
            f"(±{uncertainty:.2f} ms, by dask round trips)"
        )
    else:
        agreement = (
            f"{len(rows)} workers' clocks agree within {spread:.2f} ms (each offset measured "
            f"to ±{uncertainty:.2f} ms by dask round trips)"
        )
        if server_spread is not None:
            agreement += f"; within {server_spread:.2f} ms by the server's send stamps"
    return {
        "workers": rows,
        "spread_ms": spread,
        "uncertainty_ms": uncertainty,
        "server_spread_ms": server_spread,
        "agreement": agreement,
    }
