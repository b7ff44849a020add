"""The simulator's event loop: one trace replay on a simulated clock.

`Replay` jumps the clock to the next submission, job end or scheduler wake-up and runs
one cycle of the production `schedule` at each such time; `SimJob` is a trace job's
state meanwhile. With an `EnergySetup` the loop also meters energy, carbon, heat and
grid-cap hours as jobs run; `metered` turns one or two finished replays into the
`EnergyResult`. It lives here, not beside `EnergySetup`, because it reads replays and
`sim_energy` must not import this module (that would be a cycle).
"""

from __future__ import annotations

import bisect
import functools
import heapq
import math
from collections import deque
from collections.abc import Callable

from fabriek.scheduler.carbon import RUN_SHARE_MEMORY, clip_share, sample_of_sorted
from fabriek.scheduler.carbon_series import oracle_mean
from fabriek.scheduler.decisions import Preempt, Start
from fabriek.scheduler.metrics import JobOutcome, summarise
from fabriek.scheduler.policy import Policy, SchedulerConfig, schedule
from fabriek.scheduler.queue_index import PendingQueue
from fabriek.scheduler.signals import Signals
from fabriek.scheduler.sim_cluster import SimCluster
from fabriek.scheduler.sim_energy import EnergyResult, EnergySetup
from fabriek.scheduler.snapshot import Allocation, PendingJob, RunningJob, Snapshot
from fabriek.scheduler.usage import TenantUsage


class SimJob:
    """A trace job's state during the replay."""

    __slots__ = (
        "busy_gpu_s",
        "end_s",
        "first_start_s",
        "name",
        "pending",
        "run_s",
        "start_s",
        "tenant",
        "times_out",
        "watts",
    )

    def __init__(
        self, pending: PendingJob, name: str, tenant: str, run_s: float, times_out: bool
    ) -> None:
        self.pending = pending
        self.name = name
        self.tenant = tenant
        self.run_s = run_s
        self.times_out = times_out
        self.start_s = 0.0
        self.end_s = 0.0
        self.busy_gpu_s = 0.0
        self.first_start_s: float | None = None
        self.watts = 0.0  # grid power of its GPUs while it runs (with an EnergySetup)

    def outcome(self) -> JobOutcome:
        """The job's times and GPU use as the metrics count them."""
        p = self.pending
        return JobOutcome(
            self.name,
            self.tenant,
            p.gpus,
            p.submit_time_s,
            self.start_s,
            self.end_s,
            self.run_s,
            self.busy_gpu_s,
        )


# How far a replay is: its name, the jobs submitted so far, and all its jobs.
Progress = Callable[[str, int, int], None]


def told(progress: Progress | None, replay: str) -> Callable[[int, int], None] | None:
    """`progress` bound to one replay's name, for `Replay.run` (None stays None)."""
    return None if progress is None else functools.partial(progress, replay)


