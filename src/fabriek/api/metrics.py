"""Prometheus metrics: request counts and latencies per route, and the collectors of the
factory's own state (queues, sites, power, budgets; `services.factory_metrics`) and of its
dispatcher (cycles, calls to the clusters), all in one exposition."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestMetrics:
    """Counters of one app (not the global registry, so several apps can live in a process)."""

    def __init__(self, *collectors: Any) -> None:
        """`collectors`: more prometheus_client collectors (objects with `collect()`), read
        at every scrape."""
        self.registry = CollectorRegistry()
        for collector in collectors:
            self.registry.register(collector)
        self.requests = Counter(
            "fabriek_http_requests",
            "HTTP requests answered, by method, route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fabriek_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

        self.throttled = Counter(
            "fabriek_http_requests_throttled",
            "Requests refused with 429 by a rate limit, by limit (token, token_writes, "
            "address, failed_signins)",
            ["limit"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class UnwrittenUsage:
    """A collector: the model gateway's endpoint usage gathered in this process and not yet
    written to the store (written every second; it grows only while writes fail)."""

    def __init__(self, pending: Callable[[], int]) -> None:
        self.pending = pending

    def collect(self) -> Iterator[Metric]:
        """The gauge, for a scrape."""
        gauge = GaugeMetricFamily(
            "fabriek_endpoint_usage_unwritten",
            "Endpoint usage rows (endpoint, caller, day) this server's gateway gathered and "
            "has not yet written to the store",
        )
        gauge.add_metric([], float(self.pending()))
        yield gauge


class MetricsMiddleware:
    """Plain ASGI (not BaseHTTPMiddleware): it must not slow the hot path down."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            # The route's template, not the raw path: /projects/{ref}, not one series per id.
            name = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, name, str(status)).inc()
            self.metrics.latency.labels(method, name).observe(time.perf_counter() - start)
