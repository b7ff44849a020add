"""The hub desk: what an AI hub's staff look after. The organisations and projects of the
provinces the hub serves and what they used; support tickets join once they exist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.errors import Forbidden, InvalidInput
from fabriek.domain.geography import HUBS, Hub, HubInfo
from fabriek.domain.roles import Principal, Role
from fabriek.domain.usage import GroupBy, Step, UsageLine, roll_up
from fabriek.services.energy.usage import energy_records
from fabriek.store.tables import MembershipRow, OrganisationRow, ProjectRow


@dataclass(frozen=True)
class HubOrganisation:
    id: int
    name: str
    kind: str
    province: str
    projects: int


@dataclass(frozen=True)
class HubProject:
    name: str
    title: str
    organisation: str
    members: int


@dataclass(frozen=True)
class HubDesk:
    """One hub's desk for one year. `usage_by_*` hold the year's totals per organisation and
    project (those that used nothing are absent); `months`, the hub's total per month."""

    hub: HubInfo
    hubs: list[HubInfo]
    year: int
    organisations: list[HubOrganisation]
    projects: list[HubProject]
    usage_by_organisation: dict[str, UsageLine]
    usage_by_project: dict[str, UsageLine]
    months: list[UsageLine]


def desk_hubs(who: Principal) -> list[HubInfo]:
    """The hubs whose desk the caller may open: every hub for admins, their own for hub
    staff, none for anyone else."""
    if who.is_admin:
        return list(HUBS.values())
    mine = who.scopes(Role.HUB_STAFF)
    return [info for hub, info in HUBS.items() if hub.value in mine]


def hub_desk(
    session: Session, who: Principal, hub: str | None, year: int | None, now: datetime
) -> HubDesk:
    """The desk of `hub` (default: the caller's first) for `year` (default: this one)."""
    hubs = desk_hubs(who)
    if not hubs:
        raise Forbidden("the hub desk is for the staff of an AI hub and for admins")
    if hub is None:
        chosen = hubs[0]
    else:
        try:
            wanted = Hub(hub)
        except ValueError:
            known = ", ".join(h.value for h in Hub)
            raise InvalidInput.on("hub", f"no hub {hub!r}; known: {known}") from None
        allowed = [info for info in hubs if info.hub is wanted]
        if not allowed:
            raise Forbidden(f"only the staff of {HUBS[wanted].name} and admins may open its desk")
        chosen = allowed[0]
    year = now.year if year is None else year
    if not 2000 <= year <= 2100:
        raise InvalidInput.on("year", f"{year} is not a year this factory has data for")
    in_hub = OrganisationRow.hub == chosen.hub.value
    projects_of = (
        select(func.count())
        .where(ProjectRow.organisation_id == OrganisationRow.id)
        .correlate(OrganisationRow)
        .scalar_subquery()
    )
    organisations = [
        HubOrganisation(org_id, name, kind, province, count)
        for org_id, name, kind, province, count in session.execute(
            select(OrganisationRow.id, OrganisationRow.name, OrganisationRow.kind,
                   OrganisationRow.province, projects_of)
            .where(in_hub)
            .order_by(OrganisationRow.name)
        )
    ]  # fmt: skip
    members_of = (
        select(func.count())
        .where(MembershipRow.project_id == ProjectRow.id)
        .correlate(ProjectRow)
        .scalar_subquery()
    )
    projects = [
        HubProject(name, title, organisation, members)
        for name, title, organisation, members in session.execute(
            select(ProjectRow.name, ProjectRow.title, OrganisationRow.name, members_of)
            .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
            .where(in_hub)
            .order_by(OrganisationRow.name, ProjectRow.name)
        )
    ]
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    records = energy_records(session, start, end, in_hub)
    return HubDesk(
        hub=chosen,
        hubs=hubs,
        year=year,
        organisations=organisations,
        projects=projects,
        usage_by_organisation={
            u.group: u for u in roll_up(records, GroupBy.ORGANISATION, Step.TOTAL)
        },
        usage_by_project={u.group: u for u in roll_up(records, GroupBy.PROJECT, Step.TOTAL)},
        months=roll_up(records, GroupBy.FACTORY, Step.MONTH),
    )
