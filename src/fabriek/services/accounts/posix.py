"""Each person's POSIX account and each project's POSIX group, allocated on first need
(a desired state, a job's dispatch) and never changed or reused afterwards.

Allocation is idempotent and safe when two processes do it at once: a choice is written
in a savepoint under the tables' unique constraints; when another process took the name,
the number or the very person just now, the clash is caught, what is stored is read
again, and the choice is made anew. On SQLite a transaction that read before another
wrote cannot write at all (its snapshot is stale): the caller's transaction is then rolled
back and begun again, so allocate before writing anything of one's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from fabriek.domain.accounts import JobOwner
from fabriek.domain.errors import Conflict
from fabriek.domain.posix_names import allocate_names, choose_id, person_uid, project_gid
from fabriek.domain.site_agent_status import PosixAccountOut, PosixGroupOut
from fabriek.store.tables import (
    MembershipRow,
    PosixAccountRow,
    PosixGroupRow,
    ProjectRow,
    UserRow,
)

# SQLite refuses a second writer at once; under load several rounds may clash in a row.
_ATTEMPTS = 30
R = TypeVar("R")
USER_PREFIX = "u"
GROUP_PREFIX = "p"


def _allocated(
    session: Session,
    wanted: set[int],
    stored: Callable[[Session, set[int]], dict[int, R]],
    allocate: Callable[[Session, list[int], int], None],
    base: int,
    what: str,
) -> dict[int, R]:
    """What is stored for `wanted`, after allocating (in a savepoint) those that lack one;
    a clash with another process is read again and chosen anew, a few times."""
    for attempt in range(_ATTEMPTS):
        found = stored(session, wanted)
        missing = sorted(wanted - found.keys())
        if not missing:
            return found
        try:
            with session.begin_nested():
                allocate(session, missing, base)
        except OperationalError as exc:
            _begin_anew_on_sqlite(session, exc)
            time.sleep(0.01 * (attempt + 1))
        except IntegrityError:
            pass  # another process allocated some of them just now: read again
    raise Conflict(f"POSIX {what} are being allocated by another process: try again")


def posix_accounts(
    session: Session, user_ids: Iterable[int], base: int
) -> dict[int, PosixAccountRow]:
    """The POSIX accounts of these people, allocating those they lack (flushed in the
    caller's transaction; the caller commits)."""
    return _allocated(
        session, set(user_ids), _stored_accounts, _allocate_accounts, base, "accounts"
    )


def posix_account(session: Session, user_id: int, base: int) -> PosixAccountRow:
    """One person's POSIX account, allocated when they have none yet."""
    return posix_accounts(session, [user_id], base)[user_id]


def posix_groups(
    session: Session, project_ids: Iterable[int], base: int
) -> dict[int, PosixGroupRow]:
    """The POSIX groups (Slurm accounts) of these projects, allocating those they lack."""
    return _allocated(session, set(project_ids), _stored_groups, _allocate_groups, base, "groups")


def _begin_anew_on_sqlite(session: Session, exc: OperationalError) -> None:
    """After SQLite refused a write (another writer came first), roll back so the next
    read sees what it wrote; on any other database the error is not a clash: raise it."""
    if session.get_bind().dialect.name != "sqlite":
        raise exc
    session.rollback()


def _stored_accounts(session: Session, user_ids: set[int]) -> dict[int, PosixAccountRow]:
    if not user_ids:
        return {}
    rows = session.scalars(select(PosixAccountRow).where(PosixAccountRow.user_id.in_(user_ids)))
    return {r.user_id: r for r in rows}


def _stored_groups(session: Session, project_ids: set[int]) -> dict[int, PosixGroupRow]:
    if not project_ids:
        return {}
    rows = session.scalars(select(PosixGroupRow).where(PosixGroupRow.project_id.in_(project_ids)))
    return {r.project_id: r for r in rows}


def _allocate_accounts(session: Session, user_ids: list[int], base: int) -> None:
    people = session.execute(
        select(UserRow.id, UserRow.username).where(UserRow.id.in_(user_ids))
    ).all()
    _allocate(
        session, [(i, n) for i, n in people], USER_PREFIX,
        set(session.scalars(select(PosixAccountRow.uid))), lambda i: person_uid(base, i),
        lambda i, name, uid: PosixAccountRow(user_id=i, username=name, uid=uid),
    )  # fmt: skip


def _allocate_groups(session: Session, project_ids: list[int], base: int) -> None:
    projects = session.execute(
        select(ProjectRow.id, ProjectRow.name).where(ProjectRow.id.in_(project_ids))
    ).all()
    _allocate(
        session, [(i, n) for i, n in projects], GROUP_PREFIX,
        set(session.scalars(select(PosixGroupRow.gid))), lambda i: project_gid(base, i),
        lambda i, name, gid: PosixGroupRow(project_id=i, name=name, gid=gid),
    )  # fmt: skip


def _allocate(
    session: Session,
    wanted: list[tuple[int, str]],
    prefix: str,
    taken_ids: set[int],
    preferred: Callable[[int], int],
    row: Callable[[int, str, int], PosixAccountRow | PosixGroupRow],
) -> None:
    """A name and a number for each of `wanted` (person or project id, its name), stored
    as `row` makes them: accounts and groups are chosen the same way."""
    # A person's own group is named as they are: no project's group may have that name,
    # and no person may take a project group's name.
    taken_names = set(session.scalars(select(PosixAccountRow.username)))
    taken_names |= set(session.scalars(select(PosixGroupRow.name)))
    names = allocate_names(wanted, taken_names, prefix)
    for owner in sorted(names):
        number = choose_id(preferred(owner), taken_ids)
        taken_ids.add(number)
        session.add(row(owner, names[owner], number))
    session.flush()


def job_owners(
    session: Session, pairs: Iterable[tuple[int, int]], base: int
) -> dict[tuple[int, int], JobOwner]:
    """Whom the jobs of these (person, project) pairs run as: the person's POSIX username
    and the project's group, which is also its Slurm account; allocated when missing and
    committed, so that a job's owner at the site never changes after it started."""
    wanted = set(pairs)
    accounts = posix_accounts(session, {u for u, _p in wanted}, base)
    groups = posix_groups(session, {p for _u, p in wanted}, base)
    session.commit()
    return {
        (u, p): JobOwner(u, accounts[u].username, p, groups[p].name)
        for u, p in wanted
        if u in accounts and p in groups
    }


def my_account(session: Session, user_id: int, base: int) -> PosixAccountOut:
    """A person's POSIX identity and their projects' groups (allocated on first ask)."""
    project_ids = set(
        session.scalars(select(MembershipRow.project_id).where(MembershipRow.user_id == user_id))
    )
    account = posix_account(session, user_id, base)
    groups = posix_groups(session, project_ids, base)
    session.commit()
    names: dict[int, str] = {
        project_id: name
        for project_id, name in session.execute(
            select(ProjectRow.id, ProjectRow.name).where(ProjectRow.id.in_(groups))
        )
    }
    return PosixAccountOut(
        username=account.username,
        uid=account.uid,
        gid=account.uid,
        groups=sorted(
            (PosixGroupOut(project=names[p], name=g.name, gid=g.gid) for p, g in groups.items()),
            key=lambda g: g.name,
        ),
    )
