"""Registering a dataset with its terms (classification, residency, legal basis, purpose,
licence, retention), listing the datasets a caller may see, and showing one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import false, select
from sqlalchemy.orm import Session

from fabriek.domain.dataset_names import name_problem
from fabriek.domain.datasets import Access, Dataset, DatasetDraft
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal
from fabriek.services.datasets.permissions import (
    Found,
    find_dataset,
    granted_to,
    memberships,
    project_by_ref,
    visible_query,
)
from fabriek.services.datasets.views import (
    dataset_view,
    organisation_names,
    show_dataset,
    usernames,
    versions_of,
)
from fabriek.services.identity.projects import may_see_project
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.transactions import commit
from fabriek.store.tables import DatasetRow, ProjectRow


def register(session: Session, who: Principal, now: datetime, draft: DatasetDraft) -> Dataset:
    """Register a dataset of one of the caller's projects; its data comes as versions."""
    project = session.scalars(select(ProjectRow).where(project_by_ref(draft.project))).first()
    mine = memberships(session, who)
    # Those who may see the project (admins, its hub's staff) are told why they may not;
    # for anyone else it does not exist.
    if project is None or (
        project.id not in mine and not may_see_project(session, who, project.id)
    ):
        raise NotFound("project", draft.project)
    if project.id not in mine:
        raise Forbidden(f"only members of project {project.name} may register its datasets")
    if draft.retention_until is not None and draft.retention_until <= now.date():
        raise InvalidInput.on(
            "retention_until", f"{draft.retention_until} has passed; give a date after today"
        )
    row = DatasetRow(
        project_id=project.id,
        name=draft.name,
        description=draft.description,
        classification=draft.classification.value,
        residency=draft.residency.value,
        legal_basis=draft.legal_basis.value if draft.legal_basis else None,
        special_category_condition=(
            draft.special_category_condition.value if draft.special_category_condition else None
        ),
        purpose=draft.purpose,
        licence=draft.licence,
        provenance=draft.provenance,
        retention_until=draft.retention_until,
        created_by=who.user_id,
        created_at=now,
    )
    session.add(row)
    commit(
        session,
        f"project {project.name} already has a dataset named {draft.name!r}; "
        "push a new version to it instead",
    )
    found = Found(row, project, Access.OWNER, mine[project.id])
    return show_dataset(session, found)


def list_datasets(
    session: Session,
    who: Principal,
    page: PageRequest,
    project: str | None = None,
    name: str | None = None,
) -> Page[Dataset]:
    """The datasets the caller may see: their projects' and those granted to them (every
    one, for admins), by project and name, each with its latest version."""
    query = visible_query(session, who)
    if project is not None:
        query = query.where(project_by_ref(project))
    if name is not None:
        query = query.where(DatasetRow.name == name if name_problem(name) is None else false())
    total = count_all(session, query)
    rows = session.execute(
        query.order_by(ProjectRow.name, DatasetRow.name).limit(page.limit).offset(page.offset)
    ).all()
    ids = [d.id for d, _ in rows]
    versions_by_dataset = versions_of(session, ids)
    mine = memberships(session, who)
    users = usernames(session, {d.created_by for d, _ in rows})
    orgs = organisation_names(session, {p.organisation_id for _, p in rows})
    items = []
    for d, p in rows:
        access = (
            Access.OWNER
            if p.id in mine
            else Access.ADMIN
            if who.is_admin and not granted_to(session, d.id, mine)
            else Access.GRANTED
        )
        organisation = orgs.get(p.organisation_id, "?")
        items.append(
            dataset_view(
                d,
                p,
                organisation,
                access,
                users,
                versions_by_dataset[d.id],
                [],
                with_versions=False,
            )
        )
    return Page(items, total, page.limit, page.offset)


def get_dataset(session: Session, who: Principal, project: str, name: str) -> Dataset:
    """One dataset with all its versions (newest first) and, for its owners, its grants."""
    return show_dataset(session, find_dataset(session, who, project, name))
