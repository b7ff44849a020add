"""An endpoint's replicas: long-running jobs of the endpoint's project that run its model
server, submitted through the same path as any job (so fair share, budgets, allocations and
charging apply), each recorded with the model version it serves.

A replica's row and its job are written in one transaction, so a crash never leaves a job
that no endpoint knows of. Draining a replica stops routing to it first (the gateway routes
only to healthy ones); its job is cancelled once it has no request in flight.
"""

from __future__ import annotations

import shlex
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fabriek.domain.endpoints import (
    LIVE_STATES,
    REPLICA_TIME_LIMIT_S,
    ReplicaState,
    split_model,
)
from fabriek.domain.errors import FabriekError, InvalidInput
from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import JobDraft
from fabriek.domain.roles import Role
from fabriek.services.identity.tokens import principal_for_user
from fabriek.services.images import ImageService
from fabriek.services.jobs.states import transition
from fabriek.services.jobs.submit import prepare_job, write_jobs
from fabriek.store.tables import (
    AiModelRow,
    JobEventRow,
    JobRow,
    MembershipRow,
    ProjectRow,
    UserRow,
)
from fabriek.store.tables.endpoints import EndpointReplicaRow, EndpointRow

# The port the model server listens on inside its job (the local engine gives each its own
# in FABRIEK_WEB_PORT instead), and the web app kind its jobs are marked with.
SERVER_PORT = 8000
WEB_APP = "model-server"
# A replica runs until drained or renewed (`domain.endpoints.needs_renewal`): its job's time
# limit is what the scheduler reserves of the project's budget. One that reaches it anyway
# (no successor could start) ends and is replaced like any replica that died.
REPLICA_TIME_LIMIT = REPLICA_TIME_LIMIT_S


def live_replicas(session: Session, endpoint_id: int) -> list[EndpointReplicaRow]:
    """The endpoint's starting and healthy replicas, oldest first."""
    return list(
        session.scalars(
            select(EndpointReplicaRow)
            .where(
                EndpointReplicaRow.endpoint_id == endpoint_id,
                EndpointReplicaRow.state.in_([s.value for s in LIVE_STATES]),
            )
            .order_by(EndpointReplicaRow.id)
        )
    )


def files_dataset(session: Session, model: str, project_id: int) -> str:
    """The dataset holding the files of what an endpoint serves: the dataset itself, or for
    a registry version MODEL:VERSION the dataset named MODEL of the model's project."""
    parts = split_model(model)
    if parts is None:
        return model
    name = parts[0]
    found = session.execute(
        select(ProjectRow.id, ProjectRow.name)
        .join(AiModelRow, AiModelRow.project_id == ProjectRow.id)
        .where(AiModelRow.name == name)
    ).first()
    if found is None or found[0] == project_id:
        return name
    return f"{found[1]}/{name}"


def server_command(endpoint: EndpointRow, dataset: str) -> list[str]:
    """The model server's command line for a replica: the dataset's files, served under the
    endpoint's name, on the port and with the secret the control plane gives the job.

    A dataset is staged as one file (`$FABRIEK_DATASETS/NAME`): a tar of the model's folder,
    unpacked into the job's own directory first (a staged folder is used as it is)."""
    from fabriek.model_server.commands import server_command as build

    name = dataset.rpartition("/")[2].partition("@")[0]
    staged = f'"$FABRIEK_DATASETS"/{shlex.quote(name)}'
    unpack = (
        f"if [ -d {staged} ]; then FABRIEK_MODEL_DIR={staged}; else "
        'FABRIEK_MODEL_DIR="${FABRIEK_JOB_DIR:-$HOME}/model"; mkdir -p "$FABRIEK_MODEL_DIR" '
        f'&& tar -xf {staged} -C "$FABRIEK_MODEL_DIR" || exit 3; fi; '
    )
    argv = build(
        model_path="$FABRIEK_MODEL_DIR",
        served_name=endpoint.name,
        gpus=endpoint.gpus,
        image=endpoint.image,
    )
    return [*argv[:-1], unpack + argv[-1]]


def replica_draft(endpoint: EndpointRow, project: str, model: str, dataset: str) -> JobDraft:
    """The job one replica of `endpoint` serving `model` runs as."""
    return JobDraft(
        project=project,
        name=f"endpoint-{endpoint.name}",
        command=server_command(endpoint, dataset),
        container_image=endpoint.image,
        gpus=endpoint.gpus,
        gpu_type=endpoint.gpu_type,
        time_limit=REPLICA_TIME_LIMIT,
        web_port=SERVER_PORT,
        web_app=WEB_APP,
        datasets=[dataset],
        environment={"FABRIEK_ENDPOINT": endpoint.name, "FABRIEK_ENDPOINT_MODEL": model},
    )


