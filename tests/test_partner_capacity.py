"""Work exchanged with partner factories, as users see it, on SQLite and PostgreSQL, through
the HTTP API and the portal: the usage rollups count the carbon a partner reported for the
jobs it ran (at its own grid's intensity), and the public dashboard shows per month the
GPU-hours given to and received from partners.

The jobs are written to the store as the partner engine and the partner routes leave them
(tests/test_partner_factories.py runs those with two real installations)."""

from __future__ import annotations

import html
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from fabriek.domain.disclosure import MINIMUM_ORGANISATIONS
from fabriek.domain.usage import GroupBy, Step, roll_up
from fabriek.services.demo.seed import demo_token
from fabriek.services.energy.usage import energy_records
from fabriek.services.public_dashboard import public_dashboard
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    GridIntensityRow,
    JobEnergyRow,
    JobRow,
    MembershipRow,
    PartnerJobRow,
    ProjectRow,
    SiteRow,
)
from tests.conftest import BACKENDS
from tests.servers import LiveServer, live_server, postgres_unavailable, prepare, throwaway_database

PARTNER_SITE = "partner-juelich"
PARTNER_PUE = 1.2
# This factory's intensity for the partner's zone, far from what the partner reported.
OWN_G_PER_KWH = 600.0
# What the partner reported per job (g CO2e at its grid's intensity), one figure partial.
REPORTED = [(100.0, True), (250.0, True), (999.0, False)]


@dataclass
class Exchanged:
    server: LiveServer
    month: str
    abroad: list[int]  # this factory's jobs that ran at the partner, as REPORTED
    start: datetime
    end: datetime


def _month_before(now: datetime) -> datetime:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=10, hour=8)


def _job(project_id: int, user_id: int, site_id: int, **extra: object) -> JobRow:
    return JobRow(
        project_id=project_id, user_id=user_id, name="exchanged", command=["true"], gpus=2,
        nodes=1, cpus=4, memory_gb=16, time_limit_s=3600, state="completed", site_id=site_id,
        **extra,
    )  # fmt: skip


def _exchange(url: str, at: datetime) -> list[int]:
    """Three organisations' jobs at the partner site (two hours each, 2 GPUs, 1 kWh IT an
    hour), with the partner's carbon figures; and one job run here for a partner (4 GPU-h)."""
    engine = make_engine(url)
    with make_sessions(engine)() as session:
        site = SiteRow(
            name=PARTNER_SITE, city="Jülich", province="Limburg", jurisdiction="eu",
            pue=PARTNER_PUE, wue_l_per_kwh=0.0, heat_reuse_share=0.0, grid_zone="DE",
            engine="partner",
        )  # fmt: skip
        session.add(site)
        session.flush()
        teams = session.execute(
            select(ProjectRow.id, ProjectRow.organisation_id, MembershipRow.user_id)
            .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
            .order_by(ProjectRow.id)
        ).all()
        one_per_org: dict[int, tuple[int, int]] = {}
        for project_id, org_id, user_id in teams:
            one_per_org.setdefault(org_id, (project_id, user_id))
        senders = list(one_per_org.values())[:3]
        assert len(senders) == MINIMUM_ORGANISATIONS == 3
        abroad: list[int] = []
        for (project_id, user_id), (grams, complete) in zip(senders, REPORTED, strict=True):
            partner = {"gpu_hours": 4.0, "it_kwh": 2.0, "facility_kwh": 2.3,
                       "carbon_g": grams, "carbon_complete": complete, "grid_zones": ["DE"]}  # fmt: skip
            job = _job(project_id, user_id, site.id, gpu_seconds=4 * 3600.0,
                       energy_readings=[{"partner": partner}])  # fmt: skip
            session.add(job)
            session.flush()
            abroad.append(job.id)
            session.add_all(
                JobEnergyRow(job_id=job.id, site_id=site.id, hour=at + timedelta(hours=h),
                             gpu_seconds=2 * 3600.0, gpu_kwh=0.8, cpu_kwh=0.2,
                             source="measured at partner")
                for h in range(2)
            )  # fmt: skip
        session.add_all(
            GridIntensityRow(zone="DE", hour=at + timedelta(hours=h), g_per_kwh=OWN_G_PER_KWH,
                             source="test")
            for h in range(2)
        )  # fmt: skip
        home = session.scalars(select(SiteRow).where(SiteRow.engine != "partner")).first()
        assert home is not None
        project_id, user_id = senders[0]
        for_partner = _job(project_id, user_id, home.id, gpu_seconds=4 * 3600.0)
        session.add(for_partner)
        session.flush()
        session.add(PartnerJobRow(partner="factory-b", foreign_job_id=41, job_id=for_partner.id,
                                  person="someone", submitted_at=at))  # fmt: skip
        session.add(JobEnergyRow(job_id=for_partner.id, site_id=home.id, hour=at,
                                 gpu_seconds=4 * 3600.0, gpu_kwh=1.0, cpu_kwh=0.0,
                                 source="modelled"))  # fmt: skip
        session.commit()
    engine.dispose()
    return abroad


