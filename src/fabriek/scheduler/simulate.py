"""Replay a job trace with the production scheduler on a simulated clock.

Event driven: the clock jumps to the next submission or job end, and one cycle of
`schedule` runs at each such time, exactly as the live service would run it. The
scheduler never sees a job's true duration: it sees the trace's `time_limit_s`, or
where there is none, the user's estimate `duration_s x overestimate` (2 by default;
1 means users know their run times exactly). A job that reaches its time limit is
ended there, as Slurm does, and counted as timed out. Jobs the cluster can never fit
are reported as skipped. A preempted job is requeued and later reruns from the start.

With an `EnergySetup` the replay also meters energy (the power model), carbon (an hourly
series on the trace's clock), heat demand (likewise, optional), a per-site grid cap, and
deadlines: a job with `slack_s` may start up to submission + slack and is held back for
cleaner hours within that; it is replayed a second time without shifting, and the
perfect-foresight optimum within each job's slack (ignoring capacity) is computed, to
compare. As live, the scheduler learns how much of their time limits runs use from the
runs that have ended so far (the latest `RUN_SHARE_MEMORY`), never from the trace.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from fabriek.scheduler.carbon import RUN_SHARE_MEMORY, ShiftConfig, clip_share, sample_of_sorted
from fabriek.scheduler.carbon_series import HourlySeries, oracle_mean
from fabriek.scheduler.decisions import Preempt, Start
from fabriek.scheduler.fairshare import DEFAULT_HALF_LIFE_S
from fabriek.scheduler.metrics import JobOutcome, Summary, summarise
from fabriek.scheduler.policy import Policy, SchedulerConfig, schedule
from fabriek.scheduler.power import PowerModel
from fabriek.scheduler.reasons import never_fits
from fabriek.scheduler.signals import HourSignal, Signals
from fabriek.scheduler.sim_cluster import SimCluster, build_cluster
from fabriek.scheduler.snapshot import Allocation, PendingJob, RunningJob, Snapshot
from fabriek.scheduler.trace import TraceRow
from fabriek.scheduler.usage import TenantUsage

# Tenant of jobs in a trace without a `tenant` column: they form one tenant.
DEFAULT_TENANT = "all"


@dataclass(frozen=True, slots=True)
class SkippedJob:
    """A trace job the simulated cluster can never run, and why."""

    job_id: str
    num_gpus: int
    reason: str


@dataclass(frozen=True, slots=True)
class EnergySetup:
    """Energy, carbon and grid for a replay. `carbon` is on the trace's clock (see
    `CarbonSeries.on_clock`); `heat`, on the same clock and hours, is the heat demand
    (0..1) the shift's heat weight counts; `grid_cap_kw` caps every site's IT power x PUE
    in every hour; `shift` None replays without holding flexible jobs back. `compare`
    also replays the same jobs without shifting (for `co2_kg_immediate`). `run_shares`,
    when given, are what the scheduler plans runs with instead of the shares learned from
    ended runs (to compare: `(1.0,)` plans over the whole time limit, `()` over an even
    spread)."""

    power: PowerModel = field(default_factory=PowerModel)
    carbon: HourlySeries | None = None
    heat: HourlySeries | None = None
    grid_cap_kw: float | None = None
    run_shares: Sequence[float] | None = None
    shift: ShiftConfig | None = field(default_factory=ShiftConfig)
    compare: bool = True


@dataclass(frozen=True, slots=True)
class EnergyResult:
    """What a replay with an `EnergySetup` metered. Energy is facility energy (IT x PUE)
    of the jobs' GPUs; carbon is that energy times the hourly intensity (location-based).
    `*_immediate` come from the second replay without shifting (None when not run);
    the oracle starts each job, on its own, at the best time within its slack.
    `heat_weighted_kwh` is the energy times the heat demand of the hours it was used in
    (with a heat series): the energy that came when heat was wanted."""

    energy_kwh: float
    co2_kg: float | None
    co2_kg_immediate: float | None
    co2_kg_oracle: float | None
    flexible_jobs: int
    deadline_misses: int
    deadline_misses_immediate: int | None
    grid_cap_violations: int
    grid_cap_violations_immediate: int | None
    avg_jct_s_immediate: float | None
    avg_wait_s_immediate: float | None
    heat_weighted_kwh: float | None = None
    heat_weighted_kwh_immediate: float | None = None


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a replay measured; `to_dict()` gives the flat record the CLI prints."""

    policy: str
    overestimate: float
    nodes: int
    gpus_per_node: int
    sites: int
    gpus: int
    jobs: int
    skipped: int
    timed_out: int
    preemptions: int
    cycles: int
    summary: Summary
    skipped_jobs: tuple[SkippedJob, ...] = field(default=())
    outcomes: tuple[JobOutcome, ...] = field(default=(), repr=False)
    energy: EnergyResult | None = None

    def to_dict(self) -> dict[str, object]:
        """Every metric as a plain JSON-able value; skipped jobs as a list of dicts.
        Per-job `outcomes` are left out (there may be many); read them from the field."""
        flat: dict[str, object] = {
            "policy": self.policy,
            "overestimate": self.overestimate,
            "nodes": self.nodes,
            "gpus_per_node": self.gpus_per_node,
            "sites": self.sites,
            "gpus": self.gpus,
            "jobs": self.jobs,
            "skipped": self.skipped,
            "timed_out": self.timed_out,
            "preemptions": self.preemptions,
            "cycles": self.cycles,
        }
        flat.update(asdict(self.summary))
        if self.energy is not None:
            flat.update(asdict(self.energy))
        flat["skipped_jobs"] = [asdict(s) for s in self.skipped_jobs]
        return flat


