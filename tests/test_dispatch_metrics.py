"""The dispatcher's own metrics: failed calls to a cluster are counted by outcome and still
timed, and sites' health is said only by a dispatcher that cycles."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fabriek.engines.base import EngineRejected, EngineUnavailable
from fabriek.services.jobs.dispatch_metrics import DispatchMetrics
from fabriek.services.jobs.site_health import SiteHealth


def samples(metrics: DispatchMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_failed_calls_are_counted_by_outcome_and_timed() -> None:
    metrics = DispatchMetrics({})
    with metrics.engine_call("a", "submit"):
        pass
    for error in (EngineUnavailable("down"), EngineRejected("no"), ValueError("bug")):
        with pytest.raises(type(error)), metrics.engine_call("a", "submit"):
            raise error
    found = samples(metrics)
    for outcome in ("unavailable", "rejected", "error"):
        key = frozenset({"site": "a", "operation": "submit", "outcome": outcome}.items())
        assert found[("fabriek_engine_call_failures_total", key)] == 1
    timed = frozenset({"site": "a", "operation": "submit"}.items())
    assert found[("fabriek_engine_call_duration_seconds_count", timed)] == 4


def test_sites_health_is_said_only_once_the_dispatcher_cycles() -> None:
    down = SiteHealth()
    down.failed("b", "connection refused")
    metrics = DispatchMetrics({"a": SiteHealth(), "b": down})
    assert not any(name == "fabriek_site_up" for name, _ in samples(metrics))
    metrics.cycle_done(0.02)
    found = samples(metrics)
    assert found[("fabriek_site_up", frozenset({("site", "a")}))] == 1
    assert found[("fabriek_site_up", frozenset({("site", "b")}))] == 0
    assert found[("fabriek_dispatch_cycle_duration_seconds_count", frozenset())] == 1
