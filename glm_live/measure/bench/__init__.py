"""Benchmarks of streaming endpoints, as DataFrames.

See :mod:`.runner` for how load is generated and timed, :mod:`.cluster` for sharding it over
``dask.distributed`` workers (``cluster=...``), and :mod:`.stats` for the statistics and
metric dialects. Users type :mod:`glm_live.bench`: this, with a live progress view.
"""

from __future__ import annotations

from ...errors import ClusterError
from . import plots
from .compare import compare
from .results import BenchResult
from .runner import Benchmark, Shard, chat_url, prompts_from, run, sweep
from .stats import PERCENTILES, bootstrap_ci, describe, dialects, permutation_test

__all__ = [
    "PERCENTILES",
    "BenchResult",
    "Benchmark",
    "ClusterError",
    "Shard",
    "bootstrap_ci",
    "chat_url",
    "compare",
    "describe",
    "dialects",
    "permutation_test",
    "plots",
    "prompts_from",
    "run",
    "sweep",
]
