"""Access: calls, proposals and their reviews, allocations and the GPU-hour ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class CallRow(Base):
    """A call for proposals on one track."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    track: Mapped[str] = mapped_column(String(40))
    opens_at: Mapped[datetime] = mapped_column(Timestamp())
    closes_at: Mapped[datetime | None] = mapped_column(Timestamp())
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class ProposalRow(Base):
    """A proposal to a call, from draft to decision."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    abstract: Mapped[str] = mapped_column(Text)
    sector: Mapped[str] = mapped_column(String(60))
    # Raw GPU-hours asked per GPU type, and their normalised sum.
    requested: Mapped[dict[str, float]] = mapped_column(JSON)
    requested_gpu_hours: Mapped[float]
    months: Mapped[int | None]
    datasets: Mapped[list[str]] = mapped_column(JSON, default=list)
    ai_act: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    residency: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), index=True)
    admin_check: Mapped[str | None] = mapped_column(String(500))
    submitted_at: Mapped[datetime | None] = mapped_column(Timestamp())
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp())
    decision: Mapped[str | None] = mapped_column(String(20))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    awarded: Mapped[dict[str, float] | None] = mapped_column(JSON)
    # When the access team was told the turnaround promise was broken (once).
    breach_flagged_at: Mapped[datetime | None] = mapped_column(Timestamp())
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class ReviewRow(Base):
    """One review of a proposal: assigned, then scored (or declined for a conflict)."""

    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("proposal_id", "reviewer_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(
        ForeignKey("proposals.id", ondelete="CASCADE"), index=True
    )
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    score: Mapped[int | None]
    feasible: Mapped[bool | None]
    comment: Mapped[str] = mapped_column(Text, default="")
    conflict: Mapped[str | None] = mapped_column(String(500))
    assigned_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(Timestamp())


class AllocationRow(Base):
    """A project's GPU-hour budget (normalised) from `starts_at` to `ends_at`."""

    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    track: Mapped[str] = mapped_column(String(40))
    gpu_hours: Mapped[float]
    awarded: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    # Site names the budget may be spent on; empty: any site.
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    preemptible: Mapped[bool] = mapped_column(default=False)
    tier: Mapped[int] = mapped_column(default=0)
    starts_at: Mapped[datetime] = mapped_column(Timestamp())
    ends_at: Mapped[datetime] = mapped_column(Timestamp())
    final_report: Mapped[str | None] = mapped_column(Text)
    final_report_at: Mapped[datetime | None] = mapped_column(Timestamp())
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    # Suspended (see UserRow.suspended_at): no new jobs are charged to it, here or in Slurm.
    suspended_at: Mapped[datetime | None] = mapped_column(Timestamp())
    suspended_reason: Mapped[str | None] = mapped_column(String(500))


class ChargeRow(Base):
    """The ledger: GPU time a job used, charged to an allocation when the job stopped."""

    __tablename__ = "charges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocations.id"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    gpus: Mapped[int]
    gpu_type: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(Timestamp())
    ended_at: Mapped[datetime] = mapped_column(Timestamp())
    raw_gpu_hours: Mapped[float]
    factor: Mapped[float]
    gpu_hours: Mapped[float]
