"""The federation platform (a Waldur marketplace) as a site sees it: the orders taken in,
the platform's resources and the Fabriek project of each, and the usage reported back."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class FederationOrderRow(Base):
    """One order of the platform, by its UUID: an order is applied once, however often the
    platform lists it. `reported_at` is set once the platform has been told the outcome."""

    __tablename__ = "federation_orders"

    order_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    resource_uuid: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    decided_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    reported_at: Mapped[datetime | None] = mapped_column(Timestamp())


class FederationResourceRow(Base):
    """A resource of Fabriek's offering on the platform and the project (with its one
    allocation) that holds it in Fabriek."""

    __tablename__ = "federation_resources"

    resource_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), unique=True)
    allocation_id: Mapped[int] = mapped_column(ForeignKey("allocations.id"), unique=True)
    access_mode: Mapped[str | None] = mapped_column(String(60))
    # The platform's decision (its approval of the create order): the turnaround's start.
    decided_at: Mapped[datetime | None] = mapped_column(Timestamp())
    created_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
    terminated_at: Mapped[datetime | None] = mapped_column(Timestamp())
    members_synced_at: Mapped[datetime | None] = mapped_column(Timestamp())


class FederationUsageRow(Base):
    """A figure reported for (resource, component, month). `amount` is what the platform
    was last sent; `revision` counts the sends (1, then one more per correction)."""

    __tablename__ = "federation_usage"

    resource_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    component: Mapped[str] = mapped_column(String(60), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    amount: Mapped[float] = mapped_column(Float)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    reported_at: Mapped[datetime] = mapped_column(Timestamp(), default=utcnow)
