"""One strict reader per CSV format, one set of messages: the grid load and the simulator read a
carbon file the same way, and what one refuses the other refuses too."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fabriek.domain.csv_files import CsvError
from fabriek.domain.errors import InvalidInput
from fabriek.scheduler.carbon_series import CarbonError, load_carbon
from fabriek.scheduler.trace import TraceError, load_trace
from fabriek.services.energy.grid import read_intensity_csv
from fabriek.services.energy.heat import read_heat_profile

HEADER = "datetime_utc,carbon_intensity_gco2eq_per_kwh\n"


def _carbon(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "carbon.csv"
    path.write_text(HEADER + rows)
    return path


def test_the_grid_load_reads_what_the_simulator_reads(tmp_path: Path) -> None:
    path = _carbon(tmp_path, "2025-03-01T00:00:00Z,300\n2025-03-01T01:00:00Z,250.5\n")
    series = load_carbon(path)
    assert read_intensity_csv(path) == [
        (datetime(2025, 3, 1, 0, tzinfo=UTC), 300.0),
        (datetime(2025, 3, 1, 1, tzinfo=UTC), 250.5),
    ]
    assert series.values == (300.0, 250.5)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ("2025-03-01T00:00:00Z,nan\n", "line 2, column carbon_intensity_gco2eq_per_kwh: 'nan' "
         "is not a finite number"),
        ("2025-03-01T00:00:00Z,inf\n", "'inf' is not a finite number"),
        ("2025-03-01T00:00:00Z,-3\n", "'-3' is not a number >= 0"),
        ("2025-03-01T00:00:00Z,\n", "column carbon_intensity_gco2eq_per_kwh: empty"),
        ("2025-03-01T00:30:00Z,300\n", "is not the start of an hour"),
        ("2025-03-01T00:00:00Z,300\n2025-03-01T02:00:00Z,300\n",
         "line 3, column datetime_utc: '2025-03-01T02:00:00Z', expected the next hour "
         "2025-03-01T01:00:00Z (hourly, no gaps)"),
        ("yesterday,300\n", "line 2, column datetime_utc: 'yesterday' is not an ISO date-time"),
    ],
)  # fmt: skip
def test_the_grid_load_and_the_simulator_refuse_the_same_rows(
    tmp_path: Path, rows: str, expected: str
) -> None:
    path = _carbon(tmp_path, rows)
    with pytest.raises(CarbonError) as by_simulator:
        load_carbon(path)
    with pytest.raises(InvalidInput) as by_grid_load:
        read_intensity_csv(path)
    assert expected in str(by_simulator.value)
    assert str(by_grid_load.value) == str(by_simulator.value)
    assert str(by_simulator.value).startswith(str(path)) and "\n" not in str(by_simulator.value)


def test_every_format_says_the_same_about_a_file_it_cannot_read(tmp_path: Path) -> None:
    absent = tmp_path / "absent.csv"
    for read in (load_carbon, load_trace, read_heat_profile, read_intensity_csv):
        with pytest.raises(CsvError) as caught:
            read(absent)
        assert str(caught.value) == f"{absent}: cannot read: No such file or directory"
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"job_id,submit_time_s,duration_s,num_gpus\n\xe9,0,1,1\n")
    with pytest.raises(TraceError, match="not UTF-8 text"):
        load_trace(latin)


def test_every_format_says_the_same_about_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("when,what\n1,2\n")
    messages = []
    for read in (load_carbon, load_trace, read_heat_profile):
        with pytest.raises(CsvError) as caught:
            read(path)
        messages.append(str(caught.value))
    assert all(m.startswith(f"{path} line 1: missing column ") for m in messages)
    assert all(m.endswith("(header has: when,what)") for m in messages)
