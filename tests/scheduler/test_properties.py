"""Invariants of one cycle on random snapshots (hypothesis)."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.domain.units import GpuHours
from fabriek.scheduler import (
    Allocation,
    Node,
    NodeShare,
    PendingJob,
    Policy,
    RunningJob,
    SchedulerConfig,
    SiteState,
    Snapshot,
    never_fits,
    schedule,
)

PROJECTS = ["p1", "p2", "p3"]  # p3 has no allocation


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    now = float(draw(st.integers(0, 1000)))
    sites: list[SiteState] = []
    running: list[RunningJob] = []
    job_id = 1000
    for s in range(draw(st.integers(1, 3))):
        site_name = f"s{s}"
        nodes: list[Node] = []
        for n in range(draw(st.integers(1, 4))):
            size = draw(st.sampled_from([1, 2, 4, 8]))
            name = f"n{n}"
            used = 0
            for _ in range(draw(st.integers(0, 3))):
                g = draw(st.integers(0, size - used))
                if g == 0:
                    continue
                used += g
                job_id += 1
                running.append(
                    RunningJob(
                        job_id=job_id,
                        project=draw(st.sampled_from(PROJECTS[:2])),
                        user="u",
                        site=site_name,
                        nodes=(NodeShare(name, g),),
                        start_time_s=now - draw(st.integers(0, 500)),
                        expected_end_s=now + draw(st.integers(0, 3000)),
                        preemptible=draw(st.booleans()),
                        factor=draw(st.sampled_from([1.0, 0.667, 1.4])),
                    )
                )
            gpu_type = draw(st.sampled_from(["h100", "a100"]))
            nodes.append(Node(name, gpu_type, size, size - used))
        sites.append(SiteState(site_name, tuple(nodes)))
    pending = [
        PendingJob(
            job_id=i,
            project=draw(st.sampled_from(PROJECTS[:2] * 4 + PROJECTS[2:])),
            user=draw(st.sampled_from(["u1", "u2"])),
            gpus=draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4, 8, 16, 40])),
            time_limit_s=float(draw(st.integers(1, 5000))),
            submit_time_s=float(draw(st.integers(0, int(now) + 50))),
            gpu_type=draw(st.sampled_from([None, None, None, "h100", "a100"])),
            earliest_start_s=draw(st.one_of(st.none(), st.none(), st.none(), st.floats(0, 2000))),
            # Its datasets' sites, now and then.
            sites=draw(
                st.one_of(st.none(), st.none(), st.frozensets(st.sampled_from(["s0", "s1", "s2"])))
            ),
        )
        for i in range(draw(st.integers(0, 12)))
    ]
    allocations = {
        p: Allocation(
            project=p,
            organisation=f"o{p}",
            budget_left=draw(st.one_of(st.none(), st.floats(0, 50).map(GpuHours))),
            tier=draw(st.integers(0, 2)),
            preemptible=draw(st.booleans()),
            sites=draw(st.one_of(st.none(), st.frozensets(st.sampled_from(["s0", "s1", "s2"])))),
        )
        for p in PROJECTS[:2]
    }
    usage = {(p, u): GpuHours(draw(st.floats(0, 100))) for p in PROJECTS[:2] for u in ["u1", "u2"]}
    factors = draw(st.sampled_from([{}, {"h100": 1.0, "a100": 0.667}, {"h100": 1.5, "a100": 0.5}]))
    return Snapshot(now, pending, running, sites, allocations, usage, gpu_hour_factors=factors)


policies = st.sampled_from(list(Policy))


def node_free(snap: Snapshot) -> dict[tuple[str, str], int]:
    return {(s.name, n.name): n.free for s in snap.sites for n in s.nodes}


@settings(max_examples=150, deadline=None)
@given(snapshots(), policies)
def test_never_more_gpus_than_exist_and_gang_rules(snap: Snapshot, policy: Policy) -> None:
    result = schedule(snap, SchedulerConfig(policy=policy))
    free = node_free(snap)
    nodes = {(s.name, n.name): n for s in snap.sites for n in s.nodes}
    running = {r.job_id: r for r in snap.running}
    pending = {j.job_id: j for j in snap.pending}
    for p in result.preemptions:
        for share in running[p.job_id].nodes:
            free[(running[p.job_id].site, share.node)] += share.gpus
    for start in result.starts:
        job = pending[start.job_id]
        assert sum(s.gpus for s in start.nodes) == job.gpus
        for share in start.nodes:
            node = nodes[(start.site, share.node)]
            assert job.gpu_type is None or node.gpu_type == job.gpu_type
            free[(start.site, share.node)] -= share.gpus
        allowed = snap.allocations[job.project].sites
        fits_one = any(
            n.gpus >= job.gpus and (job.gpu_type is None or n.gpu_type == job.gpu_type)
            for (site_name, _), n in nodes.items()
            # The job's own sites narrow its allocation's: a job kept to a site of small
            # nodes may span them although a bigger node stands at a site it may not use.
            if (allowed is None or site_name in allowed)
            and (job.sites is None or site_name in job.sites)
        )
        if fits_one and job.gpus > 0:
            assert len(start.nodes) == 1
    assert all(v >= 0 for v in free.values()), free


@settings(max_examples=150, deadline=None)
@given(snapshots(), policies)
def test_every_job_decided_once_and_never_early(snap: Snapshot, policy: Policy) -> None:
    result = schedule(snap, SchedulerConfig(policy=policy))
    decided = [d.job_id for d in result.decisions if not hasattr(d, "for_job_id")]
    assert sorted(decided) == sorted(j.job_id for j in snap.pending)
    pending = {j.job_id: j for j in snap.pending}
    for start in result.starts:
        job = pending[start.job_id]
        assert job.submit_time_s <= snap.now_s
        assert job.earliest_start_s is None or job.earliest_start_s <= snap.now_s
        assert not never_fits(job, snap.sites)
    running_ids = {r.job_id for r in snap.running}
    assert all(p.job_id in running_ids for p in result.preemptions)


@settings(max_examples=150, deadline=None)
@given(snapshots(), policies)
def test_reservation_is_never_delayed_by_backfilled_jobs(snap: Snapshot, policy: Policy) -> None:
    result = schedule(snap, SchedulerConfig(policy=policy))
    res = result.reservation
    if res is None:
        return
    assert res.start_s >= snap.now_s
    assert res.job_id not in {s.job_id for s in result.starts}
    pending = {j.job_id: j for j in snap.pending}
    stopped = {p.job_id for p in result.preemptions}
    at_start = node_free(snap)
    # GPUs held at the reservation's start: running jobs and this cycle's starts that
    # have not reached their time limit by then.
    holders = [(r.site, r.nodes, r.expected_end_s) for r in snap.running if r.job_id not in stopped]
    holders += [
        (s.site, s.nodes, snap.now_s + pending[s.job_id].time_limit_s) for s in result.starts
    ]
    for r in snap.running:
        if r.job_id in stopped:
            for share in r.nodes:
                at_start[(r.site, share.node)] += share.gpus
    for site, shares, end in holders:
        for share in shares:
            if end <= res.start_s:
                at_start[(site, share.node)] += share.gpus
    for s in result.starts:
        for share in s.nodes:
            at_start[(s.site, share.node)] -= share.gpus
    for share in res.nodes:
        assert at_start[(res.site, share.node)] >= share.gpus
    assert sum(s.gpus for s in res.nodes) == pending[res.job_id].gpus


@settings(max_examples=150, deadline=None)
@given(snapshots(), policies)
def test_budgets_never_overdrawn_by_starts(snap: Snapshot, policy: Policy) -> None:
    result = schedule(snap, SchedulerConfig(policy=policy))
    pending = {j.job_id: j for j in snap.pending}
    stopped = {p.job_id for p in result.preemptions}
    committed: dict[str, float] = defaultdict(float)
    types = {(s.name, n.name): n.gpu_type for s in snap.sites for n in s.nodes}
    for r in snap.running:
        if r.job_id not in stopped:
            rest = max(0.0, r.expected_end_s - snap.now_s) / 3600
            committed[r.project] += r.gpus * rest * r.factor
    started_projects = set()
    for s in result.starts:
        job = pending[s.job_id]
        rate = snap.gpu_hour_factors.get(types[(s.site, s.nodes[0].node)], 1.0) if s.nodes else 1
        committed[job.project] += job.gpus * job.time_limit_s / 3600 * rate
        started_projects.add(job.project)
    for project in started_projects:
        alloc = snap.allocations[project]
        if alloc.budget_left is not None:
            assert committed[project] <= alloc.budget_left.value + 1e-6


@settings(max_examples=150, deadline=None)
@given(snapshots(), policies)
def test_jobs_start_only_on_their_allocations_sites(snap: Snapshot, policy: Policy) -> None:
    pending = {j.job_id: j for j in snap.pending}
    for start in schedule(snap, SchedulerConfig(policy=policy)).starts:
        allowed = snap.allocations[pending[start.job_id].project].sites
        assert allowed is None or start.site in allowed
        # ... and only where its datasets may be processed (GPU jobs and others alike).
        own = pending[start.job_id].sites
        assert own is None or start.site in own


@settings(max_examples=60, deadline=None)
@given(snapshots(), policies)
def test_cycle_is_deterministic(snap: Snapshot, policy: Policy) -> None:
    config = SchedulerConfig(policy=policy)
    assert schedule(snap, config) == schedule(snap, config)
