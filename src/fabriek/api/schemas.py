"""Response shapes the domain does not already give: pages, health, reference lists."""

from __future__ import annotations

from typing import Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from fabriek.services.paging import Page, PageRequest

T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """One page of a listing; `total` counts every match."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @classmethod
    def of(cls, page: Page[T]) -> PageOut[T]:
        return cls(items=page.items, total=page.total, limit=page.limit, offset=page.offset)


async def paging(
    limit: int = Query(100, ge=1, le=1000, description="items per page"),
    offset: int = Query(0, ge=0, description="items to skip"),
) -> PageRequest:
    return PageRequest(limit=limit, offset=offset)


class Health(BaseModel):
    status: str
    database: str | None = None
    version: str


class GpuTypeOut(BaseModel):
    code: str
    name: str
    vendor: str
    memory_gb: int
    tdp_w: int
    peak_bf16_tflops: float


class HubOut(BaseModel):
    code: str
    name: str
    provinces: list[str]


class WhoAmI(BaseModel):
    id: int
    username: str
    full_name: str
    staff_roles: list[str]
    projects: dict[str, str]
    assurance: str | None = Field(
        default=None,
        description="the assurance of the federated sign-in this token descends from "
        "('medium+mfa', 'none'); null: a token not made through such a sign-in",
    )
    withheld_roles: list[str] = Field(
        default_factory=list,
        description="roles held that this token may not use, each with what its sign-in lacked",
    )
