"""Model endpoints: pure rules for what an endpoint may be, how many replicas it should have
and how a new model version replaces the old one without a moment with fewer healthy
replicas than before.

No I/O and no clock: the control plane's reconcile loop reads the store and the replicas'
metrics, asks these functions, and acts on their answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# DNS-label-like, so a name is safe in URLs, job names and the OpenAI `model` field.
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$|^[a-z]$")
# A registry version (MODEL:VERSION) or a dataset ([PROJECT/]NAME[@N]).
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@-]{0,150}(:[A-Za-z0-9][A-Za-z0-9._-]{0,39})?$")
MAX_REPLICAS = 64
MAX_GPUS_PER_REPLICA = 64
DEFAULT_IDLE_S = 900
# Waiting requests per replica above which one is added, and at or below which one goes.
SCALE_UP_QUEUE = 4.0
SCALE_DOWN_QUEUE = 0.5


class ReplicaState(StrEnum):
    """A replica's life: starting (its job queued or running, not yet answering /health),
    healthy (routed to), unhealthy (its job ended or stopped answering: replaced), draining
    (no longer routed to, ended when its requests are done), ended."""

    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    ENDED = "ended"


LIVE_STATES = (ReplicaState.STARTING, ReplicaState.HEALTHY)


# A replica whose job ended before it was ever healthy, this many times within the window,
# stops further starts (bad model files, a server that cannot start): no restart loop.
CRASH_LIMIT = 3
CRASH_WINDOW_S = 600


# A replica's job asks for a day, not for the endpoint's whole life: the scheduler reserves
# GPUs x time limit of the project's budget for a job, so a week-long replica could not start
# on an allocation with less than a week of GPU-hours left. Before its time limit a successor
# is started and the old replica is drained once the successor answers, as in a rollout.
REPLICA_TIME_LIMIT_S = 24 * 3600
RENEW_BEFORE_S = 3600


def needs_renewal(ends_at: datetime | None, now: datetime) -> bool:
    """Whether a replica whose job must end at `ends_at` (None: not started, no end yet) is
    due for a successor now: within RENEW_BEFORE_S of its time limit."""
    return ends_at is not None and (ends_at - now).total_seconds() <= RENEW_BEFORE_S


def may_start_more(crashed_recently: int) -> bool:
    """Whether replicas may still be started after `crashed_recently` replicas died before
    ever answering within the last CRASH_WINDOW_S."""
    return crashed_recently < CRASH_LIMIT


def name_problem(name: str) -> str | None:
    """Why `name` cannot name an endpoint, or None when it can."""
    if not _NAME.match(name):
        return (
            "an endpoint's name is 1 to 63 lower-case letters, digits and dashes, "
            "starting with a letter and not ending with a dash"
        )
    return None


def model_problem(model: str) -> str | None:
    """Why `model` cannot name what an endpoint serves, or None."""
    if not _MODEL.match(model):
        return "write MODEL:VERSION (a registered model version) or a dataset NAME[@VERSION]"
    return None


def split_model(model: str) -> tuple[str, str] | None:
    """(model, version) for a registry reference MODEL:VERSION; None for a dataset."""
    if ":" not in model:
        return None
    name, _, version = model.rpartition(":")
    return name, version


class EndpointDraft(BaseModel):
    """An endpoint as created through the API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=63)
    model: str = Field(
        min_length=1, max_length=200,
        description="MODEL:VERSION (a version in the model registry) or a dataset "
        "NAME[@VERSION] holding the model's files",
    )  # fmt: skip
    files: str | None = Field(
        default=None, max_length=200,
        description="for MODEL:VERSION: the dataset with its files (default: the dataset "
        "named MODEL)",
    )  # fmt: skip
    gpus: int = Field(default=1, ge=0, le=MAX_GPUS_PER_REPLICA)
    gpu_type: str | None = Field(default=None, max_length=40)
    image: str | None = Field(default=None, min_length=1, max_length=500)
    site: str | None = Field(default=None, max_length=100)
    min_replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    max_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    idle_s: int = Field(default=DEFAULT_IDLE_S, ge=10, le=30 * 86400)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if problem := name_problem(v):
            raise ValueError(problem)
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if problem := model_problem(v):
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _bounds(self) -> EndpointDraft:
        top = self.max_replicas if self.max_replicas is not None else max(1, self.min_replicas)
        if top < self.min_replicas:
            raise ValueError("max_replicas must be at least min_replicas")
        return self

    @property
    def top(self) -> int:
        """The most replicas: max_replicas, else min_replicas (at least one)."""
        return self.max_replicas if self.max_replicas is not None else max(1, self.min_replicas)


