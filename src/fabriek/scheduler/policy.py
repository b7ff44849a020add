"""One scheduling cycle: a pure function from a snapshot to decisions.

The live service calls `schedule` in a loop with the store's snapshot; the simulator
calls it on a simulated clock. Jobs are considered in policy order. Each is checked
for what would keep it waiting whatever the GPUs (it can never fit, no allocation, a
start time later than now, a budget that cannot cover it), then placed. The first job
that cannot be placed may preempt lower tiers (`fabriek` only); otherwise it gets the
reservation and every later job is backfilled around it (`backfill`, `fabriek`) or
waits behind it (`fifo`). With carbon signals, a flexible job (one with a latest start)
is held back while the forecast has a cleaner hour before its latest start (`carbon.py`);
with power budgets, a start must fit every hour its time limit covers (`placement.py`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, TypeGuard

from fabriek.scheduler.backfill import End, plan_reservation
from fabriek.scheduler.carbon import ShiftConfig
from fabriek.scheduler.decisions import (
    CycleResult,
    Decision,
    Preempt,
    Reservation,
    Start,
    Wait,
    shortfall_words,
)
from fabriek.scheduler.fairshare import fair_tree_factors
from fabriek.scheduler.holds import CycleHolds
from fabriek.scheduler.placement import Capacity, Sites
from fabriek.scheduler.preemption import choose_victims, preemptible_tier
from fabriek.scheduler.priority import PriorityWeights, priority_order, sjf_order, submit_order
from fabriek.scheduler.reasons import WaitReason
from fabriek.scheduler.snapshot import PendingJob, RunningJob, Snapshot

if TYPE_CHECKING:
    from fabriek.scheduler.queue_index import Ints, PendingQueue

# Budget comparisons allow this much rounding (GPU-hours).
_BUDGET_SLACK = 1e-9
# Jobs taken from the index at a time, in priority order.
_CHUNK = 2_048


def _is_index(pending: Sequence[PendingJob]) -> TypeGuard[PendingQueue]:
    """Whether the pending jobs come as a kept index. Without one nothing imports
    `queue_index` (nor NumPy), so the service and `fabriek sim` start without them."""
    module = sys.modules.get("fabriek.scheduler.queue_index")
    return module is not None and isinstance(pending, module.PendingQueue)


class Policy(StrEnum):
    """`fifo`: strict submission order, the first job that cannot start blocks all.
    `backfill`: submission order with EASY backfill. `fabriek`: multifactor priority
    (expansion factor, fair share, tiers) with EASY backfill and preemption. `sjf-aged`:
    the same with shortest-estimated-job-first aged by submission (`sjf_order`)."""

    FIFO = "fifo"
    BACKFILL = "backfill"
    FABRIEK = "fabriek"
    SJF_AGED = "sjf-aged"


# From this many waiting jobs on, a cycle orders and checks a kept index over its columns;
# below it, reading the few jobs out costs less than the columns' fixed cost (the same
# decisions either way).
_INDEX_FROM = 200
# The orders a kept index (`queue_index.PendingQueue`) computes itself.
_INDEXED = frozenset({Policy.FIFO, Policy.BACKFILL, Policy.FABRIEK})


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """How a cycle decides; the defaults are production's. `shift` None: flexible jobs
    are never held back for cleaner hours (they still become urgent at their latest
    start)."""

    policy: Policy = Policy.FABRIEK
    weights: PriorityWeights = field(default_factory=PriorityWeights)
    preemption: bool = True
    shift: ShiftConfig | None = field(default_factory=ShiftConfig)


def schedule(snapshot: Snapshot, config: SchedulerConfig | None = None) -> CycleResult:
    """Decide, for every pending job of `snapshot`, to start it (where), to keep it
    waiting (why), and which running jobs to preempt for it. Pure: no I/O, no clock.

    A caller that runs cycle after cycle on a big queue keeps it as a `PendingQueue`
    (the snapshot's `pending`), updated with the jobs that came and went: the cycle then
    orders and checks the queue over its columns. The decisions are the same either way."""
    config = config or SchedulerConfig()
    return _Cycle(snapshot, config).run()


class _Cycle:
    """The state of one cycle: a working copy of the free GPUs and budgets."""

    def __init__(self, snapshot: Snapshot, config: SchedulerConfig) -> None:
        self.snap = snapshot
        self.config = config
        # A queue kept as an index between cycles (see `schedule`).
        pending = snapshot.pending
        self.queue = pending if _is_index(pending) and len(pending) >= _INDEX_FROM else None
        self.now = snapshot.now_s
        self.capacity = Capacity(snapshot.sites, snapshot.running, snapshot.signals, self.now)
        self.decisions: list[Decision] = []
        self.started: list[End] = []
        self.budget_left = self._budgets()
        self.reservation: Reservation | None = None
        self.planned = False
        self.victims: list[tuple[int, RunningJob]] | None = None
        self.stopped: set[int] = set()
        self._never: dict[tuple[int, str | None, Sites], bool] = {}
        self._sites: dict[str, Sites] = {p: a.sites for p, a in snapshot.allocations.items()}
        self._user_sites = snapshot.user_sites
        self._factors = snapshot.gpu_hour_factors
        self._dearest: dict[tuple[str | None, Sites], float] = {}
        self._lowest_tier = min((a.tier for a in snapshot.allocations.values()), default=0)
        self.wake_s: float | None = None
        # GPUs free beyond what the jobs that cannot wait ask for (set by `run`).
        self._spare = 0
        # Built only where flexible jobs may be held; its ledger only on the first hold.
        self.holds = (
            CycleHolds(snapshot, self.capacity, config.shift) if config.shift is not None else None
        )

    def _budgets(self) -> dict[str, float]:
        """GPU-hours each project may still commit: budget left minus what its running
        jobs may still use by their time limits."""
        left = {
            p: (a.budget_left.value if a.budget_left is not None else math.inf)
            for p, a in self.snap.allocations.items()
        }
        if any(v < math.inf for v in left.values()):
            for job in self.snap.running:
                if left.get(job.project, math.inf) < math.inf:
                    rest = max(0.0, job.expected_end_s - self.now) / 3600
                    left[job.project] -= job.gpus * rest * job.factor
        return left

    def _job_sites(self, job: PendingJob) -> Sites:
        """The sites a job's allocation allows, narrowed by its own (datasets)."""
        allocated = self._sites.get(job.project)
        if job.sites is None:
            return allocated
        return job.sites if allocated is None else job.sites & allocated

    def _sites_of(self, job: PendingJob) -> Sites:
        """The sites a job may use: its allocation's, narrowed by its own (datasets) and by
        the terms of use its user accepted."""
        sites = self._job_sites(job)
        accepted = self._user_sites.get(job.user)
        if accepted is None:
            return sites
        return accepted if sites is None else sites & accepted

    def _never_why(self, job: PendingJob) -> WaitReason:
        """Why a job that fits no site it may use can never start: terms its user has not
        accepted, its datasets' residency, or no site at all."""
        capacity = self.capacity
        if job.user in self._user_sites and not capacity.never_fits(
            job.gpus, job.gpu_type, self._job_sites(job)
        ):
            return WaitReason.TERMS_NOT_ACCEPTED
        if job.sites is not None and not capacity.never_fits(
            job.gpus, job.gpu_type, self._sites.get(job.project)
        ):
            return WaitReason.RESIDENCY_CONSTRAINT
        return WaitReason.NEVER_FITS

    def _elsewhere(self, job: PendingJob) -> WaitReason | None:
        """Whether only the job's own site limits keep it from starting now (it would fit on
        free GPUs of a site its allocation allows), and which: the terms of use its user
        has not accepted, or its datasets."""
        accepted = self._user_sites.get(job.user)
        if accepted is not None:
            found = self.capacity.find(job.gpus, job.gpu_type, False, self._job_sites(job))
            if (found is not None and found.pool.site not in accepted) or (
                job.gpus <= 0 and not accepted
            ):
                return WaitReason.TERMS_NOT_ACCEPTED
        if (
            job.sites is not None
            and self.capacity.find(job.gpus, job.gpu_type, False, self._sites.get(job.project))
            is not None
        ):
            return WaitReason.RESIDENCY_CONSTRAINT
        return None

    def factor(self, gpu_type: str | None, sites: Sites) -> float:
        """What an hour of one GPU costs the job's budget: its type's factor, or for a job
        that takes any type the dearest type it could be placed on (so a budget check
        never passes a job that could then overspend)."""
        if gpu_type is not None:
            return self._factors.get(gpu_type, 1.0)
        found = self._dearest.get((None, sites))
        if found is None:
            pools, _ = self.capacity.matching(None, sites)
            found = max((self._factors.get(p.gpu_type, 1.0) for p in pools), default=1.0)
            self._dearest[(None, sites)] = found
        return found

    def _order(self) -> list[PendingJob]:
        policy = self.config.policy
        # An index read job by job pays a look-up each time: read it out once.
        pending = self.snap.pending
        if _is_index(pending):
            pending = list(pending)
        if policy is not Policy.FABRIEK and policy is not Policy.SJF_AGED:
            return submit_order(pending)
        users = {(j.project, j.user) for j in pending}
        factors = fair_tree_factors(self.snap.allocations, self.snap.usage, users)
        if policy is Policy.SJF_AGED:
            return sjf_order(
                pending, self.now, self.snap.allocations, factors,
                self.config.weights,
                self.snap.reserved_job_id if self.config.weights.sticky else None,
            )  # fmt: skip
        return priority_order(
            pending, self.now, self.snap.allocations, factors, self.config.weights
        )

    def _in_order(self) -> Iterator[PendingJob]:
        """The pending jobs in policy order; from an indexed queue, only until no job can
        start any more (`_tail` deals with the rest)."""
        queue = self.queue
        if queue is None or self.config.policy not in _INDEXED:
            # The index keeps submission order and Fabriek's priority; other orders (SJF
            # with aging) are computed from the jobs themselves.
            yield from self._order()
            return
        # A carbon hold promises its GPUs in the cycle's ledger, job by job, which later
        # holds depend on: with time shifting on, every job goes through `run`.
        shifting = self.config.shift is not None and bool(self.snap.signals.by_site)
        if self.config.policy is not Policy.FABRIEK:
            order = queue.live_positions()  # the index is in submission order
        else:
            users = queue.present_users()
            factors = fair_tree_factors(self.snap.allocations, self.snap.usage, users)
            order = queue.priority_positions(
                self.now, self.snap.allocations, factors, self.config.weights
            )
        jobs, capacity, i = queue.jobs, self.capacity, 0
        while i < len(order):
            for job in jobs[order[i : i + _CHUNK]].tolist():
                yield job
                i += 1
                if capacity.total_free == 0 and self.reservation is not None and not shifting:
                    yield from self._tail(queue, order[i:])
                    return

    def _tail(self, queue: PendingQueue, rest: Ints) -> Iterator[PendingJob]:
        """The jobs after the point where no GPU is free and the reservation is set: from
        then on no job starts and no budget changes, so a job that no static check stops
        and that takes GPUs and is not held for a cleaner hour waits with reason
        `Priority`, as `run` would decide. Those, and the jobs surely over budget, are
        decided here at once; the others are yielded for `run` to check."""
        never: dict[int, bool] = {}
        factor: dict[int, float] = {}
        for code in queue.kinds_in(rest):
            project, user, gpus, gpu_type, own = queue.kinds[code]
            job = PendingJob(-1, project, user, gpus, 0.0, 0.0, gpu_type, sites=own)
            sites = self._sites_of(job)
            never[code] = self.capacity.never_fits(gpus, gpu_type, sites)
            factor[code] = self.factor(gpu_type, sites)
        shifting = self.config.shift is not None and bool(self.snap.signals.by_site)
        special, decided = queue.tail_decisions(
            rest, self.now, never, factor, self.budget_left, self._spare if shifting else None
        )
        jobs, extend, start = queue.jobs, self.decisions.extend, 0
        for at in special:
            if at > start:
                extend(decided[start:at].tolist())
            yield jobs[rest[at]]
            start = at + 1
        if start < len(rest):
            extend(decided[start:].tolist())

    def run(self) -> CycleResult:
        # The hot loop: with 100,000 pending jobs it runs 100,000 times per cycle, so the
        # checks are inlined and ordered cheapest first.
        fifo = self.config.policy is Policy.FIFO
        blocked = False
        now, left, never_cache = self.now, self.budget_left, self._never
        capacity, append = self.capacity, self.decisions.append
        shifting = self.config.shift is not None and bool(self.snap.signals.by_site)
        spare = self._spare = 0
        if shifting:
            # Shift only into spare capacity: the GPUs free now (and within the power
            # budgets) beyond what the jobs that cannot wait (no latest start) ask for. Where
            # they would use them all, holding a flexible job only pushes it into a later
            # crowd and toward its deadline.
            rigid = (
                self.queue.rigid_gpus()
                if self.queue is not None
                else sum(j.gpus for j in self.snap.pending if j.latest_start_s is None)
            )
            spare = self._spare = capacity.usable_free() - rigid
        capped = capacity.capped
        for job in self._in_order():
            gpus = job.gpus
            sites = self._sites_of(job)
            key = (gpus, job.gpu_type, sites)
            never = never_cache.get(key)
            if never is None:
                never = never_cache[key] = capacity.never_fits(gpus, job.gpu_type, sites)
            project_left = left.get(job.project)
            reason: WaitReason | None = None
            if never:
                reason = self._never_why(job)
            elif project_left is None:
                reason = WaitReason.NO_ALLOCATION
            elif job.submit_time_s > now or (
                job.earliest_start_s is not None and job.earliest_start_s > now
            ):
                reason = WaitReason.NOT_BEFORE_START_TIME
            elif project_left < math.inf and (
                gpus * job.time_limit_s * self.factor(job.gpu_type, sites)
                > (project_left + _BUDGET_SLACK) * 3600.0
            ):
                reason = WaitReason.ALLOCATION_EXHAUSTED
            if reason is not None:
                append(Wait(job.job_id, reason, self._detail(job, reason)))
            elif (
                shifting
                and job.latest_start_s is not None
                and job.latest_start_s > now
                and self._hold(job, spare >= gpus)
            ):
                # A held job keeps its GPUs in the spare capacity: should jobs that cannot
                # wait come and take them, it is let go while there is still room to start
                # it at once (held jobs have waited, so they come before new arrivals).
                spare -= gpus
                continue
            elif blocked or (self.reservation is not None and capacity.total_free < gpus):
                append(Wait(job.job_id, WaitReason.PRIORITY))
            elif self.reservation is None:
                if capped:
                    capacity.window(now + job.time_limit_s)
                blocked = not self._start_or_reserve(job) and fifo
            else:
                if capped:
                    capacity.window(now + job.time_limit_s)
                self._backfill(job)
        return CycleResult(self.decisions, self.reservation, self.wake_s)

    def _hold(self, job: PendingJob, room: bool) -> bool:
        """Hold a flexible job back for a cleaner hour (`holds.CycleHolds.hold`); the Wait
        says how long, and the cycle wakes at the earliest hold's end. Whether it was held."""
        assert self.holds is not None
        held = self.holds.hold(job, self._sites_of(job), room)
        if held is None:
            return False
        until, detail = held
        self.decisions.append(Wait(job.job_id, WaitReason.CLEANER_HOUR, detail))
        if self.wake_s is None or until < self.wake_s:
            self.wake_s = until
        return True

    def _detail(self, job: PendingJob, reason: WaitReason) -> str:
        if reason is WaitReason.ALLOCATION_EXHAUSTED:
            rate = self.factor(job.gpu_type, self._sites_of(job))
            need = job.gpus * job.time_limit_s / 3600.0 * rate
            return shortfall_words(need, max(0.0, self.budget_left[job.project]))
        if reason is WaitReason.NO_ALLOCATION:
            return f"project {job.project} has no active allocation; apply through a call"
        if reason is WaitReason.TERMS_NOT_ACCEPTED:
            allowed, accepted = self._job_sites(job), self._user_sites.get(job.user, frozenset())
            barred = sorted(
                s.name
                for s in self.snap.sites
                if (allowed is None or s.name in allowed) and s.name not in accepted
            )
            where = "site" if len(barred) == 1 else "sites"
            return f"terms of use of {where} {', '.join(barred)} not accepted by {job.user}"
        return ""

    def _start(self, job: PendingJob, outlasts: bool) -> bool:
        if job.gpus <= 0:
            # A job without GPUs needs no placement; the engine picks a node.
            sites = self._sites_of(job)
            names = [s.name for s in self.snap.sites if sites is None or s.name in sites]
            if not names:
                return False
            site = names[0]
            self.decisions.append(Start(job.job_id, site, ()))
            return True
        placement = self.capacity.find(job.gpus, job.gpu_type, outlasts, self._sites_of(job))
        if placement is None:
            return False
        self.capacity.commit(placement, outlasts)
        shares = placement.node_shares()
        self.decisions.append(Start(job.job_id, placement.pool.site, shares))
        self.started.append((self.now + job.time_limit_s, placement.pool.site, shares))
        rate = self._factors.get(placement.pool.gpu_type, 1.0)
        self.budget_left[job.project] -= job.gpus * job.time_limit_s / 3600.0 * rate
        return True

    def _start_or_reserve(self, job: PendingJob) -> bool:
        """Before any reservation: start the job, preempting if that is the only way,
        or make it the reservation's holder. Whether it started."""
        if self._start(job, False) or self._preempt_for(job):
            return True
        if self.capacity.power_blocked:
            self.decisions.append(Wait(job.job_id, WaitReason.POWER_CAPPED))
            return False
        if self.planned:
            # The first blocked job could not get a reservation (nodes down); this one
            # waits behind it.
            self.decisions.append(Wait(job.job_id, WaitReason.PRIORITY))
            return False
        self.planned = True
        if self.config.policy is not Policy.FIFO:
            self.reservation = plan_reservation(
                job.job_id, job.gpus, job.gpu_type, self.capacity, self._ends(), self.now,
                self._sites_of(job),
            )  # fmt: skip
        # Its reservation is at the sites it may use; free GPUs elsewhere are not for it.
        why = self._elsewhere(job) or WaitReason.RESOURCES
        self.decisions.append(Wait(job.job_id, why, self._detail(job, why)))
        return False

    def _backfill(self, job: PendingJob) -> None:
        """After the reservation: start the job only where it cannot delay it."""
        assert self.reservation is not None
        outlasts = self.now + job.time_limit_s > self.reservation.start_s
        if self._start(job, outlasts):
            return
        elif why := self._elsewhere(job):
            self.decisions.append(Wait(job.job_id, why, self._detail(job, why)))
        elif self.capacity.power_blocked:
            self.decisions.append(Wait(job.job_id, WaitReason.POWER_CAPPED))
        elif (
            outlasts
            and self.capacity.find(job.gpus, job.gpu_type, False, self._sites_of(job)) is not None
        ):
            self.decisions.append(Wait(job.job_id, WaitReason.RESERVED_FOR_LARGER_JOB))
        else:
            self.decisions.append(Wait(job.job_id, WaitReason.PRIORITY))

    def _ends(self) -> list[End]:
        ends: list[End] = [
            (j.expected_end_s, j.site, j.nodes)
            for j in self.snap.running
            if j.job_id not in self.stopped
        ]
        return ends + self.started

    def _preempt_for(self, job: PendingJob) -> bool:
        if self.config.policy in (Policy.FIFO, Policy.BACKFILL) or not self.config.preemption:
            return False
        alloc = self.snap.allocations.get(job.project)
        if alloc is None or alloc.tier <= self._lowest_tier:
            return False
        if self.victims is None:
            self.victims = []
            for running in self.snap.running:
                tier = preemptible_tier(running, self.snap.allocations)
                if tier is not None:
                    self.victims.append((tier, running))
        sites = self._sites_of(job)
        victims = choose_victims(
            job.gpus, job.gpu_type, alloc.tier, self.capacity, self.victims, sites
        )
        if victims is None:
            return False
        for victim in victims:
            self.capacity.release(victim.site, victim.nodes)
        if self.capacity.find(job.gpus, job.gpu_type, False, sites) is None:
            # A power budget still stands in the way: stopping them would gain nothing.
            for victim in victims:
                self.capacity.retake(victim.site, victim.nodes)
            return False
        words = f"preempted and requeued for job {job.job_id} of tier {alloc.tier}"
        for victim in victims:
            self.stopped.add(victim.job_id)
            rest = max(0.0, victim.expected_end_s - self.now) / 3600.0
            left = victim.gpus * rest * victim.factor
            if victim.project in self.budget_left:
                self.budget_left[victim.project] += left
            self.decisions.append(Preempt(victim.job_id, job.job_id, words))
        self.victims = [(t, r) for t, r in self.victims if r.job_id not in self.stopped]
        return self._start(job, False)
