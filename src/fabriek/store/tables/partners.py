"""Partner factories: the jobs another Fabriek installation placed here, by its own id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp


class PartnerJobRow(Base):
    """A job a partner factory submitted here: which of its jobs it is and who submitted it
    there. The partner's job id is the submission's idempotency key: one job here per job
    there, however often the partner sends it."""

    __tablename__ = "partner_jobs"
    __table_args__ = (UniqueConstraint("partner", "foreign_job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner: Mapped[str] = mapped_column(String(63))
    foreign_job_id: Mapped[int]
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    # The person at the partner, as its signed assertion names them.
    person: Mapped[str] = mapped_column(String(200))
    person_name: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[datetime] = mapped_column(Timestamp())
