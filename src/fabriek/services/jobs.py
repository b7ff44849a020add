"""Use cases for jobs: submit, list, look at, cancel, read output.

A submission is checked against every site's hardware before anything is queued; the job
is written PENDING with its first event, and the dispatcher (`services.dispatch`) takes it
from there. Every later change of state goes through `transition`, which records the event
in the same transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, insert, select
from sqlalchemy.orm import Session, selectinload

from fabriek.domain import sbatch
from fabriek.domain.capacity import SiteShape, why_never_fits
from fabriek.domain.errors import Forbidden, InvalidInput, NotFound
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.jobs import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Job,
    JobDraft,
    JobEvent,
    JobSpec,
    JobState,
    check_transition,
)
from fabriek.domain.roles import Principal, Role
from fabriek.services import ai_models, job_datasets
from fabriek.services.allocations import record_charge
from fabriek.services.metering import record_energy
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.projects import may_see_project, visible_projects
from fabriek.services.sites import site_from_row
from fabriek.store.tables import (
    JobEventRow,
    JobRow,
    MembershipRow,
    ProjectRow,
    SiteRow,
    UserRow,
)
from fabriek.store.watch import TableWatch


def site_shapes(session: Session) -> list[SiteShape]:
    """Every site's hardware, in registration order."""
    rows = session.scalars(
        select(SiteRow).options(selectinload(SiteRow.node_groups)).order_by(SiteRow.id)
    )
    return [
        SiteShape(
            s.name,
            tuple(g.to_group() for g in s.node_groups),
            s.max_time_s,
            s.grid_limit_kw,
            s.pue,
            s.grid_zone,
        )
        for s in map(site_from_row, rows)
    ]


class SiteShapeCache:
    """Every site's hardware, read at most every `ttl_s`: submissions check against it
    hundreds of times a second, while sites change a few times a year. A change made in this
    process is seen at once (`invalidate`); one made by another process within `ttl_s`."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self._shapes: list[SiteShape] = []
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, session: Session) -> list[SiteShape]:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl_s:
                self._shapes = site_shapes(session)
                self._read_at = time.monotonic()
            return self._shapes

    def invalidate(self) -> None:
        with self._lock:
            self._read_at = float("-inf")


class ProjectRefCache:
    """Project references (names, or ids as text) to (id, name), as a submission names its
    project: one query saved on every submission. An entry is used for at most `ttl_s`
    seconds; a write to the projects table through this process's engine drops every
    entry at once (`TableWatch`), one made by another process is seen within `ttl_s`.
    Whether the caller may use the project is not cached here: that is the principal's."""

    def __init__(self, watch: TableWatch | None = None, ttl_s: float = 5.0) -> None:
        self.watch = watch
        self.ttl_s = ttl_s
        self.max_entries = 10_000
        self._entries: dict[str, tuple[int, str, int, float]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, ref: str) -> tuple[int, str] | None:
        """(id, name) of the project `ref` names, or None if there is none."""
        if self.watch is not None and self.ttl_s > 0:
            found = self._entries.get(ref)
            if (
                found is not None
                and found[2] == self.watch.generation
                and time.monotonic() - found[3] <= self.ttl_s
            ):
                return found[0], found[1]
        stamp = self.watch.stamp() if self.watch is not None else None
        read_at = time.monotonic()
        row = session.execute(
            select(ProjectRow.id, ProjectRow.name).where(
                ProjectRow.name == ref if not ref.isdigit() else ProjectRow.id == int(ref)
            )
        ).first()
        if row is None:
            return None
        project_id, name = row
        if stamp is not None and self.watch is not None and self.watch.unchanged(stamp):
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[ref] = (project_id, name, stamp, read_at)
        return project_id, name


def transition(
    session: Session, job: JobRow, new: JobState, reason: str | None, now: datetime
) -> None:
    """Change a job's state by the rules, and record the event in the same transaction."""
    old = JobState(job.state)
    check_transition(old, new)
    if new in TERMINAL_STATES or new == JobState.PREEMPTED:
        # The run stopped: charge its GPU time to the allocation and meter its energy, in
        # this same transaction, so neither is lost nor written twice.
        record_charge(session, job, now)
        record_energy(session, job, now)
    job.state = new.value
    job.reason = reason
    session.add(
        JobEventRow(job_id=job.id, at=now, from_state=old.value, to_state=new.value, reason=reason)
    )


