"""The endpoints' reconcile loop: a chore of the control plane, run with housekeeping.

Each round, for each endpoint: load its replicas and where they answer (a short read), ask
each replica's server for `/health` and its queue outside any transaction, then apply what
the pure rules of `fabriek.domain.endpoints` say, each endpoint in its own transaction:
replicas whose job ended are replaced, a starting replica that answers becomes healthy (it
is routed to), a healthy one that stops answering is ended, a new model version rolls out
one replica at a time, the count follows the queue per replica and the idle time, and a
draining replica is ended once it has nothing in flight.

Nothing is kept in memory between rounds: everything is read again from the store and the
replicas, so a restart or a second round repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.endpoints import (
    CRASH_WINDOW_S,
    ReplicaLoad,
    ReplicaState,
    RolloutReplica,
    desired_replicas,
    may_start_more,
    needs_renewal,
    rollout_step,
)
from fabriek.domain.job_states import TERMINAL_STATE_VALUES, JobState
from fabriek.engines.base import Engine
from fabriek.services.endpoints.health import probe_health, queue_lengths
from fabriek.services.endpoints.replicas import drain, end_replica, try_start_replica
from fabriek.services.endpoints.routing import mark_healthy, mark_unhealthy, replica_target
from fabriek.services.housekeeping import then_round
from fabriek.services.images import ImageService
from fabriek.store.tables import JobRow, SiteRow
from fabriek.store.tables.endpoints import EndpointReplicaRow, EndpointRow

log = logging.getLogger("fabriek.endpoints")
# How the reason of a replica whose job ended begins.
_DIED = "replaced: its job ended"
# What a replica due for renewal counts as in a rollout: a model no endpoint serves.
_RENEWED = "\0renewed"
# The states a replica is looked at in (not ended).
_WATCHED = (
    ReplicaState.STARTING.value,
    ReplicaState.HEALTHY.value,
    ReplicaState.UNHEALTHY.value,
    ReplicaState.DRAINING.value,
)


@dataclass
class SeenReplica:
    """A replica as this round saw it: its row's state, its job's, and its server's answer."""

    replica_id: int
    state: str
    model: str
    job_state: str
    job_reason: str | None
    answers: bool = False
    waiting: float = 0.0
    running: float = 0.0
    # When its job's time limit ends it (None: not started).
    ends_at: datetime | None = None


@dataclass
class SeenEndpoint:
    """An endpoint as this round saw it."""

    endpoint_id: int
    model: str
    deleted: bool
    min_replicas: int
    max_replicas: int
    idle_s: int
    last_request_at: datetime | None
    replicas: list[SeenReplica] = field(default_factory=list)
    # Replicas that died before ever answering, lately (see `may_start_more`).
    crashed: int = 0


def _load(
    session: Session, engine_of: Callable[[str], Engine], state_dir: Path, now: datetime
) -> list[tuple[SeenEndpoint, dict[int, tuple[str, str]]]]:
    """Every endpoint with work to watch (live ones, and deleted ones with replicas left),
    with where each running replica answers (base URL, secret)."""
    endpoints = session.scalars(
        select(EndpointRow).where(
            or_(
                EndpointRow.deleted_at.is_(None),
                EndpointRow.id.in_(
                    select(EndpointReplicaRow.endpoint_id).where(
                        EndpointReplicaRow.state.in_(_WATCHED)
                    )
                ),
            )
        )
    ).all()
    out: list[tuple[SeenEndpoint, dict[int, tuple[str, str]]]] = []
    for row in endpoints:
        seen = SeenEndpoint(
            row.id, row.model, row.deleted_at is not None, row.min_replicas,
            row.max_replicas, row.idle_s, row.last_request_at,
        )  # fmt: skip
        seen.crashed = (
            session.scalar(
                select(func.count(EndpointReplicaRow.id)).where(
                    EndpointReplicaRow.endpoint_id == row.id,
                    EndpointReplicaRow.state == ReplicaState.ENDED.value,
                    EndpointReplicaRow.healthy_at.is_(None),
                    # Of the model it serves now: a change of model starts afresh.
                    EndpointReplicaRow.model == row.model,
                    EndpointReplicaRow.reason.like(f"{_DIED}%"),
                    EndpointReplicaRow.ended_at >= now - timedelta(seconds=CRASH_WINDOW_S),
                )
            )
            or 0
        )
        where: dict[int, tuple[str, str]] = {}
        replicas = session.execute(
            select(EndpointReplicaRow, JobRow, SiteRow.name)
            .join(JobRow, JobRow.id == EndpointReplicaRow.job_id)
            .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
            .where(
                EndpointReplicaRow.endpoint_id == row.id,
                EndpointReplicaRow.state.in_(_WATCHED),
            )
            .order_by(EndpointReplicaRow.id)
        ).all()
        for replica, job, site in replicas:
            ends_at = (
                job.started_at + timedelta(seconds=job.time_limit_s)
                if job.started_at is not None
                else None
            )
            seen.replicas.append(
                SeenReplica(
                    replica.id, replica.state, replica.model, job.state, job.reason,
                    ends_at=ends_at,
                )
            )  # fmt: skip
            target = None
            if site is not None and job.state == JobState.RUNNING.value:
                try:
                    target = replica_target(replica, job, site, engine_of, state_dir)
                except Exception:  # one site failing must not stop the others' round
                    log.exception("replica %s: cannot find its server", replica.id)
            if target is not None:
                where[replica.id] = (target.base_url, target.secret)
        out.append((seen, where))
    return out


