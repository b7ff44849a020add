"""The desired state of one site, from plain facts: pure, no clock (time is an argument).

- Every person with a POSIX identity is a user at every site (one person, one account,
  everywhere), with a primary group of their own (GID = their UID) and the groups of the
  projects they are in. A person in no project any more (they left their organisation)
  stays, `locked`: their files keep their owner, logins are refused.
- Every project whose allocations may be spent at this site is a Slurm account; its
  `gpu_minutes` is what its active allocations have left, in raw GPU-minutes of this
  site's GPUs (0 when spent or expired, so Slurm itself stops new jobs). Its members are
  its associations; a person removed from it loses theirs.
- Every access track is a QOS: its tier as priority, the site's longest wall time, and
  whether its jobs may be preempted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from fabriek.domain.site_state import (
    DesiredState,
    PosixGroup,
    PosixUser,
    SlurmAccount,
    SlurmAssociation,
    SlurmQos,
)

# A QOS's priority per tier of its track: tiers 0..3 become 0..300, apart enough that an
# operator can put a QOS of their own between two.
PRIORITY_PER_TIER = 100


@dataclass(frozen=True)
class PersonFacts:
    """A person as the site sees them: POSIX identity, project memberships, SSH keys."""

    username: str
    uid: int
    project_ids: frozenset[int] = frozenset()
    ssh_keys: tuple[str, ...] = ()
    # Suspended by the factory: locked at every site, like someone in no project.
    suspended: bool = False


@dataclass(frozen=True)
class ProjectFacts:
    """A project's POSIX group (its name is also its Slurm account's)."""

    project_id: int
    group: str
    gid: int
    title: str = ""
    # Suspended by the factory: its account's limit is 0, so no job of it starts.
    suspended: bool = False
    # Raw GPU-minutes of its jobs at this site that Fabriek has charged so far.
    counted_gpu_minutes: int = 0


@dataclass(frozen=True)
class AllocationFacts:
    """An allocation: normalised GPU-hours awarded and charged so far, the sites it may
    be spent at (empty: any), its time span and track."""

    project_id: int
    track: str
    gpu_hours: float
    charged_gpu_hours: float
    sites: frozenset[str]
    starts_at: datetime
    ends_at: datetime
    # Suspended by the factory: nothing of it may be spent while it is.
    suspended: bool = False

    def usable_at(self, site: str) -> bool:
        return not self.sites or site in self.sites

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def left(self) -> float:
        """Normalised GPU-hours left (never below 0)."""
        return max(0.0, self.gpu_hours - self.charged_gpu_hours)


@dataclass(frozen=True)
class TrackFacts:
    """An access track's rules that Slurm enforces."""

    code: str
    tier: int
    preemptible: bool


@dataclass(frozen=True)
class SiteFacts:
    """The site: its name, its Slurm cluster's name, the charge factor of its GPUs (the
    highest when it has several types, so a budget is never overspent) and its longest
    wall time."""

    name: str
    cluster: str
    gpu_factor: float
    max_wall_minutes: int | None


def raw_gpu_minutes(normalised_gpu_hours: float, factor: float) -> int:
    """Normalised GPU-hours as raw GPU-minutes of GPUs with this charge factor, rounded
    down (Slurm must never allow more than the budget holds)."""
    if normalised_gpu_hours <= 0:
        return 0
    return int(normalised_gpu_hours / (factor if factor > 0 else 1.0) * 60)


def _accounts(
    site: SiteFacts,
    projects: dict[int, ProjectFacts],
    allocations: Iterable[AllocationFacts],
    tracks: set[str],
    now: datetime,
) -> list[SlurmAccount]:
    here: dict[int, list[AllocationFacts]] = {}
    for a in allocations:
        if a.usable_at(site.name) and a.project_id in projects:
            here.setdefault(a.project_id, []).append(a)
    accounts = []
    for project_id, spans in here.items():
        active = sorted((a for a in spans if a.active(now)), key=lambda a: (a.ends_at, a.track))
        rest = sorted((a for a in spans if not a.active(now)), key=lambda a: (a.ends_at, a.track))
        # The default QOS is the track of what expires first (spent first), as in the
        # control plane's own scheduling.
        # Only tracks that are a QOS: a track dropped from the configuration is none.
        qos = tuple(dict.fromkeys(a.track for a in [*active, *reversed(rest)] if a.track in tracks))
        project = projects[project_id]
        left = 0.0 if project.suspended else sum(a.left() for a in active if not a.suspended)
        accounts.append(
            SlurmAccount(
                name=project.group,
                gpu_minutes=raw_gpu_minutes(left, site.gpu_factor),
                counted_gpu_minutes=project.counted_gpu_minutes,
                qos=qos,
                description=project.title.replace("\n", " ")[:200],
            )
        )
    return accounts


def desired_state(
    site: SiteFacts,
    people: Iterable[PersonFacts],
    projects: Iterable[ProjectFacts],
    allocations: Iterable[AllocationFacts],
    tracks: Iterable[TrackFacts],
    now: datetime,
    ssh_ca_public_key: str | None = None,
) -> DesiredState:
    """What the site's agent should make true at `now`. The same facts in any order give
    the same state (and generation)."""
    by_id = {p.project_id: p for p in projects}
    people = list(people)
    tracks = list(tracks)
    accounts = _accounts(site, by_id, allocations, {t.code for t in tracks}, now)
    account_names = {a.name for a in accounts}
    users = tuple(
        PosixUser(
            username=p.username,
            uid=p.uid,
            gid=p.uid,
            groups=tuple(sorted(by_id[i].group for i in p.project_ids if i in by_id)),
            ssh_keys=tuple(sorted(set(p.ssh_keys))),
            locked=p.suspended
            or not any(i in by_id and not by_id[i].suspended for i in p.project_ids),
        )
        for p in people
    )
    groups = (
        *(PosixGroup(p.username, p.uid) for p in people),
        *(PosixGroup(p.group, p.gid) for p in by_id.values()),
    )
    associations = tuple(
        SlurmAssociation(user=p.username, account=by_id[i].group)
        for p in people
        for i in p.project_ids
        if i in by_id and by_id[i].group in account_names
    )
    qos = tuple(
        SlurmQos(
            name=t.code,
            priority=t.tier * PRIORITY_PER_TIER,
            max_wall_minutes=site.max_wall_minutes,
            preemptible=t.preemptible,
        )
        for t in tracks
    )
    # In the order the JSON form has, so a state read back equals the one sent.
    return DesiredState(
        site=site.name,
        cluster=site.cluster,
        groups=tuple(sorted(groups, key=lambda g: g.name)),
        users=tuple(sorted(users, key=lambda u: u.username)),
        qos=tuple(sorted(qos, key=lambda q: q.name)),
        accounts=tuple(sorted(accounts, key=lambda a: a.name)),
        associations=tuple(sorted(associations, key=lambda a: (a.account, a.user))),
        ssh_ca_public_key=ssh_ca_public_key,
    )
