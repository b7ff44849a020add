"""Reading a job's output through its site's engine, and cancelling on the cluster at once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from fabriek.domain.errors import NotFound
from fabriek.domain.job_states import TERMINAL_STATES
from fabriek.domain.jobs import Job
from fabriek.domain.roles import Principal
from fabriek.engines.base import EngineUnavailable

# Re-exported: which stream to read is part of this service's question (the API names it).
from fabriek.engines.base import LogStream as LogStream
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.jobs.queries import job_handle


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


def read_tail(
    session: Session,
    who: Principal,
    job_id: int,
    stream: LogStream,
    size: int,
    dispatcher: Dispatcher,
) -> tuple[Job, bytes, bool]:
    """The last `size` bytes of a job's stdout or stderr, and whether anything came before
    them. The output's length is found by probing (doubling, then halving), so a tail of a
    long log costs a few small reads, never the whole log."""
    job, handle = job_handle(session, who, job_id)
    if handle is None or job.site is None:
        return job, b"", False
    try:
        engine = dispatcher.engine(job.site)

        def has_byte_at(offset: int) -> bool:
            return bool(engine.read_log(handle, stream, offset, 1))

        if not has_byte_at(0):
            return job, b"", False
        # Output reaches past `known` and ends at or before `beyond`.
        known, beyond = 0, size
        while has_byte_at(beyond):
            known, beyond = beyond, beyond * 2
        while beyond - known > size:
            middle = (known + beyond) // 2
            known, beyond = (middle, beyond) if has_byte_at(middle) else (known, middle)
        start = max(0, beyond - 2 * size)
        data = engine.read_log(handle, stream, start, 2 * size)
    except (EngineUnavailable, FileNotFoundError, NotFound):
        # No output to show (the engine is away, or kept none): the page says so.
        return job, b"", False
    return job, data[-size:], start + len(data) > size


@dataclass(frozen=True)
class OutputTail:
    """The end of one output stream, as text from a whole line on."""

    stream: str
    text: str
    cut: bool


def output_tails(
    session: Session, who: Principal, job_id: int, size: int, dispatcher: Dispatcher
) -> list[OutputTail]:
    """The last `size` bytes of a job's stdout and of its stderr, decoded, for a page."""
    tails = []
    for stream in (LogStream.STDOUT, LogStream.STDERR):
        _job, data, cut = read_tail(session, who, job_id, stream, size, dispatcher)
        text = data.decode("utf-8", errors="replace")
        if cut and "\n" in text:
            # The first line was cut anywhere: start at a whole one.
            text = text.split("\n", 1)[1]
        tails.append(OutputTail(stream.value, text, cut))
    return tails
