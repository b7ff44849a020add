"""The audit trail: append-only, hash-chained entries and the trail's head."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp


class AuditRow(Base):
    """One entry of the append-only audit trail, hash-chained to the entry before it (see
    `fabriek.domain.audit`). No foreign keys: the trail outlives the users, projects and
    datasets it names, and must never stop their deletion."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(Timestamp(), index=True)
    action: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None]
    actor: Mapped[str | None] = mapped_column(String(63), index=True)
    project_id: Mapped[int | None] = mapped_column(index=True)
    dataset: Mapped[str | None] = mapped_column(String(200), index=True)
    target: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The audit trail's newest sequence number and hash: one row (id 1). Every append
    updates it, which serialises appends, and `verify` compares the trail's end with it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))
