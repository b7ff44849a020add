"""A ticket's attachments on disk under the state dir: streamed in and checked against their
declared type as they arrive, kept from an e-mail, and opened for download by those who
may see them."""

from __future__ import annotations

import codecs
import hashlib
import uuid
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.errors import InvalidInput, NotFound, TooLarge, UnsupportedType
from fabriek.domain.roles import Principal
from fabriek.domain.support.attachments import (
    check_attachment_start,
    check_attachment_type,
    is_text_type,
    safe_filename,
)
from fabriek.domain.support.shapes import Attachment
from fabriek.domain.support.tickets import Status, ticket_reference
from fabriek.services.support.config import MIB, SupportOptions
from fabriek.services.support.conversation import closed_conflict
from fabriek.services.support.tickets import (
    attachment_view,
    handles,
    require_handler,
    ticket_row,
    usernames,
)
from fabriek.store.tables import SupportAttachmentRow, SupportTicketRow


@dataclass(frozen=True)
class _AttachmentPlan:
    ticket_id: int
    uploader_id: int
    name: str
    media_type: str
    internal: bool


def _plan_attachment(
    session: Session,
    who: Principal,
    ticket_id: int,
    name: str,
    media_type: str,
    internal: bool,
    declared_bytes: int | None,
    options: SupportOptions,
) -> _AttachmentPlan:
    row = ticket_row(session, who, ticket_id)
    if internal:
        require_handler(who, row, "attach internal files")
    if Status(row.status) is Status.CLOSED:
        raise closed_conflict(row)
    refusal = check_attachment_type(media_type, options.attachment_types)
    if refusal:
        raise UnsupportedType(refusal)
    if declared_bytes is not None and declared_bytes > options.attachment_max_bytes:
        raise TooLarge(_too_large(declared_bytes, options))
    if not name.strip():
        raise InvalidInput.on("name", "give the file's name")
    return _AttachmentPlan(row.id, who.user_id, safe_filename(name), media_type, internal)


def _too_large(size: int, options: SupportOptions) -> str:
    return (
        f"the file is {size / MIB:,.1f} MiB; attachments may be at most "
        f"{options.attachment_max_bytes / MIB:,.1f} MiB: attach a smaller excerpt"
    )


class _Checker:
    """Checks a file against its declared type as it arrives: its first bytes, and for
    text that it is UTF-8 throughout."""

    def __init__(self, media_type: str) -> None:
        self.media_type = media_type
        self.head = b""
        self.checked = False
        self.text = codecs.getincrementaldecoder("utf-8")() if is_text_type(media_type) else None
        self.digest = hashlib.sha256()
        self.size = 0

    def feed(self, piece: bytes) -> None:
        self.size += len(piece)
        self.digest.update(piece)
        if not self.checked:
            self.head += piece[:64]
            if len(self.head) >= 16:
                self._check_head()
        self._check_text(piece, final=False)

    def finish(self) -> None:
        if self.size == 0:
            raise InvalidInput("the file is empty; attach one with content")
        if not self.checked:
            self._check_head()
        self._check_text(b"", final=True)

    def _check_head(self) -> None:
        self.checked = True
        refusal = check_attachment_start(self.media_type, self.head)
        if refusal:
            raise UnsupportedType(refusal)

    def _check_text(self, piece: bytes, final: bool) -> None:
        if self.text is None:
            return
        try:
            decoded = self.text.decode(piece, final)
        except UnicodeDecodeError:
            raise UnsupportedType(
                f"the file is not {self.media_type} in UTF-8: it holds bytes text never does"
            ) from None
        if "\x00" in decoded:
            raise UnsupportedType(
                f"the file does not look like {self.media_type}: it holds binary data"
            )


def _publish_attachment(
    sessions: sessionmaker[Session],
    plan: _AttachmentPlan,
    checker: _Checker,
    incoming: Path,
    stored_as: str,
    options: SupportOptions,
    now: datetime,
) -> Attachment:
    final = options.attachments_dir / stored_as
    incoming.replace(final)
    try:
        with sessions() as session:
            row = SupportAttachmentRow(
                ticket_id=plan.ticket_id, name=plan.name, media_type=plan.media_type,
                size_bytes=checker.size, sha256=checker.digest.hexdigest(), stored_as=stored_as,
                internal=plan.internal, uploaded_by=plan.uploader_id, uploaded_at=now,
            )  # fmt: skip
            session.add(row)
            ticket = session.get(SupportTicketRow, plan.ticket_id)
            if ticket is not None:
                ticket.updated_at = now
            session.commit()
            return attachment_view(row, usernames(session, [plan.uploader_id]))
    except BaseException:
        final.unlink(missing_ok=True)
        raise


