"""A site's Slurm accounting in the ledger: what its agent pushes (`sacct` output, with the
site token), and the operator's harvest (now, and where it stands). Every job that ran at
the site, including those typed with `sbatch` over SSH, is read exactly once (see
`services.jobs.harvest`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import AwareDatetime, BaseModel, Field

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.routers.site_agent import Agent
from fabriek.domain.errors import ServiceUnavailable
from fabriek.domain.slurm_accounting import SACCT_FORMAT
from fabriek.services.jobs import harvest
from fabriek.services.site_agents import require_operator

router = APIRouter(prefix=f"{API_PREFIX}/sites/{{site}}", tags=["site agent"])


class AccountingPush(BaseModel):
    """A batch of the site's accounting, as sacct printed it."""

    sacct: str = Field(
        description=(
            "Output of `TZ=UTC sacct --parsable2 --noheader --allocations --duplicates "
            f"--allusers --format={SACCT_FORMAT}` (one line per job run)"
        ),
        max_length=64 * 1024 * 1024,
    )
    fields: list[str] | None = Field(
        default=None, description="The --format fields, when not the ones above, in order."
    )
    through: AwareDatetime | None = Field(
        default=None,
        description="When sacct ran: the batch holds every run active up to then.",
    )


@router.post("/agent/accounting")
def push_accounting(
    agent: Agent, db: Db, ctx: Ctx, body: Annotated[AccountingPush, Body()]
) -> dict[str, Any]:
    """Read the site's accounting into the ledger: what was added, corrected, left unmatched
    (the site's token)."""
    through: datetime | None = body.through
    result = harvest.ingest_sacct(
        db, agent.name, body.sacct, ctx.clock(), access=ctx.access, fields=body.fields,
        through=through,
    )  # fmt: skip
    return result.to_json()


@router.get("/harvest")
def harvest_status(site: str, db: Db, who: Caller) -> dict[str, Any]:
    """Where the harvest of the site's accounting stands (admins, the site's operators)."""
    row = require_operator(db, site, who, "see its harvest")
    return harvest.harvest_status(db, row.name)


@router.post("/harvest")
def harvest_now(site: str, db: Db, who: Caller, ctx: Ctx) -> dict[str, Any]:
    """Read the site's accounting from its slurmrestd now, rather than at the next
    interval (admins, the site's operators)."""
    row = require_operator(db, site, who, "harvest its accounting")
    db.close()  # the harvest opens its own transaction; this one is done
    puller = ctx.dispatcher.harvest if ctx.dispatcher is not None else None
    if puller is None:
        raise ServiceUnavailable("this server harvests no accounting (it runs no dispatcher)")
    return puller.pull_now(row.name).to_json()
