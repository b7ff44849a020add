"""A site's load on its grid connection, hour by hour: what the operator compares with the
connection's limit (Dutch grid congestion makes the limit a hard one).

An hour's average IT power is the IT energy of the job runs that ended (the metering
ledger, kWh in the hour = average kW) plus the modelled power of the runs still going,
for the part of the hour they ran. The grid sees that times the site's PUE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from fabriek.domain.energy import hour_shares

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Running:
    """A job run still going: since when, and its modelled IT power (kW)."""

    started_at: datetime
    it_kw: float


def hourly_it_kw(
    hours: Iterable[datetime],
    ledger_kwh: Mapping[datetime, float],
    running: Iterable[Running],
    now: datetime,
) -> list[float]:
    """Average IT power (kW) in each clock hour of `hours` (UTC, on the hour): the ledger's
    energy in it plus each running job's power × the share of the hour it has run (so the
    hour in progress counts only up to `now`, as a whole hour's average)."""
    wanted = list(hours)
    extra: dict[datetime, float] = {}
    for job in running:
        start = max(job.started_at, wanted[0]) if wanted else job.started_at
        for hour, seconds in hour_shares(start, now):
            extra[hour] = extra.get(hour, 0.0) + job.it_kw * seconds / SECONDS_PER_HOUR
    return [ledger_kwh.get(h, 0.0) + extra.get(h, 0.0) for h in wanted]


def hours_before(now: datetime, count: int) -> list[datetime]:
    """The `count` clock hours up to and including the one `now` is in, oldest first."""
    top = now.replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=count - 1 - i) for i in range(count)]
