"""Usage end to end: a job's run is metered per hour when it stops, and the rollups through
the API and CLI turn it into GPU-hours, kWh, kg CO2e, litres and reused heat."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from fabriek.domain.energy import cpu_power_model, gpu_power_model, modelled_energy
from fabriek.services.demo.seed import demo_token
from fabriek.services.energy.grid import load_intensity
from fabriek.services.energy.metering import measured_gpu_kwh_by_hour
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.test_api_budgets import grant, new_project
from tests.test_cli import fabriek, one_line_error


def test_a_finished_job_is_metered_and_rolled_up(
    client: Client, server: LiveServer, unique: str
) -> None:
    project = new_project(client, unique)
    grant(client, project, {"h200": 10.0})
    pieter = client("pieter")
    job = submit(pieter, project=project, command=py("import time; time.sleep(1)"), gpus=2,
                 gpu_type="h200", time_limit="10m")  # fmt: skip
    done = wait_for(pieter, job["id"])
    assert done["state"] == "completed" and done["site"] == "groningen"
    started = datetime.fromisoformat(done["started_at"])
    ended = datetime.fromisoformat(done["ended_at"])
    seconds = (ended - started).total_seconds()
    # A grid intensity for the hours the job ran in (Groningen is in zone NL).
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            first = started.replace(minute=0, second=0, microsecond=0)
            series = [(first + timedelta(hours=h), 250.0) for h in range(2)]
            load_intensity(session, "NL", series, "test series")
    finally:
        engine.dispose()
    lines = pieter.get("/api/v1/usage", params={"by": "job", "year": str(started.year)}).json()
    [line] = [u for u in lines if u["group"] == str(job["id"])]
    it = (modelled_energy(gpu_power_model("h200"), 2, seconds).value
          + modelled_energy(cpu_power_model(done["cpus"]), 1, seconds).value)  # fmt: skip
    site = pieter.get("/api/v1/sites/groningen").json()
    assert line["gpu_hours"] == pytest.approx(2 * seconds / 3600, abs=1e-6)
    assert line["kwh_it"] == pytest.approx(it, abs=1e-6)
    assert line["kwh_facility"] == pytest.approx(it * site["pue"], abs=1e-6)
    assert line["kg_co2e"] == pytest.approx(it * site["pue"] * 0.25, abs=1e-6)
    # Market-based: the share Groningen's renewable instruments cover counts at zero, the rest
    # at the hour's grid intensity (the site declares no residual mix).
    assert 0 < site["renewable_share"] < 1 and site["residual_mix_g_per_kwh"] is None
    assert line["kg_co2e_market"] == pytest.approx(
        it * site["pue"] * (1 - site["renewable_share"]) * 0.25, abs=1e-6
    )
    assert line["litres_water"] == pytest.approx(it * site["wue_l_per_kwh"], abs=1e-6)
    assert line["kwh_heat_reused"] == pytest.approx(
        it * site["pue"] * site["heat_reuse_share"], abs=1e-6
    )
    assert line["kwh_without_intensity"] == 0
    assert line["sources"] == ["modelled-power-model: h200"]
    # Rolled up by province: the job's share is in Zuid-Holland's line (TU Delft).
    by_province = pieter.get(
        "/api/v1/usage", params={"by": "province", "year": str(started.year)}
    ).json()
    assert any(u["group"] == "Zuid-Holland" and u["kwh_it"] >= it - 1e-6 for u in by_province), (
        by_province
    )
    # Someone outside the project does not see it.
    assert str(job["id"]) not in {
        u["group"] for u in client("mo").get("/api/v1/usage", params={"by": "job"}).json()
    }


def test_bad_periods_are_refused(client: Client) -> None:
    problem_of(client("pieter").get("/api/v1/usage", params={"month": "2025-13"}), 422)
    problem_of(client("pieter").get("/api/v1/usage", params={"by": "galaxy"}), 422)
    both = client("pieter").get("/api/v1/usage", params={"month": "2025-03", "year": "2025"})
    assert "not both" in str(problem_of(both, 422)["detail"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_usage_and_grid_load(server: LiveServer, tmp_path: Path) -> None:
    env = {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token("admin").token,
           "FABRIEK_DATABASE_URL": server.settings.database_url}  # fmt: skip
    table = fabriek("usage", "--by", "province", env=env).stdout
    assert (
        "kg CO2e" in table and "kWh IT" in table and "kg CO2e location-based, market-based" in table
    )
    assert isinstance(json.loads(fabriek("usage", "--by", "site", "--json", env=env).stdout), list)
    good = tmp_path / "nl.csv"
    good.write_text("datetime_utc,carbon_intensity_gco2eq_per_kwh\n"
                    "2021-01-01T00:00:00Z,300.5\n2021-01-01T01:00:00Z,280\n")  # fmt: skip
    out = fabriek("grid", "load", str(good), "--zone", "nl", env=env).stdout
    assert "Loaded 2 hours" in out and "NL" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime_utc,carbon_intensity_gco2eq_per_kwh\n2021-01-01T00:00:00Z,lots\n")
    line = one_line_error(
        fabriek("grid", "load", str(bad), "--zone", "NL", env=env, check=False), 2
    )
    assert "line 2" in line and "not a number" in line
    now = datetime.now(UTC)
    assert fabriek("usage", "--month", f"{now:%Y-%m}", "--step", "hour", env=env).returncode == 0


def test_counter_readings_are_shared_over_the_hours_they_span() -> None:
    # Two GPUs; 10:30 -> 11:30 at a steady 3.6e9 mJ (1 kWh) per GPU-hour; GPU 1's counter is
    # reset halfway, after which it counts from zero (the part before the reset is kept).
    readings = [
        {"at": "2025-03-01T10:30:00+00:00", "mj": {"0": 0, "1": 1_000}},
        {"at": "2025-03-01T11:00:00+00:00", "mj": {"0": 1_800_000_000, "1": 1_800_001_000}},
        {"at": "2025-03-01T11:30:00+00:00", "mj": {"0": 3_600_000_000, "1": 1_800_000_000}},
    ]
    by_hour = measured_gpu_kwh_by_hour(readings)
    assert by_hour is not None
    ten, eleven = (datetime(2025, 3, 1, h, tzinfo=UTC) for h in (10, 11))
    assert by_hour[ten] == pytest.approx(1.0)  # two GPUs, half an hour each
    assert by_hour[eleven] == pytest.approx(1.0)
    assert measured_gpu_kwh_by_hour(readings[:1]) is None


def test_measured_gpu_energy_replaces_the_model(tmp_path: Path) -> None:
    """A site whose GPUs report energy (here the NVML test double, at a constant 350 W per
    GPU): the job's GPU energy is the counters' difference, and says it was measured."""
    sites = tmp_path / "sites.toml"
    sites.write_text('[sites.groningen]\nengine = "local"\nenergy_test_double_watts = 350\n')
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        settings = Settings(database_url=url, state_dir=tmp_path / "state",
                            dispatch_interval_s=0.2, sites_file=sites)  # fmt: skip
        with live_server(settings) as live:
            headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
            with httpx.Client(base_url=live.url, headers=headers, timeout=30) as maria:
                job = submit(maria, project="dutch-llm", command=["sleep", "2"], gpus=2,
                             gpu_type="h200", time_limit="5m")  # fmt: skip
                done = wait_for(maria, job["id"])
                started = datetime.fromisoformat(done["started_at"])
                seconds = (datetime.fromisoformat(done["ended_at"]) - started).total_seconds()
                lines = maria.get("/api/v1/usage", params={"by": "job", "step": "total",
                                                           "year": str(started.year)}).json()  # fmt: skip
    [line] = [u for u in lines if u["group"] == str(job["id"])]
    assert line["sources"] == ["measured-nvml GPUs, modelled-power-model CPUs"]
    cpu = modelled_energy(cpu_power_model(done["cpus"]), 1, seconds).value
    gpu = line["kwh_it"] - cpu
    # 2 GPUs × 350 W over the span the runner read (its first reading is taken right after
    # the job's process starts, its last right after it ends).
    assert gpu == pytest.approx(2 * 350 * seconds / 3.6e6, abs=2 * 350 * 0.5 / 3.6e6)