def _time_limit(value: str | int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        if value <= 0:
            raise InvalidInput.on("time_limit", "must be more than zero seconds")
        return value
    try:
        return sbatch.parse_duration(value)
    except InvalidInput as bad:
        raise InvalidInput.on(
            "time_limit", bad.problems[0].message if bad.problems else str(bad)
        ) from None


def spec_of(draft: JobDraft) -> JobSpec:
    """The job to run, from the draft and (for a script) its #SBATCH lines."""
    limit = _time_limit(draft.time_limit)
    gpu_type = draft.gpu_type.strip().lower() if draft.gpu_type else None
    if gpu_type is not None and gpu_type not in GPU_TYPES:
        raise InvalidInput.on(
            "gpu_type", f"no GPU type {draft.gpu_type!r}; known: {', '.join(GPU_TYPES)}"
        )
    common: dict[str, Any] = {
        "container_image": draft.container_image,
        "environment": dict(draft.environment),
        "working_dir": draft.working_dir,
    }
    if draft.script is not None:
        spec = sbatch.spec_from_script(
            draft.script, name=draft.name, gpus=draft.gpus, gpu_type=gpu_type,
            time_limit_s=limit, cpus=draft.cpus, memory_gb=draft.memory_gb, nodes=draft.nodes,
            **common,
        )  # fmt: skip
        if spec.gpu_type is not None and spec.gpu_type.lower() not in GPU_TYPES:
            raise InvalidInput.on(
                "script",
                f"#SBATCH asks for GPU type {spec.gpu_type!r}, which no site has; known: {', '.join(GPU_TYPES)}",
            )
        spec = replace(spec, gpu_type=spec.gpu_type.lower() if spec.gpu_type else None)
    else:
        assert draft.command is not None  # the draft's validator guarantees one of the two
        defaults = JobSpec(name="job")
        spec = JobSpec(
            name=draft.name or draft.command[0].rsplit("/", 1)[-1][:200],
            command=tuple(draft.command),
            gpus=draft.gpus if draft.gpus is not None else defaults.gpus,
            gpu_type=gpu_type,
            nodes=draft.nodes or defaults.nodes,
            cpus=draft.cpus or defaults.cpus,
            memory_gb=draft.memory_gb or defaults.memory_gb,
            time_limit_s=limit or defaults.time_limit_s,
            **common,
        )
    return replace(
        spec,
        earliest_start=draft.earliest_start,
        deadline=draft.deadline,
        preemptible=draft.preemptible,
        shiftable=draft.shiftable,
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
    model_link: ai_models.JobLink | None = None


def prepare_job(
    session: Session,
    who: Principal,
    draft: JobDraft,
    now: datetime,
    shapes: Sequence[SiteShape] | None = None,
    refs: ProjectRefCache | None = None,
) -> PreparedJob:
    """Check a submission (the project, the spec, that some site can run it: `shapes`, read
    from the store when not given) without writing anything."""
    project_id, project_name = _submit_project(session, who, draft.project, refs)
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
    values: dict[str, Any] = dict(
        project_id=project_id, user_id=who.user_id, name=spec.name,
        command=list(spec.command) if spec.command is not None else None, script=spec.script,
        container_image=spec.container_image, gpus=spec.gpus, gpu_type=spec.gpu_type,
        nodes=spec.nodes, cpus=spec.cpus, memory_gb=spec.memory_gb,
        time_limit_s=spec.time_limit_s, environment=dict(spec.environment),
        working_dir=spec.working_dir, earliest_start=spec.earliest_start,
        deadline=spec.deadline, preemptible=spec.preemptible, shiftable=spec.shiftable,
        state=JobState.PENDING.value, reason=waiting_reason(spec, now), submitted_at=now,
        gpu_seconds=0.0, cancel_requested=False,
        datasets=[d.to_json() for d in datasets] or None,
    )  # fmt: skip
    link = None
    if draft.model is not None and draft.purpose is not None:
        link = ai_models.plan_job_link(
            session, who, project_id, project_name, draft.model, draft.purpose,
            draft.acknowledge_systemic_risk, spec, now,
        )  # fmt: skip
    return PreparedJob(values, project_name, who.username, link)


def write_jobs(session: Session, prepared: Sequence[PreparedJob]) -> list[Job]:
    """Queue checked submissions (PENDING), each with its first event, in one transaction,
    committed before this returns; the jobs in the order given."""
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
         for job_id, p in zip(ids, prepared, strict=True)],
    )  # fmt: skip
    links = [(i, p.model_link) for i, p in zip(ids, prepared, strict=True) if p.model_link]
    if links:
        ai_models.write_job_links(session, links, prepared[0].values["submitted_at"])
    session.commit()
    return [
        Job(
            **_job_fields(JobRow(id=job_id, **p.values), p.project, p.user, None),
            **_link_fields(p.model_link),
        )
        for job_id, p in zip(ids, prepared, strict=True)
    ]


