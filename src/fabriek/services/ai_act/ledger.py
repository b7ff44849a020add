"""The compute and energy ledger of a model version, summed from the store whenever it is
asked for (the charges ledger's runs, running jobs, the jobs' reports and energy records),
so it cannot drift from what the jobs did."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.ai_act.compute_lines import ComputeLevels, Line, lines_for
from fabriek.domain.ai_act.ledger import (
    InferenceEnergyOut,
    JobRecord,
    Ledger,
    OwnCompute,
    RunSpan,
    ThresholdEvent,
    VersionFacts,
    base_compute,
    build_ledger,
    levels_of,
    own_compute,
)
from fabriek.domain.ai_act.lineage import LineageNode, LineageSum, Node, declared, lineage_sum
from fabriek.domain.ai_act.vocabulary import JobPurpose, ModelRole
from fabriek.domain.job_states import (
    ACTIVE_STATE_VALUES,
    TERMINAL_STATE_VALUES,
)
from fabriek.domain.residency import JobDataset
from fabriek.domain.roles import Principal
from fabriek.domain.units import Flop
from fabriek.services.ai_act.registry import version_refs, version_row
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.endpoints.energy import inference_energy
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
    SiteRow,
    UserRow,
)


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
        if job.state in ACTIVE_STATE_VALUES and job.started_at is not None:
            runs.append(
                RunSpan(job.placed_gpu_type, job.gpus, job.started_at, max(now, job.started_at))
            )
        elif not runs and job.state in TERMINAL_STATE_VALUES and job.started_at and job.ended_at:
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


def version_state(
    session: Session, version: AiModelVersionRow, model: AiModelRow, project: str, now: datetime
) -> VersionState:
    """The version's compute now, walking its lineage through registered and external
    base models."""
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
    refs = version_refs(session, internal)
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


def version_lines(state: VersionState) -> list[Line]:
    """The lines the version's compute is watched against."""
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


def last_mfu(session: Session, version_id: int) -> float | None:
    """The newest model FLOP utilisation any job of the version reported, if any did."""
    found = session.scalar(
        select(AiJobReportRow.mfu)
        .join(AiModelJobRow, AiModelJobRow.job_id == AiJobReportRow.job_id)
        .where(AiModelJobRow.version_id == version_id, AiJobReportRow.mfu.is_not(None))
        .order_by(AiJobReportRow.reported_at.desc(), AiJobReportRow.job_id.desc())
        .limit(1)
    )
    return float(found) if found is not None else None


def version_ledger(session: Session, state: VersionState) -> Ledger:
    """The ledger of a version whose state is summed already."""
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
        facts, rules, state.jobs, state.own, state.cumulative, state.lineage, version_lines(state),
        _events(session, state.version.id), last_mfu(session, state.version.id),
    )  # fmt: skip


def ledger(session: Session, who: Principal, ref: str, now: datetime) -> Ledger:
    """The compute and energy ledger of a model version, summed from its jobs now."""
    version, model, project = version_row(session, who, ref)
    book = version_ledger(session, version_state(session, version, model, project, now))
    return book.model_copy(update={"inference": inference_out(session, version.id)})


def inference_out(session: Session, version_id: int) -> InferenceEnergyOut | None:
    """The version's inference energy (its endpoints' replicas), shown apart from training;
    None when no endpoint served it."""
    it, facility, tokens, jobs = inference_energy(session, version_id)
    if jobs == 0:
        return None
    per_1k = facility * 1000 / tokens if tokens else None
    text = f"{facility:.3f} kWh at the facility over {jobs} replica job(s)" + (
        f", {per_1k:.6f} kWh per 1,000 tokens ({tokens:,} tokens)" if per_1k is not None else ""
    )
    return InferenceEnergyOut(
        it_mwh=round(it / 1000, 9), facility_mwh=round(facility / 1000, 9), replica_jobs=jobs,
        tokens=tokens, kwh_per_1k_tokens=per_1k, text=text,
    )  # fmt: skip


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
        if row.state in TERMINAL_STATE_VALUES or job.job_id not in projected:
            continue
        ran = (now - row.started_at).total_seconds() if row.started_at else 0.0
        left = max(0.0, 1.0 - ran / max(1, row.time_limit_s))
        levels = levels.plus(rules.purpose(job.purpose), Flop(projected[job.job_id] * left))
    return levels


def _sum(a: ComputeLevels, b: ComputeLevels) -> ComputeLevels:
    return ComputeLevels(a.training + b.training, a.modification + b.modification,
                         a.cumulative + b.cumulative)  # fmt: skip


def with_commitments(session: Session, state: VersionState, now: datetime) -> ComputeLevels:
    """The version's compute now plus what its linked jobs that have not ended may still
    add: where a new job or a plan starts from."""
    return _sum(state.levels, _committed(session, state, now))
