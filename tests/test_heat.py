"""Heat demand: the ETM profile on the calendar, stored per zone (`fabriek heat load`), fed
to the live scheduler at sites that reuse heat, and weighed by FABRIEK_HEAT_WEIGHT: end to
end, a flexible job is held out of a dirty hour without heat demand into a heat-demand
hour when the weight says so, and not when the weight is 0."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from fabriek.domain.errors import InvalidInput
from fabriek.domain.heat import (
    DEFAULT_HEAT_COLUMN,
    YEAR_HOURS,
    HeatProfile,
    parse_heat_profile,
    profile_hour,
)
from fabriek.services.demo.seed import demo_token
from fabriek.services.energy.grid import load_intensity
from fabriek.services.energy.heat import load_heat_demand, read_heat_profile
from fabriek.services.jobs import site_shapes
from fabriek.services.scheduling import site_signals
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import HeatDemandRow
from tests.jobs_helpers import submit, wait_for
from tests.servers import LiveServer, live_server, postgres_unavailable, prepare, throwaway_database
from tests.test_api_budgets import grant, wait_reason
from tests.test_cli import fabriek, one_line_error

HEAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "heat"
ETM = HEAT / "etm_NL_weather_default_hourly_heat_profiles.csv"
needs_etm = pytest.mark.skipif(
    not ETM.exists(),
    reason=f"SKIPPED LOUDLY: the shared heat data is absent ({ETM.name} not found next to the "
    "repository in shared/data/heat); the ETM profile format is not checked against it",
)


def profile_csv(values: list[float], column: str = DEFAULT_HEAT_COLUMN) -> list[str]:
    lines = [f"hour_of_year,air_temperature_degC,{column}\n"]
    lines += [f"{i},5.0,{v}\n" for i, v in enumerate(values)]
    return lines


# --- the profile and the calendar ---------------------------------------------------------


@needs_etm
def test_the_etm_profile_is_normalised_to_its_peak() -> None:
    profile = read_heat_profile(ETM)
    assert profile.column == DEFAULT_HEAT_COLUMN
    assert len(profile.values) == YEAR_HOURS
    assert max(profile.values) == 1.0 and min(profile.values) >= 0.0
    # Winter evenings want heat, summer afternoons hardly any.
    assert profile.at(datetime(2026, 1, 15, 18, tzinfo=UTC)) > 0.4
    assert profile.at(datetime(2026, 7, 15, 14, tzinfo=UTC)) < 0.05
    other = read_heat_profile(ETM, "buildings_space_heating_share")
    assert other.column == "buildings_space_heating_share" and other.values != profile.values


def test_the_calendar_mapping_keeps_date_and_hour() -> None:
    assert profile_hour(datetime(2026, 1, 1, 0, tzinfo=UTC)) == 0
    assert profile_hour(datetime(2026, 12, 31, 23, tzinfo=UTC)) == YEAR_HOURS - 1
    # A leap year: 29 February is taken as the 28th, and 1 March is 1 March.
    assert profile_hour(datetime(2028, 2, 29, 7, tzinfo=UTC)) == profile_hour(
        datetime(2028, 2, 28, 7, tzinfo=UTC)
    )
    assert profile_hour(datetime(2028, 3, 1, 0, tzinfo=UTC)) == 59 * 24
    assert profile_hour(datetime(2028, 12, 31, 23, tzinfo=UTC)) == YEAR_HOURS - 1
    # Times in another zone are placed by their UTC hour.
    cet = datetime.fromisoformat("2026-01-01T01:30:00+01:00")
    assert profile_hour(cet) == 0


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_every_hour_has_a_profile_hour_and_the_next_follows(when: datetime) -> None:
    at = when.replace(tzinfo=UTC)
    hour = profile_hour(at)
    assert 0 <= hour < YEAR_HOURS
    after = at + timedelta(hours=1)
    if after.year != at.year:
        assert profile_hour(after) == 0
    elif (after.month, after.day, after.hour) == (2, 29, 0):
        assert profile_hour(after) == hour - 23  # the leap day repeats the 28th
    else:
        assert profile_hour(after) == hour + 1


def test_bad_profiles_say_where_in_one_line() -> None:
    good = [0.5] * YEAR_HOURS
    cases = [
        (["when,x\n"], "missing column hour_of_year"),
        (profile_csv(good[:100]), "100 hours, expected 8,760"),
        ([*profile_csv(good)[:3], "7,5.0,0.1\n"], "line 4, column hour_of_year: '7', expected 2"),
        ([*profile_csv(good)[:2], "1,5.0,lots\n"], f"line 3, column {DEFAULT_HEAT_COLUMN}"),
        ([*profile_csv(good)[:2], "1,5.0,-1\n"], "is not a number >= 0"),
        (profile_csv([0.0] * YEAR_HOURS), "every hour is 0"),
        (["hour_of_year,air_temperature_degC\n"], "share columns: none"),
    ]
    for lines, expected in cases:
        with pytest.raises(InvalidInput) as caught:
            parse_heat_profile(lines, source="h.csv")
        assert expected in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        parse_heat_profile(profile_csv(good), "nope")
    # A file with several share columns and none of the households' asks which to take.
    two = ["hour_of_year,a_share,b_share\n"] + [f"{i},1,1\n" for i in range(YEAR_HOURS)]
    with pytest.raises(InvalidInput, match="choose one with --column"):
        parse_heat_profile(two)
    assert parse_heat_profile(two, "b_share").values == (1.0,) * YEAR_HOURS


# --- the store and the live signals --------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def demo_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    with throwaway_database(request.param, tmp_path) as url:
        prepare(url)
        yield url


def evening_profile() -> HeatProfile:
    """Heat wanted from 18:00 to 21:00 UTC every day, nothing otherwise."""
    return HeatProfile("test", tuple(1.0 if 18 <= h % 24 < 21 else 0.0 for h in range(YEAR_HOURS)))


def test_heat_demand_is_stored_replaced_and_fed_only_where_heat_is_reused(demo_url: str) -> None:
    now = datetime(2026, 3, 2, 12, 20, tzinfo=UTC)
    first = now.replace(minute=0) - timedelta(days=8)
    engine = make_engine(demo_url)
    try:
        with make_sessions(engine)() as session:
            load_intensity(session, "NL", [(first + timedelta(hours=h), 300.0)
                                           for h in range(8 * 24 + 1)], "flat")  # fmt: skip
            start = datetime(2026, 3, 1, tzinfo=UTC)
            flat = HeatProfile("flat", (0.5,) * YEAR_HOURS)
            assert load_heat_demand(session, "nl", flat, start, start + timedelta(days=10),
                                    "first") == 240  # fmt: skip
            # Loading again replaces what the span held, and keeps the rest.
            assert load_heat_demand(session, "NL", evening_profile(), start,
                                    start + timedelta(days=5), "evening") == 120  # fmt: skip
            stored = session.scalar(select(func.count()).select_from(HeatDemandRow))
            assert stored == 240
            with pytest.raises(InvalidInput, match="not after"):
                load_heat_demand(session, "NL", flat, start, start, "none")
            with pytest.raises(InvalidInput, match="not a grid zone"):
                load_heat_demand(session, "Netherlands", flat, start, start + timedelta(1), "")
            signals = site_signals(session, site_shapes(session), now)
    finally:
        engine.dispose()
    hour = signals.hour_of(now.timestamp())
    groningen, amsterdam = signals.by_site["groningen"], signals.by_site["amsterdam"]
    # Groningen reuses heat: it sees the evening ahead; Amsterdam does not reuse heat.
    ahead = [s.heat_demand for s in groningen[hour : hour + 24]]
    assert ahead[6] == 1.0 and ahead[0] == 0.0 and ahead[9] == 0.0
    assert all(s.heat_demand is None for s in amsterdam)
    # Every hour of the series carries the site's standing grid budget (limit / PUE).
    assert all(s.power_budget_kw == pytest.approx(4000 / 1.15) for s in groningen)
    # The carbon history stays history: no hour from now on has carbon.
    assert all(s.carbon_g_per_kwh is None for s in groningen[hour + 1 :])


def test_fabriek_heat_load_from_the_cli(tmp_path: Path) -> None:
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url, with_demo=False)
        env = {"FABRIEK_DATABASE_URL": url}
        good = tmp_path / "etm.csv"
        good.write_text("".join(profile_csv([float(1 + h % 24) for h in range(YEAR_HOURS)])))
        out = fabriek("heat", "load", str(good), "--zone", "nl", "--from", "2026-01-01",
                      "--until", "2026-01-03", env=env).stdout  # fmt: skip
        assert "Loaded 48 hours of heat demand for NL" in out
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            rows = session.scalars(select(HeatDemandRow).order_by(HeatDemandRow.hour)).all()
            assert [r.demand for r in rows[:3]] == pytest.approx([1 / 24, 2 / 24, 3 / 24])
            assert rows[0].source == f"etm.csv ({DEFAULT_HEAT_COLUMN})"
        engine.dispose()
        bad = tmp_path / "bad.csv"
        bad.write_text("".join(profile_csv([1.0] * YEAR_HOURS)[:5]) + "4,5.0,x\n")
        line = one_line_error(fabriek("heat", "load", str(bad), "--zone", "NL", env=env,
                                      check=False), 2)  # fmt: skip
        assert "line 6" in line and "not a number" in line
        line = one_line_error(fabriek("heat", "load", str(good), "--zone", "NL", "--from",
                                      "soon", env=env, check=False), 2)  # fmt: skip
        assert "--from" in line


@needs_etm
def test_sim_takes_a_heat_profile(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time_s,duration_s,num_gpus,slack_s\n" + "\n".join(
        f"j{i},{i * 1800},{1800},1,43200" for i in range(20)))  # fmt: skip
    hours = 24 * 20
    carbon = tmp_path / "c.csv"
    carbon.write_text("datetime_utc,carbon_intensity_gco2eq_per_kwh\n" + "".join(
        f"{datetime(2023, 1, 1, tzinfo=UTC) + timedelta(hours=h):%Y-%m-%dT%H:%M:%SZ},300\n"
        for h in range(hours)))  # fmt: skip
    base = ["sim", "--trace", str(trace), "--nodes", "2", "--gpus-per-node", "8",
            "--carbon", str(carbon), "--start", "2023-01-09", "--heat", str(ETM), "--json"]  # fmt: skip
    weighed = json.loads(fabriek(*base, "--heat-weight", "1", env={}).stdout)
    carbon_only = json.loads(fabriek(*base, "--heat-weight", "0", env={}).stdout)
    # Flat carbon: with a heat weight the jobs move to hours of more heat demand.
    assert weighed["heat_weighted_kwh"] > carbon_only["heat_weighted_kwh"]
    assert carbon_only["heat_weighted_kwh"] == pytest.approx(
        carbon_only["heat_weighted_kwh_immediate"]
    )
    assert weighed["deadline_misses"] == 0
    line = one_line_error(fabriek("sim", "--trace", str(trace), "--nodes", "2",
                                  "--gpus-per-node", "8", "--heat", str(ETM), env={},
                                  check=False), 2)  # fmt: skip
    assert "--heat weighs carbon" in line


# --- end to end: the live scheduler and FABRIEK_HEAT_WEIGHT -------------------------------


@pytest.fixture(
    scope="module",
    params=[("sqlite", 1.0), ("sqlite", 0.0), ("postgresql", 1.0), ("postgresql", 0.0)],
    ids=lambda p: f"{p[0]}-weight-{p[1]:g}",
)
def weighed_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server of its own per backend and heat weight (the weight is a server setting)."""
    kind, weight = request.param
    if kind == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("heat")
    with throwaway_database(kind, tmp) as url:
        prepare(url)
        settings = Settings(database_url=url, state_dir=tmp / "state", dispatch_interval_s=0.2,
                            heat_weight=weight)  # fmt: skip
        with live_server(settings) as live:
            yield live


