"""Jobs: what was asked and where it stands, with every state change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fabriek.store.tables.base import Base, Timestamp, utcnow


class JobRow(Base):
    """A job: what was asked, where it went, and where it is now."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_site", "state", "site_id"),
        # A job read from a site's Slurm accounting is known by its cluster, Slurm job id
        # and submit time (Slurm reuses ids): one job, however often it is harvested.
        UniqueConstraint("slurm_cluster", "slurm_job_id", "slurm_submitted_at"),
    )

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
    # "fabriek" (submitted through the API, CLI or portal) or "slurm" (typed with sbatch at
    # a site and harvested from its accounting).
    origin: Mapped[str] = mapped_column(String(20), default="fabriek", server_default="fabriek")
    slurm_cluster: Mapped[str | None] = mapped_column(String(63))
    slurm_job_id: Mapped[int | None] = mapped_column(BigInteger)
    slurm_submitted_at: Mapped[datetime | None] = mapped_column(Timestamp())
    # The image the job ran, by digest (sha256:...): what exactly ran, whatever its tag
    # points at later.
    image_digest: Mapped[str | None] = mapped_column(String(100))
    # A web app the job serves (a notebook, TensorBoard): its port inside the job, reached
    # only through Fabriek's authenticated proxy; `web_app` names it ("jupyterlab", ...).
    web_port: Mapped[int | None]
    web_app: Mapped[str | None] = mapped_column(String(40))
    # When its web app last saw activity (a notebook's kernels): idle ones are stopped.
    last_active_at: Mapped[datetime | None] = mapped_column(Timestamp())


class JobEventRow(Base):
    """Every state change of a job, with its time and reason: written with the change."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Timestamp())
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(500))
