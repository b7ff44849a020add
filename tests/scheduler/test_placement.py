"""Gang placement: one node when the job fits on one (best fit), whole nodes otherwise."""

from __future__ import annotations

from fabriek.scheduler import HourSignal, NodeShare, Signals, schedule

from .factories import pending, site, snapshot


def test_best_fit_keeps_whole_nodes_free() -> None:
    # n0 has 8 free, n1 has 3 free: a 2-GPU job goes on n1, leaving n0 whole.
    snap = snapshot([pending(1, gpus=2)], sites=[site(nodes=2, free=[8, 3])])
    (start,) = schedule(snap).starts
    assert start.nodes == (NodeShare("n1", 2),)


def test_job_that_fits_one_node_is_never_split() -> None:
    # 4 + 4 GPUs free on two nodes, but a 6-GPU job fits on one node: it waits.
    snap = snapshot([pending(1, gpus=6)], sites=[site(nodes=2, free=[4, 4])])
    result = schedule(snap)
    assert result.starts == []


def test_big_job_gets_whole_nodes() -> None:
    snap = snapshot([pending(1, gpus=16)], sites=[site(nodes=3, free=[8, 5, 8])])
    (start,) = schedule(snap).starts
    assert sorted(start.nodes, key=lambda s: s.node) == [NodeShare("n0", 8), NodeShare("n2", 8)]


def test_big_job_stays_within_one_site() -> None:
    sites = [site("a", nodes=1, prefix="a"), site("b", nodes=2, prefix="b")]
    (start,) = schedule(snapshot([pending(1, gpus=16)], sites=sites)).starts
    assert start.site == "b"


def test_gpu_type_is_respected() -> None:
    sites = [site("a", nodes=1, gpu_type="a100", prefix="a"), site("b", nodes=1, prefix="b")]
    snap = snapshot([pending(1, gpus=8, gpu_type="h100")], sites=sites)
    (start,) = schedule(snap).starts
    assert start.site == "b"


def test_best_fit_across_sites() -> None:
    sites = [site("a", nodes=1, free=[8], prefix="a"), site("b", nodes=1, free=[2], prefix="b")]
    (start,) = schedule(snapshot([pending(1, gpus=2)], sites=sites)).starts
    assert start.site == "b"


def test_zero_gpu_job_starts_without_placement() -> None:
    (start,) = schedule(snapshot([pending(1, gpus=0)])).starts
    assert start.nodes == ()


def test_lower_cost_site_wins_a_tie() -> None:
    sites = [site("a", nodes=1, prefix="a"), site("b", nodes=1, prefix="b")]
    signals = Signals(
        start_s=0.0,
        by_site={
            "a": [HourSignal(carbon_g_per_kwh=400.0)],
            "b": [HourSignal(carbon_g_per_kwh=100.0)],
        },
    )
    (start,) = schedule(snapshot([pending(1, gpus=8)], sites=sites, signals=signals)).starts
    assert start.site == "b"
    # Outside the signals' hours nothing is known: the first site wins the tie.
    later = snapshot([pending(1, gpus=8, submit=7200.0)], sites=sites, signals=signals, now=7200.0)
    assert schedule(later).starts[0].site == "a"


def test_signal_lookup_by_hour() -> None:
    signals = Signals(start_s=100.0, by_site={"a": [HourSignal(1.0), HourSignal(2.0)]})
    assert signals.at("a", 50.0) is None
    assert signals.at("a", 100.0) == HourSignal(1.0)
    assert signals.at("a", 3700.0) == HourSignal(2.0)
    assert signals.at("a", 7300.0) is None
    assert signals.at("b", 100.0) is None
    assert HourSignal().cost() == 0.0
    assert HourSignal(carbon_g_per_kwh=300.0, heat_demand=1.0).cost() == 150.0
