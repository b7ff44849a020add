"""Partner factories: the API another Fabriek installation places its jobs through.

Only the account of a trusted partner (the partners file) uses it: a submission carries a
signed assertion of who submitted it at the partner, and is idempotent by the partner's job
id. Output and cancels go through the ordinary job routes, as for any job of the account.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fabriek.api.context import Caller, Ctx
from fabriek.api.routers import API_PREFIX
from fabriek.domain.errors import Forbidden, NotFound
from fabriek.domain.jobs import Job, JobDraft
from fabriek.domain.partners import ASSERTION_HEADER, PARTNER_API
from fabriek.services import partners as partner_jobs
from fabriek.services.partners import Partners

router = APIRouter(prefix=f"{API_PREFIX}/partner", tags=["partners"])


class PartnerApi(BaseModel):
    """Which partner API this factory speaks, and its name as partners address it."""

    api: str
    factory: str


class PartnerJob(BaseModel):
    """A partner's job here, by the partner's id: its state, usage and energy."""

    job: int = Field(description="the partner's own job id")
    id: int = Field(description="the job's id here")
    state: str
    reason: str | None
    exit_code: int | None
    started_at: str | None
    ended_at: str | None
    gpu_seconds: float
    energy_readings: list[dict[str, Any]]
    usage: dict[str, Any] | None = Field(
        description="once it ended: GPU-hours, IT and facility kWh, carbon (g CO2e) in this "
        "factory's grid intensity"
    )


class PartnerJobs(BaseModel):
    items: list[PartnerJob]


def _partners(ctx: Ctx) -> Partners:
    if ctx.partners is None:
        missing = NotFound("partner API", "here")
        missing.detail = (
            "this factory runs no partner factories' jobs: its operator has configured no "
            "partners file (FABRIEK_PARTNERS_FILE)"
        )
        raise missing
    return ctx.partners


@router.get("", response_model=PartnerApi)
def partner_api(who: Caller, ctx: Ctx) -> PartnerApi:
    """The partner API this factory speaks: a partner checks it before its first call."""
    return PartnerApi(api=PARTNER_API, factory=_partners(ctx).factory)


@router.post(
    "/jobs",
    response_model=Job,
    status_code=status.HTTP_201_CREATED,
    responses={status.HTTP_200_OK: {"model": Job, "description": "sent before: the same job"}},
)
async def submit_partner_job(
    body: JobDraft,
    request: Request,
    response: Response,
    who: Caller,
    ctx: Ctx,
    assertion: Annotated[
        str | None,
        Header(alias=ASSERTION_HEADER, description="who submitted it at the partner (a JWS)"),
    ] = None,
) -> Job:
    """Queue a partner factory's job, with its signed assertion of who submitted it; a job
    the partner sent before (by its id) is answered with the one already here (200)."""
    partners = _partners(ctx)
    raw = await request.body()

    def submit() -> tuple[Job, bool]:
        now = ctx.clock()
        partner, verified = partner_jobs.verified_assertion(
            partners, who, assertion, raw, int(now.timestamp())
        )
        with ctx.sessions() as db:
            return partner_jobs.submit(
                db, who, partner, verified, body, now, ctx.site_shapes.get(db),
                ctx.project_refs, ctx.images,
            )  # fmt: skip

    job, created = await run_in_threadpool(submit)
    if not created:
        response.status_code = status.HTTP_200_OK
    if ctx.dispatcher is not None:
        ctx.dispatcher.wake.set()
    return job


@router.get("/jobs", response_model=PartnerJobs)
def list_partner_jobs(
    who: Caller,
    ctx: Ctx,
    job: Annotated[
        list[int] | None, Query(description="the partner's job ids; none: all its jobs")
    ] = None,
) -> PartnerJobs:
    """The calling partner's jobs here, by its own ids, with their states and usage."""
    partner = _partners(ctx).partner_of(who.username)
    if partner is None:
        raise Forbidden(f"{who.username} is not the account of a partner factory of this one")
    with ctx.sessions() as db:
        items = partner_jobs.partner_jobs(db, partner, job)
    return PartnerJobs(items=[PartnerJob(**item) for item in items])
