"""The EU AI Act: AI models and their compute ledger, AI systems, their risk
classification, and regulatory sandboxes."""

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
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class AiModelRow(Base):
    """An AI model a project registered, with what the EU AI Act asks of its provider
    (see `fabriek.domain.ai_act.compute_lines`)."""

    __tablename__ = "ai_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    # The legal entity that places the model on the market.
    provider: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(30))
    intended_purpose: Mapped[str] = mapped_column(Text, default="")
    licence: Mapped[str | None] = mapped_column(String(200))
    openness: Mapped[str] = mapped_column(String(20))
    monetised: Mapped[bool] = mapped_column(Boolean, default=False)
    input_modalities: Mapped[list[str]] = mapped_column(JSON, default=list)
    output_modalities: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class AiModelVersionRow(Base):
    """One version of a model; `documentation` holds the provider's own answers to the
    documentation form (field key -> text)."""

    __tablename__ = "ai_model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(
        ForeignKey("ai_models.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(40))
    parameters: Mapped[int | None] = mapped_column(BigInteger)
    active_parameters: Mapped[int | None] = mapped_column(BigInteger)
    training_tokens: Mapped[int | None] = mapped_column(BigInteger)
    architecture: Mapped[str] = mapped_column(String(30))
    release_date: Mapped[date | None] = mapped_column(Date)
    distribution: Mapped[str | None] = mapped_column(String(500))
    documentation: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class AiModelBaseRow(Base):
    """A base model a version was fine-tuned or merged from: a registered version, or an
    external model with its declared training compute (None: unknown)."""

    __tablename__ = "ai_model_bases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("ai_model_versions.id", ondelete="CASCADE"), index=True
    )
    base_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("ai_model_versions.id"), index=True
    )
    external_name: Mapped[str | None] = mapped_column(String(200))
    external_training_flop: Mapped[float | None] = mapped_column(Double)
    external_systemic_risk: Mapped[bool] = mapped_column(Boolean, default=False)


class AiModelJobRow(Base):
    """A job run for a model version, with its purpose (which decides whether its compute
    counts) and its projected compute when submitted."""

    __tablename__ = "ai_model_jobs"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("ai_model_versions.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(30))
    projected_flop: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class AiJobReportRow(Base):
    """What a job reported of itself: its model FLOP utilisation and the training tokens
    it processed (the newest report replaces the one before)."""

    __tablename__ = "ai_job_reports"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    mfu: Mapped[float | None] = mapped_column(Double)
    tokens: Mapped[int | None] = mapped_column(BigInteger)
    reported_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reported_at: Mapped[datetime] = mapped_column(Timestamp())


class AiThresholdEventRow(Base):
    """A submission projected to take a model version past a compute line: the warning
    given, and for the systemic-risk line who acknowledged it and the notification date."""

    __tablename__ = "ai_threshold_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("ai_model_versions.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    line: Mapped[str] = mapped_column(String(40))
    before_flop: Mapped[float] = mapped_column(Double)
    after_flop: Mapped[float] = mapped_column(Double)
    at: Mapped[datetime] = mapped_column(Timestamp())
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    notify_by: Mapped[date | None] = mapped_column(Date)


class AiSystemRow(Base):
    """An AI system a project builds or deploys, on a registered model version or not.
    `risk_assessment_id` is the link the risk classification (migration 0012) fills."""

    __tablename__ = "ai_systems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    role: Mapped[str] = mapped_column(String(30))
    intended_purpose: Mapped[str] = mapped_column(Text, default="")
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("ai_model_versions.id"))
    risk_assessment_id: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    # The legal entity that places the system on the market (migration 0012).
    provider: Mapped[str | None] = mapped_column(String(200))


class SandboxRow(Base):
    """An allocation that is part of a national AI regulatory sandbox (AI Act Art. 57-58)."""

    __tablename__ = "sandboxes"

    allocation_id: Mapped[int] = mapped_column(
        ForeignKey("allocations.id", ondelete="CASCADE"), primary_key=True
    )
    # The national competent authority that runs the sandbox, its member state and its
    # own reference for this participant.
    authority: Mapped[str] = mapped_column(String(200))
    member_state: Mapped[str] = mapped_column(String(2))
    reference: Mapped[str | None] = mapped_column(String(100))
    marked_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class SandboxDocumentRow(Base):
    """A sandbox plan or exit report as filed (text or Markdown); every filing is kept and
    the newest of a kind is the current one."""

    __tablename__ = "sandbox_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    allocation_id: Mapped[int] = mapped_column(
        ForeignKey("sandboxes.allocation_id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    media_type: Mapped[str] = mapped_column(String(40))
    content: Mapped[str] = mapped_column(Text)
    filed_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    filed_at: Mapped[datetime] = mapped_column(Timestamp())


class AiClassificationRow(Base):
    """One EU AI Act risk classification of an AI system: the rule book's version it was
    last walked under and, once finished, its tiers and result as shown then (the evidence
    an Art. 6(4) assessment needs). A system's latest one is its current classification."""

    __tablename__ = "ai_classifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_id: Mapped[int] = mapped_column(
        ForeignKey("ai_systems.id", ondelete="CASCADE"), index=True
    )
    rules_version: Mapped[str] = mapped_column(String(64))
    started_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[datetime] = mapped_column(Timestamp())
    updated_at: Mapped[datetime] = mapped_column(Timestamp())
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp())
    tiers: Mapped[list[str]] = mapped_column(JSON, default=list)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AiRiskAnswerRow(Base):
    """One recorded answer of a classification, with the articles it rests on and who gave
    it when; a changed answer replaces the row."""

    __tablename__ = "ai_risk_answers"

    classification_id: Mapped[int] = mapped_column(
        ForeignKey("ai_classifications.id", ondelete="CASCADE"), primary_key=True
    )
    question: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    cites: Mapped[list[str]] = mapped_column(JSON, default=list)
    answered_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    answered_at: Mapped[datetime] = mapped_column(Timestamp())