def run_simulation(
    trace_rows: Sequence[TraceRow],
    nodes: int,
    gpus_per_node: int,
    sites: int = 1,
    policy: Policy | str = Policy.FABRIEK,
    overestimate: float = 2.0,
    *,
    config: SchedulerConfig | None = None,
    half_life_s: float = DEFAULT_HALF_LIFE_S,
    energy: EnergySetup | None = None,
    progress: Progress | None = None,
) -> SimulationResult:
    """Replay `trace_rows` on `nodes` nodes of `gpus_per_node` GPUs split over `sites`
    sites, with `policy` (or a full `config`). Pure and deterministic: the same input
    gives the same result. Raises ValueError (one line) on impossible parameters.
    `progress(replay, submitted, total)` hears how far each replay is, a few hundred times."""
    policy = Policy(policy)
    if overestimate <= 0:
        raise ValueError(f"overestimate must be above 0, got {overestimate}")
    config = config or SchedulerConfig(policy=policy)
    if energy is not None and energy.grid_cap_kw is not None and energy.grid_cap_kw <= 0:
        raise ValueError(f"grid cap must be above 0 kW, got {energy.grid_cap_kw}")
    cluster = build_cluster(trace_rows, nodes, gpus_per_node, sites)
    rows = sorted(trace_rows, key=lambda r: r.submit_time_s)
    if energy is not None and energy.carbon is not None:
        _check_covered(rows, energy.carbon)
    if energy is not None and energy.heat is not None and energy.carbon is None:
        raise ValueError("a heat-demand series needs a carbon series: heat weighs carbon")
    jobs, skipped, allocations = _prepare(rows, cluster, overestimate, energy is not None)
    signals = _signals(cluster, energy) if energy is not None else Signals()
    if energy is not None:
        config = dataclasses.replace(config, shift=energy.shift)
    replay = _Replay(jobs, cluster, allocations, config, half_life_s, signals, energy)
    replay.run(_told(progress, "replaying"))
    outcomes = [j.outcome() for j in jobs]
    summary = summarise(outcomes, cluster.total_gpus)
    metered: EnergyResult | None = None
    if energy is not None:
        immediate: _Replay | None = None
        if energy.compare:
            fresh = build_cluster(trace_rows, nodes, gpus_per_node, sites)
            again, _, _ = _prepare(rows, fresh, overestimate, True)
            plain = dataclasses.replace(config, shift=None)
            immediate = _Replay(again, fresh, allocations, plain, half_life_s, signals, energy)
            immediate.run(_told(progress, "replaying without shifting, to compare"))
        metered = _metered(replay, immediate, energy)
    return SimulationResult(
        policy=str(config.policy),
        overestimate=overestimate,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        sites=sites,
        gpus=cluster.total_gpus,
        jobs=len(jobs),
        skipped=len(skipped),
        timed_out=sum(1 for j in jobs if j.times_out),
        preemptions=replay.preemptions,
        cycles=replay.cycles,
        summary=summary,
        skipped_jobs=tuple(skipped),
        outcomes=tuple(outcomes),
        energy=metered,
    )


