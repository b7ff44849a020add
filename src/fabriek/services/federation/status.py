"""Where the site stands with the federation platform, from the store alone (it needs no
call to the platform, nor its client)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.access.allocations import MonthlyTurnaround
from fabriek.domain.federation import OrderOutcome
from fabriek.services.access.origins import ordered_turnaround
from fabriek.store.tables import FederationOrderRow, FederationResourceRow, FederationUsageRow


@dataclass(frozen=True)
class FederationStatus:
    """Where the site stands with the platform, from the store."""

    orders: dict[str, int]
    unreported: list[str]
    held: list[tuple[str, str]]
    failed: list[tuple[str, str]]
    resources: int
    terminated: int
    usage_figures: int
    corrections: int
    last_report: datetime | None
    turnaround: list[MonthlyTurnaround] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "orders": self.orders,
            "unreported": self.unreported,
            "held": [{"order": o, "reason": r} for o, r in self.held],
            "failed": [{"order": o, "reason": r} for o, r in self.failed],
            "resources": self.resources,
            "terminated": self.terminated,
            "usage_figures": self.usage_figures,
            "corrections": self.corrections,
            "last_report": self.last_report.isoformat() if self.last_report else None,
            "turnaround": [m.model_dump() for m in self.turnaround],
        }


def status(session: Session) -> FederationStatus:
    """Counts of orders by outcome, what waits, what was reported, and the median turnaround
    of ordered allocations per month of the platform's decision."""
    orders = {
        o: n
        for o, n in session.execute(
            select(FederationOrderRow.outcome, func.count()).group_by(FederationOrderRow.outcome)
        )
    }
    rows = list(
        session.scalars(select(FederationOrderRow).order_by(FederationOrderRow.received_at))
    )
    resources = list(session.scalars(select(FederationResourceRow)))
    figures = list(session.scalars(select(FederationUsageRow)))
    return FederationStatus(
        orders=orders,
        unreported=[
            r.order_uuid
            for r in rows
            if r.reported_at is None and r.outcome != OrderOutcome.HELD.value
        ],
        held=[(r.order_uuid, r.reason or "") for r in rows if r.outcome == OrderOutcome.HELD.value],
        failed=[
            (r.order_uuid, r.reason or "") for r in rows if r.outcome == OrderOutcome.FAILED.value
        ],
        resources=len(resources),
        terminated=sum(1 for r in resources if r.terminated_at is not None),
        usage_figures=len(figures),
        corrections=sum(f.revision - 1 for f in figures),
        last_report=max((f.reported_at for f in figures), default=None),
        turnaround=ordered_turnaround(session),
    )
