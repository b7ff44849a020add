"""What a site's agent pushes of its Slurm accounting (`sacct` output), with its site token:
every job that ran at the site, including those typed with `sbatch` over SSH, read into
the ledger exactly once (see `services.jobs.harvest`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import AwareDatetime, BaseModel, Field

from fabriek.api.context import Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.routers.site_agent import Agent
from fabriek.domain.slurm_accounting import SACCT_FORMAT
from fabriek.services.jobs import harvest

router = APIRouter(prefix=f"{API_PREFIX}/sites/{{site}}/agent", tags=["site agent"])


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


@router.post("/accounting")
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
