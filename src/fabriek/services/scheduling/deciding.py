"""Deciding a cycle: the scheduler run on a cycle's input, and each decision said as what it
does, in words users read. Pure: no store.
"""

from __future__ import annotations

from fabriek.domain.access.tracks import AccessConfig
from fabriek.scheduler import Preempt, Start, Wait, WaitReason, schedule
from fabriek.scheduler.carbon import DEFAULT_HEAT_WEIGHT, ShiftConfig
from fabriek.scheduler.policy import SchedulerConfig
from fabriek.services.scheduling.plans import CycleInput, CyclePlan, Eviction, Launch


def decide(
    cycle: CycleInput, access: AccessConfig, heat_weight: float = DEFAULT_HEAT_WEIGHT
) -> CyclePlan:
    """Schedule the snapshot and say what each decision does, in words users read: pure, no
    store. A job that waits while a site is down says so before its own reason."""
    snapshot = cycle.snapshot
    result = schedule(snapshot, SchedulerConfig(shift=ShiftConfig(heat_weight=heat_weight)))
    node_types = {(s.name, n.name): n.gpu_type for s in snapshot.sites for n in s.nodes}
    gpus = {p.job_id: p.gpus for p in snapshot.pending}
    launches: list[Launch] = []
    evictions: list[Eviction] = []
    waits: dict[int, str] = {}
    for decision in result.decisions:
        if isinstance(decision, Start):
            placed = (
                node_types[(decision.site, decision.nodes[0].node)]
                if gpus[decision.job_id]
                else None
            )
            launches.append(
                Launch(
                    decision.job_id,
                    decision.site,
                    decision.nodes,
                    placed,
                    cycle.charged_to[cycle.project_of[decision.job_id]],
                    access.factor(placed),
                )
            )
        elif isinstance(decision, Preempt):
            evictions.append(
                Eviction(decision.job_id, decision.for_job_id, f"Preempted: {decision.words}")
            )
        elif isinstance(decision, Wait):
            waits[decision.job_id] = _wait_words(cycle, decision)
    return CyclePlan(tuple(launches), tuple(evictions), waits)


def _wait_words(cycle: CycleInput, decision: Wait) -> str:
    """Why a job waits: its datasets' residency in full, and any site that is down."""
    words = f"{decision.reason.value}: {decision.words}"
    if decision.reason is WaitReason.TERMS_NOT_ACCEPTED:
        words = f"{decision.reason.value}: {decision.detail}; see `fabriek terms`"
    if decision.reason is WaitReason.RESIDENCY_CONSTRAINT and decision.job_id in cycle.residency:
        words = f"{decision.reason.value}: {cycle.residency[decision.job_id].explain()}"
    elif decision.reason is WaitReason.RESIDENCY_CONSTRAINT and decision.job_id in cycle.kept_home:
        words = f"PartnerSites: {cycle.kept_home[decision.job_id]}"
    elif decision.reason is WaitReason.RESIDENCY_CONSTRAINT:
        # No datasets confine it: its image does, to the sites that run images.
        words = (
            "ContainerSites: it runs in a container image, and none of the sites that run "
            "images (container_runtime in the sites file) can run it now"
        )
    if cycle.down and decision.reason.value in {"Resources", "Priority", "NeverFits"}:
        why = "; ".join(
            f"{s}: {cycle.down_reasons.get(s, 'unreachable')}" for s in sorted(cycle.down)
        )
        words = f"SiteUnavailable: {why} ({words})"
    return words
