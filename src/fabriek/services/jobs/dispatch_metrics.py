"""What the dispatcher measures as it works: its cycles, its calls to the clusters, and
which sites answer.

These are events of the process that dispatches (only the leader does), kept in memory and
read at scrape time; what the database knows (queues, power, budgets) every server reports
(`services.factory_metrics`). Labels are bounded: a site, an operation (submit, poll,
cancel) and an outcome class; never a job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from fabriek.engines.base import EngineRejected, EngineUnavailable

CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# A dispatcher that has not cycled for this long says nothing of its sites' health: it is
# a follower, or a leader that lost its lease (whose word on a site would hide its
# successor's), or stalled, which the last-cycle time shows. Cycles are a second apart (at
# most a minute, FABRIEK_DISPATCH_INTERVAL_S).
HEALTH_FRESH_S = 120.0


class Health(Protocol):
    """What the metrics read of a site's health (`SiteHealth`)."""

    @property
    def down_since(self) -> float | None: ...


class DispatchMetrics:
    """The dispatcher's own metrics: a collector (`collect`) for the app's registry."""

    def __init__(self, health: Mapping[str, Health]) -> None:
        self.health = health
        # registry=None: these live in the collector, not the process-global registry, so
        # several apps (tests) in one process each have their own.
        self.cycles = Histogram(
            "fabriek_dispatch_cycle_duration_seconds",
            "Time of one dispatcher cycle: place, launch, observe, cancel",
            buckets=CYCLE_BUCKETS,
            registry=None,
        )
        self.scheduling = Histogram(
            "fabriek_scheduler_cycle_duration_seconds",
            "Time of one scheduling pass over every waiting job (part of a dispatcher cycle)",
            buckets=CYCLE_BUCKETS,
            registry=None,
        )
        self.calls = Histogram(
            "fabriek_engine_call_duration_seconds",
            "Time of a call to a site's cluster, by site and operation (submit, poll, cancel)",
            ["site", "operation"],
            buckets=CALL_BUCKETS,
            registry=None,
        )
        self.failures = Counter(
            "fabriek_engine_call_failures",
            "Calls to a site's cluster that failed, by site, operation and outcome "
            "(unavailable: the cluster did not answer; rejected: it refused the job; "
            "error: anything else)",
            ["site", "operation", "outcome"],
            registry=None,
        )
        self.last_cycle_at: float | None = None  # wall clock, seconds since the epoch
        self._last_cycle_monotonic: float | None = None

    @contextmanager
    def engine_call(self, site: str, operation: str) -> Iterator[None]:
        """Time a call to `site`'s cluster; count it failed if it raises (and re-raise)."""
        began = time.perf_counter()
        try:
            yield
        except EngineUnavailable:
            self.failures.labels(site, operation, "unavailable").inc()
            raise
        except EngineRejected:
            self.failures.labels(site, operation, "rejected").inc()
            raise
        except Exception:
            self.failures.labels(site, operation, "error").inc()
            raise
        finally:
            self.calls.labels(site, operation).observe(time.perf_counter() - began)

    def cycle_done(self, seconds: float) -> None:
        """A dispatcher cycle ended after `seconds`."""
        self.cycles.observe(seconds)
        self.last_cycle_at = time.time()
        self._last_cycle_monotonic = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        """The metrics, for a scrape."""
        yield from self.cycles.collect()
        yield from self.scheduling.collect()
        yield from self.calls.collect()
        yield from self.failures.collect()
        if self.last_cycle_at is None or self._last_cycle_monotonic is None:
            return  # this process does not dispatch (yet): nothing to say of the sites
        last = GaugeMetricFamily(
            "fabriek_dispatch_last_cycle_timestamp_seconds",
            "When this server's dispatcher last finished a cycle (only the leader cycles)",
        )
        last.add_metric([], self.last_cycle_at)
        yield last
        if time.monotonic() - self._last_cycle_monotonic > HEALTH_FRESH_S:
            return
        up = GaugeMetricFamily(
            "fabriek_site_up",
            "Whether the site's cluster answers the dispatcher (0 while it is backed off)",
            labels=["site"],
        )
        # A copy: the dispatcher's thread may add a site while this one reads.
        for site, health in sorted(dict(self.health).items()):
            up.add_metric([site], 0.0 if health.down_since is not None else 1.0)
        yield up