def _probe(seen: SeenEndpoint, where: dict[int, tuple[str, str]], http: httpx.Client) -> None:
    """Ask each running replica's server for its health and queue (no transaction open)."""
    for replica in seen.replicas:
        address = where.get(replica.replica_id)
        if address is None:
            continue
        replica.answers = probe_health(*address, http=http)
        if replica.answers:
            replica.waiting, replica.running = queue_lengths(*address, http)


def _idle_for(seen: SeenEndpoint, now: datetime) -> float | None:
    if seen.last_request_at is None:
        return None
    return (now - seen.last_request_at).total_seconds()


@dataclass
class Plan:
    """What one endpoint's round does."""

    healthy: list[int] = field(default_factory=list)
    unhealthy: list[int] = field(default_factory=list)
    end: list[tuple[int, str]] = field(default_factory=list)
    drain: list[tuple[int, str]] = field(default_factory=list)
    start: int = 0
    # Starts held back: too many replicas died before answering (state "failing").
    failing: bool = False


def plan_round(seen: SeenEndpoint, now: datetime) -> Plan:
    """What to do for one endpoint, from what this round saw (pure)."""
    plan = Plan()
    live: list[SeenReplica] = []
    for r in seen.replicas:
        if r.state == ReplicaState.DRAINING.value:
            # Drained since an earlier round: no longer routed to; ended once idle.
            if r.job_state in TERMINAL_STATE_VALUES or r.waiting + r.running == 0:
                plan.end.append((r.replica_id, "drained"))
        elif r.job_state in TERMINAL_STATE_VALUES:
            words = f"{_DIED} ({r.job_state}" + (f": {r.job_reason})" if r.job_reason else ")")
            plan.end.append((r.replica_id, words))
        elif r.job_state == JobState.PREEMPTED.value:
            # The scheduler stopped it by the track's rules: replaced now (its job is not
            # left to be requeued), and not counted as a server that cannot start.
            plan.end.append((r.replica_id, "replaced: its job was preempted"))
        elif seen.deleted:
            plan.drain.append((r.replica_id, "the endpoint was deleted"))
        elif r.state == ReplicaState.UNHEALTHY.value and not r.answers:
            # Twice in a row: gone for good, replaced.
            plan.end.append((r.replica_id, "replaced: stopped answering /health"))
        else:
            if r.state == ReplicaState.HEALTHY.value and not r.answers:
                # Once: no longer routed to, but a busy server may answer next round.
                plan.unhealthy.append(r.replica_id)
            elif r.state != ReplicaState.HEALTHY.value and r.answers:
                plan.healthy.append(r.replica_id)
            live.append(r)
    if seen.deleted:
        return plan
    healthy = [r for r in live if r.answers]
    load = ReplicaLoad(
        min_replicas=seen.min_replicas,
        max_replicas=seen.max_replicas,
        healthy=len(healthy),
        starting=len(live) - len(healthy),
        waiting=sum(r.waiting for r in healthy),
        # Requests in a replica's hands count as use, whatever the gateway last recorded.
        idle_for_s=0.0 if any(r.waiting + r.running > 0 for r in healthy) else _idle_for(seen, now),
        idle_s=seen.idle_s,
    )
    want = desired_replicas(load)
    # Near its job's time limit a replica is renewed as a rollout renews an old model's: a
    # successor first, then it is drained (unless the endpoint is scaling to zero anyway).
    renewing = {r.replica_id for r in live if needs_renewal(r.ends_at, now)} if want > 0 else set()
    if renewing or any(r.model != seen.model for r in live):
        step = rollout_step(
            [
                RolloutReplica(
                    r.replica_id, _RENEWED if r.replica_id in renewing else r.model, r.answers
                )
                for r in live
            ],
            seen.model,
            want,
        )
        plan.start = step.start if may_start_more(seen.crashed) else 0
        plan.failing = step.start > plan.start
        plan.drain.extend(
            (i, "renewed: its job neared its time limit" if i in renewing
             else f"rolled out: replaced by {seen.model}")
            for i in step.drain
        )  # fmt: skip
        return plan
    if want > len(live):
        plan.start = want - len(live)
        if not may_start_more(seen.crashed):
            plan.start, plan.failing = 0, True
    elif want < len(live):
        # Starting replicas go first (never routed to), then the newest healthy ones.
        order = [r for r in reversed(live) if not r.answers] + [
            r for r in reversed(live) if r.answers
        ]
        reason = "scaled to zero: idle" if want == 0 else "scaled down: short queue"
        plan.drain.extend((r.replica_id, reason) for r in order[: len(live) - want])
    return plan


