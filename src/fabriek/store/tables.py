"""The database tables, as SQLAlchemy 2 typed mappings.

Rows are the store's shape of the domain; services convert them to domain values and API
bodies with named functions. Every change of the schema comes with an Alembic migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamp(TypeDecorator[datetime]):
    """Always timezone-aware UTC, also on SQLite (which stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware times")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SiteRow(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    city: Mapped[str] = mapped_column(String(100))
    province: Mapped[str] = mapped_column(String(40))
    jurisdiction: Mapped[str] = mapped_column(String(8))
    pue: Mapped[float | None]
    wue_l_per_kwh: Mapped[float | None]
    grid_limit_kw: Mapped[float | None]
    engine: Mapped[str] = mapped_column(String(20), default="local")
    max_time_s: Mapped[int] = mapped_column(Integer, default=7 * 24 * 3600)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)

    node_groups: Mapped[list[NodeGroupRow]] = relationship(
        back_populates="site", cascade="all, delete-orphan", order_by="NodeGroupRow.id"
    )


class NodeGroupRow(Base):
    __tablename__ = "node_groups"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    count: Mapped[int]
    gpu_type: Mapped[str | None] = mapped_column(String(20))
    gpus_per_node: Mapped[int]
    cpus_per_node: Mapped[int]
    memory_gb_per_node: Mapped[int]

    site: Mapped[SiteRow] = relationship(back_populates="node_groups")


class OrganisationRow(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    province: Mapped[str] = mapped_column(String(40), index=True)
    hub: Mapped[str] = mapped_column(String(40), index=True)
    kvk_number: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(63), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class StaffRoleRow(Base):
    """A factory-wide role: reviewer, hub staff (of a hub), site operator (of a site), admin."""

    __tablename__ = "staff_roles"
    __table_args__ = (UniqueConstraint("user_id", "role", "scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str | None] = mapped_column(String(63))


class ApiTokenRow(Base):
    """A personal API token: only its hash is kept."""

    __tablename__ = "api_tokens"

    key: Mapped[str] = mapped_column(String(12), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp())
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp())


class ProjectRow(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class MembershipRow(Base):
    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class JobRow(Base):
    """A job: what was asked, where it went, and where it is now."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_site", "state", "site_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    command: Mapped[list[str] | None] = mapped_column(JSON)
    script: Mapped[str | None] = mapped_column(Text)
    container_image: Mapped[str | None] = mapped_column(String(500))
    gpus: Mapped[int]
    gpu_type: Mapped[str | None] = mapped_column(String(20))
    nodes: Mapped[int]
    cpus: Mapped[int]
    memory_gb: Mapped[int]
    time_limit_s: Mapped[int]
    environment: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    working_dir: Mapped[str | None] = mapped_column(String(1000))
    earliest_start: Mapped[datetime | None] = mapped_column(Timestamp())
    deadline: Mapped[datetime | None] = mapped_column(Timestamp())
    preemptible: Mapped[bool] = mapped_column(default=False)
    shiftable: Mapped[bool] = mapped_column(default=False)

    state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(500))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    # The GPU type the job got (it may have asked for any), and the GPUs per node the
    # scheduler gave it: [[node, gpus], ...].
    placed_gpu_type: Mapped[str | None] = mapped_column(String(20))
    placement: Mapped[list[list[Any]] | None] = mapped_column(JSON)
    # Set when the scheduler preempts the job for another: the job it makes room for.
    preempted_for: Mapped[int | None]
    handle: Mapped[str | None] = mapped_column(String(100))
    exit_code: Mapped[int | None]
    gpu_seconds: Mapped[float] = mapped_column(default=0.0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    submitted_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp())
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp())


class JobEventRow(Base):
    """Every state change of a job, with its time and reason: written with the change."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Timestamp())
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(500))


class InstallationRow(Base):
    """This factory's identity: one row, made when the store is created.

    Engines tag the jobs they start with it, so two stores that share a cluster (or a store
    recreated from scratch) never mistake each other's jobs for their own.
    """

    __tablename__ = "installation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