def _runs_as(session: Session, endpoint: EndpointRow) -> UserRow | None:
    """Whose jobs the replicas are: the endpoint's creator while a member of its project
    (jobs run as their person), else the project's principal investigator (an admin who
    created it for the project is no member)."""
    member = select(MembershipRow.user_id).where(MembershipRow.project_id == endpoint.project_id)
    if endpoint.created_by is not None:
        mine = session.scalar(member.where(MembershipRow.user_id == endpoint.created_by))
        if mine is not None:
            return session.get(UserRow, mine)
    pi = session.scalar(
        member.where(MembershipRow.role == Role.PRINCIPAL_INVESTIGATOR.value).order_by(
            MembershipRow.user_id
        )
    )
    return session.get(UserRow, pi) if pi is not None else None


def start_replica(
    session: Session,
    endpoint: EndpointRow,
    now: datetime,
    images: ImageService | None = None,
    reason: str = "started",
) -> EndpointReplicaRow:
    """Submit one replica of `endpoint` serving its current model, as a job of its project
    by the person who created it, and record it starting; not committed (the job and the
    replica commit together). Raises what a submission raises (budget, datasets, fit)."""
    project = session.scalar(select(ProjectRow.name).where(ProjectRow.id == endpoint.project_id))
    user = _runs_as(session, endpoint)
    if project is None or user is None:
        raise InvalidInput.on(
            "endpoint", "nobody of its project can run its replicas: its creator left and "
            "the project has no principal investigator",
        )  # fmt: skip
    who = principal_for_user(session, user.id, user.username)
    dataset = files_dataset(session, endpoint.model, endpoint.project_id)
    draft = replica_draft(endpoint, project, endpoint.model, dataset)
    prepared = prepare_job(session, who, draft, now, images=images)
    job = write_jobs(session, [prepared], commit=False)[0]
    replica = EndpointReplicaRow(
        endpoint_id=endpoint.id,
        job_id=job.id,
        model=endpoint.model,
        model_version_id=endpoint.model_version_id,
        state=ReplicaState.STARTING.value,
        reason=reason,
        created_at=now,
    )
    session.add(replica)
    session.flush()
    return replica


def try_start_replica(
    session: Session, endpoint: EndpointRow, now: datetime, images: ImageService | None
) -> str | None:
    """Start one replica and commit; the reason it could not start (kept on the endpoint's
    state) otherwise, with nothing written."""
    try:
        start_replica(session, endpoint, now, images)
        session.commit()
        return None
    except FabriekError as refused:
        session.rollback()
        return str(refused)


def drain(session: Session, replica_id: int, reason: str, now: datetime) -> bool:
    """Stop routing to a replica; its job is cancelled once nothing is in flight (see
    `end_drained`). Not committed."""
    done = session.execute(
        update(EndpointReplicaRow)
        .where(
            EndpointReplicaRow.id == replica_id,
            EndpointReplicaRow.state.in_([s.value for s in LIVE_STATES])
            | (EndpointReplicaRow.state == ReplicaState.UNHEALTHY.value),
        )
        .values(state=ReplicaState.DRAINING.value, reason=reason)
    )
    return bool(getattr(done, "rowcount", 0))


def end_replica(session: Session, replica: EndpointReplicaRow, reason: str, now: datetime) -> None:
    """End a replica: its job is asked to stop (the dispatcher cancels it on its site and it
    is charged for the time it ran). Not committed."""
    replica.state = ReplicaState.ENDED.value
    replica.reason = reason
    replica.ended_at = now
    job = session.get(JobRow, replica.job_id, with_for_update=True)
    if job is None or job.cancel_requested:
        return
    if job.state in (JobState.PENDING.value, JobState.PREEMPTED.value):
        job.ended_at = now
        transition(session, job, JobState.CANCELLED, reason, now)
    elif job.state in (JobState.STARTING.value, JobState.RUNNING.value):
        job.cancel_requested = True
        job.reason = reason
        session.add(
            JobEventRow(job_id=job.id, at=now, from_state=job.state, to_state=job.state,
                        reason=reason)
        )  # fmt: skip
