"""The rules of a proposal's path: states, calls, the turnaround clock, conflicts of interest,
decisions and dates. Known dates (Dutch holidays inside a clock) and properties."""

from __future__ import annotations

import calendar as gregorian
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.access.calls import CallDraft, call_open_problem, is_open
from fabriek.domain.access.proposals import (
    TRANSITIONS,
    AiActAssessment,
    DecisionKind,
    ProposalState,
    ReviewKind,
    add_months,
    allocation_months,
    check_transition,
    conflict_of_interest,
    decision_kind,
    final_report_due,
    report_overdue,
    reviews_problem,
    turnaround,
)
from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import Conflict, InvalidInput
from fabriek.services.access.config import load_access_config

ACCESS = load_access_config()
START_UP = ACCESS.track("start-up")
FAST_LANE = ACCESS.track("fast-lane")
LARGE = ACCESS.track("large-scale")
PLAYGROUND = ACCESS.track("playground")


def ams(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC)
)


# --- states ---------------------------------------------------------------------------------


@given(st.sampled_from(ProposalState), st.sampled_from(ProposalState))
def test_a_transition_is_allowed_exactly_when_listed(a: ProposalState, b: ProposalState) -> None:
    if b in TRANSITIONS[a]:
        check_transition(1, a, b)
    else:
        with pytest.raises(Conflict) as err:
            check_transition(1, a, b)
        assert a.value in str(err.value)


def test_a_decided_proposal_cannot_change_and_says_so() -> None:
    with pytest.raises(Conflict, match="awarded: it can no longer change"):
        check_transition(7, ProposalState.AWARDED, ProposalState.WITHDRAWN)
    with pytest.raises(Conflict, match="draft, so you cannot award it"):
        check_transition(7, ProposalState.DRAFT, ProposalState.AWARDED)


# --- calls ----------------------------------------------------------------------------------


def test_a_closed_call_names_its_dates() -> None:
    opens, closes = ams(2026, 3, 1, 9), ams(2026, 3, 31, 17)
    assert call_open_problem("c", opens, closes, ams(2026, 3, 15)) is None
    early = call_open_problem("c", opens, closes, ams(2026, 2, 28))
    assert early and "not open yet" in early and "2026-03-01 09:00" in early
    late = call_open_problem("c", opens, closes, ams(2026, 4, 1))
    assert late and "closed" in late and "2026-03-31 17:00" in late
    assert is_open(opens, None, ams(2030, 1, 1))


@given(moments, st.integers(0, 10**7), st.integers(1, 10**7), st.integers(-(10**7), 2 * 10**7))
def test_a_call_is_open_from_its_opening_up_to_its_cutoff(
    opens: datetime, _pad: int, length_s: int, offset_s: int
) -> None:
    closes = opens + timedelta(seconds=length_s)
    now = opens + timedelta(seconds=offset_s)
    assert is_open(opens, closes, now) == (opens <= now < closes)


def test_a_call_draft_needs_its_cutoff_after_its_opening() -> None:
    with pytest.raises(ValueError, match="after opens_at"):
        CallDraft(code="c1", title="t", track="fast-lane", opens_at=ams(2026, 3, 2),
                  closes_at=ams(2026, 3, 1))  # fmt: skip


# --- the turnaround clock: known dates -------------------------------------------------------


def test_easter_inside_a_start_up_clock() -> None:
    # Wed 1 April 2026: Good Friday (3 April) and Easter Monday (6 April) do not count, so
    # five working days are Thu 2, Tue 7, Wed 8, Thu 9, Fri 10: due at the end of Friday.
    submitted = ams(2026, 4, 1, 10)
    clock = turnaround(START_UP, None, submitted, None, ams(2026, 4, 8, 12))
    assert clock.started_at == submitted
    assert clock.due_at == ams(2026, 4, 11)
    assert clock.promised_working_days == 5
    assert clock.used_working_days == 3  # Thu 2, Tue 7 and Wed 8 (under way) count
    assert not clock.breached
    late = turnaround(START_UP, None, submitted, None, ams(2026, 4, 11, 0, 1))
    assert late.breached and late.used_working_days == 5