def _link_fields(link: ai_models.JobLink | None) -> dict[str, Any]:
    if link is None:
        return {}
    return {"model": link.ref, "purpose": link.purpose.value,
            "ai_act_warnings": list(link.warnings)}  # fmt: skip


def _with_models(session: Session, jobs: list[Job]) -> list[Job]:
    """The jobs with the model version and purpose each is linked to, if any."""
    linked = ai_models.job_models(session, [j.id for j in jobs])
    return [
        j.model_copy(update={"model": linked[j.id][0], "purpose": linked[j.id][1]})
        if j.id in linked
        else j
        for j in jobs
    ]


def submit_job(
    session: Session,
    who: Principal,
    draft: JobDraft,
    now: datetime,
    shapes: Sequence[SiteShape] | None = None,
    refs: ProjectRefCache | None = None,
) -> Job:
    """Check the job against every site (`shapes`, read from the store when not given), then
    queue it (PENDING) with its first event, committed before this returns."""
    return write_jobs(session, [prepare_job(session, who, draft, now, shapes, refs)])[0]


def waiting_reason(spec: JobSpec, now: datetime) -> str:
    """Why a just-submitted job waits."""
    if spec.earliest_start is not None and spec.earliest_start > now:
        return (
            f"NotBeforeStartTime: starts no earlier than {spec.earliest_start:%Y-%m-%d %H:%M} UTC"
        )
    return "queued"


def spec_from_row(row: JobRow) -> JobSpec:
    """The job to run, as the engines take it."""
    return JobSpec(
        name=row.name, command=tuple(row.command) if row.command is not None else None,
        script=row.script, container_image=row.container_image, gpus=row.gpus,
        gpu_type=row.gpu_type, nodes=row.nodes, cpus=row.cpus, memory_gb=row.memory_gb,
        time_limit_s=row.time_limit_s, environment=dict(row.environment or {}),
        working_dir=row.working_dir, earliest_start=row.earliest_start, deadline=row.deadline,
        preemptible=row.preemptible, shiftable=row.shiftable,
    )  # fmt: skip


def _job_fields(row: JobRow, project: str, user: str, site: str | None) -> dict[str, Any]:
    return {
        "id": row.id, "project": project, "user": user, "name": row.name,
        "state": JobState(row.state), "reason": row.reason, "site": site, "gpus": row.gpus,
        "gpu_type": row.gpu_type, "nodes": row.nodes, "cpus": row.cpus,
        "memory_gb": row.memory_gb, "time_limit_s": row.time_limit_s, "command": row.command,
        "has_script": row.script is not None, "container_image": row.container_image,
        "working_dir": row.working_dir, "earliest_start": row.earliest_start,
        "deadline": row.deadline, "preemptible": row.preemptible, "shiftable": row.shiftable,
        "exit_code": row.exit_code, "gpu_hours": round(row.gpu_seconds / 3600.0, 6),
        "datasets": [d.label for d in job_datasets.from_row(row.datasets)],
        "submitted_at": row.submitted_at, "started_at": row.started_at, "ended_at": row.ended_at,
    }  # fmt: skip


