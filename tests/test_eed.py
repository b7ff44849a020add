"""The EU data-centre report (domain/eed.py, services/energy/eed_report.py, `fabriek report eed`):
KPI formulas by hand, each validation rule, completeness, the modelled EIT from the store,
and the command end to end on a fresh demo database."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.eed import (
    FabriekKnows,
    Status,
    assemble_report,
    compute_kpis,
    to_csv,
    to_json,
    validate,
)
from fabriek.domain.eed_indicators import parse_operator_figures
from fabriek.domain.energy import Source
from fabriek.domain.errors import InvalidInput
from fabriek.services.energy.eed_report import (
    build_report,
    installed_it_power,
    load_indicator_set,
    load_operator_figures,
)
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobEnergyRow, JobRow, ProjectRow, SiteRow, UserRow
from tests.servers import prepare, throwaway_database

SPEC = load_indicator_set()
GOOD: dict[str, Any] = {
    "e_dc_kwh": 1_250_000.0,
    "e_it_kwh": 1_000_000.0,
    "w_in_m3": 400.0,
    "w_in_pot_m3": 100.0,
    "e_reuse_kwh": 250_000.0,
    "e_res_goo_kwh": 500_000.0,
    "e_res_ppa_kwh": 250_000.0,
    "e_res_os_kwh": 0.0,
    "e_dc_bg_kwh": 1_000.0,
}


def figures_of(figures: dict[str, Any]) -> dict[str, Any]:
    """One site's figures as the figures file holds them, checked."""
    data = {"report": [{"site": "amsterdam", "year": 2025, **figures}]}
    return parse_operator_figures(SPEC, data)[("amsterdam", 2025)]


def report_of(figures: dict[str, Any], **knows: Any) -> Any:
    operator = figures_of(figures)
    return assemble_report(SPEC, FabriekKnows("amsterdam", 2025, **knows), operator)


# --- KPIs -----------------------------------------------------------------------------------


def test_kpis_by_hand() -> None:
    k = compute_kpis(1_250_000, 1_000_000, 400, 250_000, 750_000, 300_000)
    assert k["pue"] == pytest.approx(1.25)
    assert k["wue"] == pytest.approx(0.4)  # 400 m3 / 1000 MWh
    assert k["erf"] == pytest.approx(0.2)
    assert k["ref"] == pytest.approx(0.6)
    assert k["cue"] == pytest.approx(0.3)  # kg CO2e per kWh of IT energy
    assert k["ere"] == pytest.approx(1.0)  # (1.25 M - 0.25 M) / 1 M
    assert compute_kpis(None, 1000)["pue"] is None
    assert compute_kpis(1000, 0)["pue"] is None  # no division by zero


def test_a_complete_consistent_report_is_valid() -> None:
    r = report_of(GOOD)
    assert r.errors == []
    assert r.kpi("pue") == pytest.approx(1.25) and r.kpi("ref") == pytest.approx(0.6)
    entry = {e.key: e for e in r.entries}
    assert entry["e_res_tot_kwh"].value == 750_000.0
    assert entry["e_res_tot_kwh"].status is Status.COMPUTED
    assert entry["e_dc_kwh"].status is Status.REPORTED


# --- Validation: each bad case, with a clear message ----------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"e_dc_kwh": 900_000.0}, "PUE = EDC/EIT = 0.900 < 1"),
        ({"e_reuse_kwh": 2_000_000.0}, "ERF = EREUSE/EDC = 1.600 is outside [0, 1]"),
        ({"e_res_goo_kwh": 2_000_000.0}, "REF = ERES-TOT/EDC = 1.800 is outside [0, 1]"),
        ({"w_in_pot_m3": 500.0}, "potable water WIN-POT (500 m3) exceeds total water WIN (400 m3)"),
        ({"e_dc_bg_kwh": 2_000_000.0}, "EDC-BG (2e+06 kWh) exceeds EDC"),
        ({"e_it_kwh": 0.0}, "EIT is 0 kWh"),
        ({"e_res_tot_kwh": 1.0}, "ERES-TOT (1 kWh) must equal ERES-GOO + ERES-PPA + ERES-OS"),
    ],
)
def test_validation_catches_each_bad_case(change: dict[str, float], message: str) -> None:
    r = report_of({**GOOD, **change})
    assert not r.valid
    assert any(message in e for e in r.errors), r.errors
    assert all(e.startswith("amsterdam 2025: ") for e in r.errors)


