"""Pure scheduling: priority and fair share, gang placement and backfill, preemption;
and the trace simulator that replays a workload through the very same cycle."""

from fabriek.scheduler.decisions import CycleResult, Decision, Preempt, Reservation, Start, Wait
from fabriek.scheduler.policy import Policy, SchedulerConfig, schedule
from fabriek.scheduler.priority import PriorityWeights
from fabriek.scheduler.reasons import WaitReason, never_fits
from fabriek.scheduler.signals import HourSignal, Signals
from fabriek.scheduler.simulate import SimulationResult, SkippedJob, run_simulation
from fabriek.scheduler.snapshot import (
    Allocation,
    Node,
    NodeShare,
    PendingJob,
    RunningJob,
    SiteState,
    Snapshot,
    UserKey,
    site_from_groups,
)
from fabriek.scheduler.trace import TraceError, TraceRow, load_trace, parse_trace

__all__ = [
    "Allocation",
    "CycleResult",
    "Decision",
    "HourSignal",
    "Node",
    "NodeShare",
    "PendingJob",
    "Policy",
    "Preempt",
    "PriorityWeights",
    "Reservation",
    "RunningJob",
    "SchedulerConfig",
    "Signals",
    "SimulationResult",
    "SiteState",
    "SkippedJob",
    "Snapshot",
    "Start",
    "TraceError",
    "TraceRow",
    "UserKey",
    "Wait",
    "WaitReason",
    "load_trace",
    "never_fits",
    "parse_trace",
    "run_simulation",
    "schedule",
    "site_from_groups",
]