def _visible(who: Principal) -> ColumnElement[bool]:
    """Jobs of the projects a caller may see (the projects' own rule)."""
    return visible_projects(who, JobRow.project_id)


def _query() -> Select[JobRow, str, str, str]:
    return (
        select(JobRow, ProjectRow.name, UserRow.username, SiteRow.name)
        .join(ProjectRow, ProjectRow.id == JobRow.project_id)
        .join(UserRow, UserRow.id == JobRow.user_id)
        .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
    )


def list_jobs(
    session: Session,
    who: Principal,
    page: PageRequest,
    states: list[JobState] | None = None,
    project: str | None = None,
    site: str | None = None,
    user: str | None = None,
) -> Page[Job]:
    """Newest first, like `squeue` shows the queue to its users."""
    query = _query().where(_visible(who)).order_by(JobRow.id.desc())
    if states:
        query = query.where(JobRow.state.in_([s.value for s in states]))
    if project:
        query = query.where(ProjectRow.name == project)
    if site:
        query = query.where(SiteRow.name == site)
    if user:
        query = query.where(UserRow.username == user)
    total = count_all(session, query)
    rows = session.execute(query.limit(page.limit).offset(page.offset)).all()
    items = _with_models(session, [Job(**_job_fields(*r)) for r in rows])
    return Page(items, total, page.limit, page.offset)


def _visible_row(
    session: Session, who: Principal, job_id: int
) -> tuple[JobRow, str, str, str | None]:
    found = session.execute(_query().where(JobRow.id == job_id, _visible(who))).first()
    if found is None:
        raise NotFound("job", job_id)
    row, project, user, site = found
    return row, project, user, site


def get_job(session: Session, who: Principal, job_id: int) -> Job:
    return _with_models(session, [Job(**_job_fields(*_visible_row(session, who, job_id)))])[0]


def job_events(session: Session, who: Principal, job_id: int) -> list[JobEvent]:
    _visible_row(session, who, job_id)
    rows = session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
    )
    return [
        JobEvent(at=e.at, from_state=JobState(e.from_state) if e.from_state else None,
                 to_state=JobState(e.to_state), reason=e.reason)
        for e in rows
    ]  # fmt: skip


def request_cancel(
    session: Session, who: Principal, job_id: int, now: datetime
) -> tuple[Job, bool]:
    """Cancel a job: a waiting one at once; a started one is marked, and the dispatcher
    stops it on its cluster. Returns the job and whether the engine must be told.

    Members may cancel their own jobs; the project's PI, its hub and admins any of its jobs.
    """
    row, project, user, site = _visible_row(session, who, job_id)
    if row.user_id != who.user_id and not (
        who.leads_project(row.project_id) or who.is_admin or who.has_role(Role.HUB_STAFF)
    ):
        raise Forbidden("only the job's owner, the project's PI, its hub or an admin may cancel it")
    state = JobState(row.state)
    if state in TERMINAL_STATES:
        return Job(**_job_fields(row, project, user, site)), False
    if state in {JobState.PENDING, JobState.PREEMPTED}:
        row.ended_at = now
        transition(session, row, JobState.CANCELLED, f"cancelled by {who.username}", now)
        session.commit()
        return Job(**_job_fields(row, project, user, site)), False
    row.cancel_requested = True
    session.add(JobEventRow(job_id=row.id, at=now, from_state=row.state, to_state=row.state,
                            reason=f"cancel requested by {who.username}"))  # fmt: skip
    session.commit()
    return Job(**_job_fields(row, project, user, site)), state in ACTIVE_STATES


def job_handle(session: Session, who: Principal, job_id: int) -> tuple[Job, str | None]:
    """A visible job and its engine handle (None until an engine has it)."""
    row, project, user, site = _visible_row(session, who, job_id)
    return Job(**_job_fields(row, project, user, site)), row.handle
