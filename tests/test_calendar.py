"""Dutch holidays and working-day deadlines: known dates, DST edges and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.calendar import (
    AMSTERDAM,
    add_working_days,
    dutch_public_holidays,
    easter_sunday,
    is_working_day,
    working_days_between,
)

NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
ONE_US = timedelta(microseconds=1)


def ams(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


def count_by_walking(first: date, last: date) -> int:
    """The obvious, slow count of working days in (first, last], to check the fast one."""
    count, day = 0, first
    while day < last:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count


# --- Easter and the holidays ------------------------------------------------------------

EASTERS = {
    1818: date(1818, 3, 22),  # the earliest possible date
    1943: date(1943, 4, 25),  # the latest possible date
    2000: date(2000, 4, 23),
    2008: date(2008, 3, 23),
    2011: date(2011, 4, 24),
    2016: date(2016, 3, 27),
    2019: date(2019, 4, 21),
    2024: date(2024, 3, 31),
    2025: date(2025, 4, 20),
    2026: date(2026, 4, 5),
    2027: date(2027, 3, 28),
    2038: date(2038, 4, 25),
    2285: date(2285, 3, 22),
}


@pytest.mark.parametrize(("year", "expected"), sorted(EASTERS.items()))
def test_easter_sunday_on_known_dates(year: int, expected: date) -> None:
    assert easter_sunday(year) == expected


@given(st.integers(min_value=1583, max_value=9999))
def test_easter_is_a_sunday_between_22_march_and_25_april(year: int) -> None:
    easter = easter_sunday(year)
    assert easter.weekday() == 6
    assert date(year, 3, 22) <= easter <= date(year, 4, 25)


def test_the_2026_holidays_are_eleven_and_named() -> None:
    assert dutch_public_holidays(2026) == {
        date(2026, 1, 1): "Nieuwjaarsdag",
        date(2026, 4, 3): "Goede Vrijdag",
        date(2026, 4, 5): "Eerste Paasdag",
        date(2026, 4, 6): "Tweede Paasdag",
        date(2026, 4, 27): "Koningsdag",
        date(2026, 5, 5): "Bevrijdingsdag",
        date(2026, 5, 14): "Hemelvaartsdag",
        date(2026, 5, 24): "Eerste Pinksterdag",
        date(2026, 5, 25): "Tweede Pinksterdag",
        date(2026, 12, 25): "Eerste Kerstdag",
        date(2026, 12, 26): "Tweede Kerstdag",
    }


@pytest.mark.parametrize(
    ("year", "day", "name"),
    [
        (2025, date(2025, 4, 26), "Koningsdag"),  # 27 April 2025 is a Sunday
        (2014, date(2014, 4, 26), "Koningsdag"),  # so was 27 April 2014, the first one
        (2026, date(2026, 4, 27), "Koningsdag"),
        (2013, date(2013, 4, 30), "Koninginnedag"),
        (2006, date(2006, 4, 29), "Koninginnedag"),  # 30 April 2006 is a Sunday
    ],
)
def test_kings_and_queens_day(year: int, day: date, name: str) -> None:
    holidays = dutch_public_holidays(year)
    assert holidays[day] == name
    assert [d for d, n in holidays.items() if n == name] == [day]


def test_holidays_that_share_a_date_keep_both_names() -> None:
    # Easter 2016 was 27 March, so Hemelvaartsdag fell on Bevrijdingsdag.
    holidays = dutch_public_holidays(2016)
    assert holidays[date(2016, 5, 5)] == "Bevrijdingsdag en Hemelvaartsdag"
    assert len(holidays) == 10


def test_the_returned_dict_is_the_callers_own() -> None:
    dutch_public_holidays(2026).clear()
    assert len(dutch_public_holidays(2026)) == 11


@given(st.integers(min_value=1900, max_value=2500))
def test_holidays_fall_on_their_weekdays(year: int) -> None:
    holidays = dutch_public_holidays(year)
    by_name = {name: day for day, names in holidays.items() for name in names.split(" en ")}
    assert len(by_name) == 11
    assert list(holidays) == sorted(holidays)
    assert all(day.year == year for day in holidays)
    assert by_name["Goede Vrijdag"].weekday() == 4
    assert by_name["Eerste Paasdag"] == easter_sunday(year)
    assert by_name["Tweede Paasdag"].weekday() == 0
    assert by_name["Hemelvaartsdag"].weekday() == 3
    assert by_name["Eerste Pinksterdag"].weekday() == 6
    assert by_name["Tweede Pinksterdag"].weekday() == 0
    royal = by_name.get("Koningsdag") or by_name["Koninginnedag"]
    assert royal.weekday() != 6
    assert by_name["Bevrijdingsdag"] == date(year, 5, 5)


def test_working_days() -> None:
    assert is_working_day(date(2025, 12, 24))  # Wednesday
    assert not is_working_day(date(2025, 12, 25))  # Eerste Kerstdag, a Thursday
    assert not is_working_day(date(2025, 12, 27))  # Saturday
    assert not is_working_day(date(2025, 12, 28))  # Sunday
    assert not is_working_day(date(2026, 5, 5))  # Bevrijdingsdag, not a lustrum year
    assert not is_working_day(date(2026, 4, 3))  # Goede Vrijdag


# --- add_working_days: examples ---------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        # 22, 23, 24 Dec work; 25, 26 Christmas; 27, 28 weekend; 29 Dec is the fourth.
        (ams(2025, 12, 19, 10), 4, ams(2025, 12, 30)),
        # 31 Dec, then 1 Jan Nieuwjaarsdag, 2 Jan (Friday), weekend, 5 Jan.
        (ams(2025, 12, 30, 16), 3, ams(2026, 1, 6)),
        # Goede Vrijdag 18 Apr, weekend, Tweede Paasdag 21 Apr; then 22 and 23 Apr.
        (ams(2025, 4, 17, 9), 2, ams(2025, 4, 24)),
        # Koningsdag on Monday 27 April 2026.
        (ams(2026, 4, 24, 12), 1, ams(2026, 4, 29)),
        # Bevrijdingsdag on Monday 5 May 2025.
        (ams(2025, 5, 2, 12), 1, ams(2025, 5, 7)),
        # Hemelvaartsdag on Thursday 14 May 2026; then 15, 18 and 19 May.
        (ams(2026, 5, 13, 8), 3, ams(2026, 5, 20)),
        # Tweede Pinksterdag on Monday 25 May 2026.
        (ams(2026, 5, 22, 8), 1, ams(2026, 5, 27)),
        # Starting on a weekend or holiday: that day is skipped like any other start day.
        (ams(2025, 12, 20, 10), 1, ams(2025, 12, 23)),
        (ams(2025, 12, 25), 1, ams(2025, 12, 30)),
        # Starting a minute before midnight still skips the whole start day.
        (ams(2025, 12, 22, 23, 59), 1, ams(2025, 12, 24)),
    ],
)
def test_add_working_days_examples(start: datetime, days: int, due: datetime) -> None:
    assert add_working_days(start, days) == due


def test_zero_days_is_the_start_itself() -> None:
    start = datetime(2025, 12, 25, 13, 14, 15, 16, tzinfo=NEW_YORK)
    assert add_working_days(start, 0) is start


def test_negative_days_and_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="zero or more"):
        add_working_days(ams(2025, 1, 6), -1)
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_days(datetime(2025, 1, 6, 12), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        working_days_between(datetime(2025, 1, 6), ams(2025, 1, 9))
    with pytest.raises(ValueError, match="timezone-aware"):
        working_days_between(ams(2025, 1, 6), datetime(2025, 1, 9))


# --- time zones and daylight saving time ------------------------------------------------


def test_the_day_of_start_is_the_amsterdam_date_not_the_callers() -> None:
    # 22:30 UTC on Thursday is 23:30 Thursday in Amsterdam: Friday is the first day.
    thursday = datetime(2025, 12, 18, 22, 30, tzinfo=UTC)
    assert add_working_days(thursday, 1) == datetime(2025, 12, 19, 23, tzinfo=UTC)
    # An hour later it is already Friday in Amsterdam: Monday is the first day.
    friday = datetime(2025, 12, 18, 23, 30, tzinfo=UTC)
    assert add_working_days(friday, 1) == datetime(2025, 12, 22, 23, tzinfo=UTC)


def test_the_result_is_in_the_time_zone_of_start() -> None:
    # 18:30 in New York is 00:30 the next day (Friday 19 Dec) in Amsterdam.
    start = datetime(2025, 12, 18, 18, 30, tzinfo=NEW_YORK)
    due = add_working_days(start, 1)
    assert due.tzinfo is NEW_YORK
    assert (due.year, due.month, due.day, due.hour, due.minute) == (2025, 12, 22, 18, 0)
    fixed = timezone(timedelta(hours=5, minutes=30))
    assert add_working_days(start.astimezone(fixed), 1).tzinfo is fixed


def test_due_across_the_spring_change_is_local_midnight_in_summer_time() -> None:
    # Clocks go forward on Sunday 30 March 2025; the deadline is midnight CEST (UTC+2).
    due = add_working_days(ams(2025, 3, 28, 10), 1)
    assert due == ams(2025, 4, 1)
    assert due.utcoffset() == timedelta(hours=2)
    assert due.astimezone(UTC) == datetime(2025, 3, 31, 22, tzinfo=UTC)


def test_due_across_the_autumn_change_is_local_midnight_in_winter_time() -> None:
    start = datetime(2025, 10, 23, 12, tzinfo=UTC)
    # Before Sunday 26 October 2025 Amsterdam is on UTC+2 ...
    assert add_working_days(start, 1) == datetime(2025, 10, 24, 22, tzinfo=UTC)
    # ... after it on UTC+1.
    due = add_working_days(start, 2)
    assert due == datetime(2025, 10, 27, 23, tzinfo=UTC)
    assert due.astimezone(AMSTERDAM).time() == time()


# --- working_days_between: examples -----------------------------------------------------


def test_working_days_between_examples() -> None:
    # 22, 23, 24, 29, 30 and 31 December.
    assert working_days_between(ams(2025, 12, 19, 10), ams(2025, 12, 31, 12)) == 6
    assert working_days_between(ams(2025, 12, 19, 10), ams(2025, 12, 19, 23)) == 0
    assert working_days_between(ams(2025, 12, 19, 10), ams(2025, 12, 1)) == 0
    # All of 2026: 261 weekdays, of which 8 are holidays.
    assert working_days_between(ams(2025, 12, 31, 12), ams(2026, 12, 31, 12)) == 253
    # The end's date counts in Amsterdam: 23:30 UTC on 18 Dec is Friday 19 Dec there.
    assert working_days_between(ams(2025, 12, 18, 9), datetime(2025, 12, 18, 23, 30, tzinfo=UTC))
    assert not working_days_between(ams(2025, 12, 18, 9), datetime(2025, 12, 18, 22, tzinfo=UTC))


# --- properties -------------------------------------------------------------------------

ZONES = st.sampled_from(
    [UTC, AMSTERDAM, NEW_YORK, TOKYO, timezone(timedelta(hours=-9, minutes=-30))]
)
STARTS = st.datetimes(
    min_value=datetime(1950, 1, 1),
    max_value=datetime(2150, 12, 31),
    timezones=ZONES,
    allow_imaginary=False,
)
DAYS = st.integers(min_value=1, max_value=400)


@given(STARTS, DAYS)
def test_the_due_moment_is_the_end_of_a_working_day_after_start(start: datetime, days: int) -> None:
    due = add_working_days(start, days)
    assert due > start
    assert due.tzinfo is start.tzinfo
    local = due.astimezone(AMSTERDAM)
    assert local.time() == time()
    assert is_working_day(local.date() - timedelta(days=1))
    assert local.date() - timedelta(days=1) > start.astimezone(AMSTERDAM).date()


@given(STARTS, DAYS)
def test_counting_back_gives_the_days_added(start: datetime, days: int) -> None:
    due = add_working_days(start, days)
    assert working_days_between(start, due - ONE_US) == days
    # The due moment itself is the first instant of the day after the term.
    after = 1 if is_working_day(due.astimezone(AMSTERDAM).date()) else 0
    assert working_days_between(start, due) == days + after


@given(STARTS, st.integers(min_value=0, max_value=400))
def test_more_days_are_strictly_later(start: datetime, days: int) -> None:
    assert add_working_days(start, days) < add_working_days(start, days + 1)


@given(STARTS, DAYS, DAYS)
def test_adding_in_two_steps(start: datetime, a: int, b: int) -> None:
    first = add_working_days(start, a)
    # Continuing from the last instant of the first term is exactly one longer term.
    assert add_working_days(first - ONE_US, b) == add_working_days(start, a + b)
    # Continuing from the due moment itself starts on a new day, which never counts; it
    # costs one extra working day exactly when that day is a working day.
    skipped = 1 if is_working_day(first.astimezone(AMSTERDAM).date()) else 0
    assert add_working_days(first, b) == add_working_days(start, a + b + skipped)


@given(STARTS, st.integers(min_value=-50_000, max_value=1_200_000), ZONES)
def test_working_days_between_matches_walking_the_days(
    start: datetime, minutes: int, zone: tzinfo
) -> None:
    # Up to about 830 days either way, with the end in a time zone of its own.
    end = (start + timedelta(minutes=minutes)).astimezone(zone)
    first = start.astimezone(AMSTERDAM).date()
    last = end.astimezone(AMSTERDAM).date()
    assert working_days_between(start, end) == count_by_walking(first, last)


# From 1980, when Koninginnedag on a Sunday moved to the Saturday before (it was the Monday
# after): ours follows the present rules, for promises made today, not the older ones.
@pytest.mark.parametrize("year", range(1980, 2101))
def test_the_holidays_agree_with_the_holidays_package_but_for_liberation_day(year: int) -> None:
    """The `holidays` package keeps the Dutch calendar; ours differs in one thing only, on
    purpose: Bevrijdingsdag every year, where the package lists it in lustrum years (see
    `domain/calendar.py` for why)."""
    theirs = set(holidays.country_holidays("NL", years=year))
    ours = set(dutch_public_holidays(year))
    assert ours - theirs <= {date(year, 5, 5)}
    assert theirs <= ours
    assert date(year, 5, 5) in ours
