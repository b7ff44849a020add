"""Use cases of the AI model registry: register models and versions, link jobs to them
with a purpose, keep their compute and energy ledger, warn before a job takes a model past
a compute line, project an allocation's planned compute, and export the documentation.

Nothing here is kept as a running total: a ledger is summed from the store (the charges
ledger's runs, running jobs, the jobs' reports and energy records) whenever it is asked
for, so it cannot drift from what the jobs did.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from fabriek.domain.ai_documentation import ModelDocumentation, documentation, provider_keys
from fabriek.domain.ai_ledger import (
    JobRecord,
    Ledger,
    LineageNode,
    LineageSum,
    Node,
    OwnCompute,
    RunSpan,
    ThresholdEvent,
    VersionFacts,
    base_compute,
    build_ledger,
    declared,
    levels_of,
    lineage_sum,
    own_compute,
)
from fabriek.domain.ai_models import (
    AcknowledgementRequired,
    AiActRules,
    BaseModelDraft,
    BaseModelOut,
    ComputeLevels,
    ComputeProjection,
    ComputeWarning,
    Crossing,
    EstimateOut,
    JobPurpose,
    JobReport,
    JobReportDraft,
    Line,
    LineageCycle,
    LineProjection,
    Model,
    ModelDetail,
    ModelDraft,
    ModelRole,
    ModelVersion,
    ModelVersionDraft,
    Openness,
    RunCompute,
    crossings,
    find_cycle,
    hardware_estimate,
    lines_for,
    open_source_exemption,
    parse_ai_act_rules,
    split_ref,
)
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.jobs import ACTIVE_STATES, TERMINAL_STATES, JobSpec
from fabriek.domain.notifications import NotificationKind
from fabriek.domain.residency import JobDataset
from fabriek.domain.roles import Principal
from fabriek.domain.tracks import AccessConfig
from fabriek.domain.units import Flop, GpuSeconds
from fabriek.services.allocations import get_allocation
from fabriek.services.notifications import notify
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.projects import visible_projects
from fabriek.services.proposals import get_proposal
from fabriek.services.transactions import clash_is_conflict, commit
from fabriek.store.tables import (
    AiJobReportRow,
    AiModelBaseRow,
    AiModelJobRow,
    AiModelRow,
    AiModelVersionRow,
    AiThresholdEventRow,
    ChargeRow,
    JobEnergyRow,
    JobRow,
    MembershipRow,
    ProjectRow,
    SiteRow,
    UserRow,
)

_ACTIVE = frozenset(s.value for s in ACTIVE_STATES)
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)


# --- the rules ----------------------------------------------------------------------------


@lru_cache(maxsize=1)
def ai_act_rules() -> AiActRules:
    """The shipped AI Act rules (`fabriek/config/ai_act.toml`), checked once per process.
    A broken file is an InvalidInput naming the entry at fault."""
    text = resources.files("fabriek.config").joinpath("ai_act.toml").read_text()
    try:
        return parse_ai_act_rules(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as bad:
        raise InvalidInput(f"the shipped ai_act.toml: {bad}") from None


# --- reading the registry -----------------------------------------------------------------


def _visible(who: Principal) -> ColumnElement[bool]:
    return visible_projects(who, AiModelRow.project_id)


def _may_edit(who: Principal, project_id: int) -> bool:
    return who.in_project(project_id) or who.is_admin


def _model_row(session: Session, who: Principal, name: str) -> tuple[AiModelRow, str]:
    found = session.execute(
        select(AiModelRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AiModelRow.project_id)
        .where(AiModelRow.name == name, _visible(who))
    ).first()
    if found is None:
        raise NotFound("model", name)
    return found[0], found[1]


def _version_row(
    session: Session, who: Principal, ref: str, field_name: str = "model"
) -> tuple[AiModelVersionRow, AiModelRow, str]:
    try:
        name, version = split_ref(ref, field_name)
    except ValueError as bad:
        raise InvalidInput.on(field_name, str(bad).split(": ", 1)[1]) from None
    model, project = _model_row(session, who, name)
    row = session.scalar(
        select(AiModelVersionRow).where(
            AiModelVersionRow.model_id == model.id, AiModelVersionRow.version == version
        )
    )
    if row is None:
        raise NotFound("model version", ref)
    return row, model, project


def _refs(session: Session, version_ids: Collection[int]) -> dict[int, str]:
    """NAME:VERSION of each version id."""
    if not version_ids:
        return {}
    rows = session.execute(
        select(AiModelVersionRow.id, AiModelRow.name, AiModelVersionRow.version)
        .join(AiModelRow, AiModelRow.id == AiModelVersionRow.model_id)
        .where(AiModelVersionRow.id.in_(list(version_ids)))
    )
    return {v: f"{n}:{ver}" for v, n, ver in rows}


def _version_views(
    session: Session, model: AiModelRow, rows: Sequence[AiModelVersionRow]
) -> list[ModelVersion]:
    ids = [r.id for r in rows]
    bases: dict[int, list[AiModelBaseRow]] = defaultdict(list)
    for b in session.scalars(
        select(AiModelBaseRow).where(AiModelBaseRow.version_id.in_(ids)).order_by(AiModelBaseRow.id)
    ):
        bases[b.version_id].append(b)
    refs = _refs(
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


def _model_view(model: AiModelRow, project: str, versions: list[str]) -> Model:
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


def _detail(session: Session, model: AiModelRow, project: str) -> ModelDetail:
    rows = list(
        session.scalars(
            select(AiModelVersionRow)
            .where(AiModelVersionRow.model_id == model.id)
            .order_by(AiModelVersionRow.id)
        )
    )
    summary = _model_view(model, project, [r.version for r in rows])
    return ModelDetail(**summary.model_dump(), version_details=_version_views(session, model, rows))


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
            ProjectRow.id == int(project) if project.isdigit() else ProjectRow.name == project
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
    items = [_model_view(m, p, versions[m.id]) for m, p in rows]
    return Page(items, total, page.limit, page.offset)


def get_model(session: Session, who: Principal, name: str) -> ModelDetail:
    model, project = _model_row(session, who, name)
    return _detail(session, model, project)


# --- writing the registry -----------------------------------------------------------------


def _project_for(session: Session, who: Principal, ref: str) -> ProjectRow:
    row = session.scalar(
        select(ProjectRow).where(
            ProjectRow.id == int(ref) if ref.isdigit() else ProjectRow.name == ref,
            visible_projects(who, ProjectRow.id),
        )
    )
    if row is None:
        raise NotFound("project", ref)
    if not _may_edit(who, row.id):
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
        row, _, _ = _version_row(session, who, base.model, field_name)
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
        refs = _refs(session, set(cycle))
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
    return _detail(session, model, project.name)


def add_version(
    session: Session, who: Principal, name: str, draft: ModelVersionDraft, now: datetime
) -> ModelVersion:
    """Register a new version of a model; its bases may be registered versions or external."""
    model, _ = _model_row(session, who, name)
    if not _may_edit(who, model.project_id):
        raise Forbidden(f"only members of the model's project may add versions of {name}")
    with clash_is_conflict(session, f"{name} already has a version {draft.version!r}"):
        row = _insert_version(session, who, model, draft, now)
        session.commit()
    return _version_views(session, model, [row])[0]


def add_base(
    session: Session, who: Principal, ref: str, base: BaseModelDraft, now: datetime
) -> ModelVersion:
    """Record one more base model of a version (a merge, or a base found out later). A
    link that would make the version its own ancestor is refused (409, naming the path)."""
    row, model, _ = _version_row(session, who, ref)
    if not _may_edit(who, model.project_id):
        raise Forbidden(f"only members of the model's project may change {ref}")
    values = _base_values(session, who, base, "model" if base.model else "external", ref)
    session.add(AiModelBaseRow(version_id=row.id, **values))
    _refuse_cycles(session, row.id, "model")
    commit(session, "the version changed meanwhile; try again")
    return _version_views(session, model, [row])[0]


def set_documentation(
    session: Session, who: Principal, ref: str, answers: Mapping[str, str | None]
) -> dict[str, str]:
    """Write the provider's answers to the documentation form (a null removes one); every
    key must be a documentation field. Returns all answers now."""
    row, model, _ = _version_row(session, who, ref)
    if not _may_edit(who, model.project_id):
        raise Forbidden(f"only members of the model's project may document {ref}")
    known = provider_keys(ai_act_rules())
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise InvalidInput.on(
            unknown[0], f"no documentation field {unknown[0]!r}; fields: {', '.join(known)}"
        )
    current = dict(row.documentation or {})
    for key, text in answers.items():
        if text is None or not text.strip():
            current.pop(key, None)
        elif len(text) > 100_000:
            raise InvalidInput.on(key, "at most 100,000 characters")
        else:
            current[key] = text.strip()
    # A fresh dict, so the JSON column sees the change.
    row.documentation = current
    commit(session, "the version changed meanwhile; try again")
    return current


# --- the ledger ---------------------------------------------------------------------------


def _dataset_label(stored: Mapping[str, Any]) -> str:
    try:
        d = JobDataset.from_json(stored)
    except (KeyError, ValueError):
        return str(stored.get("name", stored))
    personal = ", personal data" if d.personal else ""
    return f"{d.label} (residency {d.residency.value}{personal})"


def _job_records(
    session: Session, version_ids: Collection[int], now: datetime
) -> tuple[dict[int, list[JobRecord]], dict[int, JobRow]]:
    """The linked jobs of each version, with their runs, reports and energy."""
    links = session.execute(
        select(AiModelJobRow, JobRow)
        .join(JobRow, JobRow.id == AiModelJobRow.job_id)
        .where(AiModelJobRow.version_id.in_(list(version_ids)))
        .order_by(JobRow.id)
    ).all()
    ids = [job.id for _, job in links]
    charged: dict[int, list[RunSpan]] = defaultdict(list)
    for c in session.scalars(
        select(ChargeRow).where(ChargeRow.job_id.in_(ids)).order_by(ChargeRow.id)
    ):
        charged[c.job_id].append(RunSpan(c.gpu_type, c.gpus, c.started_at, c.ended_at))
    reports = {
        r.job_id: r
        for r in session.scalars(select(AiJobReportRow).where(AiJobReportRow.job_id.in_(ids)))
    }
    energy: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    sources: dict[int, set[str]] = defaultdict(set)
    for job_id, gpu_kwh, cpu_kwh, source, pue in session.execute(
        select(JobEnergyRow.job_id, JobEnergyRow.gpu_kwh, JobEnergyRow.cpu_kwh,
               JobEnergyRow.source, SiteRow.pue)
        .join(SiteRow, SiteRow.id == JobEnergyRow.site_id)
        .where(JobEnergyRow.job_id.in_(ids))
    ):  # fmt: skip
        e = energy[job_id]
        e[0] += gpu_kwh + cpu_kwh
        e[1] += (gpu_kwh + cpu_kwh) * (pue or 1.0)
        if source.startswith("measured"):
            e[2] += gpu_kwh
        sources[job_id].add(source)
    sites = {s.id: f"{s.name} ({s.jurisdiction})" for s in session.scalars(select(SiteRow))}
    out: dict[int, list[JobRecord]] = defaultdict(list)
    rows: dict[int, JobRow] = {}
    for link, job in links:
        runs = list(charged[job.id])
        if job.state in _ACTIVE and job.started_at is not None:
            runs.append(
                RunSpan(job.placed_gpu_type, job.gpus, job.started_at, max(now, job.started_at))
            )
        elif not runs and job.state in _TERMINAL and job.started_at and job.ended_at:
            # A run no allocation was charged for is still compute the model used.
            runs.append(RunSpan(job.placed_gpu_type, job.gpus, job.started_at, job.ended_at))
        report = reports.get(job.id)
        e = energy[job.id]
        out[link.version_id].append(
            JobRecord(
                job_id=job.id, name=job.name, state=job.state, purpose=JobPurpose(link.purpose),
                runs=tuple(runs), mfu=report.mfu if report else None,
                tokens=report.tokens if report else None, it_kwh=e[0], facility_kwh=e[1],
                measured_kwh=e[2], energy_sources=tuple(sorted(sources[job.id])),
                datasets=tuple(_dataset_label(d) for d in job.datasets or []),
                datasets_named=bool(job.datasets), site=sites.get(job.site_id or -1),
            )
        )  # fmt: skip
        rows[job.id] = job
    return out, rows


@dataclass(frozen=True)
class VersionState:
    """A version's compute now: its own jobs, its lineage's sums and its lines."""

    version: AiModelVersionRow
    model: AiModelRow
    project: str
    ref: str
    jobs: list[JobRecord]
    job_rows: dict[int, JobRow]
    own: OwnCompute
    cumulative: LineageSum
    base: LineageSum | None
    lineage: list[LineageNode]

    @property
    def levels(self) -> ComputeLevels:
        return levels_of(self.own, self.cumulative)


def _state(
    session: Session, version: AiModelVersionRow, model: AiModelRow, project: str, now: datetime
) -> VersionState:
    rules = ai_act_rules()
    graph: dict[Node, list[Node]] = {}
    externals: dict[str, AiModelBaseRow] = {}
    frontier = [version.id]
    while frontier:
        rows = session.scalars(
            select(AiModelBaseRow).where(AiModelBaseRow.version_id.in_(frontier))
        ).all()
        following: list[int] = []
        for b in rows:
            if b.base_version_id is not None:
                graph.setdefault(b.version_id, []).append(b.base_version_id)
                if b.base_version_id not in graph:
                    following.append(b.base_version_id)
            else:
                key = f"external:{b.external_name}"
                graph.setdefault(b.version_id, []).append(key)
                externals[key] = b
        frontier = [v for v in dict.fromkeys(following) if v not in graph]
        for v in frontier:
            graph.setdefault(v, [])
    internal = {n for n in graph if isinstance(n, int)} | {version.id}
    internal |= {b for bs in graph.values() for b in bs if isinstance(b, int)}
    records, job_rows = _job_records(session, internal, now)
    refs = _refs(session, internal)
    owns = {v: own_compute(records.get(v, []), rules) for v in internal}
    nodes: dict[Node, LineageNode] = {
        v: LineageNode(refs.get(v, str(v)), owns[v].modification, False) for v in internal
    }
    for key, b in externals.items():
        nodes[key] = declared(
            b.external_name or key, b.external_training_flop, b.external_systemic_risk
        )
    cumulative = lineage_sum([version.id], graph, nodes)
    direct = graph.get(version.id, [])
    base = lineage_sum(direct, graph, nodes) if direct else None
    lineage = [nodes[n] for n in cumulative.members if n != version.id]
    return VersionState(
        version, model, project, refs[version.id], records.get(version.id, []),
        {j: r for j, r in job_rows.items()}, owns[version.id], cumulative, base, lineage,
    )  # fmt: skip


def _lines(state: VersionState) -> list[Line]:
    return lines_for(ai_act_rules(), ModelRole(state.model.role), base_compute(state.base))


def _events(session: Session, version_id: int) -> list[ThresholdEvent]:
    rows = session.execute(
        select(AiThresholdEventRow, UserRow.username)
        .outerjoin(UserRow, UserRow.id == AiThresholdEventRow.acknowledged_by)
        .where(AiThresholdEventRow.version_id == version_id)
        .order_by(AiThresholdEventRow.id)
    ).all()
    return [
        ThresholdEvent(
            line=e.line, job_id=e.job_id, at=e.at, before_flop=e.before_flop,
            after_flop=e.after_flop, acknowledged_by=user,
            notify_commission_by=(
                datetime.combine(e.notify_by, datetime.min.time(), e.at.tzinfo)
                if e.notify_by else None
            ),
        )
        for e, user in rows
    ]  # fmt: skip


def _last_mfu(session: Session, version_id: int) -> float | None:
    found = session.scalar(
        select(AiJobReportRow.mfu)
        .join(AiModelJobRow, AiModelJobRow.job_id == AiJobReportRow.job_id)
        .where(AiModelJobRow.version_id == version_id, AiJobReportRow.mfu.is_not(None))
        .order_by(AiJobReportRow.reported_at.desc(), AiJobReportRow.job_id.desc())
        .limit(1)
    )
    return float(found) if found is not None else None


def _ledger(session: Session, state: VersionState) -> Ledger:
    rules = ai_act_rules()
    active = state.version.active_parameters or state.version.parameters
    facts = VersionFacts(
        ref=state.ref,
        project=state.project,
        role=ModelRole(state.model.role),
        active_parameters=float(active) if active else None,
        declared_tokens=state.version.training_tokens,
    )
    return build_ledger(
        facts, rules, state.jobs, state.own, state.cumulative, state.lineage, _lines(state),
        _events(session, state.version.id), _last_mfu(session, state.version.id),
    )  # fmt: skip


def ledger(session: Session, who: Principal, ref: str, now: datetime) -> Ledger:
    """The compute and energy ledger of a model version, summed from its jobs now."""
    version, model, project = _version_row(session, who, ref)
    return _ledger(session, _state(session, version, model, project, now))


def model_documentation(
    session: Session, who: Principal, ref: str, now: datetime
) -> tuple[ModelDocumentation, Ledger]:
    """The version's Annex XI / XII documentation, pre-filled from its ledger."""
    version, model, project = _version_row(session, who, ref)
    state = _state(session, version, model, project, now)
    book = _ledger(session, state)
    view = _version_views(session, model, [version])[0]
    doc = documentation(
        ai_act_rules(), _model_view(model, project, [version.version]), view, book,
        dict(version.documentation or {}), now,
    )  # fmt: skip
    return doc, book