async def receive_attachment(
    sessions: sessionmaker[Session],
    who: Principal,
    clock: Callable[[], datetime],
    ticket_id: int,
    name: str,
    media_type: str,
    internal: bool,
    declared_bytes: int | None,
    body: AsyncIterable[bytes],
    options: SupportOptions,
) -> Attachment:
    """Attach a file to a ticket, streamed from `body` to disk under the state dir. It is
    refused (and nothing kept) when it is over the size limit, of a type not allowed, or
    not what its type says; internal files are for the handling staff only."""

    def plan_it() -> _AttachmentPlan:
        with sessions() as session:
            return _plan_attachment(
                session, who, ticket_id, name, media_type, internal, declared_bytes, options
            )

    plan = await anyio.to_thread.run_sync(plan_it)
    checker = _Checker(plan.media_type)
    stored_as = uuid.uuid4().hex
    incoming_dir = options.attachments_dir / "incoming"
    await anyio.to_thread.run_sync(lambda: incoming_dir.mkdir(parents=True, exist_ok=True))
    incoming = incoming_dir / stored_as
    handle = await anyio.to_thread.run_sync(incoming.open, "wb")
    try:
        async for piece in body:
            if checker.size + len(piece) > options.attachment_max_bytes:
                raise TooLarge(_too_large(checker.size + len(piece), options) + " (cut off)")
            checker.feed(piece)
            await anyio.to_thread.run_sync(handle.write, piece)
        checker.finish()
        await anyio.to_thread.run_sync(handle.close)
        return await anyio.to_thread.run_sync(
            _publish_attachment, sessions, plan, checker, incoming, stored_as, options, clock()
        )
    finally:
        handle.close()
        incoming.unlink(missing_ok=True)


def store_attachment(
    session: Session,
    row: SupportTicketRow,
    uploader_id: int,
    name: str,
    media_type: str,
    data: bytes,
    options: SupportOptions,
    now: datetime,
    written: list[Path],
) -> str | None:
    """Keep a file that came with an e-mail (its row in the caller's transaction, its path
    added to `written` so a rollback can remove it); why it was not kept, or None."""
    refusal = check_attachment_type(media_type, options.attachment_types)
    if refusal:
        return refusal
    if len(data) > options.attachment_max_bytes:
        return _too_large(len(data), options)
    checker = _Checker(media_type)
    try:
        checker.feed(data)
        checker.finish()
    except (UnsupportedType, InvalidInput) as bad:
        return str(bad)
    stored_as = uuid.uuid4().hex
    options.attachments_dir.mkdir(parents=True, exist_ok=True)
    path = options.attachments_dir / stored_as
    written.append(path)
    path.write_bytes(data)
    session.add(
        SupportAttachmentRow(
            ticket_id=row.id, name=safe_filename(name), media_type=media_type, size_bytes=len(data),
            sha256=checker.digest.hexdigest(), stored_as=stored_as, internal=False,
            uploaded_by=uploader_id, uploaded_at=now,
        )
    )  # fmt: skip
    return None


@dataclass(frozen=True)
class AttachmentFile:
    path: Path
    name: str
    media_type: str
    size_bytes: int
    sha256: str


def open_attachment(
    session: Session, who: Principal, ticket_id: int, attachment_id: int, options: SupportOptions
) -> AttachmentFile:
    """A ticket's attachment, for download by those who may see it."""
    row = ticket_row(session, who, ticket_id)
    found = session.scalars(
        select(SupportAttachmentRow).where(
            SupportAttachmentRow.id == attachment_id, SupportAttachmentRow.ticket_id == row.id
        )
    ).first()
    if found is None or (found.internal and not handles(who, row.queue)):
        raise NotFound("attachment", f"{attachment_id} of {ticket_reference(row.id)}")
    path = options.attachments_dir / found.stored_as
    if not path.is_file():
        raise NotFound("attachment file", f"{attachment_id} of {ticket_reference(row.id)}")
    return AttachmentFile(path, found.name, found.media_type, found.size_bytes, found.sha256)
