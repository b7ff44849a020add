"""Registering models and their versions, with their base models: a version's lineage
may link registered versions or external models, and never makes a model its own
ancestor."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.ai_act.lineage import LineageCycle, find_cycle
from fabriek.domain.ai_act.model_rules import AiActRules
from fabriek.domain.ai_act.models import (
    BaseModelDraft,
    ModelDetail,
    ModelDraft,
    ModelVersion,
    ModelVersionDraft,
)
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.services.ai_act.registry import (
    may_edit,
    model_detail,
    model_row,
    version_refs,
    version_row,
    version_views,
)
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.identity.projects import visible_projects
from fabriek.services.transactions import clash_is_conflict, commit
from fabriek.store.tables import AiModelBaseRow, AiModelRow, AiModelVersionRow, ProjectRow


def _project_for(session: Session, who: Principal, ref: str) -> ProjectRow:
    row = session.scalar(
        select(ProjectRow).where(
            ProjectRow.id == int(ref) if is_id(ref) else ProjectRow.name == ref,
            visible_projects(who, ProjectRow.id),
        )
    )
    if row is None:
        raise NotFound("project", ref)
    if not may_edit(who, row.id):
        raise Forbidden(f"only members of project {row.name} may register its models")
    return row


def _check_counts(rules: AiActRules, draft: ModelVersionDraft, prefix: str = "") -> None:
    limits = rules.limits
    for name, value, most in (
        ("parameters", draft.parameters, limits.max_parameters),
        ("active_parameters", draft.active_parameters, limits.max_parameters),
        ("training_tokens", draft.training_tokens, limits.max_training_tokens),
    ):
        if value is not None and value > most:
            raise InvalidInput.on(
                f"{prefix}{name}",
                f"{value:.3g} is more than any model has (at most {most:.0e}); give the "
                "count itself, not in thousands",
            )


def _base_values(
    session: Session, who: Principal, base: BaseModelDraft, field_name: str, own_ref: str
) -> dict[str, Any]:
    """The row values of one base link, after checking a registered base exists."""
    if base.model is None:
        return {
            "base_version_id": None, "external_name": base.external,
            "external_training_flop": base.training_flop,
            "external_systemic_risk": base.systemic_risk,
        }  # fmt: skip
    if base.model == own_ref:
        raise LineageCycle([own_ref, own_ref], field_name)
    try:
        row, _, _ = version_row(session, who, base.model, field_name)
    except NotFound:
        raise InvalidInput.on(field_name, f"no model version {base.model} you can see") from None
    return {
        "base_version_id": row.id, "external_name": None,
        "external_training_flop": None, "external_systemic_risk": False,
    }  # fmt: skip


def _graph(session: Session) -> dict[int, list[int]]:
    """Every registered version -> its registered bases."""
    graph: dict[int, list[int]] = defaultdict(list)
    for version_id, base_id in session.execute(
        select(AiModelBaseRow.version_id, AiModelBaseRow.base_version_id).where(
            AiModelBaseRow.base_version_id.is_not(None)
        )
    ):
        if base_id is not None:
            graph[version_id].append(base_id)
    return graph


def _refuse_cycles(session: Session, version_id: int, field_name: str) -> None:
    """Refuse (before commit) a base link that made a version its own ancestor."""
    session.flush()
    cycle = find_cycle(_graph(session), version_id)
    if cycle is not None:
        refs = version_refs(session, set(cycle))
        session.rollback()
        raise LineageCycle([refs.get(v, str(v)) for v in cycle], field_name)


def _insert_version(
    session: Session, who: Principal, model: AiModelRow, draft: ModelVersionDraft, now: datetime,
    prefix: str = "",
) -> AiModelVersionRow:  # fmt: skip
    _check_counts(ai_act_rules(), draft, prefix)
    own_ref = f"{model.name}:{draft.version}"
    bases = [
        _base_values(session, who, b, f"{prefix}bases[{i}]", own_ref)
        for i, b in enumerate(draft.bases)
    ]
    row = AiModelVersionRow(
        model_id=model.id, version=draft.version, parameters=draft.parameters,
        active_parameters=draft.active_parameters, training_tokens=draft.training_tokens,
        architecture=draft.architecture.value, release_date=draft.release_date,
        distribution=draft.distribution, documentation={}, created_at=now,
    )  # fmt: skip
    session.add(row)
    session.flush()
    session.add_all(AiModelBaseRow(version_id=row.id, **b) for b in bases)
    return row


def create_model(session: Session, who: Principal, draft: ModelDraft, now: datetime) -> ModelDetail:
    """Register a model (and its first version, if given) for a project the caller is in."""
    project = _project_for(session, who, draft.project)
    model = AiModelRow(
        project_id=project.id, name=draft.name, title=draft.title, provider=draft.provider,
        role=draft.role.value, intended_purpose=draft.intended_purpose, licence=draft.licence,
        openness=draft.openness.value, monetised=draft.monetised,
        input_modalities=[m.value for m in draft.input_modalities],
        output_modalities=[m.value for m in draft.output_modalities],
        created_by=who.user_id, created_at=now,
    )  # fmt: skip
    with clash_is_conflict(session, f"a model named {draft.name!r} already exists"):
        session.add(model)
        session.flush()
        if draft.first_version is not None:
            _insert_version(session, who, model, draft.first_version, now, "first_version.")
        session.commit()
    return model_detail(session, model, project.name)


def add_version(
    session: Session, who: Principal, name: str, draft: ModelVersionDraft, now: datetime
) -> ModelVersion:
    """Register a new version of a model; its bases may be registered versions or external."""
    model, _ = model_row(session, who, name)
    if not may_edit(who, model.project_id):
        raise Forbidden(f"only members of the model's project may add versions of {name}")
    with clash_is_conflict(session, f"{name} already has a version {draft.version!r}"):
        row = _insert_version(session, who, model, draft, now)
        session.commit()
    return version_views(session, model, [row])[0]


def add_base(
    session: Session, who: Principal, ref: str, base: BaseModelDraft, now: datetime
) -> ModelVersion:
    """Record one more base model of a version (a merge, or a base found out later). A
    link that would make the version its own ancestor is refused (409, naming the path)."""
    row, model, _ = version_row(session, who, ref)
    if not may_edit(who, model.project_id):
        raise Forbidden(f"only members of the model's project may change {ref}")
    values = _base_values(session, who, base, "model" if base.model else "external", ref)
    session.add(AiModelBaseRow(version_id=row.id, **values))
    _refuse_cycles(session, row.id, "model")
    commit(session, "the version changed meanwhile; try again")
    return version_views(session, model, [row])[0]