# --- jobs linked to a model ---------------------------------------------------------------


@dataclass(frozen=True)
class JobLink:
    """A checked link of a submitted job to a model version, and what to write with it."""

    version_id: int
    ref: str
    purpose: JobPurpose
    projected: Flop
    warnings: tuple[ComputeWarning, ...]
    crossings: tuple[Crossing, ...]
    acknowledged: bool
    members: tuple[int, ...]
    project: str
    user_id: int
    username: str


def _committed(session: Session, state: VersionState, now: datetime) -> ComputeLevels:
    """The compute linked jobs that have not ended may still add: each one's projection at
    submission, less the share of its time limit it has run so far."""
    rules = ai_act_rules()
    projected = dict(
        session.execute(
            select(AiModelJobRow.job_id, AiModelJobRow.projected_flop).where(
                AiModelJobRow.version_id == state.version.id
            )
        ).all()
    )
    levels = ComputeLevels()
    for job in state.jobs:
        row = state.job_rows[job.job_id]
        if row.state in _TERMINAL or job.job_id not in projected:
            continue
        ran = (now - row.started_at).total_seconds() if row.started_at else 0.0
        left = max(0.0, 1.0 - ran / max(1, row.time_limit_s))
        levels = levels.plus(rules.purpose(job.purpose), Flop(projected[job.job_id] * left))
    return levels


