"""Sites and their GPU inventories."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.geography import Province
from fabriek.domain.sites import Site, SiteDraft, SitePatch
from fabriek.services import site_agents, sites
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/sites", tags=["sites"])


@router.get("", response_model=PageOut[Site])
def list_sites(
    db: Db,
    _who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    province: Province | None = None,
    gpu_type: Annotated[str | None, Query(description="sites with this GPU type")] = None,
) -> PageOut[Site]:
    return PageOut.of(sites.list_sites(db, page, province, gpu_type))


@router.post("", response_model=Site, status_code=status.HTTP_201_CREATED)
def register_site(body: SiteDraft, db: Db, who: Caller, ctx: Ctx) -> Site:
    """Register a site (admins)."""
    site = sites.register_site(db, who, body, ctx.clock())
    ctx.site_shapes.invalidate()
    return site


@router.get("/{ref}", response_model=Site)
def get_site(ref: str, db: Db, _who: Caller) -> Site:
    """A site by id or name."""
    return sites.get_site(db, ref)


@router.patch("/{ref}", response_model=Site)
def change_site(ref: str, body: SitePatch, db: Db, who: Caller, ctx: Ctx) -> Site:
    """Change a site's declared figures (admins, the site's operators)."""
    site = sites.change_site(db, who, ref, body, ctx.clock())
    ctx.site_shapes.invalidate()
    return site


@router.post("/{ref}/agent-token", status_code=status.HTTP_201_CREATED)
def issue_agent_token(ref: str, db: Db, who: Caller, ctx: Ctx) -> dict[str, str]:
    """A new token for the site's agent, replacing the old one; shown this once (admins,
    the site's operators)."""
    token = site_agents.issue_agent_token(db, ref, who, ctx.clock())
    return {"site": site_agents.find_site(db, ref).name, "token": token}