def test_koningsdag_inside_a_fast_lane_clock() -> None:
    # Fri 24 April 2026; Mon 27 April is Koningsdag: due at the end of Fri 1 May.
    clock = turnaround(FAST_LANE, None, ams(2026, 4, 24, 16), ams(2026, 4, 30, 9), ams(2026, 6, 1))
    assert clock.due_at == ams(2026, 5, 2)
    assert clock.used_working_days == 3
    assert not clock.breached  # decided in time: the clock stopped at the decision


def test_a_peer_reviewed_clock_starts_at_the_cutoff() -> None:
    # Cut-off Thu 30 April 2026 17:00. Ten working days skip Bevrijdingsdag (Tue 5 May)
    # and Hemelvaartsdag (Thu 14 May): due at the end of Mon 18 May.
    cutoff = ams(2026, 4, 30, 17)
    before = turnaround(LARGE, cutoff, ams(2026, 4, 20, 9), None, ams(2026, 4, 29))
    assert before.started_at == cutoff
    assert before.used_working_days == 0 and not before.breached
    clock = turnaround(LARGE, cutoff, ams(2026, 4, 20, 9), None, ams(2026, 5, 19, 9))
    assert clock.due_at == ams(2026, 5, 19)
    assert clock.breached and clock.used_working_days == 11  # Tue 19 May has begun


def test_an_unsubmitted_proposal_has_no_clock() -> None:
    clock = turnaround(PLAYGROUND, None, None, None, ams(2026, 1, 1))
    assert clock.started_at is None and clock.due_at is None and not clock.breached


@given(moments, st.integers(0, 60 * 24 * 40), st.sampled_from(list(ACCESS.tracks.values())))
def test_the_clock_is_breached_exactly_when_the_due_moment_has_come(
    submitted: datetime, minutes: int, track: object
) -> None:
    from fabriek.domain.access.tracks import Track

    assert isinstance(track, Track)
    now = submitted + timedelta(minutes=minutes)
    clock = turnaround(track, None, submitted, None, now)
    assert clock.due_at is not None
    assert clock.breached == (now >= clock.due_at)
    if clock.breached:
        assert clock.used_working_days >= clock.promised_working_days
    else:
        assert clock.used_working_days <= clock.promised_working_days
    # A decision stops the clock: later moments do not change it.
    decided = turnaround(track, None, submitted, now, now + timedelta(days=400))
    assert decided.breached == clock.breached
    assert decided.used_working_days == clock.used_working_days


# --- conflicts of interest --------------------------------------------------------------------


def test_no_reviewer_from_the_applicants_organisation_or_project() -> None:
    own = conflict_of_interest("rita", 3, frozenset(), 3, "Universiteit Utrecht", 10)
    assert own and "Universiteit Utrecht" in own and "conflict of interest" in own
    member = conflict_of_interest("rita", 4, frozenset({10}), 3, "Universiteit Utrecht", 10)
    assert member and "member" in member
    assert conflict_of_interest("rita", 4, frozenset({11}), 3, "UU", 10) is None
    assert conflict_of_interest("rita", None, frozenset(), 3, "UU", 10) is None


def test_an_award_needs_the_reviews_its_track_asks_for() -> None:
    assert reviews_problem(START_UP, {}) is not None
    assert reviews_problem(START_UP, {ReviewKind.TECHNICAL: 1}) is None
    peer = reviews_problem(LARGE, {ReviewKind.TECHNICAL: 1})
    assert peer and "peer reviewed" in peer
    assert reviews_problem(LARGE, {ReviewKind.TECHNICAL: 1, ReviewKind.SCIENTIFIC: 2}) is None


# --- decisions ------------------------------------------------------------------------------


