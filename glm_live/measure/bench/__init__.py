"""Benchmarks of streaming endpoints, as DataFrames.

:mod:`.runner` is the front door (:class:`Benchmark`, :func:`run`, :func:`sweep`), which runs
a :class:`~.load.Load` with a strategy: :mod:`.local` generates and times the load in this
process, :mod:`.cluster` shards it over ``dask.distributed`` workers (``cluster=...``).
:mod:`._http` is the HTTP/1.1 client (h11 on a bare ``asyncio.Protocol``), :mod:`.stats`
has the statistics and metric dialects, and :mod:`.workloads` the realistic workloads
(multi-turn sessions, shared and unique prefixes, Mooncake trace replay, token counters).
Users type :mod:`glm_live.bench`: this, with a live progress view.
"""

from __future__ import annotations

from . import plots
from .cluster import ClusterError
from .compare import compare
from .interop import from_guidellm as load_guidellm
from .interop import from_vllm as load_vllm
from .interop import load_foreign, to_guidellm, to_vllm
from .report import render_report, write_report
from .results import BenchResult
from .runner import Benchmark, Shard, chat_url, prompts_from, run, sweep
from .search import Saturation, SearchResult, search
from .slo import SLO, Goodput, goodput_frame
from .stats import PERCENTILES, bootstrap_ci, describe, dialects, permutation_test
from .workloads import EXAMPLE_TRACE, Sessions, TokenCounter, Trace, read_trace

__all__ = [
    "EXAMPLE_TRACE",
    "PERCENTILES",
    "SLO",
    "BenchResult",
    "Benchmark",
    "ClusterError",
    "Goodput",
    "Saturation",
    "SearchResult",
    "Sessions",
    "Shard",
    "TokenCounter",
    "Trace",
    "bootstrap_ci",
    "chat_url",
    "compare",
    "describe",
    "dialects",
    "goodput_frame",
    "load_foreign",
    "load_guidellm",
    "load_vllm",
    "permutation_test",
    "plots",
    "prompts_from",
    "read_trace",
    "render_report",
    "run",
    "search",
    "sweep",
    "to_guidellm",
    "to_vllm",
    "write_report",
]
