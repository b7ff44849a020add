"""Energy: each job's hourly IT energy, and the grid's carbon and heat demand per hour."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp


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
