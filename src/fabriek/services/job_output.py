"""Reading a job's output through its site's engine, and cancelling on the cluster at once."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fabriek.domain.jobs import TERMINAL_STATES, Job
from fabriek.domain.roles import Principal
from fabriek.engines.base import EngineUnavailable, LogStream
from fabriek.services.dispatch import Dispatcher
from fabriek.services.jobs import job_handle


def read_output(
    session: Session,
    who: Principal,
    job_id: int,
    stream: LogStream,
    offset: int,
    limit: int,
    dispatcher: Dispatcher,
) -> tuple[Job, bytes]:
    """Up to `limit` bytes of a job's stdout or stderr from `offset` (nothing before it runs)."""
    job, handle = job_handle(session, who, job_id)
    if handle is None or job.site is None:
        return job, b""
    try:
        return job, dispatcher.engine(job.site).read_log(handle, stream, offset, limit)
    except (EngineUnavailable, FileNotFoundError):
        return job, b""


def is_finished(job: Job) -> bool:
    return job.state in TERMINAL_STATES
