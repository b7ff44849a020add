"""Jobs: what a user asks to run (JobDraft), what runs (JobSpec), and what they see (Job);
their states and the rules between them are in domain/job_states.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fabriek.domain.ai_act.compute_warning import ComputeWarning
from fabriek.domain.ai_act.vocabulary import JobPurpose
from fabriek.domain.dataset_names import parse_dataset_ref
from fabriek.domain.inputs import CONTROL_PATTERN
from fabriek.domain.job_states import JobState


@dataclass(frozen=True)
class JobSpec:
    """Everything needed to run a job, independent of where it runs.

    Exactly one of `command` (argv) and `script` (a batch script's text) is set.
    `gpu_type` None means any type. Times are seconds; memory is in GB.
    """

    name: str
    command: tuple[str, ...] | None = None
    script: str | None = None
    container_image: str | None = None
    gpus: int = 0
    gpu_type: str | None = None
    nodes: int = 1
    cpus: int = 1
    memory_gb: int = 4
    time_limit_s: int = 3600
    environment: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    earliest_start: datetime | None = None
    deadline: datetime | None = None
    preemptible: bool = False
    shiftable: bool = False
    # A web app the job serves on this port (reached only through Fabriek's proxy), and
    # what it is ("jupyterlab", or None for any other app).
    web_port: int | None = None
    web_app: str | None = None


# --- What a user sends, and what they get back (validated values, no I/O). -----------------

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


COMMAND_MAX_ARGS = 1024
COMMAND_MAX_CHARS = 65_536
SCRIPT_MAX_CHARS = 262_144
ENV_MAX_ENTRIES = 256
ENV_VALUE_MAX_CHARS = 32_768


class JobDraft(BaseModel):
    """A job as submitted through the API. Exactly one of `command` and `script`.

    Resource fields left out are taken from the script's `#SBATCH` lines, else defaults;
    given ones win over the script, as sbatch's own command-line options do.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The sizes are the factory's input limits (docs/security.md, "Input limits"): room for
    # any real job, and a listing of jobs stays small.
    project: str | None = Field(
        default=None, max_length=100, description="default: your first project"
    )
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=CONTROL_PATTERN)
    command: list[Annotated[str, Field(max_length=COMMAND_MAX_CHARS)]] | None = Field(
        default=None,
        max_length=COMMAND_MAX_ARGS,
        description=f"argv; at most {COMMAND_MAX_CHARS} characters in all (a longer "
        "program belongs in a script)",
    )
    script: str | None = Field(
        default=None, max_length=SCRIPT_MAX_CHARS, description="a batch script"
    )
    container_image: str | None = Field(default=None, min_length=1, max_length=500)
    gpus: int | None = Field(default=None, ge=0, le=100_000)
    gpus_per_node: int | None = Field(
        default=None, ge=0, le=1024, description="GPUs on each node; the total is this x nodes"
    )
    gpu_type: str | None = Field(
        default=None, max_length=100, description="e.g. h100; none: any type"
    )
    nodes: int | None = Field(default=None, ge=1, le=10_000)
    cpus: int | None = Field(default=None, ge=1, le=100_000)
    memory_gb: int | None = Field(default=None, ge=1, le=1_000_000)
    time_limit: Annotated[str, Field(max_length=64)] | int | None = Field(
        default=None, description="seconds, or Slurm's --time formats, or 30m / 2h / 1d"
    )
    environment: dict[
        Annotated[str, Field(min_length=1, max_length=256, pattern=CONTROL_PATTERN)],
        Annotated[str, Field(max_length=ENV_VALUE_MAX_CHARS)],
    ] = Field(default_factory=dict, max_length=ENV_MAX_ENTRIES)
    working_dir: str | None = Field(default=None, max_length=1000)
    earliest_start: datetime | None = None
    deadline: datetime | None = None
    preemptible: bool = False
    shiftable: bool = Field(default=False, description="may be moved in time for carbon/heat")
    web_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="a web app's port inside the job, opened at /apps/<id>/ through Fabriek",
    )  # fmt: skip
    web_app: str | None = Field(
        default=None, pattern=r"^[a-z][a-z0-9-]{0,39}$", description="e.g. jupyterlab"
    )
    datasets: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="datasets the job reads: NAME (its project's), PROJECT/NAME (granted to "
        "it), optionally @VERSION; they are decrypted for the job at $FABRIEK_DATASETS/NAME",
    )
    model: str | None = Field(
        default=None,
        max_length=300,
        description="the model version the job works on, NAME:VERSION",
    )
    purpose: JobPurpose | None = Field(
        default=None, description="why it runs for the model: decides whether its compute counts"
    )
    acknowledge_systemic_risk: bool = Field(
        default=False,
        description="confirm notifying the Commission when the job takes its model past the "
        "systemic-risk line (EU AI Act Art. 52)",
    )

    @field_validator("command")
    @classmethod
    def _command_size(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and sum(len(arg) for arg in v) > COMMAND_MAX_CHARS:
            raise ValueError(
                f"the arguments hold more than {COMMAND_MAX_CHARS} characters in all; "
                "put a longer program in a script"
            )
        return v

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, v: list[str]) -> list[str]:
        names = [parse_dataset_ref(ref).name for ref in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each dataset once: {', '.join(twice)} named more than once")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or not v[0].strip()):
            raise ValueError("the command is empty: give the program to run and its arguments")
        return v

    @field_validator("environment")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(_ENV_NAME, key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
        return v

    @model_validator(mode="after")
    def _one_thing_to_run(self) -> JobDraft:
        # A JupyterLab job may leave its command out: the control plane fills it in.
        notebook = self.web_app == "jupyterlab" and self.command is None and self.script is None
        if (self.command is None) == (self.script is None) and not notebook:
            raise ValueError("give exactly one of 'command' and 'script'")
        for moment in (self.earliest_start, self.deadline):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("times need a zone, e.g. 2026-03-01T12:00:00Z")
        if self.earliest_start and self.deadline and self.deadline <= self.earliest_start:
            raise ValueError("the deadline must come after the earliest start")
        if self.model is not None and self.purpose is None:
            known = ", ".join(p.value for p in JobPurpose)
            raise ValueError(f"a job for a model needs its 'purpose': one of {known}")
        if self.purpose is not None and self.model is None:
            raise ValueError("a 'purpose' needs the 'model' (NAME:VERSION) it is for")
        return self


class JobEvent(BaseModel):
    at: datetime
    from_state: JobState | None
    to_state: JobState
    reason: str | None


class Job(BaseModel):
    """A job as its owner and their project see it."""

    id: int
    project: str
    user: str
    name: str
    state: JobState
    reason: str | None
    site: str | None
    gpus: int
    gpu_type: str | None
    nodes: int
    cpus: int
    memory_gb: int
    time_limit_s: int
    command: list[str] | None
    has_script: bool
    container_image: str | None
    working_dir: str | None
    earliest_start: datetime | None
    deadline: datetime | None
    preemptible: bool
    shiftable: bool
    exit_code: int | None
    gpu_hours: float
    web_port: int | None = Field(default=None, description="its web app's port, if any")
    web_app: str | None = Field(default=None, description="its web app, e.g. jupyterlab")
    image_digest: str | None = Field(
        default=None, description="the exact image it runs (sha256:...), where known"
    )
    datasets: list[str] = Field(default_factory=list, description="PROJECT/NAME@VERSION read")
    model: str | None = Field(default=None, description="the model version, NAME:VERSION")
    purpose: str | None = Field(default=None, description="why it runs for the model")
    ai_act_warnings: list[ComputeWarning] = Field(
        default_factory=list,
        description="at submission: EU AI Act compute lines the job may take its model past",
    )
    notes: list[str] = Field(
        default_factory=list,
        description="at submission: the script's #SBATCH lines Fabriek set aside, and why "
        "(kept in the job's events)",
    )
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
