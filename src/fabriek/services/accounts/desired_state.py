"""A site's desired state from the store: the facts read (and POSIX identities allocated
for anyone who lacks one), then the pure rules of `domain.site_state_rules`."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.site_state import DesiredState
from fabriek.domain.site_state_rules import (
    AllocationFacts,
    PersonFacts,
    ProjectFacts,
    SiteFacts,
    TrackFacts,
    desired_state,
)
from fabriek.services.accounts import ssh_ca
from fabriek.services.accounts.posix import posix_accounts, posix_groups
from fabriek.services.site_agents import find_site
from fabriek.store.tables import (
    AllocationRow,
    ChargeRow,
    JobRow,
    MembershipRow,
    PosixAccountRow,
    ProjectRow,
    SiteRow,
    SshKeyRow,
    UserRow,
)


def site_facts(row: SiteRow, access: AccessConfig) -> SiteFacts:
    """The site as its desired state needs it. With several GPU types the highest charge
    factor converts budgets to GPU-minutes, so Slurm never lets a budget be overspent."""
    types = {g.gpu_type for g in row.node_groups if g.gpu_type}
    factor = max((access.factor(t) for t in types), default=1.0)
    return SiteFacts(
        name=row.name,
        # A site's Slurm cluster is named as the site (ClusterName in its slurm.conf).
        cluster=row.name,
        gpu_factor=factor,
        max_wall_minutes=row.max_time_s // 60 if row.max_time_s else None,
    )


def _allocations(session: Session) -> list[AllocationFacts]:
    charged: dict[int, float] = {
        allocation_id: float(total or 0.0)
        for allocation_id, total in session.execute(
            select(ChargeRow.allocation_id, func.sum(ChargeRow.gpu_hours)).group_by(
                ChargeRow.allocation_id
            )
        )
    }
    return [
        AllocationFacts(
            project_id=a.project_id,
            track=a.track,
            gpu_hours=a.gpu_hours,
            charged_gpu_hours=charged.get(a.id, 0.0),
            sites=frozenset(a.sites or ()),
            starts_at=a.starts_at,
            ends_at=a.ends_at,
            suspended=a.suspended_at is not None,
        )
        for a in session.scalars(select(AllocationRow))
    ]


def _counted_gpu_minutes(session: Session, site: str) -> dict[int, int]:
    """Per project, the raw GPU-minutes of its jobs at `site` charged so far (rounded up:
    Slurm must never be told of less than the ledger holds)."""
    rows = session.execute(
        select(JobRow.project_id, func.sum(ChargeRow.raw_gpu_hours))
        .join(JobRow, JobRow.id == ChargeRow.job_id)
        .join(SiteRow, SiteRow.id == JobRow.site_id)
        .where(SiteRow.name == site)
        .group_by(JobRow.project_id)
    )
    return {project_id: math.ceil(float(hours or 0.0) * 60 - 1e-9) for project_id, hours in rows}


def site_desired_state(
    session: Session,
    site_ref: str,
    access: AccessConfig,
    id_base: int,
    state_dir: Path,
    now: datetime,
) -> DesiredState:
    """What the site's agent should make true now. Allocates (and commits) the POSIX
    identities of members and projects that have none yet."""
    site = site_facts(find_site(session, site_ref), access)
    members = session.execute(select(MembershipRow.user_id, MembershipRow.project_id)).all()
    allocations = _allocations(session)
    # Everyone who has or had an account stays (locked once in no project): their files
    # keep their owner; members get one now if they have none.
    people_ids = {u for u, _p in members} | set(session.scalars(select(PosixAccountRow.user_id)))
    project_ids = {p for _u, p in members} | {a.project_id for a in allocations}
    accounts = posix_accounts(session, people_ids, id_base)
    groups = posix_groups(session, project_ids, id_base)
    session.commit()
    memberships: dict[int, set[int]] = defaultdict(set)
    for user_id, project_id in members:
        memberships[user_id].add(project_id)
    keys: dict[int, list[str]] = defaultdict(list)
    for user_id, key in session.execute(
        select(SshKeyRow.user_id, SshKeyRow.public_key).where(SshKeyRow.revoked_at.is_(None))
    ):
        keys[user_id].append(key.strip())
    titles: dict[int, tuple[str, bool]] = {
        project_id: (title, suspended_at is not None)
        for project_id, title, suspended_at in session.execute(
            select(ProjectRow.id, ProjectRow.title, ProjectRow.suspended_at).where(
                ProjectRow.id.in_(groups)
            )
        )
    }
    counted = _counted_gpu_minutes(session, site.name)
    suspended_people = set(
        session.scalars(
            select(UserRow.id).where(UserRow.id.in_(accounts), UserRow.suspended_at.is_not(None))
        )
    )
    return desired_state(
        site,
        [
            PersonFacts(
                a.username,
                a.uid,
                frozenset(memberships[u]),
                tuple(keys[u]),
                suspended=u in suspended_people,
            )
            for u, a in accounts.items()
        ],
        [
            ProjectFacts(p, g.name, g.gid, *titles.get(p, ("", False)), counted.get(p, 0))
            for p, g in groups.items()
        ],
        allocations,
        [TrackFacts(t.code, t.tier, t.preemptible) for t in access.tracks.values()],
        now,
        ssh_ca.public_key(state_dir),
    )
