"""The endpoints a gateway caller may call, as OpenAI's `GET /v1/models` lists them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.gateway import KeyFacts
from fabriek.domain.roles import Principal
from fabriek.services.identity.projects import visible_projects
from fabriek.store.tables import MembershipRow, ProjectRow
from fabriek.store.tables.endpoints import EndpointRow


def callable_models(
    session: Session, key: KeyFacts | None, who: Principal | None
) -> list[dict[str, Any]]:
    """`PROJECT/ENDPOINT` of each live endpoint the key is scoped to (or, for a member's own
    token, of their projects), in OpenAI's model object shape."""
    query = (
        select(EndpointRow, ProjectRow.name)
        .join(ProjectRow, ProjectRow.id == EndpointRow.project_id)
        .where(EndpointRow.deleted_at.is_(None))
    )
    if key is not None:
        query = query.where(EndpointRow.project_id == key.project_id)
        if key.endpoint_ids is not None:
            query = query.where(EndpointRow.id.in_(key.endpoint_ids))
    elif who is not None and not who.is_admin:
        query = query.where(
            EndpointRow.project_id.in_(
                select(MembershipRow.project_id).where(MembershipRow.user_id == who.user_id)
            ),
            visible_projects(who, EndpointRow.project_id),
        )
    rows = session.execute(query.order_by(ProjectRow.name, EndpointRow.name)).all()
    return [
        {
            "id": f"{project}/{row.name}",
            "object": "model",
            "created": int(row.created_at.timestamp()),
            "owned_by": project,
            "root": row.model,
        }
        for row, project in rows
    ]
