"""Where the gateway sends an endpoint's requests: the contract between the endpoints'
control (replicas, health, scaling) and the gateway (keys, metering, proxying).

The control side fills in `routable` and `wake`; the gateway only calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fabriek.domain.endpoints import LIVE_STATES, ReplicaState
from fabriek.domain.errors import NotFound
from fabriek.domain.job_states import JobState
from fabriek.engines.base import Engine
from fabriek.engines.web_apps import ServesWebApps
from fabriek.services.endpoints.health import probe_health
from fabriek.services.images import ImageService
from fabriek.services.web_apps.secret import web_app_secret
from fabriek.store.tables import JobRow, ProjectRow, SiteRow
from fabriek.store.tables.endpoints import EndpointReplicaRow, EndpointRow


@dataclass(frozen=True)
class ReplicaTarget:
    """One healthy replica the gateway may send a request to.

    `base_url` is the model server's address (e.g. `http://127.0.0.1:41234`), which
    speaks the OpenAI protocol under `/v1/`; `secret` is what it trusts
    (`Authorization: Bearer <secret>`, as vLLM's `--api-key`); `model` names the model
    version it serves, as the endpoint's record and the AI Act ledger know it."""

    replica_id: int
    endpoint_id: int
    job_id: int
    base_url: str
    secret: str = ""
    model: str = ""


@dataclass(frozen=True)
class EndpointRoute:
    """An endpoint as the gateway sees it: who owns it, and its healthy replicas now."""

    endpoint_id: int
    project_id: int
    name: str
    model: str
    replicas: tuple[ReplicaTarget, ...]
    # min_replicas 0 and no replica now: the gateway asks `wake` and waits.
    scaled_to_zero: bool = False


def _endpoint_row(
    session: Session, endpoint: int | str, project_id: int | None
) -> EndpointRow | None:
    """The live endpoint `endpoint` names: its id, `PROJECT/NAME`, or `NAME` within
    `project_id` (a key's project)."""
    query = select(EndpointRow).where(EndpointRow.deleted_at.is_(None))
    if isinstance(endpoint, int):
        return session.scalars(query.where(EndpointRow.id == endpoint)).first()
    project, slash, name = endpoint.rpartition("/")
    if slash:
        query = query.join(ProjectRow, ProjectRow.id == EndpointRow.project_id).where(
            ProjectRow.name == project
        )
    elif project_id is not None:
        query = query.where(EndpointRow.project_id == project_id)
    else:
        return None
    return session.scalars(query.where(EndpointRow.name == name)).first()


def replica_target(
    replica: EndpointReplicaRow,
    job: JobRow,
    site: str,
    engine_of: Callable[[str], Engine],
    state_dir: Path,
) -> ReplicaTarget | None:
    """Where a replica's model server answers, with the secret it trusts; None while its
    job does not run or its engine cannot say."""
    if job.state != JobState.RUNNING.value or job.handle is None:
        return None
    engine = engine_of(site)
    address = engine.web_address(job.handle) if isinstance(engine, ServesWebApps) else None
    if address is None:
        return None
    return ReplicaTarget(
        replica.id,
        replica.endpoint_id,
        job.id,
        address.base,
        web_app_secret(state_dir, job.id),
        replica.model,
    )


def routable(
    session: Session,
    endpoint: int | str,
    engine_of: Callable[[str], Engine],
    state_dir: Path,
    project_id: int | None = None,
) -> EndpointRoute:
    """The endpoint `endpoint` names (its id, `PROJECT/NAME`, or `NAME` within `project_id`)
    with its healthy replicas now; NotFound when there is none of that name.

    Only replicas the health checks found healthy are routed to (never a starting or a
    draining one). When none is healthy but some are starting, each of those whose job runs
    is asked `/health` once, briefly, so a waking endpoint is routable as soon as its first
    replica answers rather than at the next reconcile round."""
    row = _endpoint_row(session, endpoint, project_id)
    if row is None:
        raise NotFound("endpoint", endpoint)
    replicas = session.execute(
        select(EndpointReplicaRow, JobRow, SiteRow.name)
        .join(JobRow, JobRow.id == EndpointReplicaRow.job_id)
        .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
        .where(
            EndpointReplicaRow.endpoint_id == row.id,
            EndpointReplicaRow.state.in_([s.value for s in LIVE_STATES]),
        )
        .order_by(EndpointReplicaRow.id)
    ).all()
    targets: list[ReplicaTarget] = []
    starting: list[tuple[EndpointReplicaRow, ReplicaTarget]] = []
    for replica, job, site in replicas:
        target = replica_target(replica, job, site, engine_of, state_dir) if site else None
        if target is None:
            continue
        if replica.state == ReplicaState.HEALTHY.value:
            targets.append(target)
        else:
            starting.append((replica, target))
    if not targets and starting:
        targets = _promote_answering(session, starting)
    return EndpointRoute(
        row.id,
        row.project_id,
        row.name,
        row.model,
        tuple(targets),
        scaled_to_zero=row.min_replicas == 0 and not replicas,
    )


def _promote_answering(
    session: Session, starting: list[tuple[EndpointReplicaRow, ReplicaTarget]]
) -> list[ReplicaTarget]:
    """The starting replicas that answer `/health` now, marked healthy (committed)."""
    now = datetime.now(UTC)
    ready = [(r, t) for r, t in starting if probe_health(t.base_url, t.secret, timeout_s=1.0)]
    for replica, _ in ready:
        mark_healthy(session, replica.id, now)
    if ready:
        session.commit()
    return [t for _, t in ready]


def mark_healthy(session: Session, replica_id: int, now: datetime) -> bool:
    """Mark a starting (or unhealthy but answering) replica healthy; not committed."""
    done = session.execute(
        update(EndpointReplicaRow)
        .where(
            EndpointReplicaRow.id == replica_id,
            EndpointReplicaRow.state.in_(
                [ReplicaState.STARTING.value, ReplicaState.UNHEALTHY.value]
            ),
        )
        .values(state=ReplicaState.HEALTHY.value, healthy_at=now, reason=None)
    )
    return bool(getattr(done, "rowcount", 0))


def mark_unhealthy(session: Session, replica_id: int) -> bool:
    """Stop routing to a healthy replica that did not answer `/health`; not committed."""
    done = session.execute(
        update(EndpointReplicaRow)
        .where(
            EndpointReplicaRow.id == replica_id,
            EndpointReplicaRow.state == ReplicaState.HEALTHY.value,
        )
        .values(state=ReplicaState.UNHEALTHY.value, reason="did not answer /health")
    )
    return bool(getattr(done, "rowcount", 0))


def wake(
    session: Session,
    endpoint_id: int,
    now: datetime,
    images: ImageService | None = None,
) -> bool:
    """A request reached endpoint `endpoint_id`: record it (the idle clock restarts) and,
    when no replica is live, start one (a job of the endpoint's project, submitted like
    any other). True when a replica was started; committed either way. The caller then
    asks `routable` until a replica is healthy or its own timeout passes."""
    from fabriek.services.endpoints.replicas import live_replicas, start_replica

    row = session.get(EndpointRow, endpoint_id, with_for_update=True)
    if row is None or row.deleted_at is not None:
        raise NotFound("endpoint", endpoint_id)
    row.last_request_at = now
    started = False
    if not live_replicas(session, row.id) and row.max_replicas > 0:
        start_replica(session, row, now, images, reason="woken by a request")
        started = True
    session.commit()
    return started
