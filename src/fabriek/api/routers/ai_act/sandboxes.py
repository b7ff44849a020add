"""AI regulatory sandboxes (AI Act Art. 57-58): an allocation marked as part of one, with
its plan and exit report kept as text or Markdown documents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.ai_act.sandboxes import DocumentKind, Sandbox, SandboxDraft
from fabriek.services.ai_act import sandboxes

router = APIRouter(prefix=f"{API_PREFIX}/allocations", tags=["sandboxes"])


@router.put("/{allocation_id}/sandbox", response_model=Sandbox)
def mark_sandbox(allocation_id: int, body: SandboxDraft, db: Db, who: Caller, ctx: Ctx) -> Sandbox:
    """Mark the allocation as part of a national AI regulatory sandbox (access team)."""
    return sandboxes.mark(db, who, allocation_id, body, ctx.clock())


@router.get("/{allocation_id}/sandbox", response_model=Sandbox)
def get_sandbox(allocation_id: int, db: Db, who: Caller) -> Sandbox:
    return sandboxes.get(db, who, allocation_id)


@router.put("/{allocation_id}/sandbox/{kind}", response_model=Sandbox)
async def file_document(
    allocation_id: int,
    kind: DocumentKind,
    request: Request,
    who: Caller,
    ctx: Ctx,
    content_type: Annotated[str, Header()] = "",
) -> Sandbox:
    """File the sandbox plan or exit report: the body is the document itself, sent as
    text/markdown or text/plain. Every filing is kept; the newest counts."""
    body = await request.body()

    def file() -> Sandbox:
        with ctx.sessions() as db:
            return sandboxes.file_document(
                db, who, allocation_id, kind, body, content_type, ctx.clock()
            )

    return await run_in_threadpool(file)


@router.get("/{allocation_id}/sandbox/{kind}", response_class=Response)
def get_document(allocation_id: int, kind: DocumentKind, db: Db, who: Caller) -> Response:
    """The newest plan or exit report, as it was filed."""
    text, media_type = sandboxes.document(db, who, allocation_id, kind)
    return Response(text, media_type=f"{media_type}; charset=utf-8")
