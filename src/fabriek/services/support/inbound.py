"""E-mail coming into the support centre: a reply to a ticket's e-mail, piped in by the mail
server (`fabriek support inbound < message.eml`), joins the ticket's conversation.

The ticket is found by the token in the address the reply went to (support+T42-<key>@...)
or, when a mail client dropped it, in the subject. The sender must be one of the ticket's
people (its author, its project's members, the staff handling it) and the ticket must be
open; otherwise the sender gets a bounce saying why, and nothing is added. Automatic mail
(delivery reports, out-of-office replies) is dropped without a bounce, so two robots never
answer each other forever. The same e-mail piped in twice is added once.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.errors import Forbidden, InvalidInput
from fabriek.domain.roles import Principal
from fabriek.domain.support.mail import find_tokens, html_to_text, is_automatic, strip_quoted
from fabriek.domain.support.shapes import InboundResult
from fabriek.domain.support.tickets import Status, ticket_reference
from fabriek.services.identity.tokens import principal_for_user
from fabriek.services.support.attachments import store_attachment
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.conversation import add_reply
from fabriek.services.support.outbox import queue_bounce
from fabriek.services.support.tickets import handles, is_central_desk, participants
from fabriek.store.tables import SupportMessageRow, SupportTicketRow, UserRow

# Headers that may carry the address a reply was sent to, as mail servers pass it on.
_RECIPIENT_HEADERS: Final = (
    "To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To", "Resent-To",
)  # fmt: skip
_CHECKED_HEADERS: Final = ("Auto-Submitted", "Precedence", "Return-Path")


def require_mail_gateway(who: Principal) -> None:
    """Only the central desk (the account the mail server pipes in with) hands in e-mail."""
    if not is_central_desk(who):
        raise Forbidden(
            "only the central support desk (access team, admins) may pipe e-mail into "
            "tickets: give the mail server an API token of such an account"
        )


def _parse(raw: bytes) -> EmailMessage:
    if not raw.strip():
        raise InvalidInput("the message is empty: pipe in one e-mail (RFC 5322, a .eml file)")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage) or not message.keys() or message["From"] is None:
        raise InvalidInput(
            "this is not an e-mail message (no From header): pipe in one e-mail (RFC 5322)"
        )
    return message


def _text(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = body.get_content()
    except (LookupError, ValueError):
        # An unknown charset or a broken transfer encoding: read what can be read.
        payload = body.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if body.get_content_type() == "text/html":
        content = html_to_text(content)
    return strip_quoted(content)


def _discard(session: Session, written: list[Path]) -> None:
    """Roll back, and remove the attachment files written for what was rolled back."""
    session.rollback()
    for path in written:
        path.unlink(missing_ok=True)


def _bounce(
    session: Session,
    options: SupportOptions,
    message: EmailMessage,
    to: str,
    reason: str,
    advice: str,
    now: datetime,
    row: SupportTicketRow | None = None,
) -> InboundResult:
    subject = str(message["Subject"] or "")
    sent = str(message["Date"] or "").strip()
    when = f" of {sent}" if sent else ""
    body = (
        f"Your e-mail{' ' + repr(subject) if subject else ''}{when} was not added to a "
        f"support ticket: {reason}.\n\n{advice}\n\n-- \nFabriek support ({options.support_address})\n"
    )
    queue_bounce(
        session, options.support_address, to, subject, body, str(message["Message-ID"] or "") or None,
        now, ticket_id=row.id if row else None,
    )  # fmt: skip
    session.commit()
    return InboundResult(
        outcome="bounced", ticket=ticket_reference(row.id) if row else None, reason=reason
    )


def _ticket_named(session: Session, message: EmailMessage) -> SupportTicketRow | None:
    """The ticket whose token (with its key) is in an address the e-mail went to, or else
    in its subject."""
    recipients = [
        address
        for header in _RECIPIENT_HEADERS
        for _name, address in getaddresses([str(v) for v in message.get_all(header) or []])
    ]
    for token in find_tokens(recipients, str(message["Subject"] or "")):
        found = session.get(SupportTicketRow, token.ticket_id)
        if found is not None and secrets.compare_digest(found.reply_key, token.key):
            return found
    return None


def _added_before(session: Session, row: SupportTicketRow, message_id: str) -> bool:
    return (
        session.scalar(
            select(SupportMessageRow.id).where(
                SupportMessageRow.ticket_id == row.id,
                SupportMessageRow.email_message_id == message_id,
            )
        )
        is not None
    )


def _keep_attachments(
    session: Session,
    row: SupportTicketRow,
    uploader_id: int,
    message: EmailMessage,
    options: SupportOptions,
    now: datetime,
    written: list[Path],
) -> tuple[list[str], list[str]]:
    """Keep the e-mail's attachments on the ticket: the names of those kept, and for each
    refused its name and why."""
    kept: list[str] = []
    refused: list[str] = []
    for part in message.iter_attachments():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_filename() or "attachment"
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        why = store_attachment(
            session, row, uploader_id, name, part.get_content_type(), data, options, now, written
        )
        (refused if why else kept).append(f"{name}: {why}" if why else name)
    return kept, refused


def receive_email(
    session: Session, who: Principal, raw: bytes, options: SupportOptions, now: datetime
) -> InboundResult:
    """Add an e-mail to the ticket it answers, or bounce it to its sender with the reason.
    Only the central desk (the access team, admins: the account the mail server pipes in
    with) may hand e-mail in."""
    require_mail_gateway(who)
    message = _parse(raw)
    sender = parseaddr(str(message["From"]))[1].strip().lower()
    headers = {h.lower(): str(message[h] or "") for h in _CHECKED_HEADERS}
    automatic = is_automatic(headers, sender)
    if automatic:
        return InboundResult(outcome="ignored", ticket=None, reason=automatic)
    reply_to = parseaddr(str(message["Reply-To"] or ""))[1].strip()
    answer_to = reply_to or sender
    row = _ticket_named(session, message)
    if row is None:
        return _bounce(
            session, options, message, answer_to,
            "it names no ticket we know",
            "Reply to the address the ticket's e-mail came from (support+T...@...), or open a "
            "new ticket with `fabriek support new`.",
            now,
        )  # fmt: skip
    reference = ticket_reference(row.id)
    user = session.scalars(select(UserRow).where(func.lower(UserRow.email) == sender)).first()
    principal = principal_for_user(session, user.id, user.username) if user else None
    staff = principal is not None and handles(principal, row.queue)
    if user is None or (user.id not in participants(session, row) and not staff):
        # Nothing about the ticket is told to a stranger: not its subject, not its state.
        return _bounce(
            session, options, message, answer_to,
            f"the address {sender or '(none)'} is not one of the people on the ticket",
            "Write from the address your Fabriek account has, or open a ticket of your own "
            "with `fabriek support new`.",
            now,
        )  # fmt: skip
    if Status(row.status) is Status.CLOSED:
        return _bounce(
            session, options, message, answer_to,
            f"{reference} is closed and takes no more replies",
            f"Open a new ticket with `fabriek support new` and mention {reference}.",
            now, row,
        )  # fmt: skip
    message_id = str(message["Message-ID"] or "").strip()[:300] or None
    if message_id is not None and _added_before(session, row, message_id):
        return InboundResult(outcome="duplicate", ticket=reference, reason="added before")
    text = _text(message)
    written: list[Path] = []
    kept, refused = _keep_attachments(session, row, user.id, message, options, now, written)
    if not text and not kept:
        _discard(session, written)
        return _bounce(
            session, options, message, answer_to,
            "it holds no text of its own above the quoted mail",
            f"Write your answer above the quoted text and send it again to {reference}.",
            now, row,
        )  # fmt: skip
    notes = [f"[attached by e-mail: {name}]" for name in kept]
    notes += [f"[not kept: {why}]" for why in refused]
    body = "\n\n".join(p for p in [text, "\n".join(notes)] if p)
    try:
        add_reply(
            session, options, row, user, staff and user.id != row.author_id, body, "email", now,
            email_message_id=message_id,
        )  # fmt: skip
        session.commit()
    except IntegrityError:
        # The same e-mail, piped in twice at once: the other one added it.
        _discard(session, written)
        return InboundResult(outcome="duplicate", ticket=reference, reason="added before")
    return InboundResult(outcome="added", ticket=reference, reason=f"added to {reference}")
