"""Sites: the data centres, their node groups, and this installation's identity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fabriek.store.tables.base import Base, Timestamp, utcnow


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


class InstallationRow(Base):
    """This factory's identity: one row, made when the store is created.

    Engines tag the jobs they start with it, so two stores that share a cluster (or a store
    recreated from scratch) never mistake each other's jobs for their own.
    """

    __tablename__ = "installation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class SiteAgentRow(Base):
    """A site's agent: the hash of its site token, when it last called, what it last said."""

    __tablename__ = "site_agents"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(Timestamp())


class SiteAgentReportRow(Base):
    """What a site agent did for one desired state, and what it found changed by hand."""

    __tablename__ = "site_agent_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    generation: Mapped[str] = mapped_column(String(64))
    applied: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    drift: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)


class SiteHarvestRow(Base):
    """Where the harvest of a site's Slurm accounting stands: records up to `through` are in
    the ledger (later corrections are taken by looking back a margin before it)."""

    __tablename__ = "site_harvests"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    through: Mapped[datetime | None] = mapped_column(Timestamp())
    last_run_at: Mapped[datetime | None] = mapped_column(Timestamp())
    records_seen: Mapped[int] = mapped_column(Integer, default=0)
    jobs_added: Mapped[int] = mapped_column(Integer, default=0)
    # Records whose Slurm user or account is no person or project of Fabriek.
    unmatched: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
