"""Notification e-mail through SMTP: one message per notification for people who asked for
that, at most one digest a day for everyone else.

Delivery is at least once: a notification is marked e-mailed only after the SMTP server
accepted the message carrying it, so a server that is down, or a crash between sending and
marking, means it is tried again at the next round (rarely, sent twice), never lost. With
e-mail off (`smtp_host` unset) nothing is sent or marked: notifications stay in the portal
and API list, and are mailed once a server is configured.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from itertools import groupby
from types import TracebackType

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.notifications import Delivery
from fabriek.settings import Settings
from fabriek.store.tables import NotificationRow, NotificationSettingsRow, UserRow

log = logging.getLogger("fabriek.mail")

DIGEST_EVERY = timedelta(hours=24)
# Notifications looked at per round: a bound on memory and on one round's time; the rest
# wait for the next round.
BATCH = 5000
SMTP_TIMEOUT_S = 15.0


class Refused(Exception):
    """The server refused this one message (a recipient, its content), not every message."""


class SmtpConnection:
    """One SMTP connection for a round, opened at the first message (none when there is
    nothing to send)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (OSError, smtplib.SMTPException):
                self._conn.close()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        assert s.smtp_host is not None
        # A fixed local name: the default asks DNS for this host's name, which can hang.
        conn = smtplib.SMTP(s.smtp_host, s.smtp_port, "fabriek.localdomain", SMTP_TIMEOUT_S)
        try:
            if s.smtp_starttls:
                conn.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                conn.login(s.smtp_user, s.smtp_password or "")
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, message: EmailMessage) -> None:
        """Hand one message to the server; returns once the server accepted it.
        Raises `Refused` when only this message was refused, OSError when the server is
        unreachable or refuses everything."""
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.send_message(message)
        except (
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPDataError,
            # An address this server cannot take (non-ASCII without SMTPUTF8): this one only.
            smtplib.SMTPNotSupportedError,
        ) as exc:
            raise Refused(str(exc)) from exc


def one_line(text: str) -> str:
    # Header values must not break lines (and a subject never should).
    return " ".join(text.split())


def _absolute(settings: Settings, link: str | None) -> str | None:
    if link and link.startswith("/"):
        return settings.public_url.rstrip("/") + link
    return link


def _footer(settings: Settings, delivery: Delivery) -> str:
    how = {Delivery.DIGEST: "a daily digest", Delivery.IMMEDIATE: "one e-mail each"}
    return (
        f"\n-- \nYou get Fabriek notifications as {how.get(delivery, delivery.value)}. "
        f"All of them are listed at {settings.public_url.rstrip('/')}; change how they reach "
        "you with `fabriek notifications settings --delivery digest|immediate|none` "
        "or mute a kind with `--mute KIND`.\n"
    )


