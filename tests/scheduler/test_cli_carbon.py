"""`fabriek sim --carbon`: the energy keys, and bad carbon input as one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import fabriek, one_line_error

TRACE = "job_id,submit_time_s,duration_s,num_gpus,slack_s\n" + "\n".join(
    f"j{i},{i * 600},{600 + (i % 5) * 600},{1 + i % 2},{'' if i % 2 else 43200}" for i in range(30)
)


def carbon_csv(hours: int) -> str:
    rows = [
        f"2023-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{100 if 10 <= h % 24 < 14 else 400}"
        for h in range(hours)
    ]
    return "datetime_utc,carbon_intensity_gco2eq_per_kwh\n" + "\n".join(rows) + "\n"


def test_sim_with_carbon_reports_energy(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(TRACE)
    (tmp_path / "c.csv").write_text(carbon_csv(24 * 20))
    out = fabriek("sim", "--trace", str(tmp_path / "t.csv"), "--nodes", "2", "--gpus-per-node",
                  "4", "--carbon", str(tmp_path / "c.csv"), "--start", "2023-01-09",
                  "--grid-cap-kw", "5", "--json", env={})  # fmt: skip
    r = json.loads(out.stdout)
    for key in ("energy_kwh", "co2_kg", "co2_kg_immediate", "co2_kg_oracle",
                "deadline_misses", "grid_cap_violations"):  # fmt: skip
        assert key in r
    assert r["grid_cap_violations"] == 0 and r["deadline_misses"] == 0
    assert r["co2_kg_oracle"] <= r["co2_kg"] <= r["co2_kg_immediate"] + 1e-9


def test_bad_carbon_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(TRACE)
    (tmp_path / "c.csv").write_text(carbon_csv(24 * 20))
    (tmp_path / "bad.csv").write_text("datetime_utc,carbon_intensity_gco2eq_per_kwh\nx,1\n")
    base = ["sim", "--trace", str(tmp_path / "t.csv"), "--nodes", "2", "--gpus-per-node", "4"]
    cases = [
        (["--carbon", str(tmp_path / "bad.csv"), "--start", "2023-01-09"], "line 2, column"),
        (["--carbon", str(tmp_path / "c.csv"), "--start", "soon"], "--start"),
        (["--carbon", str(tmp_path / "c.csv"), "--start", "2024-01-01"], "outside the carbon"),
    ]
    for extra, expected in cases:
        result = fabriek(*base, *extra, env={}, check=False)
        assert expected in one_line_error(result, 2)
