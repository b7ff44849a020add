"""The order in which a cycle considers pending jobs.

`fifo` and `backfill` take jobs in order of submission. `fabriek` ranks them by a
multifactor priority in the spirit of Slurm's, made for GPUs:

- tier: the allocation's access tier outranks everything else (Slurm's QOS factor);
- expansion factor (Maui's XFactor): (wait + requested time) / requested time, the
  slowdown the job would have if it started now. It favours short jobs, as the
  bounded-slowdown and completion-time metrics reward, and it ages every job without
  bound, faster the shorter it is, so no job starves;
- size: requested GPU-seconds, on a log scale, favours small jobs among equals;
- fair share: the fair-tree factor of the job's user scales its urgency, so users who
  used less than their share recently go first (a decayed least-attained-service rule
  at the level of users, projects and organisations, as Tiresias applies it to jobs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fabriek.scheduler.snapshot import Allocation, PendingJob, UserKey


@dataclass(frozen=True, slots=True)
class PriorityWeights:
    """Weights of the `fabriek` priority.

    `slowdown_bound_s` floors the requested time in the expansion factor, so that
    sub-minute jobs do not outrank everything after a few seconds of waiting.
    """

    tier: float = 1e9
    fairshare: float = 1.0
    size: float = 0.0
    slowdown_bound_s: float = 60.0


def submit_order(pending: Sequence[PendingJob]) -> list[PendingJob]:
    """Jobs in order of submission (ties by job id)."""
    return sorted(pending, key=lambda j: (j.submit_time_s, j.job_id))


def priority_order(
    pending: Sequence[PendingJob],
    now: float,
    allocations: Mapping[str, Allocation],
    fairshare: Mapping[UserKey, float],
    weights: PriorityWeights,
) -> list[PendingJob]:
    """Jobs by `fabriek` priority, highest first (ties by submission, then job id)."""
    bound = weights.slowdown_bound_s
    w_tier, w_fs, w_size = weights.tier, weights.fairshare, weights.size
    tiers = {p: a.tier for p, a in allocations.items()}
    keyed: list[tuple[float, float, int, PendingJob]] = []
    for job in pending:
        est = job.time_limit_s if job.time_limit_s > bound else bound
        wait = now - job.submit_time_s
        xfactor = (wait + est) / est if wait > 0 else 1.0
        score = xfactor * (1.0 + w_fs * fairshare.get((job.project, job.user), 0.0))
        if w_size:
            score -= w_size * math.log1p(job.gpus * est)
        score += w_tier * tiers.get(job.project, 0)
        keyed.append((-score, job.submit_time_s, job.job_id, job))
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    return [k[3] for k in keyed]