def _sum(a: ComputeLevels, b: ComputeLevels) -> ComputeLevels:
    return ComputeLevels(a.training + b.training, a.modification + b.modification,
                         a.cumulative + b.cumulative)  # fmt: skip


def _acknowledged(session: Session, version_id: int, line: str) -> bool:
    return (
        session.scalar(
            select(func.count()).where(
                AiThresholdEventRow.version_id == version_id,
                AiThresholdEventRow.line == line,
                AiThresholdEventRow.acknowledged_by.is_not(None),
            )
        )
        or 0
    ) > 0


def plan_job_link(
    session: Session,
    who: Principal,
    project_id: int,
    project: str,
    model_ref: str,
    purpose: JobPurpose,
    acknowledge: bool,
    spec: JobSpec,
    now: datetime,
) -> JobLink:
    """Check a submission's link to a model version of its own project, project the
    model's compute after the job (its time limit on its GPUs, at the version's newest
    measured MFU or the default) and say which lines it crosses. Past the systemic-risk
    line the submission needs `acknowledge` (else AcknowledgementRequired, 409); nothing
    is written here (see `write_job_links`)."""
    rules = ai_act_rules()
    try:
        name, version_name = split_ref(model_ref)
    except ValueError as bad:
        raise InvalidInput.on("model", str(bad).split(": ", 1)[1]) from None
    found = session.execute(
        select(AiModelVersionRow, AiModelRow, ProjectRow.name)
        .join(AiModelRow, AiModelRow.id == AiModelVersionRow.model_id)
        .join(ProjectRow, ProjectRow.id == AiModelRow.project_id)
        .where(AiModelRow.name == name, AiModelVersionRow.version == version_name)
    ).first()
    if found is not None and found[1].project_id != project_id:
        owner_visible = who.is_admin or who.in_project(found[1].project_id)
        if owner_visible:
            raise InvalidInput.on(
                "model",
                f"{model_ref} belongs to project {found[2]}, not {project}: a job may only "
                "be linked to a model of the project it runs for",
            )
        found = None
    if found is None:
        raise InvalidInput.on(
            "model", f"project {project} has no model version {model_ref}; register it first "
            "(fabriek models new, or POST /api/v1/models)"
        )  # fmt: skip
    version, model, _ = found
    state = _state(session, version, model, project, now)
    mfu = _last_mfu(session, version.id)
    estimate = hardware_estimate(
        [RunCompute(spec.gpu_type, GpuSeconds(spec.gpus * spec.time_limit_s), mfu)],
        rules.estimation,
    )
    before = _sum(state.levels, _committed(session, state, now))
    after = before.plus(rules.purpose(purpose), estimate.flop)
    lines = _lines(state)
    crossed = crossings(before, after, lines, now)
    figures = rules.estimation.significant_figures
    warnings = [ComputeWarning.of(c, state.ref, figures) for c in crossed]
    systemic = rules.systemic_line()
    if (
        systemic is not None
        and after.of(systemic.measure) > systemic.flop
        and not acknowledge
        and not _acknowledged(session, version.id, systemic.code)
    ):
        warning = next((w for w in warnings if w.requires_acknowledgement), None)
        if warning is None:  # past the line before this job, and never acknowledged
            line = next(x for x in lines if x.code == systemic.code)
            days = line.notify_within_days
            notify_by = (now + timedelta(days=days)).date() if days is not None else None
            crossing = Crossing(line, before.of(line.measure), after.of(line.measure), notify_by)
            warning = ComputeWarning.of(crossing, state.ref, figures)
        raise AcknowledgementRequired(warning)
    members = tuple(
        session.scalars(select(MembershipRow.user_id).where(MembershipRow.project_id == project_id))
    )
    return JobLink(
        version.id, state.ref, purpose, estimate.flop, tuple(warnings), tuple(crossed),
        acknowledge, members, project, who.user_id, who.username,
    )  # fmt: skip