def _prepare(
    rows: Sequence[TraceRow], cluster: SimCluster, overestimate: float, deadlines: bool
) -> tuple[list[_SimJob], list[SkippedJob], dict[str, Allocation]]:
    """The replay's jobs (in submission order), the skipped ones, the allocations."""
    jobs: list[_SimJob] = []
    skipped: list[SkippedJob] = []
    tenants: set[str] = set()
    impossible: dict[tuple[int, str | None], bool] = {}
    for row in rows:
        tenant = row.tenant or DEFAULT_TENANT
        limit = row.time_limit_s if row.time_limit_s is not None else row.duration_s * overestimate
        latest = row.submit_time_s + row.slack_s if deadlines and row.slack_s is not None else None
        pending = PendingJob(
            job_id=len(jobs),
            project=tenant,
            user=tenant,
            gpus=row.num_gpus,
            time_limit_s=limit,
            submit_time_s=row.submit_time_s,
            gpu_type=row.gpu_type,
            latest_start_s=latest,
        )
        never = impossible.get((row.num_gpus, row.gpu_type))
        if never is None:
            never = impossible[(row.num_gpus, row.gpu_type)] = never_fits(pending, cluster.sites())
        if never:
            skipped.append(SkippedJob(row.job_id, row.num_gpus, _why_never(row, cluster)))
            continue
        tenants.add(tenant)
        run_s = min(row.duration_s, limit)
        jobs.append(_SimJob(pending, row.job_id, tenant, run_s, row.duration_s > limit))
    allocations = {t: Allocation(project=t, organisation=t) for t in sorted(tenants)}
    return jobs, skipped, allocations


def _check_covered(rows: Sequence[TraceRow], carbon: HourlySeries) -> None:
    """Every submission and latest start must fall inside the carbon series."""
    for row in rows:
        for column, t in (
            ("submit_time_s", row.submit_time_s),
            ("slack_s", row.submit_time_s + (row.slack_s or 0.0)),
        ):
            if not carbon.covers(t, t):
                raise ValueError(
                    f"job {row.job_id}, column {column}: trace time {t:,.0f} s is outside the "
                    f"carbon series ({carbon.start_s:,.0f} s to {carbon.end_s:,.0f} s on the "
                    "trace's clock); give a longer series or another --start"
                )


def _signals(cluster: SimCluster, energy: EnergySetup) -> Signals:
    """The sites' hourly signals: the carbon series and the grid cap, on every site."""
    names = [s.name for s in cluster.sites()]
    cap = energy.grid_cap_kw
    outside = {n: HourSignal(power_budget_kw=cap) for n in names} if cap is not None else {}
    if energy.carbon is None:
        return Signals(outside=outside, power=energy.power)
    heat = energy.heat
    if heat is not None and (heat.start_s, len(heat.values)) != (
        energy.carbon.start_s,
        len(energy.carbon.values),
    ):
        raise ValueError("the heat-demand series must cover the carbon series' hours")
    demand = heat.values if heat is not None else (None,) * len(energy.carbon.values)
    hours = [
        HourSignal(cap, value, h) for value, h in zip(energy.carbon.values, demand, strict=True)
    ]
    return Signals(
        start_s=energy.carbon.start_s,
        by_site=dict.fromkeys(names, hours),
        outside=outside,
        power=energy.power,
    )


def _metered(replay: _Replay, immediate: _Replay | None, energy: EnergySetup) -> EnergyResult:
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


def _why_never(row: TraceRow, cluster: SimCluster) -> str:
    kind = f" of type {row.gpu_type}" if row.gpu_type else ""
    return (
        f"needs {row.num_gpus} GPUs{kind}; the cluster has {cluster.gpus_of(row.gpu_type)} "
        f"in nodes of {cluster.gpus_per_node}"
    )


class _SimJob:
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


def _told(progress: Progress | None, replay: str) -> Callable[[int, int], None] | None:
    return None if progress is None else functools.partial(progress, replay)


class _Replay:
    """The event loop: submissions and ends in time order, one cycle per event time."""

    def __init__(
        self,
        jobs: list[_SimJob],
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
            while i < n and jobs[i].pending.submit_time_s <= t:
                self.pending[i] = jobs[i].pending
                i += 1
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
            pending=list(self.pending.values()),
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
        for decision in result.decisions:
            if isinstance(decision, Start):
                self._start(decision, now)
            elif isinstance(decision, Preempt):
                self._preempt(decision.job_id, now)
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

    def _release(self, job_id: int, now: float) -> _SimJob:
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

    def _preempt(self, job_id: int, now: float) -> None:
        self.preemptions += 1
        job = self._release(job_id, now)
        self.pending[job_id] = job.pending
