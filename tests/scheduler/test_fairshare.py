"""Fair share: decay, and the fair tree's ranking organisation -> project -> user."""

from __future__ import annotations

import pytest

from fabriek.domain.units import GpuHours
from fabriek.scheduler.fairshare import UsageRecord, decay, decayed_usage, fair_tree_factors
from fabriek.scheduler.usage import TenantUsage

from .factories import allocation


def test_decay_halves_each_half_life() -> None:
    assert decay(8.0, 0.0, 10.0) == 8.0
    assert decay(8.0, 20.0, 10.0) == pytest.approx(2.0)


def test_decayed_usage_sums_per_user() -> None:
    records = [
        UsageRecord("p", "u", GpuHours(4.0), at_s=0.0),
        UsageRecord("p", "u", GpuHours(1.0), at_s=10.0),
        UsageRecord("p", "v", GpuHours(2.0), at_s=10.0),
    ]
    usage = decayed_usage(records, now_s=10.0, half_life_s=10.0)
    assert usage[("p", "u")].value == pytest.approx(3.0)
    assert usage[("p", "v")].value == pytest.approx(2.0)


def test_organisation_below_its_share_ranks_all_its_users_first() -> None:
    allocs = {
        "a1": allocation("a1", "org-a"),
        "b1": allocation("b1", "org-b"),
        "b2": allocation("b2", "org-b"),
    }
    usage = {
        ("a1", "x"): GpuHours(100.0),
        ("b1", "y"): GpuHours(10.0),
        ("b2", "z"): GpuHours(500.0),
    }
    f = fair_tree_factors(allocs, usage, [("a1", "x"), ("b1", "y"), ("b2", "z")])
    # org-b used 510 of 610 with half the shares: org-a ranks first.
    assert f[("a1", "x")] == 1.0
    assert f[("b1", "y")] > f[("b2", "z")] > 0.0


def test_unused_users_rank_first_and_ties_share_a_rank() -> None:
    allocs = {"p": allocation("p", "o")}
    usage = {("p", "busy"): GpuHours(5.0)}
    f = fair_tree_factors(allocs, usage, [("p", "new1"), ("p", "new2"), ("p", "busy")])
    assert f[("p", "new1")] == f[("p", "new2")] == 1.0
    assert f[("p", "busy")] == pytest.approx(1 / 3)


def test_users_without_allocation_get_zero() -> None:
    f = fair_tree_factors({}, {}, [("ghost", "u")])
    assert f[("ghost", "u")] == 0.0


def test_tenant_usage_matches_integral_of_decay() -> None:
    meter = TenantUsage(half_life_s=100.0)
    meter.start("t", gpus=2, now=0.0)
    # 2 GPUs for 100 s, decayed continuously: 2 * h/ln2 * (1 - 1/2) GPU-seconds.
    expected = 2 * 100.0 / 0.6931471805599453 * 0.5
    running = meter.snapshot(100.0)[("t", "t")].value * 3600
    assert running == pytest.approx(expected)
    meter.end("t", gpus=2, started=0.0, now=100.0)
    done = meter.snapshot(200.0)[("t", "t")].value * 3600
    assert done == pytest.approx(expected / 2)