def write_job_links(session: Session, links: Sequence[tuple[int, JobLink]], now: datetime) -> None:
    """Write each job's link, the lines it was warned about, and a notification of each
    to the project's members, in the submission's own transaction (not committed here)."""
    for job_id, link in links:
        session.add(
            AiModelJobRow(
                job_id=job_id, version_id=link.version_id, purpose=link.purpose.value,
                projected_flop=link.projected.value, created_at=now,
            )
        )  # fmt: skip
        for crossing, warning in zip(link.crossings, link.warnings, strict=True):
            session.add(
                AiThresholdEventRow(
                    version_id=link.version_id, job_id=job_id, line=crossing.line.code,
                    before_flop=crossing.before.value, after_flop=crossing.after.value, at=now,
                    acknowledged_by=link.user_id
                    if link.acknowledged and crossing.line.acknowledge
                    else None,
                    notify_by=crossing.notify_by,
                )
            )  # fmt: skip
            notify(
                session, link.members, NotificationKind.AI_ACT_THRESHOLD,
                f"{link.project}: job {job_id} may take {link.ref} past the {warning.label}",
                f"{warning.message}.\n\n{warning.meaning}.\n\nJob {job_id}, submitted by "
                f"{link.username}; see the ledger: fabriek models ledger {link.ref}",
                now, link=f"/models/{link.ref.split(':')[0]}",
            )  # fmt: skip


