"""The support centre (migration 0013): tickets, their conversation, attachments and
outgoing mail; the expertise network and the knowledge base (migration 0014)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class SupportTicketRow(Base):
    """A support ticket: who opened it about what, which desk holds it (`queue`: a hub's
    code or `central`), where it stands, and its context as the user consented to share it.
    `sector` and `organisation_id` are the author's when it was opened, for the reports."""

    __tablename__ = "support_tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(40))
    priority: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), index=True)
    queue: Mapped[str] = mapped_column(String(40), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    about: Mapped[str | None] = mapped_column(String(300))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    sector: Mapped[str | None] = mapped_column(String(40))
    share_context: Mapped[bool] = mapped_column(Boolean, default=False)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The secret half of the ticket's reply address (support+T42-<key>@...).
    reply_key: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp())
    first_answer_at: Mapped[datetime | None] = mapped_column(Timestamp())
    # The last time it was resolved or closed (None while open).
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp())
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp())
    # When a broken service level was escalated (each once).
    first_answer_breach_at: Mapped[datetime | None] = mapped_column(Timestamp())
    resolution_breach_at: Mapped[datetime | None] = mapped_column(Timestamp())


class SupportMessageRow(Base):
    """One message of a ticket's conversation: a reply, or an internal note (staff only).
    `email_message_id` is the Message-ID of an e-mail it came from: one e-mail piped in
    twice is added once."""

    __tablename__ = "support_messages"
    __table_args__ = (UniqueConstraint("ticket_id", "email_message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    staff: Mapped[bool] = mapped_column(Boolean, default=False)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    via: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    email_message_id: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(Timestamp())


class SupportEventRow(Base):
    """A step in a ticket's history: a status change, a handover to another desk, a new
    priority or category, an escalated breach."""

    __tablename__ = "support_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(Timestamp())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))
    from_value: Mapped[str | None] = mapped_column(String(40))
    to_value: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)


class SupportAttachmentRow(Base):
    """A file attached to a ticket. Its bytes are on disk under the state dir (`stored_as`,
    a name Fabriek chose), never in the database."""

    __tablename__ = "support_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_as: Mapped[str] = mapped_column(String(64), unique=True)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(Timestamp())


class SupportMailRow(Base):
    """An e-mail the support centre sends (a reply, an acknowledgement, a bounce), queued in
    the transaction of what it tells and sent, with retries, by the housekeeping round. A
    message the server refused for good keeps `failed_at` and its last error."""

    __tablename__ = "support_mail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("support_tickets.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(String(300))
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    message_id: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp())
    failed_at: Mapped[datetime | None] = mapped_column(Timestamp())
    last_error: Mapped[str | None] = mapped_column(String(500))


class ExpertRow(Base):
    """An expert of a hub's network; skills in `expert_skills`, codes of the vocabulary."""

    __tablename__ = "experts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    organisation: Mapped[str] = mapped_column(String(200))
    hub: Mapped[str] = mapped_column(String(40), index=True)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    hours_per_month: Mapped[float] = mapped_column(Double)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class ExpertSkillRow(Base):
    __tablename__ = "expert_skills"

    expert_id: Mapped[int] = mapped_column(
        ForeignKey("experts.id", ondelete="CASCADE"), primary_key=True
    )
    skill: Mapped[str] = mapped_column(String(63), primary_key=True, index=True)


class ExpertiseRequestRow(Base):
    """A request for expertise. `ticket_id` names a support ticket without a foreign key
    (tickets live in their own tables); the requester's province, hub and sector are kept
    as they were when it was made, so reports do not shift when an organisation moves."""

    __tablename__ = "expertise_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    skills: Mapped[list[str]] = mapped_column(JSON)
    hours: Mapped[float] = mapped_column(Double)
    description: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(8))
    ticket_id: Mapped[int | None] = mapped_column(Integer, index=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    province: Mapped[str] = mapped_column(String(40))
    hub: Mapped[str] = mapped_column(String(40), index=True)
    sector: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class ExpertAssignmentRow(Base):
    """An expert assigned to a request, reserving hours of one month's availability."""

    __tablename__ = "expert_assignments"
    __table_args__ = (UniqueConstraint("request_id", "expert_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("expertise_requests.id", ondelete="CASCADE"), index=True
    )
    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id"), index=True)
    month: Mapped[date] = mapped_column(Date)
    hours: Mapped[float] = mapped_column(Double)
    assigned_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    assigned_at: Mapped[datetime] = mapped_column(Timestamp())


class ConsultationRow(Base):
    """Hours an expert delivered on a request on one day; `hub` (the expert's then) and
    `sector` (the requester's) are kept for the hubs' reports."""

    __tablename__ = "consultations"
    __table_args__ = (Index("ix_consultations_hub_day", "hub", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("expertise_requests.id", ondelete="CASCADE"), index=True
    )
    expert_id: Mapped[int] = mapped_column(ForeignKey("experts.id"), index=True)
    day: Mapped[date] = mapped_column(Date)
    hours: Mapped[float] = mapped_column(Double)
    note: Mapped[str] = mapped_column(Text, default="")
    hub: Mapped[str] = mapped_column(String(40))
    sector: Mapped[str] = mapped_column(String(40))
    logged_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    logged_at: Mapped[datetime] = mapped_column(Timestamp())


class ArticleRow(Base):
    """A knowledge-base article in Markdown. Its full-text index is the store's own and is
    not mapped here: on PostgreSQL a generated `search` tsvector column (the 'dutch' or
    'english' configuration by `language`) with a GIN index; on SQLite the FTS5 tables
    `kb_search_nl` and `kb_search_en` (see `fabriek.services.support.knowledge`)."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    language: Mapped[str] = mapped_column(String(2))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    links: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The slug of the same article in the other language, if there is one.
    translation: Mapped[str | None] = mapped_column(String(80))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    updated_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp())
    updated_at: Mapped[datetime] = mapped_column(Timestamp())
