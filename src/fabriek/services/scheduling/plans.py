"""What one scheduling cycle works on and decides, as plain values: its input (no rows, no
session), its plan, and what applying the plan did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fabriek.domain.residency import ResidencyVerdict
from fabriek.scheduler import NodeShare, Snapshot


@dataclass
class Placed:
    """What one cycle did, for the dispatcher's report."""

    started: int = 0
    preempted: int = 0


@dataclass(frozen=True)
class CycleInput:
    """Everything one cycle decides on, as plain values: no rows, no session. `project_of`
    names each waiting job's project, `charged_to` each project's current allocation row,
    `residency` why a waiting job's datasets confine it (when they do), and `down` the sites
    that cannot be reached, with `down_reasons` saying why."""

    snapshot: Snapshot
    project_of: Mapping[int, str]
    charged_to: Mapping[str, int]
    residency: Mapping[int, ResidencyVerdict] = field(default_factory=dict)
    down: frozenset[str] = frozenset()
    down_reasons: Mapping[str, str] = field(default_factory=dict)
    # Waiting jobs kept off partner factories' sites by their project, with the reason.
    kept_home: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Launch:
    """Start a waiting job: where, on which GPUs of which type, charged to which allocation
    at which factor."""

    job_id: int
    site: str
    nodes: tuple[NodeShare, ...]
    gpu_type: str | None
    allocation_id: int
    charge_factor: float


@dataclass(frozen=True)
class Eviction:
    """Ask a running job to stop, to make room for `for_job_id`."""

    job_id: int
    for_job_id: int
    reason: str


@dataclass(frozen=True)
class CyclePlan:
    """What one cycle decided: launches in the scheduler's order, evictions, and the reason
    each job that waits shows (job id -> words)."""

    launches: tuple[Launch, ...] = ()
    evictions: tuple[Eviction, ...] = ()
    waits: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedCycle:
    """A cycle's input, with each waiting job's current reason (applying its plan writes
    the reasons that change)."""

    cycle: CycleInput
    reasons: Mapping[int, str | None]
