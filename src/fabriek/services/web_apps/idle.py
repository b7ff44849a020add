"""Stopping idle notebooks: a housekeeping chore of the control plane.

Each round it loads the running notebooks (a short read), asks each one's Jupyter for its
`last_activity` through the address its engine reports, with the job's secret, outside any
transaction (load, then process), and only then asks for the idle ones to be stopped, each
in a transaction that first checks it still runs (apply). A stopped notebook is cancelled
like any job: the dispatcher stops it on its site, its files stay in its workspace, it is
charged for the time it ran, and its owner is notified with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.job_states import JobState
from fabriek.domain.notebooks import IdleCheck, idle_seconds, idle_stop_reason
from fabriek.domain.notifications import NotificationKind
from fabriek.domain.web_apps import (
    JUPYTERLAB,
    app_prefix,
    jupyter_last_activity,
    parse_activity,
    request_headers,
)
from fabriek.engines.base import Engine
from fabriek.engines.web_apps import ServesWebApps
from fabriek.services.housekeeping import then_round
from fabriek.services.notifications.inbox import notify
from fabriek.services.web_apps.secret import web_app_secret
from fabriek.settings import Settings
from fabriek.store.tables import JobEventRow, JobRow, SiteRow

log = logging.getLogger("fabriek.notebooks")
# A notebook's Jupyter answers its status at once or is busy beyond use: do not wait long.
STATUS_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RunningNotebook:
    """A running notebook as loaded: what the idle rule and the status request need."""

    job_id: int
    user_id: int
    name: str
    site: str
    handle: str
    started_at: datetime
    proxied_at: datetime | None


def running_notebooks(session: Session) -> list[RunningNotebook]:
    """The notebooks running now that nobody has asked to stop yet."""
    rows = session.execute(
        select(
            JobRow.id,
            JobRow.user_id,
            JobRow.name,
            SiteRow.name,
            JobRow.handle,
            JobRow.started_at,
            JobRow.last_active_at,
        )
        .join(SiteRow, SiteRow.id == JobRow.site_id)
        .where(
            JobRow.state == JobState.RUNNING.value,
            JobRow.web_app == JUPYTERLAB,
            JobRow.cancel_requested.is_(False),
            JobRow.handle.is_not(None),
            JobRow.started_at.is_not(None),
        )
    ).all()
    return [
        RunningNotebook(job_id, user_id, name, site, handle, started, proxied)
        for job_id, user_id, name, site, handle, started, proxied in rows
        if handle is not None and started is not None
    ]


def jupyter_activity(
    http: httpx.Client, engine: Engine, notebook: RunningNotebook, secret: str
) -> datetime | None:
    """The notebook's `last_activity` as its Jupyter reports it (`/api/status`, which does
    not itself count as activity); None when it cannot say (starting, gone, not Jupyter)."""
    address = engine.web_address(notebook.handle) if isinstance(engine, ServesWebApps) else None
    if address is None:
        return None
    url = f"{address.base}{app_prefix(notebook.job_id)}api/status"
    try:
        answer = http.get(url, headers=request_headers([], secret, JUPYTERLAB))
        answer.raise_for_status()
        status = answer.json()
    except (httpx.HTTPError, ValueError):
        return None
    return parse_activity(jupyter_last_activity(status)) if isinstance(status, dict) else None


def stop_idle(session: Session, notebook: RunningNotebook, reason: str, now: datetime) -> bool:
    """Ask for the notebook to be stopped (the dispatcher cancels it on its site) and tell
    its owner, in one transaction; False if it no longer runs or is already being stopped.
    Not committed."""
    row = session.get(JobRow, notebook.job_id, with_for_update=True)
    if row is None or row.state != JobState.RUNNING.value or row.cancel_requested:
        return False
    row.cancel_requested = True
    row.reason = reason
    session.add(
        JobEventRow(job_id=row.id, at=now, from_state=row.state, to_state=row.state,
                    reason=reason)
    )  # fmt: skip
    notify(
        session, [row.user_id], NotificationKind.NOTEBOOK_IDLE.value,
        f"Your notebook {row.name} (job {row.id}) was stopped: idle",
        f"Job {row.id} ({row.name}) served a notebook that saw no activity for a while, so "
        f"it was stopped to free its GPUs. {reason}. It was charged for the time it ran. "
        "Start a new one with `fabriek notebook` or from the portal; your files are in "
        "the job's workspace.",
        now, link=f"/jobs/{row.id}",
    )  # fmt: skip
    return True


def stop_idle_notebooks(
    sessions: sessionmaker[Session],
    engine_of: Callable[[str], Engine],
    state_dir: Path,
    idle_s: int,
    now: datetime,
    http: httpx.Client,
) -> int:
    """One round: stop every running notebook idle for `idle_s` or more; how many."""
    if idle_s <= 0:
        return 0
    with sessions() as session:
        notebooks = running_notebooks(session)
    stopped = 0
    for notebook in notebooks:
        try:
            engine = engine_of(notebook.site)
            secret = web_app_secret(state_dir, notebook.job_id)
            seen = jupyter_activity(http, engine, notebook, secret)
        except Exception:  # one notebook's site failing must not keep the others running
            log.exception("job %s: cannot ask its notebook for its activity", notebook.job_id)
            seen = None
        check = IdleCheck(notebook.job_id, notebook.started_at, notebook.proxied_at, seen)
        reason = idle_stop_reason(check, idle_s, now)
        if reason is None:
            continue
        with sessions() as session:
            if stop_idle(session, notebook, reason, now):
                session.commit()
                stopped += 1
    return stopped


def idle_notebook_chore(
    sessions: sessionmaker[Session],
    engine_of: Callable[[str], Engine],
    settings: Settings,
) -> Callable[[datetime], int]:
    """The chore as one call of `now`, for housekeeping (see `with_idle_stops`)."""
    http = httpx.Client(timeout=STATUS_TIMEOUT_S, trust_env=False)
    idle_s = idle_seconds(settings.notebook_idle_minutes)

    def run(now: datetime) -> int:
        return stop_idle_notebooks(sessions, engine_of, settings.state_dir, idle_s, now, http)

    return run


def with_idle_stops(
    chores: Callable[[datetime], None], idle: Callable[[datetime], int]
) -> Callable[[datetime], None]:
    """The housekeeping chores, then the idle notebooks; a failure of one is logged and
    does not keep the other from running."""

    return then_round(chores, idle, log, "idle notebooks stopped: %d", "idle notebooks failed")