def test_validate_flags_negative_numbers() -> None:
    errors = validate({"e_it_kwh": -1.0}, {})
    assert errors[0] == "e_it_kwh = -1 is negative"
    assert errors[1].startswith("EIT is -1 kWh: PUE, WUE, CUE and ERE cannot be computed")


@pytest.mark.parametrize(
    ("figures", "message"),
    [
        ({"e_dc_kwh": -5.0}, "e_dc_kwh: input should be greater than or equal to 0"),
        ({"e_dc_kwh": math.inf}, "e_dc_kwh: input should be a finite number"),
        ({"e_dc_kwh": "a lot"}, "e_dc_kwh: input should be a valid number"),
        ({"e_dc_kwh": True}, "e_dc_kwh: input should be a valid number"),
        ({"pue": 1.2}, "pue: unknown key"),
        ({"refrigerants": "R-134a"}, "refrigerants: input should be a valid list"),
        ({"lau_code": "  "}, "lau_code: string should have at least 1 character"),
    ],
)
def test_operator_figures_are_checked(figures: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^report\\[0\\]\\.{message}"):
        figures_of(figures)


def test_a_temperature_may_be_below_zero() -> None:
    assert figures_of({"t_in_setpoint_c": -2}) == {"t_in_setpoint_c": -2.0}


# --- Completeness and Fabriek's estimates ---------------------------------------------------


def test_owed_lists_missing_and_estimated_required_fields() -> None:
    r = report_of({"e_it_kwh": 1000.0}, declared_pue=1.3, declared_wue_l_per_kwh=0.5)
    entry = {e.key: e for e in r.entries}
    assert r.errors == []
    # EDC and WIN come from the site's declared PUE and WUE: estimates, still owed.
    assert entry["e_dc_kwh"].value == pytest.approx(1300.0)
    assert (entry["e_dc_kwh"].status, entry["e_dc_kwh"].source) == (
        Status.ESTIMATED,
        Source.DECLARED_PUE,
    )
    assert entry["w_in_m3"].value == pytest.approx(0.5)
    assert {"e_dc_kwh", "w_in_m3", "s_dc_m2", "lau_code", "refrigerants"} <= set(r.owed)
    assert "e_it_kwh" not in r.owed and "name" not in r.owed
    assert "co2_kg" not in r.owed  # not asked by the regulation
    required = {s.key for s in SPEC.indicators if s.required}
    assert set(r.owed) <= required


def test_every_indicator_cites_the_regulation_and_annex_ii_is_covered() -> None:
    cites = " ".join(s.citation for s in SPEC.indicators)
    for point in "abcdefghijklmnopqr":
        assert f"Annex II, 1({point})" in cites, point
    for point in ("2(a)", "2(b)", "3(a)", "3(b)", "3(c)", "3(d)"):
        assert f"Annex II, {point}" in cites, point
    for point in ("1(a)", "1(b)", "1(c)", "1(d)", "1(e)", "2(a)", "2(b)"):
        assert f"Annex I, {point}" in cites, point
    kpis = {k.key: k for k in SPEC.kpis}
    assert [kpis[k].citation[:15] for k in ("pue", "wue", "erf", "ref")] == [
        "Annex III (a)",
        "Annex III (b) (",
        "Annex III (c)",
        "Annex III (d)",
    ]
    assert not kpis["cue"].confirmed and not kpis["ere"].confirmed


def test_json_and_csv_round_trip() -> None:
    r = report_of(GOOD)
    doc = json.loads(to_json([r]))
    assert doc["reports"][0]["valid"] is True
    rows = list(csv.DictReader(io.StringIO(to_csv([r]))))
    pue = next(row for row in rows if row["kind"] == "kpi" and row["key"] == "pue")
    assert float(pue["value"]) == pytest.approx(1.25)
    assert len(rows) == len(SPEC.indicators) + len(SPEC.kpis)


# --- From the store: installed power and the modelled EIT -----------------------------------


@pytest.fixture
def demo_session(tmp_path: Path) -> Iterator[Session]:
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            yield session
        engine.dispose()


def test_it_energy_is_the_metering_ledger_within_the_year(demo_session: Session) -> None:
    s = demo_session
    site = s.scalars(select(SiteRow).where(SiteRow.name == "groningen")).one()
    other = s.scalars(select(SiteRow).where(SiteRow.name == "amsterdam")).one()
    project = s.scalars(select(ProjectRow)).first()
    user = s.scalars(select(UserRow)).first()
    assert project and user
    new_year = datetime(2026, 1, 1, tzinfo=UTC)
    job = JobRow(project_id=project.id, user_id=user.id, name="j", gpus=8, nodes=1, cpus=1,
                 memory_gb=64, time_limit_s=86400, state="completed", site_id=site.id,
                 placed_gpu_type="h200", started_at=new_year - timedelta(hours=2),
                 ended_at=new_year + timedelta(hours=1), submitted_at=new_year)  # fmt: skip
    s.add(job)
    s.flush()

    def hour(at: datetime, gpu: float, where: SiteRow = site, source: str = "modelled") -> None:
        s.add(JobEnergyRow(job_id=job.id, site_id=where.id, hour=at, gpu_seconds=0.0,
                           gpu_kwh=gpu, cpu_kwh=0.5, source=source))  # fmt: skip

    hour(new_year - timedelta(hours=2), 4.0)
    hour(new_year - timedelta(hours=1), 6.0, source="measured-nvml GPUs, modelled CPUs")
    hour(new_year, 100.0)  # 2026: not in the 2025 report
    hour(new_year - timedelta(hours=1), 100.0, where=other)  # another site
    s.commit()
    r = build_report(s, "groningen", 2025, None, None)
    e_it = next(e for e in r.entries if e.key == "e_it_kwh")
    assert e_it.value == pytest.approx(4.0 + 0.5 + 6.0 + 0.5)
    assert (e_it.status, e_it.source) == (Status.ESTIMATED, Source.LEDGER)
    assert "6.0 kWh of GPU energy measured" in e_it.method
    assert r.errors == [] and r.kpi("pue") == pytest.approx(1.15)  # EDC from the declared PUE
    # The operator's metered EIT wins over the ledger.
    metered = build_report(s, "groningen", 2025, {"e_it_kwh": 7.0}, None)
    assert metered.value("e_it_kwh") == 7.0


def test_installed_it_power_estimate(demo_session: Session) -> None:
    site = demo_session.scalars(select(SiteRow).where(SiteRow.name == "groningen")).one()
    fig = installed_it_power(site)
    assert fig is not None and fig.source is Source.ESTIMATED_NAMEPLATE
    assert fig.value == pytest.approx(16 * (8 * 700 + 112 * 5.5) / 1000)


@pytest.mark.parametrize(
    ("good", "bad", "words"),
    [
        ("e_it_kwh = 6_300_000.0", "e_itt_kwh = 6_300_000.0", "e_itt_kwh: unknown key"),
        ("e_it_kwh = 6_300_000.0", 'e_it_kwh = "6300000"', "e_it_kwh: input should be a valid number"),
        ('lau_code = "NL:GM0363"', "lau_code = 363", "lau_code: input should be a valid string"),
        ("year = 2025", 'year = "2025"', "year: input should be a valid integer"),
    ],
)  # fmt: skip
def test_a_misspelt_key_or_a_wrong_type_in_the_figures_file_is_refused_naming_both(
    tmp_path: Path, good: str, bad: str, words: str
) -> None:
    shipped = resources.files("fabriek.config").joinpath("eed_demo_figures.toml").read_text()
    wrong = tmp_path / "figures.toml"
    wrong.write_text(shipped.replace(good, bad, 1))
    with pytest.raises(InvalidInput) as refused:
        load_operator_figures(wrong)
    assert str(refused.value).startswith(f"{wrong}: report[0].{words}")


def test_figures_file_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "f.toml"
    bad.write_text('[[report]]\nsite = "amsterdam"\nyear = 2025\ne_dc_kwh = -1\n')
    with pytest.raises(InvalidInput, match=r"f\.toml: report\[0\]\.e_dc_kwh: input should be"):
        load_operator_figures(bad)
    bad.write_text('[[report]]\nsite = "amsterdam"\n')
    with pytest.raises(InvalidInput, match=r"missing 'report\[0\]\.year'"):
        load_operator_figures(bad)
    bad.write_text(
        '[[report]]\nsite = "amsterdam"\nyear = 2025\n[[report]]\nsite = "amsterdam"\nyear = 2025\n'
    )
    with pytest.raises(InvalidInput, match="report 2 repeats site 'amsterdam', year 2025"):
        load_operator_figures(bad)
    bad.write_text("not toml [")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        load_operator_figures(bad)
    with pytest.raises(InvalidInput, match="cannot read"):
        load_operator_figures(tmp_path / "absent.toml")


# --- The command, end to end on a fresh demo database ---------------------------------------


def fabriek(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fabriek.main", *args],
        env={**os.environ, "FABRIEK_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with throwaway_database("sqlite", tmp_path_factory.mktemp("eed")) as url:
        prepare(url)
        yield url


def test_command_reports_the_demo_sites_and_passes_validation(
    demo_url: str, tmp_path: Path
) -> None:
    result = fabriek("report", "eed", "--year", "2025", "--json", url=demo_url)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    reports = {r["site"]: r for r in doc["reports"]}
    assert set(reports) == {"amsterdam", "groningen", "eindhoven"}
    assert all(r["valid"] and r["errors"] == [] for r in reports.values())
    kpis = {k["key"]: k["value"] for k in reports["amsterdam"]["kpis"]}
    assert kpis["pue"] == pytest.approx(1.25) and 0 <= kpis["erf"] <= 1
    assert "c_serv" in reports["amsterdam"]["owed"]  # the demo file leaves it owed
    assert "owed" in result.stderr and "Traceback" not in result.stderr

    out = tmp_path / "eed.csv"
    result = fabriek("report", "eed", "--year", "2025", "--site", "groningen", "--format", "csv",
                     "--out", str(out), url=demo_url)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert {r["site"] for r in rows} == {"groningen"}
    ref = next(r for r in rows if r["kind"] == "kpi" and r["key"] == "ref")
    assert float(ref["value"]) == pytest.approx(16_800_000 / 17_250_000)
    written = tmp_path / "eed.json"
    result = fabriek("report", "eed", "--year", "2025", "--out", str(written), url=demo_url)
    assert result.returncode == 0 and json.loads(written.read_text())["reports"]


def test_command_prints_a_summary_to_read_by_default(demo_url: str) -> None:
    result = fabriek("report", "eed", "--year", "2025", url=demo_url)
    assert result.returncode == 0, result.stderr
    summary = result.stdout
    assert "EU data-centre report 2025: key performance indicators" in summary
    assert re.search(r"amsterdam\s*┃\s*eindhoven\s*┃\s*groningen", summary)
    assert re.search(
        r"Power Usage Effectiveness\s*│\s*1\s*│\s*1\.250\s*│\s*1\.300\s*│\s*1\.150", summary
    )
    assert "amsterdam │ yes      │ valid" in summary and "--json" in summary
    assert "owed" in result.stderr and not summary.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--year", "2024"], "validation error(s): amsterdam 2024: EIT is 0 kWh"),
        (["--year", "2025", "--site", "nowhere"], "no site 'nowhere'"),
        (["--year", "2025", "--format", "xml"], "--format must be table, json or csv"),
        (["--year", "2025", "--figures", "absent.toml"], "cannot read the figures file"),
    ],
)
def test_command_errors_are_one_line(demo_url: str, args: list[str], message: str) -> None:
    result = fabriek("report", "eed", *args, url=demo_url)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("fabriek: ") and message in lines[0]
