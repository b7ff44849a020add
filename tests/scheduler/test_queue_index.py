"""The pending queue kept as an index between cycles (`PendingQueue`) decides exactly as a
cycle from scratch: same order, same starts, same waits and words, same reservation."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabriek.domain.units import GpuHours
from fabriek.scheduler import (
    Allocation,
    CycleResult,
    HourSignal,
    Node,
    NodeShare,
    PendingJob,
    Policy,
    PriorityWeights,
    RunningJob,
    SchedulerConfig,
    Signals,
    SiteState,
    Snapshot,
    Start,
    policy,
    schedule,
)
from fabriek.scheduler.decisions import Preempt, ShortfallWait
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.priority import priority_order
from fabriek.scheduler.queue_index import PendingQueue

DAY_S = 86_400.0


@pytest.fixture(autouse=True)
def index_at_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cycle reads a small index out as a list (`policy._INDEX_FROM`); here every index is
    read over its columns, whatever its size, so that the two paths are compared."""
    monkeypatch.setattr(policy, "_INDEX_FROM", 0)


# Nodes: (site, name, GPU type, GPUs).
NODES = [
    ("a", "a0", "h100", 8),
    ("a", "a1", "h100", 4),
    ("a", "a2", "a100", 4),
    ("b", "b0", "h100", 8),
    ("b", "b1", "a100", 8),
]
PROJECTS = ["p1", "p2", "p3", "p4"]  # p4 has no allocation
USERS = ["u1", "u2", "u3"]


def allocations(budget: float) -> dict[str, Allocation]:
    """p1 on a budget, p2 a higher tier at site b only, p3 a preemptible playground."""
    return {
        "p1": Allocation("p1", "o1", budget_left=GpuHours(budget), shares=2.0),
        "p2": Allocation("p2", "o2", tier=1, sites=frozenset({"b"})),
        "p3": Allocation("p3", "o1", preemptible=True, budget_left=GpuHours(budget * 3)),
    }


def carbon(seed: int) -> Signals:
    """Ten days of hourly carbon at both sites: cleaner at night, some noise."""
    rng = random.Random(seed)
    hours = {
        s: [
            HourSignal(None, 200 + 150 * math.cos(2 * math.pi * h / 24) + rng.uniform(0, 30))
            for h in range(10 * 24)
        ]
        for s in ("a", "b")
    }
    return Signals(start_s=0.0, by_site=hours, power=PowerModel(utilisation=1.0, pue=1.0))


@st.composite
def new_jobs(draw: st.DrawFn, first_id: int, now: float) -> list[PendingJob]:
    jobs = []
    for i in range(draw(st.integers(0, 20))):
        flexible = draw(st.booleans()) and draw(st.booleans())
        jobs.append(
            PendingJob(
                job_id=first_id + i,
                project=draw(st.sampled_from(PROJECTS)),
                user=draw(st.sampled_from(USERS)),
                gpus=draw(st.sampled_from([0, 1, 1, 1, 2, 4, 8, 12, 16, 40])),
                time_limit_s=draw(st.sampled_from([60.0, 600.0, 3600.0, 4 * 3600.0, DAY_S])),
                # Equal submission times are common: ties go by job id.
                submit_time_s=now - draw(st.sampled_from([0.0, 0.0, 30.0, 600.0, 7200.0])),
                gpu_type=draw(st.sampled_from([None, None, "h100", "a100"])),
                earliest_start_s=draw(st.sampled_from([None, None, None, now + 60.0])),
                preemptible=draw(st.booleans()),
                latest_start_s=now + draw(st.sampled_from([1800.0, 12 * 3600.0]))
                if flexible
                else None,
                sites=draw(st.sampled_from([None, None, None, frozenset({"a"})])),
            )
        )
    return jobs


