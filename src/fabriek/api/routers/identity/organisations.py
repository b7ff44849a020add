"""Organisations the factory serves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.geography import Hub, Province
from fabriek.domain.identity.organisations import OrganisationKind
from fabriek.domain.identity.people import Organisation, OrganisationChange, OrganisationDraft
from fabriek.services.identity import organisations
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/organisations", tags=["organisations"])


@router.get("", response_model=PageOut[Organisation])
def list_organisations(
    db: Db,
    _who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    province: Province | None = None,
    hub: Hub | None = None,
    kind: OrganisationKind | None = None,
    name: Annotated[str | None, Query(max_length=200, description="part of the name")] = None,
) -> PageOut[Organisation]:
    return PageOut.of(organisations.list_organisations(db, page, province, hub, kind, name))


@router.post("", response_model=Organisation, status_code=status.HTTP_201_CREATED)
def onboard_organisation(body: OrganisationDraft, db: Db, who: Caller, ctx: Ctx) -> Organisation:
    """Onboard an organisation (admins; hub staff in their hub's provinces)."""
    return organisations.onboard_organisation(db, who, body, ctx.clock())


@router.get("/{org_id}", response_model=Organisation)
def get_organisation(org_id: int, db: Db, _who: Caller) -> Organisation:
    return organisations.get_organisation(db, org_id)


@router.patch("/{org_id}", response_model=Organisation)
def change_organisation(
    org_id: int, body: OrganisationChange, db: Db, who: Caller, ctx: Ctx
) -> Organisation:
    """Set the organisation's domain, which federated sign-ins are matched by (admins; hub
    staff for their hub's organisations)."""
    return organisations.change_organisation(db, who, org_id, body, ctx.clock())