def test_decisions_known_cases() -> None:
    asked = {"h100": 1000.0, "a100": 500.0}
    assert decision_kind(asked, asked, None) is DecisionKind.AWARD
    assert decision_kind(asked, {"h100": 1000.0, "a100": 200.0}, "less") is DecisionKind.PARTIAL
    assert decision_kind(asked, {}, "out of scope") is DecisionKind.REJECT
    with pytest.raises(InvalidInput, match="a partial award needs a reason"):
        decision_kind(asked, {"h100": 500.0}, "  ")
    with pytest.raises(InvalidInput, match="a rejection needs a reason"):
        decision_kind(asked, {}, None)
    with pytest.raises(InvalidInput, match=r"more than requested \(h100: 2,000.00 GPU-h awarded"):
        decision_kind(asked, {"h100": 2000.0, "a100": 500.0}, None)
    with pytest.raises(InvalidInput, match="l40s"):
        decision_kind(asked, {**asked, "l40s": 1.0}, None)  # a type not asked is "more"
    assert decision_kind(asked, {"h100": 2000.0, "a100": 500.0}, "scaling run") is (
        DecisionKind.AWARD
    )
    with pytest.raises(InvalidInput, match="no GPU type"):
        decision_kind(asked, {"tpu": 1.0}, "x")


hours = st.floats(min_value=1, max_value=1e6, allow_nan=False)
requests = st.dictionaries(st.sampled_from(["h100", "a100", "h200", "l40s"]), hours, min_size=1)


@given(requests, st.floats(min_value=0.01, max_value=0.99))
def test_less_than_asked_is_partial_and_needs_a_reason(asked: dict[str, float], f: float) -> None:
    less = {gpu: h * f for gpu, h in asked.items()}
    with pytest.raises(InvalidInput):
        decision_kind(asked, less, None)
    assert decision_kind(asked, less, "budget") is DecisionKind.PARTIAL


@given(requests, st.floats(min_value=1.01, max_value=10))
def test_more_than_asked_needs_a_reason(asked: dict[str, float], f: float) -> None:
    more = {gpu: h * f for gpu, h in asked.items()}
    with pytest.raises(InvalidInput) as err:
        decision_kind(asked, more, None)
    assert err.value.problems[0].field == "reason"
    assert decision_kind(asked, more, "a scaling study") is DecisionKind.AWARD


@given(requests)
def test_awarding_what_was_asked_is_an_award_without_reason(asked: dict[str, float]) -> None:
    assert decision_kind(asked, dict(asked), None) is DecisionKind.AWARD
    assert decision_kind(asked, {g: 0.0 for g in asked}, "no") is DecisionKind.REJECT


def test_a_prohibited_practice_is_refused() -> None:
    with pytest.raises(ValueError, match="Article 5"):
        AiActAssessment(risk="prohibited")  # type: ignore[arg-type]


# --- dates: months, final reports -----------------------------------------------------------


def test_add_months_known_cases() -> None:
    assert add_months(ams(2026, 1, 31, 12), 1) == ams(2026, 2, 28, 12)
    assert add_months(ams(2028, 1, 31), 1) == ams(2028, 2, 29)
    assert add_months(ams(2026, 11, 15), 3) == ams(2027, 2, 15)
    assert add_months(ams(2026, 3, 31), -1) == ams(2026, 2, 28)
    assert final_report_due(ams(2026, 12, 31)) == ams(2027, 2, 28)


@given(moments, st.integers(-48, 48))
def test_add_months_lands_in_the_right_month_on_the_nearest_day(m: datetime, n: int) -> None:
    out = add_months(m, n)
    assert out.year * 12 + out.month == m.year * 12 + m.month + n
    assert out.day == min(m.day, gregorian.monthrange(out.year, out.month)[1])
    assert out.time() == m.time() and out.tzinfo == m.tzinfo


@given(moments, st.integers(0, 400), st.integers(0, 400))
def test_an_overdue_report_stays_overdue_until_filed(ends: datetime, d1: int, d2: int) -> None:
    first = ends + timedelta(days=d1)
    later = first + timedelta(days=d2)
    if report_overdue(ends, None, first):
        assert report_overdue(ends, None, later)
    assert report_overdue(ends, None, first) == (first >= final_report_due(ends))
    assert not report_overdue(ends, first, later)  # filed: never overdue
    # Due within two months and a day, never within less than 59 days.
    assert timedelta(days=59) <= final_report_due(ends) - ends <= timedelta(days=62)


def test_allocation_months_come_from_the_track() -> None:
    assert allocation_months(LARGE, 6) == 6
    assert allocation_months(LARGE, None) == 12
    with pytest.raises(InvalidInput, match="3, 6, 12 months, not 4"):
        allocation_months(LARGE, 4)
