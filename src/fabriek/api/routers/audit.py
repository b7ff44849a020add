"""The audit trail: listing entries (admins all; others their projects' and their own), its
head for anchoring elsewhere, and verifying the chain (admins)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from fabriek.api.context import Caller, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import PageOut, paging
from fabriek.domain.audit import AuditEntryView, VerifyReport
from fabriek.services import audit
from fabriek.services.paging import PageRequest

router = APIRouter(prefix=f"{API_PREFIX}/audit", tags=["audit"])


class AuditHead(BaseModel):
    """The newest entry: write `head` down somewhere Fabriek cannot reach, and give it to
    `verify` later to tell whether entries were removed from the end."""

    seq: int
    hash: str
    head: str


@router.get("", response_model=PageOut[AuditEntryView])
def list_entries(
    db: Db,
    who: Caller,
    page: Annotated[PageRequest, Depends(paging)],
    dataset: Annotated[str | None, Query(description="only entries about this dataset")] = None,
    actor: Annotated[str | None, Query(description="only entries by this username")] = None,
    action: Annotated[str | None, Query(description="only this action, e.g. download")] = None,
    project: Annotated[str | None, Query(description="project name or id")] = None,
    since: Annotated[
        datetime | None, Query(description="only entries at or after this time")
    ] = None,
) -> PageOut[AuditEntryView]:
    """Audit entries, newest first: all for admins; for anyone else those of their projects
    (including their datasets') and their own actions."""
    return PageOut.of(
        audit.list_entries(
            db, who, page, dataset=dataset, actor=actor, action=action, project=project, since=since
        )
    )


@router.get("/head", response_model=AuditHead)
def get_head(db: Db, who: Caller) -> AuditHead:
    """The newest entry's sequence number and hash (admins)."""
    found = audit.anchor_head(db, who)
    return AuditHead(seq=found.seq, hash=found.hash, head=str(found))


@router.get("/verify", response_model=VerifyReport)
def verify(
    db: Db,
    who: Caller,
    expected_head: Annotated[
        str | None, Query(description="SEQ:HASH written down earlier: also catches truncation")
    ] = None,
) -> VerifyReport:
    """Check the whole chain (admins): whole, or the first entry altered, removed or
    reordered. A broken chain is a 200 with `ok: false`: the check itself succeeded."""
    return audit.verify(db, who, expected_head)