@pytest.fixture(scope="module", params=BACKENDS)
def exchanged(request: pytest.FixtureRequest) -> Iterator[Exchanged]:
    if request.param == "postgresql" and (why := postgres_unavailable()):
        pytest.skip(why)
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(request.param, Path(tmp)) as url:
        prepare(url)
        at = _month_before(datetime.now(UTC))
        abroad = _exchange(url, at)
        start = at.replace(day=1, hour=0)
        end = (start + timedelta(days=32)).replace(day=1)
        settings = Settings(database_url=url, state_dir=Path(tmp) / "state")
        with live_server(settings) as server:
            yield Exchanged(server, at.strftime("%Y-%m"), abroad, start, end)


def test_the_rollups_count_the_partner_s_reported_carbon(exchanged: Exchanged) -> None:
    admin = {"Authorization": f"Bearer {demo_token('admin').token}"}
    with httpx.Client(base_url=exchanged.server.url, headers=admin, timeout=30) as c:
        answer = c.get("/api/v1/usage", params={"by": "job", "month": exchanged.month})
    assert answer.status_code == 200, answer.text
    lines = {line["group"]: line for line in answer.json()}
    facility = 2.0 * PARTNER_PUE
    for job_id, (grams, complete) in zip(exchanged.abroad, REPORTED, strict=True):
        line = lines[str(job_id)]
        assert line["kwh_it"] == pytest.approx(2.0) and line["gpu_hours"] == pytest.approx(4.0)
        assert line["kwh_facility"] == pytest.approx(facility)
        # A complete figure is the partner's; a partial one would be too low: this
        # factory's own intensity for the partner's zone counts instead.
        expected = grams / 1000 if complete else facility * OWN_G_PER_KWH / 1000
        assert line["kg_co2e"] == pytest.approx(expected)
        assert line["kwh_without_intensity"] == 0


def test_the_public_dashboard_sums_the_same_carbon(exchanged: Exchanged) -> None:
    """The dashboard's monthly sums (made in the database) count the partner's figures as
    the hourly rollup does."""
    engine = make_engine(exchanged.server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            d = public_dashboard(session, exchanged.start, exchanged.end)
            hourly = energy_records(session, exchanged.start, exchanged.end)
    finally:
        engine.dispose()
    [whole] = roll_up(hourly, GroupBy.FACTORY, Step.TOTAL)
    assert d.total is not None
    assert d.total.kg_co2e == pytest.approx(whole.kg_co2e, rel=1e-6)
    assert d.total.gpu_hours == pytest.approx(whole.gpu_hours, rel=1e-6)


def test_the_public_dashboard_shows_capacity_given_and_received(exchanged: Exchanged) -> None:
    with httpx.Client(base_url=exchanged.server.url, timeout=30) as anyone:
        page = anyone.get("/")
    assert page.status_code == 200
    [table] = re.findall(r'<table id="partner-capacity">.*?</table>', page.text, re.S)
    cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
             for c in re.findall(r"<td[^>]*>(.*?)</td>", table, re.S)]  # fmt: skip
    # One month: 4 GPU-h run here for factory B; 3 jobs × 4 GPU-h of three organisations at B.
    assert cells == [exchanged.month, "4", "12"], cells
