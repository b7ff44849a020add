"""The factory at a glance: what the public page shows."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from fabriek.domain.geography import HUBS, Province
from fabriek.domain.sites import Site
from fabriek.services.sites import site_from_row
from fabriek.store.tables import OrganisationRow, ProjectRow, SiteRow


@dataclass(frozen=True)
class RegionCount:
    key: str
    label: str
    organisations: int
    projects: int


@dataclass(frozen=True)
class Overview:
    sites: list[Site]
    gpus: dict[str, int]
    by_province: list[RegionCount]
    by_hub: list[RegionCount]


def factory_overview(session: Session) -> Overview:
    """Sites with their GPUs, and organisations and projects served per province and hub."""
    rows = session.scalars(
        select(SiteRow).options(selectinload(SiteRow.node_groups)).order_by(SiteRow.id)
    )
    sites = [site_from_row(r) for r in rows]
    gpus: dict[str, int] = {}
    for s in sites:
        for t, n in s.gpus.items():
            gpus[t] = gpus.get(t, 0) + n
    org_counts: dict[tuple[str, str], int] = {
        (p, h): n
        for p, h, n in session.execute(
            select(OrganisationRow.province, OrganisationRow.hub, func.count()).group_by(
                OrganisationRow.province, OrganisationRow.hub
            )
        ).all()
    }
    project_counts: dict[tuple[str, str], int] = {
        (p, h): n
        for p, h, n in session.execute(
            select(OrganisationRow.province, OrganisationRow.hub, func.count(ProjectRow.id))
            .join(ProjectRow, ProjectRow.organisation_id == OrganisationRow.id)
            .group_by(OrganisationRow.province, OrganisationRow.hub)
        ).all()
    }

    def total(counts: dict[tuple[str, str], int], index: int, key: str) -> int:
        return sum(n for k, n in counts.items() if k[index] == key)

    by_province = [
        RegionCount(
            p.value, p.value, total(org_counts, 0, p.value), total(project_counts, 0, p.value)
        )
        for p in Province
    ]
    by_hub = [
        RegionCount(
            h.value, info.name, total(org_counts, 1, h.value), total(project_counts, 1, h.value)
        )
        for h, info in HUBS.items()
    ]
    return Overview(sites, gpus, by_province, by_hub)
