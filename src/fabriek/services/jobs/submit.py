"""Submitting jobs: checked against every site's hardware before anything is queued, written
PENDING with their first event; the dispatcher takes it from there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, func, insert, select
from sqlalchemy.orm import Session

from fabriek.domain.capacity import SiteShape, why_never_fits
from fabriek.domain.containers import image_sites
from fabriek.domain.dataset_staging import dataset_sites
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import Job, JobDraft
from fabriek.domain.roles import Principal
from fabriek.domain.sbatch import parse_sbatch_script
from fabriek.services.accounts.terms import require_accepted_for_job
from fabriek.services.ai_act import job_links
from fabriek.services.identity.projects import may_see_project
from fabriek.services.images import ImageService
from fabriek.services.jobs import datasets as job_datasets
from fabriek.services.jobs.shapes import ProjectRefCache, site_shapes
from fabriek.services.jobs.specs import spec_of, waiting_reason
from fabriek.services.jobs.views import job_fields, link_fields
from fabriek.store.tables import (
    JobEventRow,
    JobRow,
    MembershipRow,
    ProjectRow,
    UserRow,
)


def _submit_project(
    session: Session, who: Principal, ref: str | None, refs: ProjectRefCache | None = None
) -> tuple[int, str]:
    """(id, name) of the project to submit to, after checking the caller is a member."""
    if ref is None:
        first = session.execute(
            select(ProjectRow.id, ProjectRow.name)
            .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
            .where(MembershipRow.user_id == who.user_id)
            .order_by(ProjectRow.name)
        ).first()
        if first is None:
            raise InvalidInput.on(
                "project", "you are in no project; ask a PI or your hub to add you"
            )
        return first[0], first[1]
    found = (refs or ProjectRefCache()).get(session, ref)
    if found is not None and who.in_project(found[0]):
        return found
    # Not a member: those who may see the project (admins, its hub's staff) are told why;
    # for anyone else it does not exist.
    if found is None or not may_see_project(session, who, found[0]):
        raise NotFound("project", ref)
    raise Forbidden(f"only members of project {found[1]} may submit jobs to it")


def _project_of(
    session: Session, who: Principal, draft: JobDraft, refs: ProjectRefCache | None
) -> tuple[int, str]:
    """The project of a submission: the one it names, else the one its script's
    `#SBATCH --account` names (refused when the two are different projects)."""
    account = parse_sbatch_script(draft.script).account if draft.script is not None else None
    chosen = _submit_project(session, who, draft.project or account, refs)
    if account is not None and draft.project is not None:
        try:
            same = _submit_project(session, who, account, refs)[0] == chosen[0]
        except (NotFound, Forbidden):
            same = False  # not a project of theirs: certainly not the one they chose
        if not same:
            raise InvalidInput.on(
                "script",
                f"the script's #SBATCH --account names project {account}, but the job is "
                f"submitted to project {chosen[1]}: remove the line or submit to {account}",
            )
    return chosen


def _refuse_suspended(session: Session, user_id: int, project_id: int, project: str) -> None:
    """Refuse a submission by a suspended person or to a suspended project, saying why."""

    def reason(table: type[UserRow] | type[ProjectRow], row_id: int) -> Any:
        suspended = case(
            (table.suspended_at.is_not(None), func.coalesce(table.suspended_reason, ""))
        )
        return select(suspended).where(table.id == row_id).scalar_subquery()

    person, project_reason = session.execute(
        select(reason(UserRow, user_id), reason(ProjectRow, project_id))
    ).one()
    if person is not None:
        raise Forbidden(f"your account is suspended ({person or 'by the factory'}): no new jobs")
    if project_reason is not None:
        raise Forbidden(
            f"project {project} is suspended ({project_reason or 'by the factory'}): no new jobs"
        )


# Built once: a statement object reused with new parameters skips SQLAlchemy's per-call
# statement building and cache-key work (the hottest write of the factory).
_JOBS = cast(Table, JobRow.__table__)
_INSERT_JOB = insert(_JOBS).returning(_JOBS.c.id)
_INSERT_JOB_ORDERED = insert(_JOBS).returning(_JOBS.c.id, sort_by_parameter_order=True)
_INSERT_EVENT = insert(cast(Table, JobEventRow.__table__))


@dataclass(frozen=True)
class PreparedJob:
    """A checked submission, ready to be written: its row's values and the names its answer
    shows."""

    values: dict[str, Any]
    project: str
    user: str
    # Its link to an AI model version, with the compute lines it was warned about.
    model_link: job_links.JobLink | None = None
    # Its script's #SBATCH directives that Fabriek set aside, and why (told, and kept).
    notes: tuple[str, ...] = ()


def prepare_job(
    session: Session,
    who: Principal,
    draft: JobDraft,
    now: datetime,
    shapes: Sequence[SiteShape] | None = None,
    refs: ProjectRefCache | None = None,
    images: ImageService | None = None,
) -> PreparedJob:
    """Check a submission (the project, the spec, that some site can run it: `shapes`, read
    from the store when not given) without writing anything. With `images` (the factory's
    registry), its container image is checked and its digest recorded where known."""
    project_id, project_name = _project_of(session, who, draft, refs)
    _refuse_suspended(session, who.user_id, project_id, project_name)
    spec = spec_of(draft)
    shapes = site_shapes(session) if shapes is None else shapes
    datasets = job_datasets.resolve(session, who, project_id, project_name, draft.datasets)
    residency = job_datasets.require_sites(datasets, session)
    if residency is not None:
        shapes = [s for s in shapes if s.name in residency.allowed]
        if problem := why_never_fits(spec, shapes):
            field, words = problem
            raise InvalidInput.on(field, f"ResidencyConstraint: {words}: {residency.explain()}")
    elif problem := why_never_fits(spec, shapes):
        raise InvalidInput.on(*problem)
    if datasets:
        shapes = dataset_sites(spec, shapes)  # only the sites that can stage them, or a refusal
    if spec.container_image:
        shapes = image_sites(spec, shapes)  # only the sites that run images, or a refusal
    # Terms of use after the checks of the job itself: a job that can never run is refused
    # for what is wrong with it, not for terms that would not help.
    fitting = shapes  # the sites that could run it, worked out only when terms exist
    require_accepted_for_job(
        session, who.user_id, project_id,
        lambda: [s.name for s in fitting if why_never_fits(spec, [s]) is None], now,
    )  # fmt: skip
    # The image last: the only check that may ask another server (the registry).
    image_digest = None
    if images is not None and spec.container_image:
        image_digest = images.check(spec.container_image, project_name).digest
    values: dict[str, Any] = dict(
        image_digest=image_digest, project_id=project_id, user_id=who.user_id, name=spec.name,
        command=list(spec.command) if spec.command is not None else None, script=spec.script,
        container_image=spec.container_image, gpus=spec.gpus, gpu_type=spec.gpu_type,
        nodes=spec.nodes, cpus=spec.cpus, memory_gb=spec.memory_gb,
        time_limit_s=spec.time_limit_s, environment=dict(spec.environment),
        working_dir=spec.working_dir, earliest_start=spec.earliest_start,
        deadline=spec.deadline, preemptible=spec.preemptible, shiftable=spec.shiftable,
        state=JobState.PENDING.value, reason=waiting_reason(spec, now), submitted_at=now,
        gpu_seconds=0.0, cancel_requested=False,
        datasets=[d.to_json() for d in datasets] or None,
        web_port=spec.web_port, web_app=spec.web_app,
    )  # fmt: skip
    link = None
    if draft.model is not None and draft.purpose is not None:
        link = job_links.plan_job_link(
            session, who, project_id, project_name, draft.model, draft.purpose,
            draft.acknowledge_systemic_risk, spec, now,
        )  # fmt: skip
    notes = parse_sbatch_script(draft.script).notes if draft.script is not None else ()
    return PreparedJob(values, project_name, who.username, link, notes)


def write_jobs(session: Session, prepared: Sequence[PreparedJob], commit: bool = True) -> list[Job]:
    """Queue checked submissions (PENDING), each with its first event, in one transaction,
    committed before this returns (with `commit` False the caller commits, so that a row of
    its own, an endpoint's replica, lands in the same transaction); the jobs in order."""
    # Core inserts on the session's connection, not the ORM's unit of work or bulk path;
    # several rows at once are one multi-row INSERT ... RETURNING, in the given order.
    connection = session.connection()
    ids = (
        list(connection.execute(_INSERT_JOB_ORDERED, [p.values for p in prepared]).scalars())
        if len(prepared) > 1
        else [connection.execute(_INSERT_JOB, prepared[0].values).scalar_one()]
    )
    connection.execute(
        _INSERT_EVENT,
        [{"job_id": job_id, "at": p.values["submitted_at"], "from_state": None,
          "to_state": p.values["state"], "reason": "submitted"}
         for job_id, p in zip(ids, prepared, strict=True)]
        # What a script's #SBATCH lines asked and Fabriek set aside, kept in its history.
        + [{"job_id": job_id, "at": p.values["submitted_at"], "from_state": p.values["state"],
            "to_state": p.values["state"], "reason": f"note: {note}"[:500]}
           for job_id, p in zip(ids, prepared, strict=True) for note in p.notes],
    )  # fmt: skip
    links = [(i, p.model_link) for i, p in zip(ids, prepared, strict=True) if p.model_link]
    if links:
        job_links.write_job_links(session, links, prepared[0].values["submitted_at"])
    if commit:
        session.commit()
    return [
        Job(
            **job_fields(JobRow(id=job_id, **p.values), p.project, p.user, None),
            **link_fields(p.model_link),
            notes=list(p.notes),
        )
        for job_id, p in zip(ids, prepared, strict=True)
    ]


def submit_job(
    session: Session,
    who: Principal,
    draft: JobDraft,
    now: datetime,
    shapes: Sequence[SiteShape] | None = None,
    refs: ProjectRefCache | None = None,
    images: ImageService | None = None,
) -> Job:
    """Check the job against every site (`shapes`, read from the store when not given), then
    queue it (PENDING) with its first event, committed before this returns."""
    return write_jobs(session, [prepare_job(session, who, draft, now, shapes, refs, images)])[0]
