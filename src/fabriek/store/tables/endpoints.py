"""Model endpoints: a project's model served behind the OpenAI-compatible gateway, the
replicas (service jobs) that serve it, the API keys that reach it and what each caller used.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class EndpointRow(Base):
    """One endpoint: a model (a registry version or a dataset) served by 0..N replicas."""

    __tablename__ = "endpoints"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    # What it serves, as the user named it (MODEL:VERSION or a dataset), and the registry's
    # version when it is one: which version answers is always known.
    model: Mapped[str] = mapped_column(String(200))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("ai_model_versions.id", ondelete="SET NULL")
    )
    image: Mapped[str | None] = mapped_column(String(500))
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_type: Mapped[str | None] = mapped_column(String(40))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"))
    min_replicas: Mapped[int] = mapped_column(Integer, default=1)
    max_replicas: Mapped[int] = mapped_column(Integer, default=1)
    # Seconds without a request before an endpoint with min_replicas 0 lets go of its GPUs.
    idle_s: Mapped[int] = mapped_column(Integer, default=900)
    state: Mapped[str] = mapped_column(String(20), default="active")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    last_request_at: Mapped[datetime | None] = mapped_column(Timestamp())
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp())


class EndpointReplicaRow(Base):
    """One replica of an endpoint: a long-running service job serving one model version."""

    __tablename__ = "endpoint_replicas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("ai_model_versions.id", ondelete="SET NULL")
    )
    # starting, healthy, unhealthy, draining, ended
    state: Mapped[str] = mapped_column(String(20), default="starting", index=True)
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    healthy_at: Mapped[datetime | None] = mapped_column(Timestamp())
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp())


class EndpointKeyRow(Base):
    """An API key a project made for its endpoints: shown once, only its hash is kept."""

    __tablename__ = "endpoint_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # The key's public part (shown in listings) and the SHA-256 of the whole key.
    prefix: Mapped[str] = mapped_column(String(20), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The endpoints (ids) it reaches; None: every endpoint of its project.
    endpoint_ids: Mapped[list[int] | None] = mapped_column(JSON)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer)
    tokens_per_month: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp())
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp())
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp())


class EndpointUsageRow(Base):
    """What one caller (a key, or a member with their own token) used of one endpoint on
    one day (UTC): requests and tokens, added to as requests end."""

    __tablename__ = "endpoint_usage"
    __table_args__ = (UniqueConstraint("endpoint_id", "caller", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("endpoints.id", ondelete="CASCADE"), index=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    # "key:<id>" or "user:<id>": one column, so that the unique constraint holds on both
    # databases (NULLs never collide in a unique constraint).
    caller: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[int | None] = mapped_column(
        ForeignKey("endpoint_keys.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    day: Mapped[date] = mapped_column(Date)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