class World:
    """A small factory changed step by step, scheduled both ways each cycle."""

    def __init__(self, budget: float, signals: Signals, terms: bool) -> None:
        self.now = 8 * DAY_S + 3 * 3600.0
        self.pending: dict[int, PendingJob] = {}
        self.running: dict[int, RunningJob] = {}
        self.drained: set[str] = set()
        self.allocations = allocations(budget)
        self.signals = signals
        self.user_sites = {"u3": frozenset({"b"})} if terms else {}
        self.queue = PendingQueue()
        self.next_id = 1

    def occupy(self, used: list[int]) -> None:
        """Running jobs holding `used` GPUs of each node (capped at its size), the odd ones
        of the preemptible playground."""
        for i, ((site, name, _, size), gpus) in enumerate(zip(NODES, used, strict=False)):
            if min(gpus, size) > 0:
                project = "p3" if i % 2 else "p1"
                self.running[10_000 + i] = RunningJob(
                    10_000 + i, project, "u1", site, (NodeShare(name, min(gpus, size)),),
                    self.now - 600.0, self.now + 1800.0 * (i + 1),
                )  # fmt: skip

    def snapshot(self, pending: object) -> Snapshot:
        held: dict[str, int] = {}
        for job in self.running.values():
            for share in job.nodes:
                held[share.node] = held.get(share.node, 0) + share.gpus
        sites = [
            SiteState(
                site,
                tuple(
                    Node(name, kind, size, 0 if name in self.drained else size - held.get(name, 0))
                    for s, name, kind, size in NODES
                    if s == site
                ),
            )
            for site in ("a", "b")
        ]
        usage = {("p1", "u1"): GpuHours(40.0), ("p3", "u2"): GpuHours(5.0)}
        return Snapshot(
            now_s=self.now,
            pending=pending,  # type: ignore[arg-type]
            running=list(self.running.values()),
            sites=sites,
            allocations=self.allocations,
            usage=usage,
            signals=self.signals,
            gpu_hour_factors={"h100": 1.0, "a100": 0.5},
            user_sites=self.user_sites,
        )

    def cycle(self, config: SchedulerConfig) -> CycleResult:
        """One cycle on the kept index and one from scratch (a plain list): they agree."""
        kept = schedule(self.snapshot(self.queue), config)
        scratch = schedule(self.snapshot(list(self.pending.values())), config)
        fresh = schedule(self.snapshot(PendingQueue(self.pending.values())), config)
        assert kept.decisions == scratch.decisions
        assert fresh.decisions == scratch.decisions
        assert kept.reservation == scratch.reservation
        assert kept.wake_s == scratch.wake_s
        return kept

    def submit(self, jobs: list[PendingJob]) -> None:
        for job in jobs:
            self.pending[job.job_id] = job
        self.queue.add(jobs)
        self.next_id += len(jobs)

    def carry_out(self, result: CycleResult) -> None:
        """Started jobs run; preempted ones come back to the queue, keeping their age."""
        back = []
        for decision in result.decisions:
            if isinstance(decision, Preempt) and decision.job_id in self.running:
                gone = self.running.pop(decision.job_id)
                back.append(
                    PendingJob(gone.job_id, gone.project, gone.user, gone.gpus, 3600.0,
                               gone.start_time_s - 60.0, preemptible=gone.preemptible)
                )  # fmt: skip
        started = [d for d in result.decisions if isinstance(d, Start)]
        for start in started:
            job = self.pending.pop(start.job_id)
            if start.nodes:
                self.running[job.job_id] = RunningJob(
                    job.job_id, job.project, job.user, start.site, start.nodes, self.now,
                    self.now + job.time_limit_s, job.preemptible,
                )  # fmt: skip
        self.queue.remove(s.job_id for s in started)
        self.submit(back)

    def end(self, count: int) -> None:
        for job_id in sorted(self.running)[:count]:
            del self.running[job_id]

    def cancel(self, count: int) -> None:
        gone = sorted(self.pending)[-count:] if count else []
        for job_id in gone:
            del self.pending[job_id]
        self.queue.remove(gone)


STEPS = st.sampled_from(["submit", "submit", "carry_out", "end", "cancel", "drain", "tick"])


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    policy=st.sampled_from(list(Policy)),
    budget=st.sampled_from([2.0, 40.0, 1e6]),
    shifting=st.booleans(),
    terms=st.booleans(),
    steps=st.lists(STEPS, min_size=3, max_size=14),
)
def test_a_kept_index_decides_as_a_cycle_from_scratch(
    data: st.DataObject,
    policy: Policy,
    budget: float,
    shifting: bool,
    terms: bool,
    steps: list[str],
) -> None:
    world = World(budget, carbon(7) if shifting else Signals(), terms)
    world.occupy(data.draw(st.lists(st.integers(0, 8), min_size=len(NODES), max_size=5)))
    config = SchedulerConfig(policy=policy)
    world.submit(data.draw(new_jobs(world.next_id, world.now)))
    result = world.cycle(config)
    for step in steps:
        if step == "submit":
            world.submit(data.draw(new_jobs(world.next_id, world.now)))
        elif step == "carry_out":
            world.carry_out(result)
        elif step == "end":
            world.end(data.draw(st.integers(0, 3)))
        elif step == "cancel":
            world.cancel(data.draw(st.integers(0, 3)))
        elif step == "drain":
            node = data.draw(st.sampled_from([n for _, n, _, _ in NODES]))
            world.drained ^= {node}
        else:
            world.now += data.draw(st.sampled_from([1.0, 60.0, 1800.0]))
        result = world.cycle(config)


