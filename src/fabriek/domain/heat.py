"""Heat demand: an hourly profile of a typical year, as the Energy Transition Model (ETM)
publishes it, normalised and mapped onto the calendar.

**The file.** CSV with a header: `hour_of_year` (0 .. 8759, consecutive) and one or more
columns of shares (e.g. `households_space_heating_terraced_medium_share`: the share of
the year's space-heating demand that falls in that hour; each column sums to 1). Other
columns (`air_temperature_degC`) are ignored.

**Normalised to 0..1.** Each hour's share divided by the year's largest: 1 in the hour
of peak demand, 0 where nothing is wanted. That is what the scheduler's cost
`carbon x (1 - heat_weight x heat_demand)` expects: a heat weight of 1 makes the peak
hour free of carbon cost, and never makes a cost negative.

**Onto the calendar.** A profile is a typical year, not a dated one: an hour `t` (UTC)
takes the profile's hour of the same date and hour of day, counted from 1 January 00:00
UTC (KNMI's hourly weather, from which ETM derives its profiles, is in UT). A leap day
takes 28 February's hours, and the days after it their own dates' hours, so 25 December
is always 25 December and the year's last hours never run out. Weekdays are not kept: a
Monday of the profile may fall on a Sunday; space-heating demand follows the weather
and the hour of day far more than the day of the week.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from fabriek.domain.csv_files import CsvError, CsvTable

YEAR_HOURS = 8760
HOUR_COLUMN = "hour_of_year"
# District heat serves mostly homes: their space heating peaks on winter evenings.
DEFAULT_HEAT_COLUMN = "households_space_heating_terraced_medium_share"


@dataclass(frozen=True, slots=True)
class HeatProfile:
    """Heat demand in each hour of a typical year, 0..1 (1 at the year's peak)."""

    column: str
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) != YEAR_HOURS:
            raise ValueError(f"a heat profile has {YEAR_HOURS} hours, got {len(self.values)}")

    def at(self, hour: datetime) -> float:
        """The demand in the hour holding `hour` (an aware time; see the module)."""
        return self.values[profile_hour(hour)]

    def series(self, first: datetime, hours: int) -> list[float]:
        """The demand in `hours` consecutive hours from the hour holding `first`."""
        start = first.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return [self.at(start + timedelta(hours=i)) for i in range(hours)]


def profile_hour(hour: datetime) -> int:
    """The hour of a typical (non-leap) year that an aware time maps to: same date and
    hour of day in UTC; 29 February maps to 28 February."""
    when = hour.astimezone(UTC)
    day = 28 if (when.month, when.day) == (2, 29) else when.day
    # 2001 is not a leap year: its day numbers are a typical year's.
    ordinal = date(2001, when.month, day).timetuple().tm_yday
    return (ordinal - 1) * 24 + when.hour


def parse_heat_profile(
    lines: Iterable[str], column: str | None = None, source: str = "heat profile"
) -> HeatProfile:
    """Read an ETM hourly profile (see the module); `column` names the share column (by
    default the households' space heating where the file has it, else its only share
    column). Raises `CsvError` (an `InvalidInput`) with a one-line message naming line and
    column."""
    table = CsvTable(lines, source, (HOUR_COLUMN,))
    header = table.header
    shares = [h for h in header if h.endswith("_share")]
    if column is None:
        if DEFAULT_HEAT_COLUMN in header:
            column = DEFAULT_HEAT_COLUMN
        elif len(shares) == 1:
            column = shares[0]
        else:
            choices = ", ".join(shares) or "none"
            raise CsvError(
                f"{source} line 1: no column {DEFAULT_HEAT_COLUMN}; choose one with --column "
                f"(share columns: {choices})"
            )
    elif column not in header:
        raise CsvError(f"{source} line 1: no column {column!r} (columns: {', '.join(header)})")
    raw: list[float] = []
    for row in table:
        hour = row.text(HOUR_COLUMN)
        if hour != str(len(raw)):
            raise row.problem(
                HOUR_COLUMN,
                f"{hour!r}, expected {len(raw)} (hours 0 to {YEAR_HOURS - 1} in order)",
            )
        raw.append(row.number(column))
    if len(raw) != YEAR_HOURS:
        raise CsvError(
            f"{source}: {len(raw):,} hours, expected {YEAR_HOURS:,} (a typical year, hours 0 "
            f"to {YEAR_HOURS - 1})"
        )
    peak = max(raw)
    if peak <= 0:
        raise CsvError(f"{source}, column {column}: every hour is 0, there is no demand")
    return HeatProfile(column, tuple(v / peak for v in raw))