def test_the_live_scheduler_holds_a_job_for_heat_demand_only_by_the_weight(
    weighed_server: LiveServer,
) -> None:
    """A heat-reusing site in a zone whose carbon has been a flat 400 g/kWh for a week: by
    carbon alone nothing is to be gained by waiting. Heat is wanted only from three hours
    from now. With FABRIEK_HEAT_WEIGHT 1 a shiftable job with a deadline waits for the heat
    (CleanerHour); with weight 0 it starts at once and completes."""
    live = weighed_server

    def client(username: str | None = None) -> httpx.Client:
        token = demo_token(username).token if username else ""
        return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"},
                            timeout=30)  # fmt: skip

    site = "heatsite"
    with client("admin") as admin:
        made = admin.post("/api/v1/sites", json={
            "name": site, "city": "Emmen", "province": "Drenthe", "grid_zone": "ZZ",
            "heat_reuse_share": 0.5,
            "node_groups": [{"name": "gpu", "count": 1, "gpu_type": "l40s", "gpus_per_node": 4,
                             "cpus_per_node": 16, "memory_gb_per_node": 64}]})  # fmt: skip
        assert made.status_code == 201, made.text
    now = datetime.now(UTC)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first = this_hour - timedelta(days=8)
    warm = {(this_hour + timedelta(hours=h)).hour for h in range(3, 6)}
    profile = HeatProfile("test", tuple(
        1.0 if h % 24 in warm else 0.0 for h in range(YEAR_HOURS)))  # fmt: skip
    engine = make_engine(live.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            load_intensity(session, "ZZ", [(first + timedelta(hours=h), 400.0)
                                           for h in range(8 * 24 + 1)], "flat")  # fmt: skip
            load_heat_demand(session, "ZZ", profile, this_hour, this_hour + timedelta(days=2),
                             "test")  # fmt: skip
    finally:
        engine.dispose()

    def new_project(name: str) -> str:
        with client("admin") as admin:
            orgs = admin.get("/api/v1/organisations", params={"limit": 200}).json()["items"]
            org = next(o["id"] for o in orgs if o["name"] == "Technische Universiteit Delft")
            made = admin.post("/api/v1/projects", json={
                "name": name, "title": "Heat test", "organisation_id": org,
                "principal_investigator": "pieter"})  # fmt: skip
            assert made.status_code == 201, made.text
        return name

    project = new_project("heatproject")
    grant(client, project, {"l40s": 100.0}, sites=[site])
    deadline = (now + timedelta(hours=12)).isoformat()
    with client("pieter") as pieter:
        job = submit(pieter, project=project, command=["true"], gpus=1, gpu_type="l40s",
                     time_limit="10m", shiftable=True, deadline=deadline)  # fmt: skip
        try:
            if live.settings.heat_weight > 0:
                reason = wait_reason(pieter, job["id"], "CleanerHour")
                assert "forecast" in reason
                time.sleep(0.5)  # a few more cycles: it stays held
                assert pieter.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "pending"
            else:
                assert wait_for(pieter, job["id"])["state"] == "completed"
        finally:
            pieter.post(f"/api/v1/jobs/{job['id']}/cancel")