def test_a_full_factory_waits_the_tail_of_its_queue_at_once() -> None:
    """A queue far longer than the GPUs: past the point where every GPU is taken and the
    reservation set, jobs wait without being checked one by one, and still as from
    scratch: for their budgets (words made when read) or behind higher priorities."""
    world = World(30.0, Signals(), terms=True)
    rng = random.Random(3)
    jobs = [
        PendingJob(
            i, rng.choice(PROJECTS), rng.choice(USERS), rng.choice([1, 1, 2, 4, 8, 16]),
            rng.choice([600.0, 3600.0, DAY_S]), world.now - rng.uniform(0, DAY_S),
        )
        for i in range(1, 3000)
    ]  # fmt: skip
    world.submit(jobs)
    result = world.cycle(SchedulerConfig())
    assert result.reservation is not None
    assert sum(isinstance(d, ShortfallWait) for d in result.decisions) > 100
    # The words of a budget's wait are those of a cycle from scratch, when read.
    shortfall = next(d for d in result.decisions if isinstance(d, ShortfallWait))
    assert "GPU-h short" in shortfall.words


@settings(max_examples=100, deadline=None)
@given(
    jobs=st.lists(
        st.tuples(
            st.sampled_from(PROJECTS),
            st.sampled_from(USERS),
            st.sampled_from([30.0, 60.0, 600.0, 3600.0, DAY_S, 7 * DAY_S]),
            st.sampled_from([0.0, 100.0, 5000.0, 99_999.0, 100_000.0, 100_500.0]),
            st.sampled_from([None, 99_000.0, 100_000.0, 103_600.0, 200_000.0]),
        ),
        max_size=40,
    ),
    tier=st.sampled_from([0.0, 1e9]),
    fairshare=st.sampled_from([0.0, 1.0, 3.0]),
)
def test_the_index_orders_jobs_as_priority_order(
    jobs: list[tuple[str, str, float, float, float | None]], tier: float, fairshare: float
) -> None:
    pending = [
        PendingJob(i, p, u, 1, limit, submit, latest_start_s=latest)
        for i, (p, u, limit, submit, latest) in enumerate(jobs)
    ]
    weights = PriorityWeights(tier=tier, fairshare=fairshare)
    allocs = allocations(10.0)
    factors = {("p1", "u1"): 1.0, ("p1", "u2"): 0.5, ("p2", "u3"): 0.25, ("p3", "u1"): 1 / 3}
    now = 100_000.0
    queue = PendingQueue(pending)
    positions = queue.priority_positions(now, allocs, factors, weights)
    expected = priority_order(pending, now, allocs, factors, weights)
    assert [queue.jobs[i] for i in positions] == expected
    # Later, with every third job gone: sorted from the order it remembers, the same.
    queue.remove(j.job_id for j in pending[::3])
    rest = [j for j in pending if j.job_id % 3]
    positions = queue.priority_positions(now + 5000.0, allocs, factors, weights)
    expected = priority_order(rest, now + 5000.0, allocs, factors, weights)
    assert [queue.jobs[i] for i in positions] == expected


def test_the_index_follows_arrivals_departures_and_requeues() -> None:
    a, b, c = (PendingJob(i, "p1", "u1", 1, 60.0, float(i)) for i in (1, 2, 3))
    queue = PendingQueue([c, a])
    queue.add([b])  # submitted before the last one queued: merged in order
    assert list(queue) == [a, b, c]
    queue.remove([2, 99])
    assert list(queue) == [a, c] and len(queue) == 2
    queue.add([dataclasses.replace(b, job_id=4, submit_time_s=10.0)])
    assert [j.job_id for j in queue] == [1, 3, 4]
    assert queue[0] == a and list(queue[1:2]) == [c]
    assert queue.present_users() == {("p1", "u1")}
    assert queue.rigid_gpus() == 3


@settings(max_examples=60, deadline=None)
@given(
    rounds=st.lists(
        st.lists(
            st.tuples(
                st.integers(1, 12),
                st.sampled_from([0.0, 10.0, 20.0]),
                st.sampled_from([None, 500.0, 900.0]),
                st.sampled_from([None, frozenset({"a"})]),
            ),
            max_size=10,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_synced_index_holds_exactly_the_jobs_read(
    rounds: list[list[tuple[int, float, float | None, frozenset[str] | None]]],
) -> None:
    """The live service reads the whole queue each cycle and syncs its index to it: jobs
    that left are gone, new ones are in, and one whose values changed while it waited (its
    latest start, its sites) is there with its new values, in order of submission."""
    queue = PendingQueue()
    for jobs in rounds:
        read = list(
            {
                i: PendingJob(i, "p1", "u1", 1, 60.0, submit, latest_start_s=latest, sites=own)
                for i, submit, latest, own in jobs
            }.values()
        )
        queue.sync(read)
        assert list(queue) == sorted(read, key=lambda j: (j.submit_time_s, j.job_id))
        assert len(queue) == len(read)
        assert queue.rigid_gpus() == sum(1 for j in read if j.latest_start_s is None)
