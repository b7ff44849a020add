"""A job's ledger hour by hour (domain.job_ledger): what it sums, how power follows from
energy and time, and that carbon is never a zero where no grid intensity is known."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.job_ledger import JobEnergy, average_power, job_ledger
from fabriek.domain.units import KilowattHours

START = datetime(2026, 3, 1, tzinfo=UTC)

records = st.lists(
    st.builds(
        JobEnergy,
        hour=st.integers(0, 5).map(lambda h: START + timedelta(hours=h)),
        gpu_kwh=st.floats(0, 50).map(KilowattHours),
        cpu_kwh=st.floats(0, 5).map(KilowattHours),
        gpu_seconds=st.floats(1, 8 * 3600),
        pue=st.floats(1.0, 2.0),
        g_per_kwh=st.one_of(st.none(), st.floats(0, 800)),
    ),
    max_size=12,
)


@given(records, st.integers(1, 8))
def test_the_ledger_keeps_every_kwh_once_per_hour_in_order(
    found: list[JobEnergy], gpus: int
) -> None:
    hours = job_ledger(found, gpus)
    assert [h.hour for h in hours] == sorted({r.hour for r in found})
    for h in hours:
        runs = [r for r in found if r.hour == h.hour]
        assert math.isclose(h.gpu_energy.value, sum(r.gpu_kwh.value for r in runs), abs_tol=1e-9)
        facility = sum((r.gpu_kwh.value + r.cpu_kwh.value) * r.pue for r in runs)
        assert math.isclose(h.facility_energy.value, facility, abs_tol=1e-9)
        assert h.facility_energy.value >= h.gpu_energy.value + h.cpu_energy.value - 1e-9
        # Power over the seconds it ran in the hour gives back the GPUs' energy.
        assert h.gpu_power is not None
        seconds = sum(r.gpu_seconds for r in runs) / gpus
        assert math.isclose(h.gpu_power.value * seconds / 3.6e6, h.gpu_energy.value,
                            rel_tol=1e-9, abs_tol=1e-9)  # fmt: skip
        known = [r for r in runs if r.g_per_kwh is not None]
        if not known:
            assert h.carbon is None
        else:
            assert h.carbon is not None
            expected = sum((r.gpu_kwh.value + r.cpu_kwh.value) * r.pue * (r.g_per_kwh or 0)
                           for r in known) / 1000  # fmt: skip
            assert math.isclose(h.carbon.value, expected, rel_tol=1e-9, abs_tol=1e-9)


@given(records)
def test_a_job_without_gpus_has_no_gpu_power(found: list[JobEnergy]) -> None:
    assert all(h.gpu_power is None for h in job_ledger(found, 0))


def test_a_kilowatt_hour_in_an_hour_is_a_kilowatt() -> None:
    assert average_power(KilowattHours(1.0), 3600).value == 1000.0
    assert average_power(KilowattHours(0.5), 1800).value == 1000.0
    assert average_power(KilowattHours(1.0), 0).value == 0.0
