"""The runtime's Prometheus metrics, in a registry of its own (several runtimes can share a
process without their counts mixing)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from .sim.pacer import LAG_BOUNDS, LagHistogram

__all__ = ["RuntimeMetrics"]

# The *_created series double the output and tell a dashboard nothing it needs here.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _LagCollector(Collector):
    """Exposes the pacer's send-lag counts, kept outside prometheus_client for speed: the
    pacer observes every frame, and a plain list increment costs a fraction of a locked
    histogram update."""

    def __init__(self, lag: LagHistogram) -> None:
        self.lag = lag

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "glm_live_sim_send_lag_seconds",
            "Simulator frames: actual send time minus scheduled send time.",
        )
        cumulative = 0
        buckets = []
        for bound, count in zip((*LAG_BOUNDS, float("inf")), self.lag.counts, strict=True):
            cumulative += count
            buckets.append((repr(bound) if bound != float("inf") else "+Inf", cumulative))
        family.add_metric([], buckets, self.lag.total)
        yield family


class RuntimeMetrics:
    """Requests in flight, requests and tokens served, errors by type, latency histograms."""

    def __init__(self, lag: LagHistogram) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.in_flight = Gauge(
            "glm_live_requests_in_flight", "Requests being served now.", registry=r
        )
        self.requests = Counter(
            "glm_live_requests",
            "Requests served, by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.tokens = Counter(
            "glm_live_tokens_served", "Tokens sent to clients, by kind.", ["kind"], registry=r
        )
        self.errors = Counter("glm_live_errors", "Errors, by type.", ["type"], registry=r)
        self.duration = Histogram(
            "glm_live_request_duration_seconds",
            "Time from request to the end of the response.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "glm_live_time_to_first_chunk_seconds",
            "Time from request to the first streamed chunk.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_LagCollector(lag))

    def count_tokens(self, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            if n:
                self.tokens.labels(kind).inc(n)
