"""Hourly series of actual values (carbon intensity, heat demand) on a simulated clock,
the perfect-foresight optimum over them (the oracle), and the one reader of carbon files.

The forecast (`carbon.py`) sees only past hours; these are the hours as they were, which
the simulator meters energy and carbon with, and which the oracle looks ahead into.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fabriek.domain.csv_files import CsvError, CsvTable, read_csv_file
from fabriek.scheduler.carbon import HOUR_S

CARBON_COLUMNS = ("datetime_utc", "carbon_intensity_gco2eq_per_kwh")


class CarbonError(CsvError):
    """A carbon series cannot be read; the message is one line naming where and what."""


class HourlySeries:
    """Actual hourly values from `start_s` (hour i covers [start_s + i h, start_s + (i+1) h)),
    with integrals over any interval inside it in O(1)."""

    __slots__ = ("prefix", "start_s", "values")

    def __init__(self, start_s: float, values: Sequence[float]) -> None:
        self.start_s = start_s
        self.values = tuple(values)
        self.prefix = [0.0]
        for v in self.values:
            self.prefix.append(self.prefix[-1] + v)

    @property
    def end_s(self) -> float:
        """Where the series ends (exclusive)."""
        return self.start_s + len(self.values) * HOUR_S

    def covers(self, t0: float, t1: float) -> bool:
        """Whether [t0, t1] lies within the series."""
        return self.start_s <= t0 and t1 <= self.end_s

    def _cum(self, t: float) -> float:
        x = (t - self.start_s) / HOUR_S
        h = min(max(math.floor(x), 0), len(self.values) - 1)
        return self.prefix[h] + (x - h) * self.values[h]

    def integral_h(self, t0: float, t1: float) -> float:
        """The values integrated over [t0, t1] seconds, in value x hours; t0 <= t1 and
        both inside the series (see `covers`)."""
        return self._cum(t1) - self._cum(t0)

    def mean(self, t0: float, duration_s: float) -> float:
        """The mean over [t0, t0 + duration_s); the value at t0 for a zero duration."""
        if duration_s <= 0:
            h = min(int((t0 - self.start_s) // HOUR_S), len(self.values) - 1)
            return self.values[h]
        return self.integral_h(t0, t0 + duration_s) * HOUR_S / duration_s


def oracle_mean(series: HourlySeries, submit_s: float, slack_s: float, duration_s: float) -> float:
    """The least mean value over a run of `duration_s` starting anywhere in
    [submit_s, submit_s + slack_s]: perfect foresight, no capacity limit.

    The mean of a step function over a sliding window is piecewise linear in the start,
    with breaks where the window's start or end crosses an hour boundary, so the minimum
    is at one of those starts or at an end of the range; all of them are tried."""
    lo, hi = submit_s, submit_s + max(0.0, slack_s)
    candidates = {lo, hi}
    if hi > lo:
        for shift in (0.0, duration_s):
            first = math.ceil((lo + shift - series.start_s) / HOUR_S)
            last = math.floor((hi + shift - series.start_s) / HOUR_S)
            for i in range(first, last + 1):
                t = series.start_s + i * HOUR_S - shift
                if lo <= t <= hi:
                    candidates.add(t)
    return min(series.mean(t, duration_s) for t in candidates)


def parse_utc(text: str) -> datetime:
    """An ISO-8601 date or time; without a zone it is taken as UTC. ValueError if not."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    value = datetime.fromisoformat(raw)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CarbonSeries:
    """An hourly carbon-intensity series (g CO2e/kWh) from `start` (UTC, hour start)."""

    start: datetime
    values: tuple[float, ...]

    def on_clock(self, zero: datetime) -> HourlySeries:
        """The series on a clock whose time 0 is `zero`."""
        return HourlySeries((self.start - zero).total_seconds(), self.values)

    @property
    def end(self) -> datetime:
        """The end of the last hour."""
        return self.start + timedelta(hours=len(self.values))


def load_carbon(path: str | Path) -> CarbonSeries:
    """Read `datetime_utc,carbon_intensity_gco2eq_per_kwh` rows, consecutive hours;
    raises `CarbonError` (one line naming file, line and column) on bad input."""
    return read_csv_file(path, parse_carbon, CarbonError)


def parse_carbon(lines: Iterable[str], source: str = "carbon") -> CarbonSeries:
    """Parse CSV lines (header first) of an hourly carbon series: the first row at the start
    of an hour, every next row the next hour (no gaps, no repeats), every value a finite
    number >= 0. The one reader of this format: the grid load and the simulator use it."""
    time_column, value_column = CARBON_COLUMNS
    start: datetime | None = None
    values: list[float] = []
    for row in CsvTable(lines, source, CARBON_COLUMNS, CarbonError):
        raw_t = row.text(time_column)
        try:
            when = parse_utc(raw_t)
        except ValueError:
            raise row.problem(time_column, f"{raw_t!r} is not an ISO date-time") from None
        value = row.number(value_column)
        if start is None:
            if when.minute or when.second or when.microsecond:
                raise row.problem(time_column, f"{raw_t!r} is not the start of an hour")
            start = when
        elif when != start + timedelta(hours=len(values)):
            expected = (start + timedelta(hours=len(values))).strftime("%Y-%m-%dT%H:%M:%SZ")
            raise row.problem(
                time_column, f"{raw_t!r}, expected the next hour {expected} (hourly, no gaps)"
            )
        values.append(value)
    if start is None:
        raise CarbonError(f"{source}: no rows")
    return CarbonSeries(start, tuple(values))
