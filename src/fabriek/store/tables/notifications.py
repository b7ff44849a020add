"""Notifications: messages to people, once-only notices, and how each wants them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class NotificationRow(Base):
    """A message to one person: listed in the portal and API, e-mailed (digest or at once)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_unsent", "emailed_at", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(Timestamp())
    emailed_at: Mapped[datetime | None] = mapped_column(Timestamp())


class NoticeSentRow(Base):
    """A once-only notice (a budget threshold, an end date, a turnaround breach) that was
    given: its key is unique, so two cycles can never give it twice."""

    __tablename__ = "notices_sent"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class NotificationSettingsRow(Base):
    """How one person wants their notifications e-mailed: `delivery` digest (daily, the
    default), immediate or none; `muted` kinds are not e-mailed at all."""

    __tablename__ = "notification_settings"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    delivery: Mapped[str] = mapped_column(String(20), default="digest")
    muted: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_digest_at: Mapped[datetime | None] = mapped_column(Timestamp())
