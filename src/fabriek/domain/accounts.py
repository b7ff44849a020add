"""Who a job runs as: the person and project that own it, and their POSIX identity.

No job ever runs with the control plane's privileges or under a shared account. On the
`local` engine each person is an unprivileged user of their own (UID) and each project a
group of its own (GID), numbered from a base the operator chooses, far above the machine's
own accounts, so that the numbers never collide with them or with each other.
"""

from __future__ import annotations

from dataclasses import dataclass

# Above the ranges Linux distributions hand out to people (1000-60000) and systemd to
# containers (524288-1879048191), below 2^31 (tools that read IDs as signed 32-bit).
DEFAULT_ID_BASE = 1_900_000_000
_ID_CEILING = 2**31 - 2


@dataclass(frozen=True)
class JobOwner:
    """The person who submitted a job and the project it is charged to."""

    user_id: int
    user: str
    project_id: int
    project: str


@dataclass(frozen=True)
class PosixIdentity:
    """The Unix identity a job runs as: the person's UID, the project's GID."""

    user: str
    uid: int
    group: str
    gid: int


class IdentityOutOfRange(ValueError):
    """A person or project number too large for the configured ID range."""


def local_identity(owner: JobOwner, base: int = DEFAULT_ID_BASE) -> PosixIdentity:
    """The identity `owner`'s jobs run as on a local engine: UID base + the person's number,
    GID base + the project's number. Distinct people get distinct UIDs and distinct projects
    distinct GIDs; the same person always gets the same UID (their files stay theirs)."""
    if base < 1000:
        raise IdentityOutOfRange(f"the ID base {base} would reach the machine's own accounts")
    uid, gid = base + owner.user_id, base + owner.project_id
    if owner.user_id < 1 or owner.project_id < 1 or max(uid, gid) > _ID_CEILING:
        raise IdentityOutOfRange(
            f"user {owner.user_id} or project {owner.project_id} does not fit the ID range "
            f"from {base} to {_ID_CEILING}: choose a lower FABRIEK_LOCAL_ID_BASE"
        )
    return PosixIdentity(user=owner.user, uid=uid, group=owner.project, gid=gid)