def job_models(session: Session, job_ids: Collection[int]) -> dict[int, tuple[str, str]]:
    """The model version (NAME:VERSION) and purpose of each linked job among `job_ids`."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(AiModelJobRow.job_id, AiModelRow.name, AiModelVersionRow.version,
               AiModelJobRow.purpose)
        .join(AiModelVersionRow, AiModelVersionRow.id == AiModelJobRow.version_id)
        .join(AiModelRow, AiModelRow.id == AiModelVersionRow.model_id)
        .where(AiModelJobRow.job_id.in_(list(job_ids)))
    )  # fmt: skip
    return {job_id: (f"{name}:{version}", purpose) for job_id, name, version, purpose in rows}


def report_job(session: Session, who: Principal, draft: JobReportDraft, now: datetime) -> JobReport:
    """Record what a job reported of itself (MFU, tokens); the newest report stands. The
    job's owner, a member of its project or an admin may report; the job must be linked."""
    found = session.execute(
        select(JobRow, AiModelJobRow)
        .outerjoin(AiModelJobRow, AiModelJobRow.job_id == JobRow.id)
        .where(JobRow.id == draft.job_id, visible_projects(who, JobRow.project_id))
    ).first()
    if found is None:
        raise NotFound("job", draft.job_id)
    job, link = found
    if not (job.user_id == who.user_id or who.in_project(job.project_id) or who.is_admin):
        raise Forbidden("only the job's owner, its project's members or an admin may report")
    if link is None:
        raise InvalidInput.on(
            "job_id",
            f"job {job.id} is linked to no model; submit it with a model and purpose "
            "(--model NAME:VERSION --purpose ...) to report its utilisation",
        )
    row = session.get(AiJobReportRow, job.id)
    if row is None:
        row = AiJobReportRow(job_id=job.id, reported_by=who.user_id, reported_at=now)
        session.add(row)
    if draft.mfu is not None:
        row.mfu = draft.mfu
    if draft.tokens is not None:
        row.tokens = draft.tokens
    row.reported_by, row.reported_at = who.user_id, now
    commit(session, "the job's report changed meanwhile; try again")
    ref = job_models(session, [job.id])[job.id]
    return JobReport(
        job_id=job.id, model=ref[0], purpose=JobPurpose(ref[1]), mfu=row.mfu,
        tokens=row.tokens, reported_by=who.username, reported_at=now,
    )  # fmt: skip


