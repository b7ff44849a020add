"""What a site's agent calls, with its site token (`Authorization: Bearer fsa_...`), and
the operator's view of the agent.

Routes for the agent depend on `agent_site`: the site the token stands for, its last call
noted. A token is good only under its own site's path; any other is a 401 problem.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from fabriek.api.context import AppContext, app_context
from fabriek.api.routers import API_PREFIX
from fabriek.domain.errors import Unauthenticated
from fabriek.services import site_agents
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
