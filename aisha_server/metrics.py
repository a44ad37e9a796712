"""Request metrics: Prometheus collectors in a per-app registry, plus a recent-latency window
for the percentiles and error rate that `GET /api/system/metrics` reports."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# The classic text format, which is what generate_latest writes; prometheus_client >= 0.22
# labels CONTENT_TYPE_LATEST version=1.0.0, which older scrapers do not recognise.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class WindowStats:
    window_seconds: float
    requests: int
    errors: int
    error_rate: float
    requests_per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class _RequestCollector(Collector):
    """Exposes the request counters and latency histograms kept in plain dictionaries.

    The event loop is the only writer, so per-request accounting needs neither
    prometheus_client's per-value locks nor its label validation: it is a few dictionary
    and list operations, and the Prometheus families are built only when scraped.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily(
            "aisha_http_requests", "HTTP requests handled", labels=["method", "route", "status"]
        )
        for (method, route, status), value in sorted(self._metrics.request_counts.items()):
            counts.add_metric([method, route, str(status)], value)
        yield counts
        latency = HistogramMetricFamily(
            "aisha_http_request_duration_seconds", "HTTP request latency", labels=["route"]
        )
        for route, (buckets, total) in sorted(self._metrics.latency.items()):
            cumulative = 0
            points = []
            for bound, count in zip(BUCKETS, buckets, strict=False):
                cumulative += count
                points.append((repr(bound), cumulative))
            cumulative += buckets[-1]
            points.append(("+Inf", cumulative))
            latency.add_metric([route], points, total)
        yield latency


class Metrics:
    def __init__(self, *, window_size: int = 20_000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        # (method, route, status) -> count; route -> ([count per bucket..., overflow], sum)
        self.request_counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, tuple[list[int], float]] = {}
        self.registry.register(_RequestCollector(self))
        self.auth_failures = Counter(
            "aisha_auth_failures_total",
            "Failed authentications",
            ["reason"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "aisha_rate_limited_total",
            "Requests refused by rate limits",
            ["bucket"],
            registry=self.registry,
        )
        self._recent: deque[tuple[float, float, bool]] = deque(maxlen=window_size)
        self.started = time.time()
        self.total_requests = 0
        self.total_errors = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        counts = self.request_counts
        counts[key] = counts.get(key, 0) + 1
        entry = self.latency.get(route)
        if entry is None:
            entry = self.latency[route] = ([0] * (len(BUCKETS) + 1), 0.0)
        entry[0][bisect_left(BUCKETS, seconds)] += 1
        self.latency[route] = (entry[0], entry[1] + seconds)
        is_error = status >= 500
        self._recent.append((time.monotonic(), seconds, is_error))
        self.total_requests += 1
        if is_error:
            self.total_errors += 1

    def window(self, seconds: float = 300.0) -> WindowStats:
        now = time.monotonic()
        recent = [(t, d, e) for (t, d, e) in self._recent if now - t <= seconds]
        durations = sorted(d for _, d, _ in recent)
        errors = sum(1 for _, _, e in recent if e)
        span = max(1e-9, min(seconds, now - recent[0][0])) if recent else seconds
        count = len(recent)
        return WindowStats(
            window_seconds=seconds,
            requests=count,
            errors=errors,
            error_rate=(errors / count) if count else 0.0,
            requests_per_second=count / span if count else 0.0,
            p50_ms=_percentile(durations, 0.50) * 1000,
            p95_ms=_percentile(durations, 0.95) * 1000,
            p99_ms=_percentile(durations, 0.99) * 1000,
        )

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["PROMETHEUS_CONTENT_TYPE", "Metrics", "WindowStats"]
