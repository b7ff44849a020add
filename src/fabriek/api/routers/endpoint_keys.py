"""A project's endpoint API keys (create, list, revoke) and its endpoints' usage."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.endpoint_keys import (
    EndpointEnergy,
    EndpointKeyDraft,
    EndpointKeyInfo,
    EndpointUsage,
    NewEndpointKey,
)
from fabriek.services.endpoints import energy, keys

router = APIRouter(prefix=f"{API_PREFIX}/projects/{{project}}", tags=["endpoints"])


@router.post("/endpoint-keys", response_model=NewEndpointKey, status_code=status.HTTP_201_CREATED)
def create_key(
    project: str, body: EndpointKeyDraft, db: Db, who: Caller, ctx: Ctx
) -> NewEndpointKey:
    """A new key for the project's endpoints; `key` is shown this once (stored hashed)."""
    return keys.create_key(db, who, project, body, ctx.clock())


@router.get("/endpoint-keys", response_model=list[EndpointKeyInfo])
def list_keys(
    project: str, db: Db, who: Caller, include_revoked: bool = False
) -> list[EndpointKeyInfo]:
    """The project's keys (never their secrets)."""
    return keys.list_keys(db, who, project, include_revoked)


@router.delete("/endpoint-keys/{key}", response_model=EndpointKeyInfo)
def revoke_key(project: str, key: str, db: Db, who: Caller, ctx: Ctx) -> EndpointKeyInfo:
    """Revoke a key (id, prefix or name): the gateway refuses it within a few seconds."""
    return keys.revoke_key(db, who, project, key, ctx.clock())


@router.get("/endpoint-usage", response_model=list[EndpointUsage])
def endpoint_usage(
    project: str,
    db: Db,
    who: Caller,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
    key: str | None = None,
) -> list[EndpointUsage]:
    """Requests and tokens per caller, endpoint and day (UTC), within [from, to]."""
    return keys.usage(db, who, project, since, until, key)


@router.get("/endpoint-energy", response_model=list[EndpointEnergy])
def endpoint_energy(
    project: str,
    db: Db,
    who: Caller,
    since: Annotated[date | None, Query(alias="from")] = None,
    until: Annotated[date | None, Query(alias="to")] = None,
) -> list[EndpointEnergy]:
    """Each endpoint's replicas' energy and carbon, and both per 1,000 tokens served."""
    return energy.endpoint_energy(db, who, project, since, until)
