"""Allocations in national AI regulatory sandboxes (AI Act Art. 57-58): marking one, and
keeping its sandbox plan and exit report as documents."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.ai_act.sandboxes import (
    MAX_DOCUMENT_BYTES,
    MEDIA_TYPES,
    DocumentKind,
    Sandbox,
    SandboxDocumentInfo,
    SandboxDraft,
)
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.roles import Principal, Role
from fabriek.services.identity.projects import visible_accounts
from fabriek.services.transactions import clash_is_conflict, commit
from fabriek.store.tables import AllocationRow, ProjectRow, SandboxDocumentRow, SandboxRow, UserRow


def _allocation(session: Session, who: Principal, allocation_id: int) -> tuple[AllocationRow, str]:
    found = session.execute(
        select(AllocationRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == AllocationRow.project_id)
        .where(AllocationRow.id == allocation_id, visible_accounts(who, AllocationRow.project_id))
    ).first()
    if found is None:
        raise NotFound("allocation", allocation_id)
    return found[0], found[1]


def _runs_access(who: Principal) -> bool:
    return who.is_admin or who.has_role(Role.ACCESS_TEAM)


def _view(session: Session, row: SandboxRow, project: str) -> Sandbox:
    docs = session.execute(
        select(SandboxDocumentRow, UserRow.username)
        .join(UserRow, UserRow.id == SandboxDocumentRow.filed_by)
        .where(SandboxDocumentRow.allocation_id == row.allocation_id)
        .order_by(SandboxDocumentRow.id)
    ).all()
    by_kind: dict[str, list[tuple[SandboxDocumentRow, str]]] = defaultdict(list)
    for doc, user in docs:
        by_kind[doc.kind].append((doc, user))
    marked_by = session.get(UserRow, row.marked_by)
    return Sandbox(
        allocation_id=row.allocation_id, project=project, authority=row.authority,
        member_state=row.member_state, reference=row.reference,
        marked_by=marked_by.username if marked_by else str(row.marked_by),
        created_at=row.created_at,
        documents=[
            SandboxDocumentInfo(
                kind=DocumentKind(kind), media_type=filed[-1][0].media_type,
                bytes=len(filed[-1][0].content.encode()), filed_by=filed[-1][1],
                filed_at=filed[-1][0].filed_at, versions=len(filed),
            )
            for kind, filed in sorted(by_kind.items())
        ],
        exited=DocumentKind.EXIT_REPORT.value in by_kind,
    )  # fmt: skip


def _sandbox(
    session: Session, who: Principal, allocation_id: int
) -> tuple[SandboxRow, str, AllocationRow]:
    allocation, project = _allocation(session, who, allocation_id)
    row = session.get(SandboxRow, allocation.id)
    if row is None:
        raise NotFound("sandbox of allocation", allocation_id)
    return row, project, allocation


def mark(
    session: Session, who: Principal, allocation_id: int, draft: SandboxDraft, now: datetime
) -> Sandbox:
    """Mark an allocation as part of a sandbox (the access team or an admin), or change
    its authority and reference."""
    allocation, project = _allocation(session, who, allocation_id)
    if not _runs_access(who):
        raise Forbidden("only the access team or an admin may mark an allocation as a sandbox")
    row = session.get(SandboxRow, allocation.id)
    with clash_is_conflict(session, "the allocation was marked meanwhile; try again"):
        if row is None:
            row = SandboxRow(allocation_id=allocation.id, marked_by=who.user_id, created_at=now)
            session.add(row)
        row.authority, row.member_state, row.reference = (
            draft.authority.strip(),
            draft.member_state,
            draft.reference,
        )
        session.commit()
    return _view(session, row, project)


def get(session: Session, who: Principal, allocation_id: int) -> Sandbox:
    row, project, _ = _sandbox(session, who, allocation_id)
    return _view(session, row, project)


def file_document(
    session: Session,
    who: Principal,
    allocation_id: int,
    kind: DocumentKind,
    content: bytes,
    media_type: str,
    now: datetime,
) -> Sandbox:
    """File a sandbox plan or exit report (text or Markdown): the project's members, the
    access team or an admin. An exit report needs a plan first. Every filing is kept."""
    row, project, allocation = _sandbox(session, who, allocation_id)
    if not (who.in_project(allocation.project_id) or _runs_access(who)):
        raise Forbidden(f"only members of {project}, the access team or an admin may file it")
    media = media_type.split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise InvalidInput.on(
            "content-type", f"{media or 'none'}: send the document as {' or '.join(MEDIA_TYPES)}"
        )
    if not content.strip():
        raise InvalidInput.on("body", "the document is empty")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise InvalidInput.on("body", f"at most {MAX_DOCUMENT_BYTES:,} bytes")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput.on("body", "the document must be UTF-8 text") from None
    if kind is DocumentKind.EXIT_REPORT and not session.scalar(
        select(SandboxDocumentRow.id).where(
            SandboxDocumentRow.allocation_id == row.allocation_id,
            SandboxDocumentRow.kind == DocumentKind.PLAN.value,
        )
    ):
        raise Conflict("file the sandbox plan before the exit report")
    session.add(
        SandboxDocumentRow(
            allocation_id=row.allocation_id, kind=kind.value, media_type=media, content=text,
            filed_by=who.user_id, filed_at=now,
        )
    )  # fmt: skip
    commit(session, "the sandbox changed meanwhile; try again")
    return _view(session, row, project)


def document(
    session: Session, who: Principal, allocation_id: int, kind: DocumentKind
) -> tuple[str, str]:
    """The newest filing of a kind: (text, media type)."""
    row, _, _ = _sandbox(session, who, allocation_id)
    doc = session.scalar(
        select(SandboxDocumentRow)
        .where(
            SandboxDocumentRow.allocation_id == row.allocation_id,
            SandboxDocumentRow.kind == kind.value,
        )
        .order_by(SandboxDocumentRow.id.desc())
        .limit(1)
    )
    if doc is None:
        raise NotFound(f"{kind.value} of the sandbox of allocation", allocation_id)
    return doc.content, doc.media_type
