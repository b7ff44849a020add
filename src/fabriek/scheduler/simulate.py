"""Replay a job trace with the production scheduler on a simulated clock.

Event driven: the clock jumps to the next submission or job end, and one cycle of
`schedule` runs at each such time, exactly as the live service would run it. The
scheduler never sees a job's true duration: it sees the trace's `time_limit_s`, or
where there is none, the user's estimate `duration_s x overestimate` (2 by default;
1 means users know their run times exactly). A job that reaches its time limit is
ended there, as Slurm does, and counted as timed out. Jobs the cluster can never fit
are reported as skipped. A preempted job is requeued and later reruns from the start.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from fabriek.scheduler.decisions import Preempt, Start
from fabriek.scheduler.fairshare import DEFAULT_HALF_LIFE_S
from fabriek.scheduler.metrics import JobOutcome, Summary, summarise
from fabriek.scheduler.policy import Policy, SchedulerConfig, schedule
from fabriek.scheduler.reasons import never_fits
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
) -> SimulationResult:
    """Replay `trace_rows` on `nodes` nodes of `gpus_per_node` GPUs split over `sites`
    sites, with `policy` (or a full `config`). Pure and deterministic: the same input
    gives the same result. Raises ValueError (one line) on impossible parameters."""
    policy = Policy(policy)
    if overestimate <= 0:
        raise ValueError(f"overestimate must be above 0, got {overestimate}")
    config = config or SchedulerConfig(policy=policy)
    cluster = build_cluster(trace_rows, nodes, gpus_per_node, sites)
    jobs: list[_SimJob] = []
    skipped: list[SkippedJob] = []
    tenants: set[str] = set()
    impossible: dict[tuple[int, str | None], bool] = {}
    for row in sorted(trace_rows, key=lambda r: r.submit_time_s):
        tenant = row.tenant or DEFAULT_TENANT
        limit = row.time_limit_s if row.time_limit_s is not None else row.duration_s * overestimate
        pending = PendingJob(
            job_id=len(jobs),
            project=tenant,
            user=tenant,
            gpus=row.num_gpus,
            time_limit_s=limit,
            submit_time_s=row.submit_time_s,
            gpu_type=row.gpu_type,
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
    replay = _Replay(jobs, cluster, allocations, config, half_life_s)
    replay.run()
    outcomes = [j.outcome() for j in jobs]
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
        summary=summarise(outcomes, cluster.total_gpus),
        skipped_jobs=tuple(skipped),
        outcomes=tuple(outcomes),
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
        "name",
        "pending",
        "run_s",
        "start_s",
        "tenant",
        "times_out",
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


class _Replay:
    """The event loop: submissions and ends in time order, one cycle per event time."""

    def __init__(
        self,
        jobs: list[_SimJob],
        cluster: SimCluster,
        allocations: dict[str, Allocation],
        config: SchedulerConfig,
        half_life_s: float,
    ) -> None:
        self.jobs = jobs
        self.cluster = cluster
        self.allocations = allocations
        self.config = config
        self.usage = TenantUsage(half_life_s)
        self.needs_usage = config.policy is Policy.FABRIEK
        self.pending: dict[int, PendingJob] = {}
        self.running: dict[int, RunningJob] = {}
        self.ends: list[tuple[float, int, int]] = []  # (end time, run number, job id)
        self.runs = 0
        self.live_run: dict[int, int] = {}
        self.cycles = 0
        self.preemptions = 0

    def run(self) -> None:
        jobs, ends = self.jobs, self.ends
        i, n = 0, len(jobs)
        while i < n or ends:
            t = jobs[i].pending.submit_time_s if i < n else ends[0][0]
            if ends and ends[0][0] < t:
                t = ends[0][0]
            while ends and ends[0][0] <= t:
                _, run, job_id = heapq.heappop(ends)
                if self.live_run.get(job_id) == run:
                    self._finish(job_id, t)
            while i < n and jobs[i].pending.submit_time_s <= t:
                self.pending[i] = jobs[i].pending
                i += 1
            if self.pending:
                self._cycle(t)

    def _cycle(self, now: float) -> None:
        self.cycles += 1
        snapshot = Snapshot(
            now_s=now,
            pending=list(self.pending.values()),
            running=list(self.running.values()),
            sites=self.cluster.sites(),
            allocations=self.allocations,
            usage=self.usage.snapshot(now) if self.needs_usage else {},
        )
        for decision in schedule(snapshot, self.config).decisions:
            if isinstance(decision, Start):
                self._start(decision, now)
            elif isinstance(decision, Preempt):
                self._preempt(decision.job_id, now)

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
        return job

    def _finish(self, job_id: int, now: float) -> None:
        self._release(job_id, now).end_s = now

    def _preempt(self, job_id: int, now: float) -> None:
        self.preemptions += 1
        job = self._release(job_id, now)
        self.pending[job_id] = job.pending
