"""What a site's agent calls, with its site token (`Authorization: Bearer fsa_...`), and
the operator's view of the agent.

Routes for the agent depend on `agent_site`: the site the token stands for, its last call
noted. A token is good only under its own site's path; any other is a 401 problem.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, status
from starlette.concurrency import run_in_threadpool

from fabriek.api.context import AppContext, Caller, Ctx, Db, app_context
from fabriek.api.routers import API_PREFIX
from fabriek.domain.errors import InvalidInput, Unauthenticated
from fabriek.domain.site_agent_status import AgentStatus
from fabriek.domain.site_state import AgentReport
from fabriek.services import site_agent_reports, site_agents
from fabriek.services.accounts.desired_state import site_desired_state
from fabriek.services.site_agents import BAD_TOKEN, AgentSite

router = APIRouter(prefix=f"{API_PREFIX}/sites/{{site}}/agent", tags=["site agent"])


def _presented(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated(BAD_TOKEN)
    return value.strip()


def _authenticate(ctx: AppContext, site: str, presented: str) -> AgentSite:
    with ctx.sessions() as session:
        row = site_agents.site_for_agent_token(session, site, presented, ctx.clock())
        found = AgentSite(id=row.id, name=row.name)
        session.commit()
    return found


async def agent_site(
    site: str, request: Request, ctx: Annotated[AppContext, Depends(app_context)]
) -> AgentSite:
    """The site whose agent calls (its token checked against the site in the path)."""
    return await run_in_threadpool(_authenticate, ctx, site, _presented(request))


Agent = Annotated[AgentSite, Depends(agent_site)]


@router.get("/whoami")
def whoami(agent: Agent) -> dict[str, object]:
    """The site this token stands for (an agent checks its configuration with it)."""
    return {"site": agent.name, "id": agent.id}


@router.get("/desired-state")
def desired_state(agent: Agent, db: Db, ctx: Ctx) -> dict[str, Any]:
    """What the site should look like now, with its generation (the site's token)."""
    settings = ctx.settings
    state = site_desired_state(
        db, str(agent.id), ctx.access, settings.local_id_base, settings.state_dir, ctx.clock()
    )
    return state.to_json()


@router.post("/reports", status_code=status.HTTP_201_CREATED)
def report(
    agent: Agent,
    db: Db,
    ctx: Ctx,
    body: Annotated[dict[str, Any], Body(description="an AgentReport in its JSON form")],
) -> dict[str, int]:
    """What the agent applied, found changed by hand, or could not do (the site's token)."""
    try:
        parsed = AgentReport.from_json(body)
    except ValueError as exc:
        raise InvalidInput.on("body", str(exc)) from None
    return {"id": site_agent_reports.record_report(db, agent, parsed, ctx.clock())}


@router.get("", response_model=AgentStatus)
def agent_status(site: str, db: Db, who: Caller, ctx: Ctx) -> AgentStatus:
    """The site's agent: last seen, in step or not, drift and errors (admins, the site's
    operators)."""
    settings = ctx.settings
    return site_agent_reports.agent_status(
        db, site, who, ctx.access, settings.local_id_base, settings.state_dir, ctx.clock()
    )
