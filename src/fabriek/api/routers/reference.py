"""Reference data: GPU types, provinces, AI hubs."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from fabriek.api.context import Caller
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import GpuTypeOut, HubOut
from fabriek.domain.geography import HUBS, Province
from fabriek.domain.gpus import GPU_TYPES

router = APIRouter(prefix=f"{API_PREFIX}/reference", tags=["reference"])


@router.get("/gpu-types", response_model=list[GpuTypeOut])
def gpu_types(_who: Caller) -> list[GpuTypeOut]:
    """GPU types with memory, TDP and peak dense BF16 from the vendors' data sheets."""
    return [GpuTypeOut(**asdict(g)) for g in GPU_TYPES.values()]


@router.get("/provinces", response_model=list[str])
def provinces(_who: Caller) -> list[str]:
    return [p.value for p in Province]


@router.get("/hubs", response_model=list[HubOut])
def hubs(_who: Caller) -> list[HubOut]:
    """The seven AI hubs and the provinces each serves."""
    return [
        HubOut(code=h.value, name=i.name, provinces=[p.value for p in i.provinces])
        for h, i in HUBS.items()
    ]
