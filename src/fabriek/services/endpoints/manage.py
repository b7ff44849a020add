"""Creating, changing, listing and deleting a project's endpoints.

Who may: the project's members (and those who see the project: its hub, admins) read; its
principal investigator and admins create, change and delete. A change of model starts a
rolling update (the reconcile loop replaces replica by replica); a deleted endpoint's
replicas are drained, then their jobs cancelled.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.endpoints import (
    LIVE_STATES,
    Endpoint,
    EndpointChange,
    EndpointDraft,
    Replica,
    ReplicaState,
    bounds_problem,
    split_model,
)
from fabriek.domain.errors import Conflict, FabriekError, Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal
from fabriek.services.ai_act.registry import version_row
from fabriek.services.datasets.permissions import project_by_ref
from fabriek.services.endpoints.replicas import drain, files_dataset, start_replica
from fabriek.services.identity.projects import may_see_project
from fabriek.services.images import ImageService
from fabriek.services.jobs import datasets as job_datasets
from fabriek.store.tables import ProjectRow, SiteRow
from fabriek.store.tables.endpoints import EndpointReplicaRow, EndpointRow


def _project(session: Session, who: Principal, ref: str, change: bool) -> ProjectRow:
    """The project `ref` names, for reading its endpoints or (`change`) managing them."""
    project = session.scalars(select(ProjectRow).where(project_by_ref(ref))).first()
    if project is None or not (
        who.in_project(project.id) or may_see_project(session, who, project.id)
    ):
        raise NotFound("project", ref)
    if change and not (who.leads_project(project.id) or who.is_admin):
        raise Forbidden(
            f"only project {project.name}'s principal investigator or an admin manages its "
            "endpoints"
        )
    return project


def _row(session: Session, project: ProjectRow, name: str) -> EndpointRow:
    row = session.scalars(
        select(EndpointRow).where(
            EndpointRow.project_id == project.id,
            EndpointRow.name == name,
            EndpointRow.deleted_at.is_(None),
        )
    ).first()
    if row is None:
        raise NotFound("endpoint", f"{project.name}/{name}")
    return row


def _model_version(session: Session, who: Principal, model: str, project: ProjectRow) -> int | None:
    """The registry version `model` names (None for a dataset), after checking that its
    files can be read by the project: 422 naming `model` otherwise."""
    version_id = None
    if split_model(model) is not None:
        version, _, _ = version_row(session, who, model, "model")
        version_id = version.id
    dataset = files_dataset(session, model, project.id)
    try:
        job_datasets.resolve(session, who, project.id, project.name, [dataset])
    except (NotFound, InvalidInput) as missing:
        raise InvalidInput.on(
            "model", f"its files, dataset {dataset}, cannot be read by project "
            f"{project.name}: {missing}",
        ) from None  # fmt: skip
    return version_id


def view(session: Session, row: EndpointRow, project: str) -> Endpoint:
    """The API's shape of an endpoint, with its replicas that have not ended."""
    replicas = session.scalars(
        select(EndpointReplicaRow)
        .where(
            EndpointReplicaRow.endpoint_id == row.id,
            EndpointReplicaRow.state != ReplicaState.ENDED.value,
        )
        .order_by(EndpointReplicaRow.id)
    ).all()
    site = session.scalar(select(SiteRow.name).where(SiteRow.id == row.site_id))
    healthy = sum(1 for r in replicas if r.state == ReplicaState.HEALTHY.value)
    state = row.state
    if state == "active" and not replicas and row.min_replicas == 0:
        state = "scaled-to-zero"
    elif state == "active" and not healthy and replicas:
        state = "starting"
    return Endpoint(
        id=row.id, project=project, name=row.name, model=row.model,
        model_version_id=row.model_version_id, image=row.image, gpus=row.gpus,
        gpu_type=row.gpu_type, site=site, min_replicas=row.min_replicas,
        max_replicas=row.max_replicas, idle_s=row.idle_s, state=state,
        healthy_replicas=healthy,
        replicas=[
            Replica(id=r.id, job_id=r.job_id, state=r.state, model=r.model, reason=r.reason,
                    created_at=r.created_at, healthy_at=r.healthy_at, ended_at=r.ended_at)
            for r in replicas
        ],
        created_at=row.created_at, last_request_at=row.last_request_at,
    )  # fmt: skip