def _message(settings: Settings, to: str, subject: str, text: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = one_line(subject)
    message["Date"] = format_datetime(now)
    # The sender's domain names the message, without asking DNS for this host's name.
    message["Message-ID"] = make_msgid("fabriek", settings.smtp_from.rpartition("@")[2] or None)
    message.set_content(text)
    return message


def _entry(settings: Settings, row: NotificationRow) -> str:
    link = _absolute(settings, row.link)
    return f"{row.body}\n" + (f"\n{link}\n" if link else "")


def _single(settings: Settings, to: str, row: NotificationRow, now: datetime) -> EmailMessage:
    text = _entry(settings, row) + _footer(settings, Delivery.IMMEDIATE)
    return _message(settings, to, f"[Fabriek] {row.subject}", text, now)


def _digest(
    settings: Settings, to: str, rows: Sequence[NotificationRow], now: datetime
) -> EmailMessage:
    count = f"{len(rows)} notification" + ("" if len(rows) == 1 else "s")
    parts = [f"Your Fabriek digest: {count}, oldest first.\n"]
    for row in rows:
        parts.append(
            f"\n== {one_line(row.subject)}\n   {row.created_at:%Y-%m-%d %H:%M} UTC, {row.kind}\n\n"
            + _entry(settings, row)
        )
    text = "".join(parts) + _footer(settings, Delivery.DIGEST)
    return _message(settings, to, f"[Fabriek] Daily digest: {count}", text, now)


def _preferences(session: Session, user_id: int) -> NotificationSettingsRow:
    """The user's settings row, created with the defaults when there is none yet, so a
    digest's time can be kept (a concurrent first save by the user wins)."""
    row = session.get(NotificationSettingsRow, user_id)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = NotificationSettingsRow(user_id=user_id, delivery=Delivery.DIGEST.value, muted=[])
            session.add(row)
        session.commit()
        return row
    except IntegrityError:
        found = session.get(NotificationSettingsRow, user_id)
        assert found is not None
        return found


def send_due_email(session: Session, now: datetime, settings: Settings) -> int:
    """E-mail what is due: each unsent notification of people with `immediate` delivery on
    its own; for `digest` people (the default) everything unsent in one e-mail, if their
    last digest is 24 hours old or there was none. Muted kinds, and everything of people
    with delivery `none`, are marked handled without e-mail. Returns how many e-mails the
    SMTP server accepted. An unreachable server logs one warning and leaves the rest for
    the next round; a message the server refuses (a bad address) is skipped until then.
    Called by the process that dispatches, so one round runs at a time."""
    if not settings.smtp_host:
        return 0
    rows = session.execute(
        select(NotificationRow, UserRow.email)
        .join(UserRow, UserRow.id == NotificationRow.user_id)
        .where(NotificationRow.emailed_at.is_(None))
        .order_by(NotificationRow.user_id, NotificationRow.created_at, NotificationRow.id)
        .limit(BATCH)
    ).all()
    if not rows:
        return 0
    sent = 0
    with SmtpConnection(settings) as smtp:
        for user_id, group in groupby(rows, key=lambda r: r[0].user_id):
            pending = list(group)
            email = pending[0][1]
            notes = [n for n, _ in pending]
            try:
                sent += _deliver(session, smtp, settings, user_id, email, notes, now)
            except Refused as exc:
                session.rollback()
                log.warning("e-mail to user %s refused, retried next round: %s", user_id, exc)
            except OSError as exc:
                session.rollback()
                log.warning(
                    "e-mail: SMTP server %s:%s failed (%s); unsent notifications wait for "
                    "the next round",
                    settings.smtp_host,
                    settings.smtp_port,
                    one_line(str(exc)) or type(exc).__name__,
                )
                break
    return sent


def _deliver(
    session: Session,
    smtp: SmtpConnection,
    settings: Settings,
    user_id: int,
    email: str,
    notes: list[NotificationRow],
    now: datetime,
) -> int:
    """One person's unsent notifications; how many e-mails went out. Commits after each
    accepted message, so what the server took is never sent again."""
    prefs = session.get(NotificationSettingsRow, user_id)
    delivery = Delivery(prefs.delivery) if prefs else Delivery.DIGEST
    muted = set(prefs.muted) if prefs else set()
    wanted = [n for n in notes if delivery is not Delivery.NONE and n.kind not in muted]
    chosen = {n.id for n in wanted}
    skipped = [n for n in notes if n.id not in chosen]
    for note in skipped:
        # Handled: the person chose no e-mail for these; they stay in their list.
        note.emailed_at = now
    if skipped:
        session.commit()
    if not wanted:
        return 0
    if delivery is Delivery.IMMEDIATE:
        for note in wanted:
            smtp.send(_single(settings, email, note, now))
            note.emailed_at = now
            session.commit()
        return len(wanted)
    last = prefs.last_digest_at if prefs else None
    if last is not None and now - last < DIGEST_EVERY:
        return 0  # gathered into tomorrow's digest
    prefs = _preferences(session, user_id)
    smtp.send(_digest(settings, email, wanted, now))
    for note in wanted:
        note.emailed_at = now
    prefs.last_digest_at = now
    session.commit()
    return 1
