"""Dutch working days, so a promise such as "a decision within 5 working days" has a due moment.

Pure: no I/O and no clock reads; the caller passes every moment in. The calendar is the
Netherlands' national one, evaluated on the local date in Europe/Amsterdam, whatever time
zone the caller's datetimes carry.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

AMSTERDAM: Final = ZoneInfo("Europe/Amsterdam")

# The first year the King's birthday replaced the Queen's; the rules for the day differ.
_FIRST_KONINGSDAG_YEAR: Final = 2014


def easter_sunday(year: int) -> date:
    """Easter Sunday of a Gregorian year (anonymous algorithm of Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _kings_or_queens_day(year: int) -> tuple[date, str]:
    if year >= _FIRST_KONINGSDAG_YEAR:
        # Celebrated on a Saturday rather than a Sunday, hence one day earlier.
        day = date(year, 4, 27)
        name = "Koningsdag"
    else:
        day = date(year, 4, 30)
        name = "Koninginnedag"
    if day.weekday() == 6:
        day -= timedelta(days=1)
    return day, name


@cache
def _holidays(year: int) -> MappingProxyType[date, str]:
    easter = easter_sunday(year)
    listed = [
        (date(year, 1, 1), "Nieuwjaarsdag"),
        # Goede Vrijdag is a day off for government and under many collective agreements,
        # not for everyone; like Bevrijdingsdag it is counted because that errs towards
        # promising later, never earlier, than the user can expect.
        (easter - timedelta(days=2), "Goede Vrijdag"),
        (easter, "Eerste Paasdag"),
        (easter + timedelta(days=1), "Tweede Paasdag"),
        _kings_or_queens_day(year),
        # The government and many collective agreements give Bevrijdingsdag off every year,
        # others only every five years (lustrum years). Counting it every year is the
        # conservative choice for a promise made to users.
        (date(year, 5, 5), "Bevrijdingsdag"),
        (easter + timedelta(days=39), "Hemelvaartsdag"),
        (easter + timedelta(days=49), "Eerste Pinksterdag"),
        (easter + timedelta(days=50), "Tweede Pinksterdag"),
        (date(year, 12, 25), "Eerste Kerstdag"),
        (date(year, 12, 26), "Tweede Kerstdag"),
    ]
    # Two holidays can share a date (Hemelvaartsdag fell on 5 May in 2016); keep both
    # names rather than letting the later one silently overwrite the earlier.
    named: dict[date, str] = {}
    for day, name in sorted(listed):
        named[day] = f"{named[day]} en {name}" if day in named else name
    return MappingProxyType(named)


def dutch_public_holidays(year: int) -> dict[date, str]:
    """The Dutch national public holidays of `year`, by date, with their Dutch names.

    Sorted by date. Where two holidays fall on one date the names are joined with " en ".
    Koningsdag is 27 April (26 April when that is a Sunday); before 2014 Koninginnedag was
    30 April (29 April when that is a Sunday). Bevrijdingsdag and Goede Vrijdag are
    included every year. The result is a fresh dict the caller may change.
    """
    return dict(_holidays(year))


def is_working_day(day: date) -> bool:
    """Whether `day` is Monday to Friday and not a Dutch public holiday."""
    return day.weekday() < 5 and day not in _holidays(day.year)


def _local_date(moment: datetime) -> date:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive datetime has no single Amsterdam date; guessing would shift deadlines.
        raise ValueError(f"expected a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(AMSTERDAM).date()


def add_working_days(start: datetime, days: int) -> datetime:
    """The moment a promise of `days` working days, made at `start`, falls due.

    The day of `start` (its local date in Europe/Amsterdam) never counts, whether or not
    it is a working day. Counting from the next day, the `days`-th working day is the last
    day of the term, and the result is the end of that day: midnight Europe/Amsterdam at
    the start of the following day, expressed in the time zone of `start`. Anything before
    the result is in time; the result itself is late.

    `days == 0` returns `start` unchanged. `start` must be timezone-aware; a negative
    `days` or a naive `start` raises ValueError.
    """
    if days < 0:
        raise ValueError(f"days must be zero or more, got {days}")
    day = _local_date(start)
    if days == 0:
        return start
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    # Dutch clocks change at 02:00 and 03:00, so local midnight always exists exactly once.
    due = datetime.combine(day + timedelta(days=1), time(), tzinfo=AMSTERDAM)
    return due.astimezone(start.tzinfo)


def _weekdays_through(day: date) -> int:
    # Mondays to Fridays from 0001-01-01 (a Monday) up to and including `day`.
    weeks, rest = divmod(day.toordinal(), 7)
    return 5 * weeks + min(rest, 5)


def working_days_between(start: datetime, end: datetime) -> int:
    """The number of working days after the local date of `start`, through that of `end`.

    Dates are local to Europe/Amsterdam. The day of `start` never counts, the day of `end`
    does; 0 when `end`'s date is not after `start`'s. Consistent with `add_working_days`:
    for `d >= 1`, `working_days_between(start, add_working_days(start, d) - ε) == d` with
    ε one microsecond. Both arguments must be timezone-aware, or ValueError is raised.
    """
    first = _local_date(start)
    last = _local_date(end)
    if last <= first:
        return 0
    count = _weekdays_through(last) - _weekdays_through(first)
    # Holidays are distinct dates per year, so each weekday holiday is subtracted once.
    for year in range(first.year, last.year + 1):
        count -= sum(
            1 for holiday in _holidays(year) if first < holiday <= last and holiday.weekday() < 5
        )
    return count