# --- projection of planned compute --------------------------------------------------------


def projection(
    session: Session,
    who: Principal,
    now: datetime,
    gpu_hours: Mapping[str, float],
    source: str,
    model_ref: str | None = None,
    mfu: float | None = None,
    purpose: JobPurpose = JobPurpose.PRE_TRAINING,
) -> ComputeProjection:
    """What `gpu_hours` (raw, per GPU type; `any` for no type) would add in FLOP, at `mfu`
    or the default utilisation, and which lines that takes a model (or a new one) past."""
    rules = ai_act_rules()
    for gpu_type, hours in gpu_hours.items():
        if hours < 0:
            raise InvalidInput.on("gpu_hours", f"{gpu_type}: GPU-hours cannot be negative")
    estimate = hardware_estimate(
        [RunCompute(None if t == "any" else t, GpuSeconds(h * 3600), mfu)
         for t, h in gpu_hours.items()],
        rules.estimation,
    )  # fmt: skip
    if model_ref is not None:
        version, model, project = _version_row(session, who, model_ref)
        state = _state(session, version, model, project, now)
        before = _sum(state.levels, _committed(session, state, now))
        lines = _lines(state)
        ref: str | None = state.ref
    else:
        before, lines, ref = ComputeLevels(), lines_for(rules, ModelRole.PROVIDER, None), None
    after = before.plus(rules.purpose(purpose), estimate.flop)
    crossed = crossings(before, after, lines, now)
    figures = rules.estimation.significant_figures
    return ComputeProjection(
        gpu_hours=dict(gpu_hours), source=source, purpose=purpose,
        planned=EstimateOut.of(estimate, figures), model=ref,
        before_flop=before.cumulative.value,
        lines=[
            LineProjection(
                code=line.code, label=line.label, line_flop=line.flop.value,
                measure=line.measure, after_flop=after.of(line.measure).value,
                fraction=after.of(line.measure) / line.flop,
                crossed=any(c.line.code == line.code for c in crossed),
                exceeded=after.of(line.measure).value > line.flop.value,
            )
            for line in lines
        ],
        warnings=[ComputeWarning.of(c, ref or "a new model", figures) for c in crossed],
    )  # fmt: skip


