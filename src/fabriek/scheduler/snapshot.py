"""What one scheduling cycle sees: the factory at one instant, as plain immutable values.

Times are seconds on one clock chosen by the caller (the live service passes Unix time,
the simulator the trace's clock); the scheduler never reads a clock of its own. The
snapshot holds the truth the service keeps in its store: what waits, what runs and
until when at most, which GPUs are free, and how much each project may still spend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fabriek.domain.sites import NodeGroup
from fabriek.domain.units import GpuHours
from fabriek.scheduler.signals import Signals

# (project, user): the leaf of the fair-share tree organisation -> project -> user.
UserKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting to start.

    `time_limit_s` is the user's limit (an estimate, usually far above the real run time);
    it is all the scheduler knows of how long the job will run. `gpu_type` None takes
    any type, but all GPUs of one job are of one type. A job requeued after preemption
    keeps its first `submit_time_s`, so it keeps its age. `latest_start_s`, when set,
    makes the job flexible: it may be held back for cleaner hours up to then (never
    later), and from then on it is urgent. A deadline gives it as deadline - time limit,
    "may wait up to N hours" as submission + N hours. `sites`, when given, are the only
    sites the job itself may use (its datasets' residency), on top of its allocation's.
    """

    job_id: int
    project: str
    user: str
    gpus: int
    time_limit_s: float
    submit_time_s: float
    gpu_type: str | None = None
    earliest_start_s: float | None = None
    preemptible: bool = False
    latest_start_s: float | None = None
    sites: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class NodeShare:
    """GPUs of one job on one node."""

    node: str
    gpus: int


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding GPUs; it ends at `expected_end_s` (start + time limit) at the latest."""

    job_id: int
    project: str
    user: str
    site: str
    nodes: tuple[NodeShare, ...]
    start_time_s: float
    expected_end_s: float
    preemptible: bool = False
    # Normalised GPU-hours per GPU-hour of the type it runs on (see `Snapshot`).
    factor: float = 1.0

    @property
    def gpus(self) -> int:
        """GPUs held, over all its nodes."""
        return sum(share.gpus for share in self.nodes)


@dataclass(frozen=True, slots=True)
class Node:
    """One node: `gpus` GPUs of `gpu_type`, `free` of them usable now.

    A drained or failed node reports `free` 0; GPUs held by jobs Fabriek does not
    manage are simply not free.
    """

    name: str
    gpu_type: str
    gpus: int
    free: int


@dataclass(frozen=True, slots=True)
class SiteState:
    """A site's cluster as the cycle sees it. Node names are unique within the site."""

    name: str
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Allocation:
    """A project's allocation: its GPU-hours left, fair-share weight and access tier.

    `budget_left` None means no budget limit. `shares` weigh the project against the
    other projects of its organisation (and the organisation, by the sum of its
    projects' shares, against other organisations); the GPU-hours awarded are a natural
    choice. A higher `tier` ranks first; jobs of a `preemptible` allocation (a
    playground track) yield to jobs of a higher tier. `sites`, when given, are the only
    sites its jobs may run on.
    """

    project: str
    organisation: str
    budget_left: GpuHours | None = None
    shares: float = 1.0
    tier: int = 0
    preemptible: bool = False
    track: str = ""
    sites: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one cycle decides on.

    `usage` is each user's recent usage, already decayed to `now_s` with the fair-share
    half-life (see `fairshare.decayed_usage`). A pending job whose project has no entry
    in `allocations` waits with reason `NoAllocation`. Budgets are in normalised
    GPU-hours: an hour of one GPU of type `t` costs `gpu_hour_factors[t]` (1 if absent);
    a job that takes any type is checked at the dearest type it could get.
    `run_shares` are the fractions of their time limits that recently ended runs used
    (any number of them; `carbon.run_share_sample` summarises): how long a flexible job
    is planned to run when it is timed for cleaner hours. Empty: unknown.
    `user_sites` are the only sites each user (by name) may work at, those whose terms of
    use (and the factory's) they accepted; a user not named may work at every site.
    `reserved_job_id` is the job that held the reservation after the previous cycle:
    under `sjf-aged` it keeps the head of its tier until it starts (a sticky reservation,
    so a stream of shorter jobs cannot keep taking it away). None: no memory of one.
    """

    now_s: float
    pending: Sequence[PendingJob]
    running: Sequence[RunningJob]
    sites: Sequence[SiteState]
    allocations: Mapping[str, Allocation]
    usage: Mapping[UserKey, GpuHours] = field(default_factory=dict)
    signals: Signals = field(default_factory=Signals)
    gpu_hour_factors: Mapping[str, float] = field(default_factory=dict)
    run_shares: Sequence[float] = ()
    user_sites: Mapping[str, frozenset[str]] = field(default_factory=dict)
    reserved_job_id: int | None = None


def site_from_groups(name: str, groups: Sequence[NodeGroup]) -> SiteState:
    """A site as its node groups describe it, every GPU free: what `never_fits` needs at
    submission. Nodes are named `<group>-<i>`; nodes without GPUs are left out."""
    nodes = tuple(
        Node(f"{g.name}-{i}", g.gpu_type, g.gpus_per_node, g.gpus_per_node)
        for g in groups
        if g.gpu_type and g.gpus_per_node > 0
        for i in range(g.count)
    )
    return SiteState(name, nodes)