class EndpointChange(BaseModel):
    """What PATCH may change: a new model version (rolled out), the replica bounds, the idle
    time. Fields left out stay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = Field(default=None, min_length=1, max_length=200)
    files: str | None = Field(default=None, max_length=200)
    min_replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS)
    max_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    idle_s: int | None = Field(default=None, ge=10, le=30 * 86400)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v is not None and (problem := model_problem(v)):
            raise ValueError(problem)
        return v


def bounds_problem(min_replicas: int, max_replicas: int) -> str | None:
    """Why these bounds cannot hold, or None."""
    if not 0 <= min_replicas <= MAX_REPLICAS or not 1 <= max_replicas <= MAX_REPLICAS:
        return f"replicas are between 0 and {MAX_REPLICAS} (at most at least 1)"
    if max_replicas < min_replicas:
        return "max_replicas must be at least min_replicas"
    return None


@dataclass(frozen=True)
class ReplicaLoad:
    """What the reconcile loop knows of an endpoint's replicas now."""

    min_replicas: int
    max_replicas: int
    healthy: int
    starting: int
    # Requests waiting (vLLM's `vllm:num_requests_waiting`) summed over healthy replicas.
    waiting: float
    # Seconds since the last request reached the endpoint (None: never).
    idle_for_s: float | None
    idle_s: int
    # A request is waiting at the gateway for a replica (scale from zero).
    demand: bool = False


def desired_replicas(load: ReplicaLoad) -> int:
    """How many live replicas (healthy + starting) the endpoint should have.

    Up by one when the waiting queue per healthy replica passes SCALE_UP_QUEUE (one at a
    time, so a burst does not start a fleet before the first new one answers); down by one
    when it falls to SCALE_DOWN_QUEUE or below; to zero only with min_replicas 0 after
    `idle_s` without a request; never below one while a request waits."""
    live = load.healthy + load.starting
    high = max(load.max_replicas, 1)
    idle = load.idle_for_s is None or load.idle_for_s >= load.idle_s
    floor = load.min_replicas
    if load.demand or (live > 0 and not idle):
        floor = max(floor, 1)  # a waiting request, or recently used: keep one
    want = floor
    if load.healthy > 0 and load.starting == 0:
        per_replica = load.waiting / load.healthy
        if per_replica > SCALE_UP_QUEUE:
            want = live + 1
        elif per_replica <= SCALE_DOWN_QUEUE:
            want = live - 1
        else:
            want = live
    elif live > 0:
        want = live  # wait for the starting ones before judging the queue
    return max(min(want, high), min(floor, high))


@dataclass(frozen=True)
class RolloutReplica:
    """A live replica as the rollout sees it: its id, the model it serves, whether healthy."""

    replica_id: int
    model: str
    healthy: bool


@dataclass(frozen=True)
class RolloutStep:
    """What to do now: start this many replicas of the new model, drain these old ones."""

    start: int
    drain: tuple[int, ...]

    @property
    def idle(self) -> bool:
        return self.start == 0 and not self.drain


def rollout_step(replicas: Sequence[RolloutReplica], model: str, target: int) -> RolloutStep:
    """One step of a rolling update to `model` with `target` replicas wanted.

    While an old replica remains: when no new one is starting, start one; when a new one is
    healthy beyond what replaced earlier old ones, drain one old replica (unhealthy old ones
    first). The number of healthy replicas never drops below what it was: an old healthy
    replica is drained only when a new healthy one takes its place."""
    old = [r for r in replicas if r.model != model]
    new = [r for r in replicas if r.model == model]
    if not old:
        return RolloutStep(0, ())
    new_starting = sum(1 for r in new if not r.healthy)
    new_healthy = sum(1 for r in new if r.healthy)
    old_sick = [r.replica_id for r in old if not r.healthy]
    old_well = [r.replica_id for r in old if r.healthy]
    drain: list[int] = list(old_sick)  # never routed to: nothing to lose by ending them
    # New healthy replicas beyond the target's share each let one old healthy one go.
    spare = new_healthy + len(old_well) - max(target, 1)
    if spare > 0:
        drain.extend(old_well[:spare])
    start = 0
    if new_starting == 0 and new_healthy + new_starting < max(target, 1):
        start = 1
    return RolloutStep(start, tuple(drain))


WAITING_METRIC = "vllm:num_requests_waiting"
RUNNING_METRIC = "vllm:num_requests_running"


def queue_from_metrics(text: str, metric: str = WAITING_METRIC) -> float:
    """The samples of `metric` (by default vLLM's requests waiting) summed, from a Prometheus
    text exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(metric):
            continue
        rest = line[len(metric) :]
        if not rest or rest[0] not in "{ ":
            continue  # another metric with this prefix
        try:
            total += float(line.rsplit(None, 1)[-1])
        except ValueError:
            continue
    return total


class Replica(BaseModel):
    """One replica as the API shows it."""

    id: int
    job_id: int
    state: str
    model: str
    reason: str | None = None
    created_at: datetime
    healthy_at: datetime | None = None
    ended_at: datetime | None = None


class Endpoint(BaseModel):
    """An endpoint as the API shows it, with its live replicas and the model version that
    answers."""

    id: int
    project: str
    name: str
    model: str
    model_version_id: int | None = None
    image: str | None = None
    gpus: int
    gpu_type: str | None = None
    site: str | None = None
    min_replicas: int
    max_replicas: int
    idle_s: int
    state: str
    healthy_replicas: int
    replicas: list[Replica] = Field(default_factory=list)
    created_at: datetime
    last_request_at: datetime | None = None
