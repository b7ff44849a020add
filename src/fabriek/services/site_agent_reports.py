"""What a site's agent reports, kept; and the operator's view of the agent: when it was
last seen, whether its site is in step with the desired state, the drift it found and
what it could not do."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.audit import AuditAction
from fabriek.domain.roles import Principal
from fabriek.domain.site_agent_status import AgentStatus, ChangeOut, ReportOut
from fabriek.domain.site_state import AgentReport
from fabriek.services import audit
from fabriek.services.accounts.desired_state import site_desired_state
from fabriek.services.site_agents import AgentSite, require_operator
from fabriek.store.tables import SiteAgentReportRow, SiteAgentRow

RECENT_REPORTS = 10


def record_report(session: Session, site: AgentSite, report: AgentReport, now: datetime) -> int:
    """Keep the agent's report (committed); drift and errors also go on the audit trail.
    Returns the report's number."""
    body = report.to_json()
    row = SiteAgentReportRow(
        site_id=site.id,
        generation=report.generation,
        applied=body["applied"],
        drift=body["drift"],
        errors=body["errors"],
        received_at=now,
    )
    session.add(row)
    session.flush()
    if report.drift or report.errors:
        audit.record(
            session, action=AuditAction.SITE_AGENT, at=now, actor_id=None,
            actor=f"site-agent {site.name}", target=f"site {site.name}",
            detail={"report": row.id, "generation": report.generation,
                    "drift": body["drift"], "errors": body["errors"]},
        )  # fmt: skip
    session.commit()
    return row.id


def _changes(items: list[dict[str, Any]]) -> list[ChangeOut]:
    return [ChangeOut.model_validate(c) for c in items]


def _report_out(row: SiteAgentReportRow) -> ReportOut:
    return ReportOut(
        id=row.id,
        generation=row.generation,
        received_at=row.received_at,
        applied=_changes(row.applied),
        drift=_changes(row.drift),
        errors=_changes(row.errors),
    )


def agent_status(
    session: Session,
    site_ref: str,
    who: Principal,
    access: AccessConfig,
    id_base: int,
    state_dir: Path,
    now: datetime,
) -> AgentStatus:
    """The site's agent as its operator (or an admin) sees it."""
    site = require_operator(session, site_ref, who, "see its agent")
    name, site_id = site.name, site.id
    agent = session.get(SiteAgentRow, site_id)
    has_token, last_seen = agent is not None, agent.last_seen_at if agent else None
    generation = site_desired_state(session, name, access, id_base, state_dir, now).generation
    rows = list(
        session.scalars(
            select(SiteAgentReportRow)
            .where(SiteAgentReportRow.site_id == site_id)
            .order_by(SiteAgentReportRow.id.desc())
            .limit(RECENT_REPORTS)
        )
    )
    reports = [_report_out(r) for r in rows]
    latest = reports[0] if reports else None
    return AgentStatus(
        site=name,
        has_token=has_token,
        last_seen_at=last_seen,
        generation=generation,
        applied_generation=latest.generation if latest else None,
        in_step=latest is not None and latest.generation == generation and not latest.errors,
        drift=latest.drift if latest else [],
        errors=latest.errors if latest else [],
        reports=reports,
    )
