"""The database tables, as SQLAlchemy 2 typed mappings.

Rows are the store's shape of the domain; services convert them to domain values and API
bodies with named functions. Every change of the schema comes with an Alembic migration.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
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
    # Share of the facility's energy delivered as reused heat (declared; a heat meter's
    # figures go in the annual report).
    heat_reuse_share: Mapped[float | None]
    # The electricity grid's bidding zone (NL, DE, ...): whose hourly carbon intensity counts.
    grid_zone: Mapped[str] = mapped_column(String(8), default="NL", server_default="NL")
    # Share of the site's energy covered by the renewable instruments it holds (guarantees of
    # origin, PPA, on-site) and the residual mix for the rest: market-based carbon.
    renewable_share: Mapped[float | None]
    residual_mix_g_per_kwh: Mapped[float | None]
    # Declared ready for personal data under the GDPR (processing agreement, DPIA, controls).
    gdpr_ready: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
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
    # Where it is established (ISO 3166-1 alpha-2): some tracks require the EU or EEA.
    country: Mapped[str] = mapped_column(String(2), default="NL")
    # Its internet domain (tudelft.nl): how a federated sign-in's organisation claim
    # (SURFconext's schac_home_organization) finds it.
    domain: Mapped[str | None] = mapped_column(String(253), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class UserRow(Base):
    __tablename__ = "users"
    # Who they are at an OpenID Connect provider: a subject is unique only per issuer.
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_sub"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(63), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(500))
    oidc_sub: Mapped[str | None] = mapped_column(String(255))
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


class OidcLoginRow(Base):
    """An OpenID Connect sign-in under way: kept from the redirect to the provider until
    its callback takes it (once), so any API process can finish it."""

    __tablename__ = "oidc_logins"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), index=True)


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
    # The last run's GPU energy-counter readings from the engine (see `Observation`).
    energy_readings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The datasets the job reads, as resolved at submission (version, residency, personal
    # data or not): what the scheduler's residency rule and the staging need.
    datasets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # The allocation the job is charged to and its GPU type's charge factor, both fixed
    # when the scheduler starts it.
    allocation_id: Mapped[int | None] = mapped_column(ForeignKey("allocations.id"), index=True)
    charge_factor: Mapped[float | None]
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


class JobEnergyRow(Base):
    """IT energy of one job run in one clock hour (UTC), written in the transaction that
    records the run's stop; `source` says whether it was measured or modelled, and how."""

    __tablename__ = "job_energy"
    __table_args__ = (Index("ix_job_energy_hour_site", "hour", "site_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    hour: Mapped[datetime] = mapped_column(Timestamp())
    gpu_seconds: Mapped[float]
    gpu_kwh: Mapped[float]
    cpu_kwh: Mapped[float]
    source: Mapped[str] = mapped_column(String(60))


class GridIntensityRow(Base):
    """Hourly carbon intensity of a grid zone's electricity (g CO2e per kWh), loaded from a
    series such as Electricity Maps'; `source` names the series and its version."""

    __tablename__ = "grid_intensity"

    zone: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[datetime] = mapped_column(Timestamp(), primary_key=True)
    g_per_kwh: Mapped[float]
    source: Mapped[str] = mapped_column(String(200), default="")


class HeatDemandRow(Base):
    """Hourly heat demand in a zone, 0..1 of the year's peak (district heat wanted), from
    a typical-year profile mapped onto the calendar (`fabriek heat load`); `source` names
    the profile, its column and version."""

    __tablename__ = "heat_demand"

    zone: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[datetime] = mapped_column(Timestamp(), primary_key=True)
    demand: Mapped[float]
    source: Mapped[str] = mapped_column(String(200), default="")


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


class DatasetRow(Base):
    """Data a project registered, with its terms; its bytes are in `dataset_versions`."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    classification: Mapped[str] = mapped_column(String(40))
    residency: Mapped[str] = mapped_column(String(20))
    legal_basis: Mapped[str | None] = mapped_column(String(40))
    special_category_condition: Mapped[str | None] = mapped_column(String(40))
    purpose: Mapped[str | None] = mapped_column(Text)
    licence: Mapped[str | None] = mapped_column(String(200))
    provenance: Mapped[str | None] = mapped_column(Text)
    retention_until: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class OrganisationKeyRow(Base):
    """One version of an organisation's key, wrapped by the master key (which is not in the
    database). A retired version's material is destroyed once its data keys are re-wrapped."""

    __tablename__ = "organisation_keys"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Which master key wrapped it (a public id, not the key).
    master_key_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(Timestamp())


class DatasetVersionRow(Base):
    """One immutable version of a dataset: its size and SHA-256 (of the plaintext), the
    stored object holding its ciphertext, and its own data key wrapped by an organisation
    key. Deleting the row destroys the only copy of the data key (crypto-shredding)."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number"),
        ForeignKeyConstraint(
            ["organisation_id", "key_version"],
            ["organisation_keys.organisation_id", "organisation_keys.version"],
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    object_name: Mapped[str] = mapped_column(String(32), unique=True)
    wrapped_data_key: Mapped[bytes] = mapped_column(LargeBinary)
    organisation_id: Mapped[int] = mapped_column(Integer, index=True)
    key_version: Mapped[int]
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class DatasetGrantRow(Base):
    """A project other than the owner may read a dataset; `cross_organisation` records that
    the owner consented to a project of another organisation."""

    __tablename__ = "dataset_grants"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    cross_organisation: Mapped[bool] = mapped_column(Boolean, default=False)
    granted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class AiModelRow(Base):
    """An AI model a project registered, with what the EU AI Act asks of its provider
    (see `fabriek.domain.ai_models`)."""

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


# -- the support centre: tickets, their conversation, attachments, outgoing mail (migration 0013) -


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


# -- the expertise network and the knowledge base (migration 0014) --------------------------------


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
    `kb_search_nl` and `kb_search_en` (see `fabriek.services.knowledge`)."""

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
