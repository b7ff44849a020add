"""Outgoing e-mail of the support centre: queued in the store in the transaction of what it
tells (a reply, an acknowledgement, a bounce) and sent by the housekeeping round, with
retries. A mail server that is down loses nothing: the message waits, and is tried again
with a growing pause (1, 2, 4 ... at most 60 minutes). One the server refuses for good (a
recipient it does not know) is given up after a few refusals, and kept with its error.

Mail about a ticket carries the ticket's reply address (support+T42-<key>@...) and its token
in the subject, so the person's answer finds its way back (`fabriek support inbound`), and
threads under the ticket's first message in their mail client.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.support.mail import ReplyToken, reply_address, subject_with_token
from fabriek.services.notifications.mail import Refused, SmtpConnection, one_line
from fabriek.settings import Settings
from fabriek.store.tables import SupportMailRow, SupportTicketRow

log = logging.getLogger("fabriek.support.mail")

# Messages looked at per round: the rest wait for the next.
BATCH: Final = 500
# A message the server refused this many times (never one it could not be reached for) is
# given up.
MAX_REFUSALS: Final = 5
MAX_PAUSE: Final = timedelta(minutes=60)
# Kinds of mail a machine writes (no person does): marked so that their recipients'
# auto-responders do not answer them (RFC 3834).
_AUTOMATIC: Final = {"ack": "auto-generated", "status": "auto-generated", "bounce": "auto-replied"}


def _domain(support_address: str) -> str:
    return support_address.rpartition("@")[2] or "localhost"


def thread_id(ticket_id: int, support_address: str) -> str:
    """The Message-ID of a ticket's first e-mail, which later ones answer."""
    return f"<ticket-{ticket_id}@{_domain(support_address)}>"


def queue_ticket_mail(
    session: Session,
    support_address: str,
    row: SupportTicketRow,
    kind: str,
    to: str,
    subject: str,
    body: str,
    now: datetime,
) -> SupportMailRow:
    """Queue an e-mail about a ticket (`ack` for the first, `reply`, `status`); not
    committed: it lands with the change it tells of."""
    token = ReplyToken(row.id, row.reply_key)
    first = kind == "ack"
    mail = SupportMailRow(
        ticket_id=row.id, kind=kind, to_address=to,
        subject=(subject_with_token(subject, token) if first
                 else "Re: " + subject_with_token(subject, token))[:300],
        body=body, reply_to=reply_address(support_address, token),
        in_reply_to=None if first else thread_id(row.id, support_address),
        message_id=thread_id(row.id, support_address) if first
        else make_msgid("fabriek-support", _domain(support_address)),
        created_at=now, attempts=0, next_attempt_at=now,
    )  # fmt: skip
    session.add(mail)
    return mail


def queue_bounce(
    session: Session,
    support_address: str,
    to: str,
    subject: str,
    body: str,
    in_reply_to: str | None,
    now: datetime,
    ticket_id: int | None = None,
) -> SupportMailRow:
    """Queue a bounce: the e-mail `to` sent was not added to any ticket, and why. Not
    committed."""
    mail = SupportMailRow(
        ticket_id=ticket_id, kind="bounce", to_address=to,
        subject=f"Not delivered to a ticket: {one_line(subject)}"[:300] if subject
        else "Not delivered to a ticket",
        body=body, reply_to=None, in_reply_to=in_reply_to[:300] if in_reply_to else None,
        message_id=make_msgid("fabriek-support", _domain(support_address)),
        created_at=now, attempts=0, next_attempt_at=now,
    )  # fmt: skip
    session.add(mail)
    return mail


def pause_after(attempts: int) -> timedelta:
    """How long a message waits after its `attempts`-th failed try: doubling from a minute,
    at most an hour."""
    return min(MAX_PAUSE, timedelta(minutes=2 ** max(0, min(attempts - 1, 10))))


def _message(settings: Settings, row: SupportMailRow) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr(("Fabriek support", settings.smtp_from))
    message["To"] = row.to_address
    message["Subject"] = one_line(row.subject)
    message["Date"] = format_datetime(row.created_at)
    message["Message-ID"] = row.message_id
    if row.reply_to:
        message["Reply-To"] = row.reply_to
    if row.in_reply_to:
        message["In-Reply-To"] = row.in_reply_to
        message["References"] = row.in_reply_to
    if row.kind in _AUTOMATIC:
        message["Auto-Submitted"] = _AUTOMATIC[row.kind]
    message.set_content(row.body)
    return message


def send_support_mail(session: Session, now: datetime, settings: Settings) -> int:
    """Send the queued support e-mail that is due, oldest first; how many the server
    accepted. Each accepted message is marked sent at once (committed), so it never goes
    twice; an unreachable server ends the round (one warning) and the message waits for
    the next; a refused one waits longer, and after `MAX_REFUSALS` refusals is given up.
    With e-mail off (`smtp_host` unset) everything stays queued."""
    if not settings.smtp_host:
        return 0
    due = list(
        session.scalars(
            select(SupportMailRow)
            .where(
                SupportMailRow.sent_at.is_(None),
                SupportMailRow.failed_at.is_(None),
                SupportMailRow.next_attempt_at <= now,
            )
            .order_by(SupportMailRow.id)
            .limit(BATCH)
        )
    )
    if not due:
        return 0
    sent = 0
    with SmtpConnection(settings) as smtp:
        for row in due:
            try:
                smtp.send(_message(settings, row))
            except Refused as exc:
                row.attempts += 1
                row.last_error = one_line(str(exc))[:500]
                if row.attempts >= MAX_REFUSALS:
                    row.failed_at = now
                    log.error("support e-mail %s to %s given up after %d refusals: %s",
                              row.id, row.to_address, row.attempts, row.last_error)  # fmt: skip
                else:
                    row.next_attempt_at = now + pause_after(row.attempts)
                session.commit()
                continue
            except OSError as exc:
                row.attempts += 1
                row.last_error = (one_line(str(exc)) or type(exc).__name__)[:500]
                row.next_attempt_at = now + pause_after(row.attempts)
                session.commit()
                log.warning(
                    "support e-mail: SMTP server %s:%s failed (%s); %d message(s) wait for "
                    "the next round",
                    settings.smtp_host, settings.smtp_port, row.last_error, len(due) - sent,
                )  # fmt: skip
                break
            row.attempts += 1
            row.sent_at = now
            row.last_error = None
            session.commit()
            sent += 1
    return sent
