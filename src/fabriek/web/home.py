"""A signed-in person's home: their projects with each allocation's budget as a bar
(consumed, committed, remaining) and its end date, and their running and recent jobs.
The jobs list refreshes itself with htmx (`/home/jobs`); without JavaScript a reload does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.access.allocations import Allocation
from fabriek.domain.identity.people import Project
from fabriek.domain.job_states import ACTIVE_STATES, JobState
from fabriek.domain.jobs import Job
from fabriek.domain.roles import Principal
from fabriek.services import jobs
from fabriek.services.access import allocations
from fabriek.services.identity import projects
from fabriek.services.paging import PageRequest
from fabriek.web.layout import page, templates
from fabriek.web.session import Person, SignedIn

RECENT_JOBS = 10
WAITING_OR_RUNNING = [JobState.PENDING, JobState.PREEMPTED, *sorted(ACTIVE_STATES)]
# The live part comes back to the whole page after sign-in.
OnHome = Annotated[Principal, Depends(SignedIn("/home"))]


@dataclass(frozen=True)
class BudgetBar:
    """An allocation's budget as shares of the award, in per cent, for the bar's widths."""

    allocation: Allocation
    consumed_pct: float
    committed_pct: float

    @staticmethod
    def of(a: Allocation) -> BudgetBar:
        awarded = a.awarded_gpu_hours
        if awarded <= 0:
            return BudgetBar(a, 100.0, 0.0)
        consumed = min(100.0, max(0.0, 100.0 * a.consumed_gpu_hours / awarded))
        committed = min(100.0 - consumed, max(0.0, 100.0 * a.committed_gpu_hours / awarded))
        return BudgetBar(a, round(consumed, 2), round(committed, 2))


@dataclass(frozen=True)
class ProjectView:
    project: Project
    role: str
    budgets: list[BudgetBar]


def _my_projects(db: Db, ctx: Ctx, who: Principal) -> list[ProjectView]:
    found = projects.list_projects(db, who, PageRequest(limit=1000)).items
    mine = [p for p in found if who.in_project(p.id)]
    now = ctx.clock()
    out = []
    for p in mine:
        held = allocations.list_allocations(
            db, who, now, ctx.access, PageRequest(limit=100), project=p.name
        ).items
        # Current and coming allocations first, then the ended ones.
        held.sort(key=lambda a: (a.ends_at <= now, a.ends_at))
        out.append(ProjectView(p, who.project_roles[p.id].value, [BudgetBar.of(a) for a in held]))
    return out


def _my_jobs(db: Db, who: Principal) -> tuple[list[Job], list[Job]]:
    """Their waiting and running jobs, and their most recent others."""
    going = jobs.list_jobs(db, who, PageRequest(limit=100), states=WAITING_OR_RUNNING,
                           user=who.username).items  # fmt: skip
    recent = [
        j for j in jobs.list_jobs(db, who, PageRequest(limit=RECENT_JOBS + len(going)),
                                  user=who.username).items
        if j.state not in WAITING_OR_RUNNING
    ][:RECENT_JOBS]  # fmt: skip
    return going, recent


router = APIRouter(include_in_schema=False)


@router.get("/home", response_class=HTMLResponse, response_model=None)
def home(request: Request, db: Db, ctx: Ctx, who: Person) -> Response:
    """The signed-in person's projects, budgets and jobs."""
    going, recent = _my_jobs(db, who)
    return page(request, "home.html", "home.title", who,
                {"projects": _my_projects(db, ctx, who), "going": going,
                 "recent": recent, "now": ctx.clock()})  # fmt: skip


@router.get("/home/jobs", response_class=HTMLResponse, response_model=None)
def home_jobs(request: Request, db: Db, who: OnHome) -> Response:
    """The jobs part of the home page alone, for htmx to swap in."""
    going, recent = _my_jobs(db, who)
    return templates.TemplateResponse(request, "_home_jobs.html",
                                      {"who": who, "going": going, "recent": recent})  # fmt: skip
