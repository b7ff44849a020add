"""Use cases for sites: register, change, list, and look one up."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from fabriek.domain.errors import Forbidden, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.domain.sites import NodeGroupDraft, Site, SiteDraft, SitePatch, gpu_inventory
from fabriek.services import audit
from fabriek.services.identity.permissions import may_operate_site, require_admin
from fabriek.services.paging import Page, PageRequest, fetch_page
from fabriek.services.transactions import commit
from fabriek.store.tables import NodeGroupRow, SiteRow

# A site's fields that are its row's columns by name; the rest its node groups give.
_COLUMNS = Site.model_fields.keys() - {"node_groups", "gpus", "nodes"}


def site_from_row(row: SiteRow) -> Site:
    """The store's row as the domain's site."""
    groups = [NodeGroupDraft.model_validate(g, from_attributes=True) for g in row.node_groups]
    return Site.model_validate(
        {name: getattr(row, name) for name in _COLUMNS}
        | {
            "node_groups": groups,
            "gpus": gpu_inventory([g.to_group() for g in groups]),
            "nodes": sum(g.count for g in groups),
        }
    )


def site_row(draft: SiteDraft) -> SiteRow:
    """A new site's row, with its node groups' rows: what the operator (or the demo) asked
    for, field by field."""
    return SiteRow(
        **draft.model_dump(exclude={"node_groups", "province", "jurisdiction"}),
        province=draft.province.value,
        jurisdiction=draft.jurisdiction.value,
        node_groups=[NodeGroupRow(**g.model_dump()) for g in draft.node_groups],
    )


def register_site(
    session: Session, who: Principal, draft: SiteDraft, now: datetime | None = None
) -> Site:
    require_admin(who, "register a site")
    row = site_row(draft)
    session.add(row)
    audit.record_admin(
        session, who, now or datetime.now(UTC), "site-register", target=f"site {draft.name}",
        jurisdiction=draft.jurisdiction.value, engine=draft.engine,
    )  # fmt: skip
    commit(session, f"a site named {draft.name!r} already exists")
    return site_from_row(row)


def _site_row(session: Session, ref: str) -> SiteRow:
    query = select(SiteRow).options(selectinload(SiteRow.node_groups))
    query = query.where(SiteRow.id == int(ref)) if is_id(ref) else query.where(SiteRow.name == ref)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound("site", ref)
    return row


def get_site(session: Session, ref: str) -> Site:
    """A site by id or name; every signed-in user may see every site."""
    return site_from_row(_site_row(session, ref))


def change_site(
    session: Session, who: Principal, ref: str, patch: SitePatch, now: datetime | None = None
) -> Site:
    row = _site_row(session, ref)
    if not may_operate_site(who, row.name):
        raise Forbidden(f"only an admin or an operator of site {row.name} may change it")
    for key, value in patch.model_dump(exclude_unset=True).items():
        setattr(row, key, value)
    audit.record_admin(
        session, who, now or datetime.now(UTC), "site-change", target=f"site {row.name}",
        fields=patch.model_dump(mode="json", exclude_unset=True),
    )  # fmt: skip
    commit(session, "the change conflicts with another site")
    return site_from_row(row)


def list_sites(
    session: Session, page: PageRequest, province: str | None = None, gpu_type: str | None = None
) -> Page[Site]:
    query = select(SiteRow).options(selectinload(SiteRow.node_groups)).order_by(SiteRow.id)
    if province:
        query = query.where(SiteRow.province == province)
    if gpu_type:
        query = query.where(
            SiteRow.id.in_(select(NodeGroupRow.site_id).where(NodeGroupRow.gpu_type == gpu_type))
        )
    rows, total = fetch_page(session, query, page)
    return Page([site_from_row(r) for r in rows], total, page.limit, page.offset)
