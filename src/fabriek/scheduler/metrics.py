"""What a replay measured, and the lower bounds no scheduler can beat."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# Bounded slowdown divides by at least this many seconds, so that jobs of a few seconds
# do not dominate the mean (Feitelson's bounded slowdown, with the customary 10 s).
SLOWDOWN_BOUND_S = 10.0


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """One replayed job: when it came, started (last time) and ended, on how many GPUs.

    `run_s` is the time of its last, completed run; `busy_gpu_s` also counts GPU time of
    runs lost to preemption."""

    job_id: str
    tenant: str
    gpus: int
    submit_s: float
    start_s: float
    end_s: float
    run_s: float
    busy_gpu_s: float

    @property
    def jct_s(self) -> float:
        """Job completion time: from submission to end."""
        return self.end_s - self.submit_s

    @property
    def bounded_slowdown(self) -> float:
        """Completion time over run time, both floored at the bound; at least 1."""
        return max(1.0, self.jct_s / max(self.run_s, SLOWDOWN_BOUND_S))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-quantile (0 < q <= 1) of sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index: 1 when all are equal, 1/n when one has everything."""
    if not values:
        return 1.0
    square_sum = sum(v * v for v in values)
    if square_sum == 0:
        return 1.0
    return sum(values) ** 2 / (len(values) * square_sum)


def makespan_lower_bound(jobs: Sequence[tuple[float, float, int]], gpus: int) -> float:
    """A makespan no schedule can beat, from (submit, run, GPUs) of each job: the latest
    `submit + run`, and for every submit time t, t + (work submitted from t on) / GPUs,
    both measured from the first submission."""
    if not jobs or gpus <= 0:
        return 0.0
    first = min(s for s, _, _ in jobs)
    bound = max(s + r for s, r, _ in jobs) - first
    work_after = 0.0
    for submit, run, g in sorted(jobs, reverse=True):
        work_after += run * g
        bound = max(bound, submit - first + work_after / gpus)
    return bound


@dataclass(frozen=True, slots=True)
class Summary:
    """The replay's metrics over the jobs that ran."""

    makespan_s: float
    utilization: float
    avg_jct_s: float
    median_jct_s: float
    p95_jct_s: float
    avg_wait_s: float
    max_wait_s: float
    avg_bounded_slowdown: float
    jain_fairness: float
    lower_bound_avg_jct_s: float
    lower_bound_makespan_s: float


def summarise(outcomes: Sequence[JobOutcome], gpus: int) -> Summary:
    """Metrics of a replay on a cluster of `gpus` GPUs.

    Utilisation is busy GPU-seconds over the cluster's GPU-seconds between the first
    submission and the last end. Fairness is Jain's index over tenants of each tenant's
    average bounded slowdown."""
    if not outcomes:
        return Summary(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    first = min(o.submit_s for o in outcomes)
    makespan = max(o.end_s for o in outcomes) - first
    busy = sum(o.busy_gpu_s for o in outcomes)
    jcts = sorted(o.jct_s for o in outcomes)
    waits = [o.start_s - o.submit_s for o in outcomes]
    slowdowns: dict[str, list[float]] = {}
    for o in outcomes:
        slowdowns.setdefault(o.tenant, []).append(o.bounded_slowdown)
    per_tenant = [statistics.fmean(v) for v in slowdowns.values()]
    return Summary(
        makespan_s=makespan,
        utilization=busy / (gpus * makespan) if makespan > 0 else 0.0,
        avg_jct_s=statistics.fmean(jcts),
        median_jct_s=statistics.median(jcts),
        p95_jct_s=percentile(jcts, 0.95),
        avg_wait_s=statistics.fmean(waits),
        max_wait_s=max(waits),
        avg_bounded_slowdown=statistics.fmean(o.bounded_slowdown for o in outcomes),
        jain_fairness=jain_index(per_tenant),
        lower_bound_avg_jct_s=statistics.fmean(o.run_s for o in outcomes),
        lower_bound_makespan_s=makespan_lower_bound(
            [(o.submit_s, o.run_s, o.gpus) for o in outcomes], gpus
        ),
    )
