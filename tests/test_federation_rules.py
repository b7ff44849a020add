"""The federation's pure rules, as properties: usage shared over months adds up, a figure is
sent once and again only when it changed, a team is followed exactly, and every name the
platform gives becomes a valid Fabriek name."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.access.allocations import median_per_month, order_turnaround
from fabriek.domain.federation import (
    EUROHPC_MODES,
    Period,
    ended_periods,
    eurohpc_mode,
    member_changes,
    project_name,
    reports_due,
    rounded,
    split_by_month,
    track_for,
    username_for,
)

moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))
periods = st.builds(Period, st.integers(2020, 2030), st.integers(1, 12))
keys = st.tuples(st.sampled_from(["r1", "r2"]), st.sampled_from(["gpu_hours", "kwh"]), periods)
figures = st.dictionaries(keys, st.floats(0, 1e6, allow_nan=False), max_size=20)


@given(moments, spans, st.floats(0.001, 1e6))
def test_a_run_shared_over_months_adds_up_and_lands_only_in_its_months(
    started: datetime, length: timedelta, amount: float
) -> None:
    ended = started + length
    shares = split_by_month(started, ended, amount)
    assert abs(sum(shares.values()) - amount) <= 1e-9 * amount
    assert all(v > 0 for v in shares.values())
    assert all(p.end > started and p.start <= ended for p in shares)


@given(periods)
def test_a_month_is_the_one_before_the_next(period: Period) -> None:
    assert Period.of(period.start) == period
    assert Period.of(period.end - timedelta(microseconds=1)) == period
    assert Period.parse(str(period)) == period


@given(moments, spans, moments)
def test_only_months_that_ended_within_the_allocation_are_reported(
    starts: datetime, length: timedelta, now: datetime
) -> None:
    found = ended_periods(starts, starts + length, now)
    assert all(p.end <= now for p in found)
    assert all(p.start < min(starts + length, now) and p.end > starts for p in found)
    assert found == sorted(found, key=lambda p: (p.year, p.month))


@given(figures, figures)
def test_a_figure_is_sent_once_and_again_only_when_it_changed(
    measured: dict[tuple[str, str, Period], float],
    reported: dict[tuple[str, str, Period], float],
) -> None:
    due = reports_due(measured, reported)
    sent = {(f.resource_uuid, f.component, f.period) for f in due}
    for key, amount in measured.items():
        changed = key not in reported or rounded(reported[key]) != rounded(amount)
        assert (key in sent) == changed
    # Once what was due is recorded as sent, nothing is due.
    after = {**reported, **{(f.resource_uuid, f.component, f.period): f.amount for f in due}}
    assert reports_due(measured, after) == []


@given(
    st.sets(st.sampled_from("abcdefgh")),
    st.sets(st.sampled_from("abcdefgh")),
    st.sets(st.sampled_from("abcdefgh")),
)
def test_a_project_follows_its_team_and_keeps_its_lead(
    current: set[str], team: set[str], keep: set[str]
) -> None:
    changes = member_changes(current, team, keep)
    after = (current | set(changes.add)) - set(changes.remove)
    assert team <= after
    assert after - team <= keep
    assert not set(changes.add) & current and set(changes.remove) <= current


@given(st.text(max_size=80), st.text(max_size=80))
def test_every_platform_person_gets_a_valid_username(username: str, email: str) -> None:
    assert re.fullmatch(r"[a-z][a-z0-9._-]{1,62}", username_for(username, email))


@given(st.text(max_size=300), st.uuids())
def test_every_resource_gets_a_valid_project_name(name: str, uuid: object) -> None:
    made = project_name(name, str(uuid))
    assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", made) and len(made) <= 63


def test_access_modes_are_named_as_the_platform_names_them() -> None:
    known = ["playground", "fast-lane", "large-scale", "ai-for-science"]
    assert track_for("Fast Lane", known) == "fast-lane"
    assert track_for("AI for Science", known) == "ai-for-science"
    assert track_for("Moonshot", known) is None
    assert username_for("anna.devries@myaccessid.org", "") == "anna.devries"


# --- issue 22, point 4: an ordered allocation's mode and turnaround clock -----------------

_MOMENTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@given(st.sampled_from(EUROHPC_MODES), st.sampled_from([" ", "-", "_"]), st.booleans())
def test_an_access_mode_is_named_as_eurohpc_names_it(
    mode: str, separator: str, lower: bool
) -> None:
    spelt = mode.replace(" ", separator)
    assert eurohpc_mode(spelt.lower() if lower else spelt) == mode
    assert eurohpc_mode("Moonshot") == "Moonshot"


@given(_MOMENTS, _MOMENTS, _MOMENTS, st.one_of(st.none(), _MOMENTS))
def test_the_clock_runs_from_the_decision_to_usable_and_never_backwards(
    decided: datetime, created: datetime, starts: datetime, first: datetime | None
) -> None:
    clock = order_turnaround(decided, created, starts, first)
    assert clock.usable_at == max(created, starts)
    assert clock.hours_to_usable >= 0
    if clock.usable_at >= decided:
        expected = (clock.usable_at - decided).total_seconds() / 3600
        assert clock.hours_to_usable == pytest.approx(expected, abs=0.001)
    assert (clock.hours_to_first_job is None) == (first is None)


@given(st.lists(st.tuples(_MOMENTS, st.floats(0, 2000), st.one_of(st.none(), st.floats(0, 2000))),
                max_size=30))  # fmt: skip
def test_the_monthly_median_covers_every_clock_once(
    clocks: list[tuple[datetime, float, float | None]],
) -> None:
    made = [
        order_turnaround(d, d + timedelta(hours=h), d,
                         None if f is None else d + timedelta(hours=f))
        for d, h, f in clocks
    ]  # fmt: skip
    months = median_per_month(made)
    assert [m.month for m in months] == sorted({f"{c.decided_at:%Y-%m}" for c in made})
    assert sum(m.allocations for m in months) == len(made)
    assert sum(m.with_first_job for m in months) == sum(c.first_job_at is not None for c in made)
    for m in months:
        group = [c.hours_to_usable for c in made if f"{c.decided_at:%Y-%m}" == m.month]
        assert min(group) <= m.median_hours_to_usable <= max(group)
        assert (m.median_hours_to_first_job is None) == (m.with_first_job == 0)