def planned_projection(
    session: Session,
    who: Principal,
    now: datetime,
    access: AccessConfig,
    *,
    proposal_id: int | None = None,
    allocation_id: int | None = None,
    gpu_type: str | None = None,
    gpu_hours: float | None = None,
    model_ref: str | None = None,
    mfu: float | None = None,
    purpose: JobPurpose = JobPurpose.PRE_TRAINING,
) -> ComputeProjection:
    """A proposal's requested, an allocation's awarded, or given GPU-hours, projected as
    FLOP against the lines (read-only: nothing is written)."""
    if sum(x is not None for x in (proposal_id, allocation_id, gpu_hours)) != 1:
        raise InvalidInput.on(
            "gpu_hours", "give one of: proposal, allocation, or gpu_hours (with gpu_type)"
        )
    if proposal_id is not None:
        hours = dict(get_proposal(session, who, proposal_id, access, now).requested)
        source = f"proposal {proposal_id}: GPU-hours requested"
    elif allocation_id is not None:
        hours = dict(get_allocation(session, who, now, access, allocation_id).awarded_raw)
        source = f"allocation {allocation_id}: GPU-hours awarded"
    else:
        kind = (gpu_type or "any").strip().lower()
        if kind != "any" and kind not in GPU_TYPES:
            known = ", ".join([*GPU_TYPES, "any"])
            raise InvalidInput.on("gpu_type", f"no GPU type {gpu_type!r}; known: {known}")
        hours = {kind: float(gpu_hours or 0.0)}
        source = "GPU-hours given"
    return projection(session, who, now, hours, source, model_ref, mfu, purpose)
