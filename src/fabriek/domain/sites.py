"""Sites: a data centre with one cluster, its nodes and the GPUs in them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from fabriek.domain.geography import Province
from fabriek.domain.gpus import GPU_TYPES


class Jurisdiction(StrEnum):
    """Whose law the site's data falls under: the Netherlands, or another EU/EEA state."""

    NL = "nl"
    EU = "eu"


@dataclass(frozen=True)
class NodeGroup:
    """Identical nodes of a site: `count` nodes, each with the same GPUs, CPUs and memory."""

    name: str
    count: int
    gpu_type: str | None
    gpus_per_node: int
    cpus_per_node: int
    memory_gb_per_node: int


def gpu_inventory(groups: list[NodeGroup]) -> dict[str, int]:
    """GPUs of a site by type: the sum over its node groups."""
    totals: dict[str, int] = {}
    for g in groups:
        if g.gpu_type and g.gpus_per_node:
            totals[g.gpu_type] = totals.get(g.gpu_type, 0) + g.count * g.gpus_per_node
    return totals


# --- The shapes the API and services exchange (validated values, no I/O). -------------------

Slug = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,62}$"),
    Field(description="lowercase letters, digits and dashes; starts with a letter; 2-63 long"),
]


class NodeGroupDraft(BaseModel):
    """Identical nodes as an operator declares them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug
    count: int = Field(ge=1, le=100_000, description="number of identical nodes")
    gpu_type: str | None = Field(default=None, description="GPU type code, e.g. h100")
    gpus_per_node: int = Field(default=0, ge=0, le=64)
    cpus_per_node: int = Field(ge=1, le=4096)
    memory_gb_per_node: int = Field(ge=1, le=65_536)

    @field_validator("gpu_type")
    @classmethod
    def _known_gpu(cls, v: str | None) -> str | None:
        if v is None:
            return None
        code = v.strip().lower()
        if code not in GPU_TYPES:
            raise ValueError(f"unknown GPU type {v!r}; known: {', '.join(sorted(GPU_TYPES))}")
        return code

    @model_validator(mode="after")
    def _gpus_have_a_type(self) -> NodeGroupDraft:
        if self.gpus_per_node and not self.gpu_type:
            raise ValueError("gpu_type is required when gpus_per_node > 0")
        if self.gpu_type and not self.gpus_per_node:
            raise ValueError("gpus_per_node must be > 0 when gpu_type is given")
        return self

    def to_group(self) -> NodeGroup:
        return NodeGroup(
            self.name,
            self.count,
            self.gpu_type,
            self.gpus_per_node,
            self.cpus_per_node,
            self.memory_gb_per_node,
        )


# A grid bidding zone as carbon-intensity series name it: NL, DE, FR, GB, DK-DK1, ...
GridZone = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,5})?$"),
    Field(description="electricity grid zone whose hourly carbon intensity applies, e.g. NL"),
]


class SiteDraft(BaseModel):
    """A new site as its operator registers it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Slug
    city: str = Field(min_length=1, max_length=100)
    province: Province
    jurisdiction: Jurisdiction = Jurisdiction.NL
    pue: float | None = Field(default=None, ge=1.0, le=3.0, description="declared PUE")
    wue_l_per_kwh: float | None = Field(default=None, ge=0.0, le=10.0, description="L per kWh")
    grid_limit_kw: float | None = Field(default=None, gt=0, description="grid connection, kW")
    heat_reuse_share: float | None = Field(
        default=None, ge=0.0, le=1.0, description="share of facility energy reused as heat"
    )
    grid_zone: GridZone = "NL"
    renewable_share: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="share of the site's energy covered by its renewable instruments "
        "(guarantees of origin, PPA, on-site): market-based carbon",
    )
    residual_mix_g_per_kwh: float | None = Field(
        default=None,
        ge=0.0,
        le=2000.0,
        description="residual-mix factor for the energy its instruments do not cover, g CO2e/kWh",
    )
    gdpr_ready: bool = Field(
        default=False, description="declared ready to process personal data under the GDPR"
    )
    engine: str = Field(default="local", pattern=r"^(local|slurm|slurmrestd|partner)$")
    max_time_s: int = Field(default=7 * 24 * 3600, ge=60, le=365 * 24 * 3600)
    node_groups: list[NodeGroupDraft] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _unique_groups(self) -> SiteDraft:
        names = [g.name for g in self.node_groups]
        if len(names) != len(set(names)):
            raise ValueError("node group names must be unique within a site")
        return self


class SitePatch(BaseModel):
    """Fields an operator may change later; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    city: str | None = Field(default=None, min_length=1, max_length=100)
    pue: float | None = Field(default=None, ge=1.0, le=3.0)
    wue_l_per_kwh: float | None = Field(default=None, ge=0.0, le=10.0)
    grid_limit_kw: float | None = Field(default=None, gt=0)
    heat_reuse_share: float | None = Field(default=None, ge=0.0, le=1.0)
    grid_zone: GridZone | None = None
    renewable_share: float | None = Field(default=None, ge=0.0, le=1.0)
    residual_mix_g_per_kwh: float | None = Field(default=None, ge=0.0, le=2000.0)
    gdpr_ready: bool | None = None
    max_time_s: int | None = Field(default=None, ge=60, le=365 * 24 * 3600)


class Site(BaseModel):
    """A site as the factory knows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    city: str
    province: Province
    jurisdiction: Jurisdiction
    pue: float | None
    wue_l_per_kwh: float | None
    grid_limit_kw: float | None
    heat_reuse_share: float | None = None
    grid_zone: str = "NL"
    renewable_share: float | None = None
    residual_mix_g_per_kwh: float | None = None
    gdpr_ready: bool = False
    engine: str
    max_time_s: int
    node_groups: list[NodeGroupDraft]
    gpus: dict[str, int] = Field(description="GPUs by type")
    nodes: int
    created_at: datetime
