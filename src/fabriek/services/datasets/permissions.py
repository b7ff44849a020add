"""Who may do what with a dataset: members of the owning project read, register and upload;
members of a granted project read; the owning project's principal investigator (or an admin)
grants, revokes and deletes; admins see every dataset's terms. To anyone else a dataset does
not exist (404). Memberships are read at each call, never cached: access to data follows a
membership change at once."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from fabriek.domain.dataset_names import name_problem
from fabriek.domain.datasets import Access
from fabriek.domain.errors import Forbidden, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal, Role
from fabriek.store.tables import DatasetGrantRow, DatasetRow, MembershipRow, ProjectRow


def memberships(session: Session, who: Principal) -> dict[int, str]:
    """The caller's projects and roles, read now (not from a cache: access to data follows
    a membership change at once)."""
    rows = session.execute(
        select(MembershipRow.project_id, MembershipRow.role).where(
            MembershipRow.user_id == who.user_id
        )
    )
    return {p: r for p, r in rows}


def project_by_ref(ref: str) -> Any:
    """A condition matching the project named by `ref` (its number or its name)."""
    if "\x00" in ref:
        # No project is named so, and PostgreSQL refuses NUL in text: match nothing.
        return false()
    return ProjectRow.id == int(ref) if is_id(ref) else ProjectRow.name == ref


@dataclass(frozen=True)
class Found:
    """A dataset the caller may see, its owning project, and how the caller reaches it."""

    dataset: DatasetRow
    project: ProjectRow
    access: Access
    role: str | None  # the caller's role in the owning project


def find_dataset(session: Session, who: Principal, project: str, name: str) -> Found:
    """A dataset the caller may see; NotFound for any other (existing or not)."""
    if name_problem(name) is not None:
        raise NotFound("dataset", f"{project}/{name!r}")
    found = session.execute(
        select(DatasetRow, ProjectRow)
        .join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
        .where(project_by_ref(project), DatasetRow.name == name)
    ).first()
    if found is None:
        raise NotFound("dataset", f"{project}/{name}")
    dataset, owner = found
    mine = memberships(session, who)
    if owner.id in mine:
        return Found(dataset, owner, Access.OWNER, mine[owner.id])
    granted = session.scalar(
        select(func.count()).where(
            DatasetGrantRow.dataset_id == dataset.id, DatasetGrantRow.project_id.in_(list(mine))
        )
    )
    if granted:
        return Found(dataset, owner, Access.GRANTED, None)
    if who.is_admin:
        return Found(dataset, owner, Access.ADMIN, None)
    raise NotFound("dataset", f"{project}/{name}")


def require_reader(found: Found) -> None:
    """Refuse admins who reach the dataset only as admins: they see its terms, not its data."""
    if found.access is Access.ADMIN:
        raise Forbidden(
            f"admins see the terms of {found.project.name}/{found.dataset.name} but read its "
            "data only through a grant to one of their projects"
        )


def require_owner_member(found: Found, action: str) -> None:
    """Refuse anyone who is not a member of the owning project."""
    if found.access is not Access.OWNER:
        raise Forbidden(f"only members of project {found.project.name} may {action}")


def require_manager(who: Principal, found: Found, action: str) -> None:
    """Refuse anyone but the owning project's principal investigator or an admin."""
    if found.role == Role.PRINCIPAL_INVESTIGATOR.value or who.is_admin:
        return
    raise Forbidden(
        f"only the principal investigator of {found.project.name} or an admin may {action}"
    )


def visible_query(session: Session, who: Principal) -> Select[DatasetRow, ProjectRow]:
    """The datasets the caller may see (every one, for admins), with their projects."""
    query = select(DatasetRow, ProjectRow).join(ProjectRow, ProjectRow.id == DatasetRow.project_id)
    if who.is_admin:
        return query
    mine = list(memberships(session, who))
    granted = select(DatasetGrantRow.dataset_id).where(DatasetGrantRow.project_id.in_(mine))
    return query.where(or_(DatasetRow.project_id.in_(mine), DatasetRow.id.in_(granted)))


def granted_to(session: Session, dataset_id: int, projects: Collection[int]) -> bool:
    """Whether any of `projects` holds a grant to the dataset."""
    return bool(
        session.scalar(
            select(func.count()).where(
                DatasetGrantRow.dataset_id == dataset_id,
                DatasetGrantRow.project_id.in_(list(projects)),
            )
        )
    )
