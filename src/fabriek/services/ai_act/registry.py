"""Reading the AI model registry: the models and versions a caller may see, and their views
with lineage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from fabriek.domain.ai_act.models import (
    BaseModelOut,
    Model,
    ModelDetail,
    ModelVersion,
    open_source_exemption,
    split_ref,
)
from fabriek.domain.ai_act.vocabulary import ModelRole, Openness
from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.services.identity.projects import visible_projects
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.store.tables import (
    AiModelBaseRow,
    AiModelJobRow,
    AiModelRow,
    AiModelVersionRow,
    ProjectRow,
)


def _visible(who: Principal) -> ColumnElement[bool]:
    return visible_projects(who, AiModelRow.project_id)


def may_edit(who: Principal, project_id: int) -> bool:
    """Whether the caller may change the models of the project: its members and admins."""
    return who.in_project(project_id) or who.is_admin


def model_row(session: Session, who: Principal, name: str) -> tuple[AiModelRow, str]:
    """A model the caller may see, with its project's name; NotFound otherwise."""
    found = session.execute(
        select(AiModelRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AiModelRow.project_id)
        .where(AiModelRow.name == name, _visible(who))
    ).first()
    if found is None:
        raise NotFound("model", name)
    return found[0], found[1]


def version_row(
    session: Session, who: Principal, ref: str, field_name: str = "model"
) -> tuple[AiModelVersionRow, AiModelRow, str]:
    """A version (NAME:VERSION) the caller may see, with its model and project's name;
    an InvalidInput naming `field_name` when `ref` is not of that form."""
    try:
        name, version = split_ref(ref, field_name)
    except ValueError as bad:
        raise InvalidInput.on(field_name, str(bad).split(": ", 1)[1]) from None
    model, project = model_row(session, who, name)
    row = session.scalar(
        select(AiModelVersionRow).where(
            AiModelVersionRow.model_id == model.id, AiModelVersionRow.version == version
        )
    )
    if row is None:
        raise NotFound("model version", ref)
    return row, model, project


def version_refs(session: Session, version_ids: Collection[int]) -> dict[int, str]:
    """NAME:VERSION of each version id."""
    if not version_ids:
        return {}
    rows = session.execute(
        select(AiModelVersionRow.id, AiModelRow.name, AiModelVersionRow.version)
        .join(AiModelRow, AiModelRow.id == AiModelVersionRow.model_id)
        .where(AiModelVersionRow.id.in_(list(version_ids)))
    )
    return {v: f"{n}:{ver}" for v, n, ver in rows}


def version_views(
    session: Session, model: AiModelRow, rows: Sequence[AiModelVersionRow]
) -> list[ModelVersion]:
    """The API's views of a model's versions, with their bases."""
    ids = [r.id for r in rows]
    bases: dict[int, list[AiModelBaseRow]] = defaultdict(list)
    for b in session.scalars(
        select(AiModelBaseRow).where(AiModelBaseRow.version_id.in_(ids)).order_by(AiModelBaseRow.id)
    ):
        bases[b.version_id].append(b)
    refs = version_refs(
        session, {b.base_version_id for bs in bases.values() for b in bs if b.base_version_id}
    )
    jobs = dict(
        session.execute(
            select(AiModelJobRow.version_id, func.count())
            .where(AiModelJobRow.version_id.in_(ids))
            .group_by(AiModelJobRow.version_id)
        ).all()
    )
    return [
        ModelVersion(
            model=model.name, version=r.version, ref=f"{model.name}:{r.version}",
            parameters=r.parameters, active_parameters=r.active_parameters,
            training_tokens=r.training_tokens, architecture=r.architecture,
            release_date=r.release_date, distribution=r.distribution,
            bases=[
                BaseModelOut(
                    model=refs.get(b.base_version_id) if b.base_version_id else None,
                    external=b.external_name, training_flop=b.external_training_flop,
                    systemic_risk=b.external_systemic_risk,
                )
                for b in bases[r.id]
            ],
            jobs=int(jobs.get(r.id, 0)), created_at=r.created_at,
        )
        for r in rows
    ]  # fmt: skip


def model_view(model: AiModelRow, project: str, versions: list[str]) -> Model:
    """The API's view of a model, with its versions' names."""
    return Model(
        id=model.id, name=model.name, project=project, title=model.title,
        provider=model.provider, role=ModelRole(model.role),
        intended_purpose=model.intended_purpose, licence=model.licence,
        openness=model.openness, monetised=model.monetised,
        open_source_exemption=open_source_exemption(
            Openness(model.openness), model.monetised, False
        ),
        input_modalities=model.input_modalities, output_modalities=model.output_modalities,
        versions=versions, created_at=model.created_at,
    )  # fmt: skip


def model_detail(session: Session, model: AiModelRow, project: str) -> ModelDetail:
    """A model with every version."""
    rows = list(
        session.scalars(
            select(AiModelVersionRow)
            .where(AiModelVersionRow.model_id == model.id)
            .order_by(AiModelVersionRow.id)
        )
    )
    summary = model_view(model, project, [r.version for r in rows])
    return ModelDetail(**summary.model_dump(), version_details=version_views(session, model, rows))


def list_models(
    session: Session, who: Principal, page: PageRequest, project: str | None = None
) -> Page[Model]:
    """The models of the projects the caller may see, newest first."""
    query = (
        select(AiModelRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AiModelRow.project_id)
        .where(_visible(who))
    )
    if project is not None:
        query = query.where(
            ProjectRow.id == int(project) if is_id(project) else ProjectRow.name == project
        )
    total = count_all(session, query)
    rows = session.execute(
        query.order_by(AiModelRow.id.desc()).limit(page.limit).offset(page.offset)
    ).all()
    versions: dict[int, list[str]] = defaultdict(list)
    for model_id, version in session.execute(
        select(AiModelVersionRow.model_id, AiModelVersionRow.version)
        .where(AiModelVersionRow.model_id.in_([m.id for m, _ in rows]))
        .order_by(AiModelVersionRow.id)
    ):
        versions[model_id].append(version)
    items = [model_view(m, p, versions[m.id]) for m, p in rows]
    return Page(items, total, page.limit, page.offset)


def get_model(session: Session, who: Principal, name: str) -> ModelDetail:
    model, project = model_row(session, who, name)
    return model_detail(session, model, project)
