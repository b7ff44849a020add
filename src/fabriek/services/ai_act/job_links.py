"""Jobs linked to a model version: a submission's link is checked and its compute projected
before the job is written (past the systemic-risk line only with an acknowledgement), the
lines it crosses are kept and notified; a job reports its own utilisation and tokens."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.ai_act.compute_lines import Crossing, crossings
from fabriek.domain.ai_act.compute_warning import ComputeWarning
from fabriek.domain.ai_act.estimates import RunCompute, hardware_estimate
from fabriek.domain.ai_act.models import (
    AcknowledgementRequired,
    JobReport,
    JobReportDraft,
    split_ref,
)
from fabriek.domain.ai_act.vocabulary import JobPurpose
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.jobs import JobSpec
from fabriek.domain.notifications import NotificationKind
from fabriek.domain.roles import Principal
from fabriek.domain.units import Flop, GpuSeconds
from fabriek.services.ai_act.ledger import last_mfu, version_lines, version_state, with_commitments
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.identity.projects import visible_projects
from fabriek.services.notifications.inbox import notify
from fabriek.services.transactions import commit
from fabriek.store.tables import (
    AiJobReportRow,
    AiModelJobRow,
    AiModelRow,
    AiModelVersionRow,
    AiThresholdEventRow,
    JobRow,
    MembershipRow,
    ProjectRow,
)


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
    state = version_state(session, version, model, project, now)
    mfu = last_mfu(session, version.id)
    estimate = hardware_estimate(
        [RunCompute(spec.gpu_type, GpuSeconds(spec.gpus * spec.time_limit_s), mfu)],
        rules.estimation,
    )
    before = with_commitments(session, state, now)
    after = before.plus(rules.purpose(purpose), estimate.flop)
    lines = version_lines(state)
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
