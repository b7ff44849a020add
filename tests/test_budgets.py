"""Budget rules and the shipped track rules: pure, so tested as properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.access.budgets import Budget, Notice, charge, due_notices, superseded
from fabriek.domain.units import GpuHours

hours = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(hours, hours, hours)
def test_remaining_is_awarded_less_consumed_and_committed(a: float, c: float, k: float) -> None:
    budget = Budget(GpuHours(a), GpuHours(c), GpuHours(k))
    assert abs(budget.remaining.value - (a - c - k)) < 1e-6 * max(1.0, a, c, k)


@given(st.integers(0, 64), st.floats(0, 1e6), st.floats(0.1, 4))
def test_charge_is_linear_in_gpus_time_and_factor(gpus: int, seconds: float, f: float) -> None:
    assert abs(charge(gpus, seconds, f).value - gpus * seconds / 3600 * f) < 1e-6
    assert charge(gpus, -seconds - 1, f).value == 0.0


def test_a_jump_past_two_thresholds_gives_one_notice() -> None:
    assert due_notices(0.9, 100, []) == [Notice.USED_80]
    assert due_notices(0.9, 100, [Notice.USED_80]) == []
    assert due_notices(0.4, 10, []) == [Notice.ENDS_14]
    assert due_notices(0.4, -1, []) == []
    assert superseded(Notice.USED_100) == [Notice.USED_80, Notice.USED_50]


@given(st.lists(st.tuples(st.floats(0, 2), st.floats(-5, 60)), max_size=30))
def test_no_notice_is_ever_owed_twice(steps: list[tuple[float, float]]) -> None:
    sent: set[Notice] = set()
    for used, days in steps:
        for notice in due_notices(used, days, sent):
            assert notice not in sent
            sent.add(notice)
            sent.update(superseded(notice))