def _apply(
    sessions: sessionmaker[Session],
    seen: SeenEndpoint,
    plan: Plan,
    now: datetime,
    images: ImageService | None,
) -> int:
    """Carry out one endpoint's plan; how many changes were made."""
    done = 0
    with sessions() as session:
        endpoint = session.get(EndpointRow, seen.endpoint_id, with_for_update=True)
        if endpoint is None:
            return 0
        for replica_id in plan.healthy:
            done += mark_healthy(session, replica_id, now)
        for replica_id in plan.unhealthy:
            done += mark_unhealthy(session, replica_id)
        for replica_id, reason in plan.drain:
            done += drain(session, replica_id, reason, now)
        for replica_id, reason in plan.end:
            replica = session.get(EndpointReplicaRow, replica_id)
            if replica is not None and replica.state != ReplicaState.ENDED.value:
                end_replica(session, replica, reason, now)
                done += 1
        if plan.failing and endpoint.state != "failing":
            log.warning("endpoint %s: replicas die before answering; none started", endpoint.name)
            endpoint.state = "failing"
        elif plan.healthy and endpoint.state in ("failing", "refused"):
            endpoint.state = "active"
        session.commit()
        for _ in range(plan.start):
            refused = try_start_replica(session, endpoint, now, images)
            endpoint = session.get(EndpointRow, seen.endpoint_id)
            if endpoint is None:
                break
            if refused is not None:
                log.warning("endpoint %s: no replica started: %s", endpoint.name, refused)
                endpoint.state = "refused"
                session.commit()
                break
            if endpoint.state != "active":
                endpoint.state = "active"
                session.commit()
            done += 1
    return done


def reconcile_endpoints(
    sessions: sessionmaker[Session],
    engine_of: Callable[[str], Engine],
    state_dir: Path,
    now: datetime,
    http: httpx.Client,
    images: ImageService | None = None,
) -> int:
    """One round over every endpoint; how many changes it made. One endpoint failing does
    not keep the others from their round."""
    with sessions() as session:
        loaded = _load(session, engine_of, state_dir, now)
    changes = 0
    for seen, where in loaded:
        try:
            _probe(seen, where, http)
            changes += _apply(sessions, seen, plan_round(seen, now), now, images)
        except Exception:  # the next round retries
            log.exception("endpoint %s: reconcile failed", seen.endpoint_id)
    return changes


def endpoint_chore(
    sessions: sessionmaker[Session],
    engine_of: Callable[[str], Engine],
    state_dir: Path,
    images: ImageService | None = None,
) -> Callable[[datetime], int]:
    """The reconcile loop as one call of `now`, for the control plane's housekeeping."""
    http = httpx.Client(timeout=3.0, trust_env=False)

    def run(now: datetime) -> int:
        return reconcile_endpoints(sessions, engine_of, state_dir, now, http, images)

    return run


def with_endpoints(
    chores: Callable[[datetime], None], reconcile: Callable[[datetime], int]
) -> Callable[[datetime], None]:
    """The other housekeeping chores, then the endpoints' round; a failure of one is logged
    and does not keep the other from running."""

    return then_round(chores, reconcile, log, "endpoints: %d change(s)", "endpoints' round failed")
