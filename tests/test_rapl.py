"""CPU energy from RAPL: the runner finds the package counters in a powercap tree (a tree
built here, as the kernel lays it out: this machine, like most VMs, exposes none), and the
metering turns node counters into the job's share per hour, across a counter wrap."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fabriek.engines.local_runner import EnergyMeter, rapl_zones, read_rapl
from fabriek.services.energy.metering import measured_cpu_kwh_by_hour, measured_gpu_kwh_by_hour

UJ_PER_KWH = 3.6e12


def zone(root: Path, index: str, name: str, energy: int, top: int = 2**32) -> Path:
    path = root / f"intel-rapl:{index}"
    path.mkdir(parents=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy}\n")
    (path / "max_energy_range_uj").write_text(f"{top}\n")
    return path


def test_the_runner_reads_package_zones_only(tmp_path: Path) -> None:
    zone(tmp_path, "0", "package-0", 1000)
    zone(tmp_path, "1", "package-1", 2000)
    zone(tmp_path, "0:0", "core", 5)  # a sub-zone: counted inside its package already
    zone(tmp_path, "2", "psys", 7)
    found = rapl_zones(tmp_path)
    assert sorted(found) == ["package-0", "package-1"]
    assert read_rapl(found) == {"package-0": 1000, "package-1": 2000}
    assert rapl_zones(tmp_path / "nothing-here") == {}


def test_a_cpu_job_records_rapl_readings(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    package = zone(root, "0", "package-0", 10_000)
    meter = EnergyMeter(tmp_path, {"kind": "cpu", "gpus": [], "rapl_root": str(root)})
    meter.sample()
    (package / "energy_uj").write_text("70000\n")
    meter.sample()
    first, second = meter.readings
    assert first["rapl_uj"] == {"package-0": 10_000} and first["mj"] == {}
    assert second["rapl_uj"] == {"package-0": 70_000} and second["node_cpus"] >= 1
    # No GPU counters were read: GPU energy stays modelled.
    assert measured_gpu_kwh_by_hour(meter.readings) is None


def reading(at: datetime, value: int, top: int = 1000, cpus: int = 8) -> dict[str, object]:
    return {"at": at.isoformat(), "mj": {}, "rapl_uj": {"package-0": value},
            "rapl_range_uj": {"package-0": top}, "node_cpus": cpus}  # fmt: skip


def test_the_job_gets_its_cpu_share_across_hours_and_a_wrap() -> None:
    # 600 µJ then, across a wrap at 1000, 400 + 200 = 600 µJ more; half an hour each side of
    # 13:00. The job holds 2 of the node's 8 CPUs: a quarter.
    t0 = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    t1 = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    t2 = datetime(2026, 3, 1, 13, 30, tzinfo=UTC)
    hours = measured_cpu_kwh_by_hour([reading(t0, 0), reading(t1, 600), reading(t2, 200)], 2)
    assert hours is not None
    assert hours[datetime(2026, 3, 1, 12, tzinfo=UTC)] == pytest.approx(600 / 4 / UJ_PER_KWH)
    assert hours[datetime(2026, 3, 1, 13, tzinfo=UTC)] == pytest.approx(600 / 4 / UJ_PER_KWH)
    assert measured_cpu_kwh_by_hour([reading(t0, 0)], 2) is None  # one reading: nothing measured
