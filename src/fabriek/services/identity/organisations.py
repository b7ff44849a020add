"""Use cases for organisations: onboard, list, look up."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import NotFound
from fabriek.domain.geography import hub_for_province
from fabriek.domain.identity.people import Organisation, OrganisationChange, OrganisationDraft
from fabriek.domain.roles import Principal
from fabriek.services import audit
from fabriek.services.identity.permissions import require_hub
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.transactions import commit
from fabriek.store.tables import OrganisationRow


def organisation_from_row(row: OrganisationRow) -> Organisation:
    return Organisation.model_validate(row)


def onboard_organisation(
    session: Session, who: Principal, draft: OrganisationDraft, now: datetime | None = None
) -> Organisation:
    """Admins anywhere, hub staff for their own hub's region."""
    hub = draft.hub or hub_for_province(draft.province)
    require_hub(who, hub.value, "onboard an organisation there")
    row = OrganisationRow(
        name=draft.name,
        kind=draft.kind.value,
        province=draft.province.value,
        hub=hub.value,
        kvk_number=draft.kvk_number,
        domain=draft.domain,
    )
    session.add(row)
    audit.record_admin(
        session, who, now or datetime.now(UTC), "organisation-onboard",
        target=f"organisation {draft.name}", kind=row.kind, hub=row.hub,
    )  # fmt: skip
    clash = f"an organisation named {draft.name!r} already exists"
    if draft.domain:
        clash = f"an organisation named {draft.name!r} or with domain {draft.domain} already exists"
    commit(session, clash)
    return organisation_from_row(row)


def change_organisation(
    session: Session, who: Principal, org_id: int, change: OrganisationChange, now: datetime
) -> Organisation:
    """Set an organisation's domain: admins, or staff of its hub. Audited, since whoever
    signs in through a federation naming that domain joins the organisation."""
    row = session.get(OrganisationRow, org_id)
    if row is None:
        raise NotFound("organisation", org_id)
    require_hub(who, row.hub, "change an organisation there")
    audit.record_as(
        session, who, AuditAction.ADMIN, now, target=f"organisation:{row.id}",
        detail={"change": "organisation-domain", "from": row.domain, "to": change.domain},
    )  # fmt: skip
    row.domain = change.domain
    commit(session, f"another organisation already has the domain {change.domain}")
    return organisation_from_row(row)


def get_organisation(session: Session, org_id: int) -> Organisation:
    row = session.get(OrganisationRow, org_id)
    if row is None:
        raise NotFound("organisation", org_id)
    return organisation_from_row(row)


def list_organisations(
    session: Session,
    page: PageRequest,
    province: str | None = None,
    hub: str | None = None,
    kind: str | None = None,
    name: str | None = None,
) -> Page[Organisation]:
    query = select(OrganisationRow).order_by(OrganisationRow.id)
    if province:
        query = query.where(OrganisationRow.province == province)
    if hub:
        query = query.where(OrganisationRow.hub == hub)
    if kind:
        query = query.where(OrganisationRow.kind == kind)
    if name:
        query = query.where(OrganisationRow.name.ilike(f"%{name}%"))
    rows, total = fetch_page(session, query, page)
    return Page([organisation_from_row(r) for r in rows], total, page.limit, page.offset)
