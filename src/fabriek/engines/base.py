"""The one small protocol every engine implements.

The control plane keeps the truth in its store; an engine only starts, watches and stops
jobs. Every call is synchronous and may raise `EngineUnavailable` when the cluster behind it
cannot be reached, so that callers keep jobs waiting instead of failing them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from fabriek.domain.accounts import JobOwner
from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import JobSpec


class EngineUnavailable(Exception):
    """The engine's cluster cannot be reached now; try again later."""


class EngineUnsure(EngineUnavailable):
    """A submission may have reached the cluster, but its answer did not come back: the job
    must be submitted again to the same engine (idempotent per job id), never elsewhere."""


class EngineRejected(Exception):
    """The engine refused this job for good (bad script, impossible request)."""


@dataclass(frozen=True)
class Placement:
    """Where the scheduler put a job: node names, or empty to let the engine choose."""

    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContainerImage:
    """The image a job runs in, as the control plane resolved it before handing it over.

    `reference` is what the site's runtime pulls: pinned by digest
    (`registry/project/name@sha256:...`) where the factory's registry answered, else the
    name as given. `username`/`password` are a short-lived pull credential for the
    factory's registry, scoped to what the job's project may pull; it is never stored."""

    reference: str
    digest: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class EngineJob:
    """A job handed to an engine: Fabriek's id tags it, so it is never started twice.

    `owner` is whom it runs as (an engine that runs jobs of several people refuses a job
    without one); `datasets_dir` holds its decrypted datasets, staged for it alone;
    `image` is the container image it runs in (None: on the site's own system)."""

    job_id: int
    spec: JobSpec
    placement: Placement = field(default_factory=Placement)
    owner: JobOwner | None = None
    datasets_dir: Path | None = None
    image: ContainerImage | None = None


@dataclass(frozen=True)
class Observation:
    """What the engine sees of one job now."""

    job_id: int
    handle: str
    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # GPU index (or id) -> seconds held; empty until the engine knows.
    gpu_seconds: Mapping[str, float] = field(default_factory=dict)
    # Readings of the job's GPUs' total-energy counters, oldest first, each
    # {"at": ISO time, "mj": {GPU: millijoules}}; empty where the engine measures none.
    energy_readings: Sequence[Mapping[str, Any]] = ()


class LogStream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


@runtime_checkable
class Engine(Protocol):
    """Start, watch and stop jobs on one site's cluster."""

    name: str

    def submit(self, job: EngineJob) -> str:
        """Start `job`; return the engine's handle for it. Idempotent per `job.job_id`."""
        ...

    def poll(self, handles: Mapping[int, str]) -> dict[int, Observation]:
        """Observe many jobs at once (Fabriek id -> handle). A job the engine no longer
        knows is reported as LOST with a reason."""
        ...

    def cancel(self, handle: str) -> None:
        """Stop a job; cancelling one that already ended is not an error."""
        ...

    def read_log(
        self, handle: str, stream: LogStream, offset: int = 0, limit: int = 1 << 20
    ) -> bytes:
        """Up to `limit` bytes of a job's output, from `offset`."""
        ...

    def known_jobs(self) -> dict[int, str]:
        """Every Fabriek job this engine knows (Fabriek id -> handle): how a control plane
        that crashed between submitting and recording finds what it already started."""
        ...


def poll_all(
    engine: Engine, handles: Mapping[int, str], batch: int = 5000
) -> dict[int, Observation]:
    """Poll in batches, so one huge cycle never builds one huge command line."""
    items: Sequence[tuple[int, str]] = list(handles.items())
    seen: dict[int, Observation] = {}
    for i in range(0, len(items), batch):
        seen.update(engine.poll(dict(items[i : i + batch])))
    return seen
