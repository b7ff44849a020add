"""Jobs: submit, list like squeue, look at, cancel, and stream their output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.errors import FabriekError, Forbidden
from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import Job, JobDraft, JobEvent
from fabriek.services import jobs
from fabriek.services.jobs import output as job_output
from fabriek.services.jobs.output import LogStream
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])

CHUNK = 256 * 1024


@router.post("", response_model=Job, status_code=status.HTTP_201_CREATED)
async def submit_job(body: JobDraft, who: Caller, ctx: Ctx) -> Response:
    """Queue a job after checking that some site can run it; the dispatcher starts it."""
    if ctx.partners is not None and ctx.partners.partner_of(who.username) is not None:
        raise Forbidden(
            f"{who.username} is a partner factory's account: its jobs come through "
            "/api/v1/partner/jobs with a signed assertion of who submitted them"
        )

    # The hottest request of the factory: all its store work in one worker thread (not one
    # per dependency), and the answer serialised once (the schema is still `Job`'s).
    def submit() -> bytes:
        with ctx.sessions() as db:
            prepared = jobs.prepare_job(
                db, who, body, ctx.clock(), ctx.site_shapes.get(db), ctx.project_refs, ctx.images
            )
            if ctx.writer is None:
                return jobs.write_jobs(db, [prepared])[0].model_dump_json().encode()
        # Checked, and the connection given back: written with whatever else is waiting.
        return ctx.writer.write(prepared).model_dump_json().encode()

    content = await asyncio.get_running_loop().run_in_executor(ctx.submitters, submit)
    if ctx.dispatcher is not None:
        ctx.dispatcher.wake.set()
    return Response(content, status_code=status.HTTP_201_CREATED, media_type="application/json")


@router.get("", response_model=PageOut[Job])
def list_jobs(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    state: Annotated[list[JobState] | None, Query(description="repeat for several")] = None,
    project: str | None = None,
    site: str | None = None,
    user: str | None = None,
) -> PageOut[Job]:
    """The jobs of the projects you can see, newest first."""
    return PageOut.of(jobs.list_jobs(db, who, page, state, project, site, user))


@router.get("/{job_id}", response_model=Job)
def get_job(job_id: int, db: Db, who: Caller) -> Job:
    return jobs.get_job(db, who, job_id)


@router.get("/{job_id}/events", response_model=list[JobEvent])
def job_events(job_id: int, db: Db, who: Caller) -> list[JobEvent]:
    """Every state change with its time and reason."""
    return jobs.job_events(db, who, job_id)


@router.post(
    "/{job_id}/cancel",
    response_model=Job,
    responses={
        status.HTTP_202_ACCEPTED: {
            "model": Job,
            "description": "A started job: the cancel is pending until its site's cluster "
            "confirms it (its reason says so); it is sent even while the cluster is down.",
        }
    },
)
def cancel_job(job_id: int, db: Db, who: Caller, ctx: Ctx, response: Response) -> Job:
    """Cancel: a waiting job at once (200, cancelled); a started one on its cluster (202:
    the job's reason says the cancel is pending; it ends once the cluster confirms)."""
    job, tell_engine = jobs.request_cancel(db, who, job_id, ctx.clock())
    if tell_engine:
        response.status_code = status.HTTP_202_ACCEPTED
        if ctx.dispatcher is not None:
            ctx.dispatcher.wake.set()
    return job


Reader = Callable[[int], tuple[bool, bytes]]


@router.get("/{job_id}/logs", response_class=Response)
async def job_logs(
    job_id: int,
    who: Caller,
    ctx: Ctx,
    stream: LogStream = LogStream.STDOUT,
    offset: Annotated[int, Query(ge=0)] = 0,
    follow: Annotated[bool, Query(description="keep streaming until the job ends")] = False,
) -> Response:
    """The job's output as plain text; with `follow`, streamed until the job ends."""
    dispatcher = ctx.dispatcher
    if dispatcher is None:
        raise FabriekError("this server runs no dispatcher, so it has no job output", "no-engines")

    def read(at: int) -> tuple[bool, bytes]:
        # The state is read before the output, so output read after "finished" is complete.
        with ctx.sessions() as session:
            job, data = job_output.read_output(session, who, job_id, stream, at, CHUNK, dispatcher)
        return job_output.is_finished(job), data

    finished, first = await run_in_threadpool(read, offset)
    if not follow:
        return Response(first, media_type="text/plain; charset=utf-8")
    return StreamingResponse(
        _follow(read, offset, finished, first), media_type="text/plain; charset=utf-8"
    )


async def _follow(read: Reader, at: int, finished: bool, data: bytes) -> AsyncIterator[bytes]:
    """Yield output as it comes, until the job has ended and all of it is sent."""
    while True:
        if data:
            at += len(data)
            yield data
        elif finished:
            return
        else:
            await asyncio.sleep(0.5)
        finished, data = await run_in_threadpool(read, at)
