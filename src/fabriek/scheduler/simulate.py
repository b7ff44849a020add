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

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from fabriek.scheduler.fairshare import DEFAULT_HALF_LIFE_S
from fabriek.scheduler.metrics import JobOutcome, Summary, summarise
from fabriek.scheduler.policy import Policy, SchedulerConfig
from fabriek.scheduler.reasons import never_fits
from fabriek.scheduler.signals import Signals
from fabriek.scheduler.sim_cluster import SimCluster, build_cluster
from fabriek.scheduler.sim_energy import EnergyResult, EnergySetup, check_covered, site_signals
from fabriek.scheduler.sim_replay import Progress, Replay, SimJob, metered, told
from fabriek.scheduler.snapshot import Allocation, PendingJob
from fabriek.scheduler.trace import TraceRow

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
        check_covered(rows, energy.carbon)
    if energy is not None and energy.heat is not None and energy.carbon is None:
        raise ValueError("a heat-demand series needs a carbon series: heat weighs carbon")
    jobs, skipped, allocations = _prepare(rows, cluster, overestimate, energy is not None)
    signals = site_signals(cluster, energy) if energy is not None else Signals()
    if energy is not None:
        config = dataclasses.replace(config, shift=energy.shift)
    replay = Replay(jobs, cluster, allocations, config, half_life_s, signals, energy)
    replay.run(told(progress, "replaying"))
    outcomes = [j.outcome() for j in jobs]
    summary = summarise(outcomes, cluster.total_gpus)
    measured: EnergyResult | None = None
    if energy is not None:
        immediate: Replay | None = None
        if energy.compare:
            fresh = build_cluster(trace_rows, nodes, gpus_per_node, sites)
            again, _, _ = _prepare(rows, fresh, overestimate, True)
            plain = dataclasses.replace(config, shift=None)
            immediate = Replay(again, fresh, allocations, plain, half_life_s, signals, energy)
            immediate.run(told(progress, "replaying without shifting, to compare"))
        measured = metered(replay, immediate, energy)
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
        energy=measured,
    )


def _prepare(
    rows: Sequence[TraceRow], cluster: SimCluster, overestimate: float, deadlines: bool
) -> tuple[list[SimJob], list[SkippedJob], dict[str, Allocation]]:
    """The replay's jobs (in submission order), the skipped ones, the allocations."""
    jobs: list[SimJob] = []
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
        jobs.append(SimJob(pending, row.job_id, tenant, run_s, row.duration_s > limit))
    allocations = {t: Allocation(project=t, organisation=t) for t in sorted(tenants)}
    return jobs, skipped, allocations


def _why_never(row: TraceRow, cluster: SimCluster) -> str:
    kind = f" of type {row.gpu_type}" if row.gpu_type else ""
    return (
        f"needs {row.num_gpus} GPUs{kind}; the cluster has {cluster.gpus_of(row.gpu_type)} "
        f"in nodes of {cluster.gpus_per_node}"
    )