def create_endpoint(
    session: Session,
    who: Principal,
    project_ref: str,
    draft: EndpointDraft,
    now: datetime,
    images: ImageService | None = None,
) -> Endpoint:
    """Create an endpoint and start its first `min_replicas` replicas, in one transaction:
    a replica that cannot be submitted (budget, fit, datasets) refuses the whole."""
    project = _project(session, who, project_ref, change=True)
    taken = session.scalar(
        select(EndpointRow.id).where(
            EndpointRow.project_id == project.id, EndpointRow.name == draft.name
        )
    )
    if taken is not None:
        raise Conflict(f"project {project.name} already has an endpoint named {draft.name}")
    site_id = None
    if draft.site is not None:
        site_id = session.scalar(select(SiteRow.id).where(SiteRow.name == draft.site))
        if site_id is None:
            raise InvalidInput.on("site", f"no site is named {draft.site}")
    version_id = _model_version(session, who, draft.model, project)
    row = EndpointRow(
        project_id=project.id, name=draft.name, model=draft.model, model_version_id=version_id,
        image=draft.image, gpus=draft.gpus, gpu_type=draft.gpu_type, site_id=site_id,
        min_replicas=draft.min_replicas, max_replicas=draft.top, idle_s=draft.idle_s,
        state="active", created_by=who.user_id, created_at=now, updated_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    try:
        for _ in range(draft.min_replicas):
            start_replica(session, row, now, images, reason="created")
    except FabriekError:
        session.rollback()
        raise
    session.commit()
    return view(session, row, project.name)


def list_endpoints(session: Session, who: Principal, project_ref: str) -> list[Endpoint]:
    """The project's endpoints (not deleted), by name."""
    project = _project(session, who, project_ref, change=False)
    rows = session.scalars(
        select(EndpointRow)
        .where(EndpointRow.project_id == project.id, EndpointRow.deleted_at.is_(None))
        .order_by(EndpointRow.name)
    ).all()
    return [view(session, row, project.name) for row in rows]


def get_endpoint(session: Session, who: Principal, project_ref: str, name: str) -> Endpoint:
    """One endpoint with its replicas."""
    project = _project(session, who, project_ref, change=False)
    return view(session, _row(session, project, name), project.name)


def update_endpoint(
    session: Session,
    who: Principal,
    project_ref: str,
    name: str,
    change: EndpointChange,
    now: datetime,
) -> Endpoint:
    """Change an endpoint: a new model rolls out replica by replica (the reconcile loop);
    new bounds apply at its next round."""
    project = _project(session, who, project_ref, change=True)
    row = _row(session, project, name)
    low = change.min_replicas if change.min_replicas is not None else row.min_replicas
    high = change.max_replicas if change.max_replicas is not None else row.max_replicas
    if change.min_replicas is not None and change.max_replicas is None:
        high = max(high, low)
    if problem := bounds_problem(low, high):
        raise InvalidInput.on("max_replicas", problem)
    if change.model is not None and change.model != row.model:
        row.model_version_id = _model_version(session, who, change.model, project)
        row.model = change.model
    row.min_replicas, row.max_replicas = low, high
    if change.idle_s is not None:
        row.idle_s = change.idle_s
    row.updated_at = now
    session.commit()
    return view(session, row, project.name)


def delete_endpoint(
    session: Session, who: Principal, project_ref: str, name: str, now: datetime
) -> None:
    """Delete an endpoint: no longer routed to; its replicas drain and their jobs are
    cancelled by the reconcile loop. Its name is free again at once."""
    project = _project(session, who, project_ref, change=True)
    row = _row(session, project, name)
    row.deleted_at = now
    row.state = "deleted"
    # The (project, name) pair is unique: a deleted endpoint keeps its record under a name
    # no live endpoint can have ("~" is not allowed in names).
    row.name = f"{row.name[:50]}~{row.id}"
    for replica in session.scalars(
        select(EndpointReplicaRow).where(
            EndpointReplicaRow.endpoint_id == row.id,
            EndpointReplicaRow.state.in_([s.value for s in LIVE_STATES]),
        )
    ):
        drain(session, replica.id, "the endpoint was deleted", now)
    session.commit()


def member_projects(session: Session, who: Principal) -> list[str]:
    """The names of the person's projects, for the portal's choice of project."""
    if not who.project_roles:
        return []
    return list(
        session.scalars(
            select(ProjectRow.name)
            .where(ProjectRow.id.in_(list(who.project_roles)))
            .order_by(ProjectRow.name)
        )
    )