class Replay:
    """The event loop: submissions and ends in time order, one cycle per event time."""

    def __init__(
        self,
        jobs: list[SimJob],
        cluster: SimCluster,
        allocations: dict[str, Allocation],
        config: SchedulerConfig,
        half_life_s: float,
        signals: Signals | None = None,
        energy: EnergySetup | None = None,
    ) -> None:
        self.jobs = jobs
        self.cluster = cluster
        self.allocations = allocations
        self.config = config
        self.usage = TenantUsage(half_life_s)
        self.needs_usage = config.policy in (Policy.FABRIEK, Policy.SJF_AGED)
        self.pending: dict[int, PendingJob] = {}
        # The same jobs as the index the live service keeps between cycles: each cycle
        # orders and checks it over its columns, as at a factory's scale.
        self.queue = PendingQueue()
        self.running: dict[int, RunningJob] = {}
        self.ends: list[tuple[float, int, int]] = []  # (end time, run number, job id)
        self.runs = 0
        self.live_run: dict[int, int] = {}
        self.cycles = 0
        self.preemptions = 0
        self.signals = signals or Signals()
        self.energy = energy
        self.wakes: list[float] = []
        self.wake_set: set[float] = set()
        # The job that held the last cycle's reservation, as the live service remembers it.
        self.reserved: int | None = None
        self.energy_kwh = 0.0
        self.co2_kg = 0.0
        self.heat_kwh = 0.0
        # The shares of their time limits the latest ended runs used, in end order and
        # sorted, and the sample the scheduler plans with (rebuilt after a change).
        self.shares: deque[float] = deque()
        self.sorted_shares: list[float] = []
        self.share_sample: tuple[float, ...] = ()
        self.shares_changed = False
        self.fixed_shares = energy.run_shares if energy is not None else None
        # Grid power per site now, and since when it has been over the cap (if it is).
        self.site_watts: dict[str, float] = {}
        self.over_since: dict[str, float] = {}
        self.over_hours: set[tuple[str, int]] = set()

    def run(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Replay every job to its end; `progress(submitted, total)` hears how far."""
        jobs, ends, wakes = self.jobs, self.ends, self.wakes
        i, n = 0, len(jobs)
        # Told a few hundred times at most: a large trace has millions of events.
        step = max(1, n // 200)
        told = 0
        while i < n or ends or (wakes and self.pending):
            t = jobs[i].pending.submit_time_s if i < n else ends[0][0] if ends else wakes[0]
            if ends and ends[0][0] < t:
                t = ends[0][0]
            if wakes and wakes[0] < t:
                t = wakes[0]
            while wakes and wakes[0] <= t:
                self.wake_set.discard(heapq.heappop(wakes))
            while ends and ends[0][0] <= t:
                _, run, job_id = heapq.heappop(ends)
                if self.live_run.get(job_id) == run:
                    self._finish(job_id, t)
            arrived = []
            while i < n and jobs[i].pending.submit_time_s <= t:
                self.pending[i] = jobs[i].pending
                arrived.append(jobs[i].pending)
                i += 1
            self.queue.add(arrived)
            if self.pending:
                self._cycle(t)
            if progress is not None and i - told >= step:
                told = i
                progress(i, n)
        if progress is not None:
            progress(n, n)

    def _cycle(self, now: float) -> None:
        self.cycles += 1
        snapshot = Snapshot(
            now_s=now,
            pending=self.queue,
            running=list(self.running.values()),
            sites=self.cluster.sites(),
            allocations=self.allocations,
            usage=self.usage.snapshot(now) if self.needs_usage else {},
            signals=self.signals,
            run_shares=self._share_sample() if self.fixed_shares is None else self.fixed_shares,
            reserved_job_id=self.reserved if self.reserved in self.pending else None,
        )
        result = schedule(snapshot, self.config)
        self.reserved = result.reservation.job_id if result.reservation is not None else None
        started: list[int] = []
        requeued: list[PendingJob] = []
        for decision in result.decisions:
            if isinstance(decision, Start):
                self._start(decision, now)
                started.append(decision.job_id)
            elif isinstance(decision, Preempt):
                requeued.append(self._preempt(decision.job_id, now))
        self.queue.remove(started)
        self.queue.add(requeued)
        wake = result.wake_s
        if wake is not None and wake > now and wake not in self.wake_set:
            self.wake_set.add(wake)
            heapq.heappush(self.wakes, wake)

    def _start(self, decision: Start, now: float) -> None:
        job = self.jobs[decision.job_id]
        pending = self.pending.pop(decision.job_id)
        self.cluster.take(decision.site, decision.nodes)
        self.running[decision.job_id] = RunningJob(
            job_id=decision.job_id,
            project=pending.project,
            user=pending.user,
            site=decision.site,
            nodes=decision.nodes,
            start_time_s=now,
            expected_end_s=now + pending.time_limit_s,
        )
        job.start_s = now
        if job.first_start_s is None:
            job.first_start_s = now
        if self.energy is not None:
            power = self.energy.power
            job.watts = sum(
                share.gpus * power.grid_watts(self.cluster.gpu_type_of(decision.site, share.node))
                for share in decision.nodes
            )
            self._power(decision.site, job.watts, now)
        self.runs += 1
        self.live_run[decision.job_id] = self.runs
        heapq.heappush(self.ends, (now + job.run_s, self.runs, decision.job_id))
        self.usage.start(job.tenant, pending.gpus, now)

    def _release(self, job_id: int, now: float) -> SimJob:
        job = self.jobs[job_id]
        running = self.running.pop(job_id)
        del self.live_run[job_id]
        self.cluster.give_back(running.site, running.nodes)
        job.busy_gpu_s += job.pending.gpus * (now - job.start_s)
        self.usage.end(job.tenant, job.pending.gpus, job.start_s, now)
        if self.energy is not None:
            self._power(running.site, -job.watts, now)
            self.energy_kwh += job.watts * (now - job.start_s) / 3.6e6
            carbon = self.energy.carbon
            if carbon is not None and now > job.start_s:
                if not carbon.covers(job.start_s, now):
                    raise ValueError(
                        f"job {job.name} runs until trace time {now:,.0f} s, past the carbon "
                        f"series ({carbon.start_s:,.0f} s to {carbon.end_s:,.0f} s on the "
                        "trace's clock); give a longer series or an earlier --start"
                    )
                self.co2_kg += job.watts / 1e6 * carbon.integral_h(job.start_s, now)
            heat = self.energy.heat
            if heat is not None and now > job.start_s:
                self.heat_kwh += job.watts / 1000.0 * heat.integral_h(job.start_s, now)
        return job

    def _ended(self, share: float) -> None:
        """Remember what share of its time limit a run used (the latest ones only)."""
        share = clip_share(share)
        self.shares.append(share)
        bisect.insort(self.sorted_shares, share)
        if len(self.shares) > RUN_SHARE_MEMORY:
            old = self.shares.popleft()
            del self.sorted_shares[bisect.bisect_left(self.sorted_shares, old)]
        self.shares_changed = True

    def _share_sample(self) -> tuple[float, ...]:
        if self.shares_changed:
            self.share_sample = sample_of_sorted(self.sorted_shares)
            self.shares_changed = False
        return self.share_sample

    def _power(self, site: str, delta: float, now: float) -> None:
        """Change a site's grid power; note the hours it spends over the cap."""
        cap = self.energy.grid_cap_kw if self.energy is not None else None
        before = self.site_watts.get(site, 0.0)
        after = before + delta
        self.site_watts[site] = after
        if cap is None:
            return
        limit = cap * 1000.0 + 1e-6
        if before <= limit < after:
            self.over_since[site] = now
        elif after <= limit < before:
            self._over(site, self.over_since.pop(site), now)

    def _over(self, site: str, since: float, until: float) -> None:
        origin = self.signals.start_s
        first = math.floor((since - origin) / 3600.0)
        last = max(first, math.ceil((until - origin) / 3600.0) - 1)
        for hour in range(first, last + 1):
            self.over_hours.add((site, hour))

    def violations(self) -> int:
        """Site-hours in which the grid power went over the cap."""
        return len(self.over_hours)

    def deadline_misses(self) -> int:
        """Flexible jobs that first started after their latest start."""
        return sum(
            1
            for j in self.jobs
            if j.pending.latest_start_s is not None
            and j.first_start_s is not None
            and j.first_start_s > j.pending.latest_start_s + 1e-6
        )

    def _finish(self, job_id: int, now: float) -> None:
        job = self._release(job_id, now)
        job.end_s = now
        limit = job.pending.time_limit_s
        self._ended((now - job.start_s) / limit if limit > 0 else 1.0)

    def _preempt(self, job_id: int, now: float) -> PendingJob:
        """Stop a running job and queue it again (with its submission time)."""
        self.preemptions += 1
        job = self._release(job_id, now)
        self.pending[job_id] = job.pending
        return job.pending


def metered(replay: Replay, immediate: Replay | None, energy: EnergySetup) -> EnergyResult:
    """What `replay` metered, beside `immediate` (the same jobs without shifting, if run)
    and the perfect-foresight oracle within each job's slack."""
    carbon = energy.carbon
    oracle: float | None = None
    if carbon is not None:
        oracle = 0.0
        for job in replay.jobs:
            slack = job.pending.latest_start_s
            slack_s = 0.0 if slack is None else slack - job.pending.submit_time_s
            mean = oracle_mean(carbon, job.pending.submit_time_s, slack_s, job.run_s)
            oracle += job.watts / 1000.0 * job.run_s / 3600.0 * mean / 1000.0
    flexible = sum(1 for j in replay.jobs if j.pending.latest_start_s is not None)
    plain = summarise([j.outcome() for j in immediate.jobs], 1) if immediate else None
    return EnergyResult(
        energy_kwh=replay.energy_kwh,
        co2_kg=replay.co2_kg if carbon is not None else None,
        co2_kg_immediate=immediate.co2_kg if immediate and carbon is not None else None,
        co2_kg_oracle=oracle,
        flexible_jobs=flexible,
        deadline_misses=replay.deadline_misses(),
        deadline_misses_immediate=immediate.deadline_misses() if immediate else None,
        grid_cap_violations=replay.violations(),
        grid_cap_violations_immediate=immediate.violations() if immediate else None,
        avg_jct_s_immediate=plain.avg_jct_s if plain else None,
        avg_wait_s_immediate=plain.avg_wait_s if plain else None,
        heat_weighted_kwh=replay.heat_kwh if energy.heat is not None else None,
        heat_weighted_kwh_immediate=(
            immediate.heat_kwh if immediate is not None and energy.heat is not None else None
        ),
    )
