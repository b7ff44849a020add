"""The order in which a cycle considers pending jobs.

`fifo` and `backfill` take jobs in order of submission. `fabriek` ranks them by a
multifactor priority in the spirit of Slurm's, made for GPUs:

- tier: the allocation's access tier outranks everything else (Slurm's QOS factor);
- expansion factor (Maui's XFactor): (wait + requested time) / requested time, the
  slowdown the job would have if it started now. It favours short jobs, as the
  bounded-slowdown and completion-time metrics reward, and it ages every job without
  bound, faster the shorter it is, so no job starves;
- size: a job's size enters as its requested time, the dimension where ordering pays
  (heavy-tailed run times). Its GPU count gets no weight: favouring few GPUs would
  starve gang jobs, favouring many would slow the single-GPU majority; gang jobs are
  served by best-fit placement and the reservation instead. Requested times count at
  most `max_requested_s` (a day): beyond that a job ages by at least one unit per day
  waited, so multi-day jobs are not starved by a stream of short ones;
- fair share: the fair-tree factor of the job's user scales its urgency, so users who
  used less than their share recently go first (a decayed least-attained-service rule
  at the level of users, projects and organisations, as Tiresias applies it to jobs);
- latest start: a flexible job within `overdue_lead_s` (an hour) of its latest start
  (it may have been held back for cleaner hours) is urgent: it goes before every job of
  its tier that is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fabriek.scheduler.snapshot import Allocation, PendingJob, UserKey


@dataclass(frozen=True, slots=True)
class PriorityWeights:
    """Weights of the `fabriek` priority.

    `tier` per tier step (large: tiers are strict). `fairshare` scales urgency by
    1 + fairshare x factor, so the user with the best fair-share rank counts up to
    twice the worst. `slowdown_bound_s` floors the requested time in the expansion
    factor, as bounded slowdown does, so that jobs of seconds do not outrank all others
    after a few seconds of waiting. `max_requested_s` caps it (see the module).
    `overdue` is added for a job within `overdue_lead_s` of its latest start: within a
    tier, above any expansion factor a queue reaches. `sjf-aged` uses the same tier,
    overdue, fair-share, floor and cap; `stretch` is its seconds of precedence per second
    of estimated run time (see `virtual_deadline`), `sticky` whether the job that held
    the reservation keeps it until it starts.
    """

    tier: float = 1e9
    overdue: float = 1e8
    overdue_lead_s: float = 3600.0
    fairshare: float = 1.0
    slowdown_bound_s: float = 60.0
    max_requested_s: float = 86_400.0
    stretch: float = 1.0
    sticky: bool = True


def virtual_deadline(
    submit_time_s: float, estimate_s: float, fairshare: float, weights: PriorityWeights
) -> float:
    """The `sjf-aged` rank of a job (lower first): its submission plus `stretch` times its
    estimated run time (floored at `slowdown_bound_s`, capped at `max_requested_s`), the
    estimate shrunk by up to half for the users with the best fair-share rank.

    Shortest estimated job first among jobs submitted close together, first come first
    served among jobs submitted far apart: a job is overtaken only by jobs submitted
    before its rank, so no job waits behind more than `stretch x max_requested_s` of
    later submissions (aging that never lets a job wait forever)."""
    est = min(max(estimate_s, weights.slowdown_bound_s), weights.max_requested_s)
    return submit_time_s + weights.stretch * est / (1.0 + weights.fairshare * fairshare)


def submit_order(pending: Sequence[PendingJob]) -> list[PendingJob]:
    """Jobs in order of submission (ties by job id)."""
    return sorted(pending, key=lambda j: (j.submit_time_s, j.job_id))


def sjf_order(
    pending: Sequence[PendingJob],
    now: float,
    allocations: Mapping[str, Allocation],
    fairshare: Mapping[UserKey, float],
    weights: PriorityWeights,
    reserved: int | None = None,
) -> list[PendingJob]:
    """Jobs by `sjf-aged` priority, first first: tier, then jobs due to their latest start,
    then the job `reserved` (it held the reservation: it keeps it), then by
    `virtual_deadline` (ties by submission, then job id)."""
    due = now + weights.overdue_lead_s
    tiers = {p: a.tier for p, a in allocations.items()}
    keyed: list[tuple[int, bool, bool, float, float, int, int]] = []
    for i, job in enumerate(pending):
        latest = job.latest_start_s
        rank = virtual_deadline(
            job.submit_time_s,
            job.time_limit_s,
            fairshare.get((job.project, job.user), 0.0),
            weights,
        )
        overdue = latest is not None and latest <= due
        sticky = job.job_id == reserved
        keyed.append(
            (
                -tiers.get(job.project, 0),
                not overdue,
                not sticky,
                rank,
                job.submit_time_s,
                job.job_id,
                i,
            )
        )
    keyed.sort()
    return [pending[k[-1]] for k in keyed]


def priority_order(
    pending: Sequence[PendingJob],
    now: float,
    allocations: Mapping[str, Allocation],
    fairshare: Mapping[UserKey, float],
    weights: PriorityWeights,
) -> list[PendingJob]:
    """Jobs by `fabriek` priority, highest first (ties by submission, then job id)."""
    bound, cap = weights.slowdown_bound_s, weights.max_requested_s
    w_tier, w_fs, w_overdue = weights.tier, weights.fairshare, weights.overdue
    due = now + weights.overdue_lead_s
    tiers = {p: a.tier for p, a in allocations.items()}
    keyed: list[tuple[float, float, int, int]] = []
    for i, job in enumerate(pending):
        est = job.time_limit_s if job.time_limit_s > bound else bound
        if est > cap:
            est = cap
        wait = now - job.submit_time_s
        xfactor = (wait + est) / est if wait > 0 else 1.0
        score = xfactor * (1.0 + w_fs * fairshare.get((job.project, job.user), 0.0))
        if w_tier:
            score += w_tier * tiers.get(job.project, 0)
        latest = job.latest_start_s
        if latest is not None and latest <= due:
            score += w_overdue
        keyed.append((-score, job.submit_time_s, job.job_id, i))
    keyed.sort()
    return [pending[k[3]] for k in keyed]
