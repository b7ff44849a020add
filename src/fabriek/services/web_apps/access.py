"""Who may open a job's web app, and where the proxy finds it.

Only the job's owner opens it: a notebook is a person's workspace (their files, their
kernels), so not even the project's PI or an admin is let in through the proxy.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fabriek.domain.errors import (
    Conflict,
    FabriekError,
    Forbidden,
    NotFound,
    ServiceUnavailable,
)
from fabriek.domain.job_states import JobState
from fabriek.domain.roles import Principal
from fabriek.domain.web_apps import activity_due
from fabriek.engines.base import Engine
from fabriek.engines.web_apps import ServesWebApps, WebAddress
from fabriek.services.web_apps.secret import web_app_secret
from fabriek.store.tables import JobRow, SiteRow


@dataclass(frozen=True)
class WebTarget:
    """A running job's web app, as the proxy reaches it."""

    job_id: int
    address: WebAddress
    secret: str
    app: str | None
    last_active_at: datetime | None


def open_web_app(
    session: Session,
    who: Principal,
    job_id: int,
    engine_of: Callable[[str], Engine],
    state_dir: Path,
) -> WebTarget:
    """Job `job_id`'s web app for `who`: 404 without one, 403 for another's, 409 when it is
    not running, 503 when its engine cannot say where it listens."""
    found = session.execute(
        select(JobRow, SiteRow.name)
        .outerjoin(SiteRow, SiteRow.id == JobRow.site_id)
        .where(JobRow.id == job_id)
    ).first()
    if found is None or found[0].web_port is None:
        raise NotFound("web app of job", job_id)
    row, site = found
    if row.user_id != who.user_id:
        raise Forbidden(f"job {job_id}'s web app is open only to the person who started it")
    if row.state != JobState.RUNNING.value or site is None or row.handle is None:
        raise Conflict(
            f"job {job_id} is {row.state}: its web app opens when it runs"
            + (f" ({row.reason})" if row.reason else "")
        )
    engine = engine_of(site)
    address = engine.web_address(row.handle) if isinstance(engine, ServesWebApps) else None
    if address is None:
        raise ServiceUnavailable(f"site {site} cannot say where job {job_id}'s web app listens")
    secret = web_app_secret(state_dir, job_id)
    return WebTarget(job_id, address, secret, row.web_app, row.last_active_at)


def mark_active(session: Session, target: WebTarget, now: datetime) -> bool:
    """Record proxy traffic as the web app's activity (at most once a minute); committed."""
    if not activity_due(target.last_active_at, now):
        return False
    session.execute(update(JobRow).where(JobRow.id == target.job_id).values(last_active_at=now))
    session.commit()
    return True


def web_app_listening(
    session: Session,
    who: Principal,
    job_id: int,
    engine_of: Callable[[str], Engine],
    state_dir: Path,
) -> bool:
    """Whether `who` can open job `job_id`'s web app now: it is theirs, it runs, and its app
    accepts connections (a notebook that runs may still be starting JupyterLab). The
    connection is opened and closed again at once, without a request."""
    try:
        target = open_web_app(session, who, job_id, engine_of, state_dir)
    except FabriekError:
        return False
    try:
        socket.create_connection((target.address.host, target.address.port), timeout=0.5).close()
    except OSError:
        return False
    return True
