"""The rules every CSV file Fabriek reads follows (carbon series, heat profiles, traces), and
their messages: one line naming the file, the line and the column, and what is wrong.

A file is UTF-8 text with a header line; columns are found by name (others are ignored),
blank lines are skipped, and a number is finite: NaN, infinity and empty cells are errors,
never a silent zero or a gap. The readers of each format (`scheduler.carbon_series`,
`domain.heat`, `scheduler.trace`) add only the rules of their own format.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from fabriek.domain.errors import InvalidInput

T = TypeVar("T")


class CsvError(InvalidInput, ValueError):
    """A CSV file cannot be read; the message is one line naming where and what."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)


def read_csv_file(
    path: str | Path,
    parse: Callable[[Iterable[str], str], T],
    error: Callable[[str], CsvError] = CsvError,
) -> T:
    """`parse(lines, name)` of the file at `path`: a file that cannot be opened or is not
    UTF-8 is an `error` saying so."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as lines:
            return parse(lines, str(path))
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text: {e.reason}") from None


class Row:
    """One data row's cells by column name, read with messages that say where."""

    def __init__(
        self,
        cells: list[str],
        columns: dict[str, int],
        where: str,
        error: Callable[[str], CsvError],
    ) -> None:
        self.cells, self.columns, self.where, self.error = cells, columns, where, error

    def text(self, name: str) -> str:
        """The cell of column `name`, stripped; empty where the row is short."""
        i = self.columns.get(name)
        return self.cells[i].strip() if i is not None and i < len(self.cells) else ""

    def problem(self, name: str, what: str) -> CsvError:
        """The error for column `name` of this row."""
        return self.error(f"{self.where}, column {name}: {what}")

    def number(self, name: str, negative_ok: bool = False) -> float:
        """The finite number in column `name` (>= 0 unless `negative_ok`)."""
        raw = self.text(name)
        if not raw:
            raise self.problem(name, "empty")
        try:
            value = float(raw)
        except ValueError:
            raise self.problem(name, f"{raw!r} is not a number") from None
        if not math.isfinite(value):
            raise self.problem(name, f"{raw!r} is not a finite number")
        if value < 0 and not negative_ok:
            raise self.problem(name, f"{raw!r} is not a number >= 0")
        return value

    def optional_number(self, name: str, negative_ok: bool = False) -> float | None:
        """As `number`, but an empty cell (or no such column) is None."""
        return self.number(name, negative_ok) if self.text(name) else None


class CsvTable:
    """The header and data rows of CSV lines: the header must name every `required` column."""

    def __init__(
        self,
        lines: Iterable[str],
        source: str,
        required: Sequence[str],
        error: Callable[[str], CsvError] = CsvError,
    ) -> None:
        self.source, self.error = source, error
        self._reader = csv.reader(lines)
        header = next(self._reader, None)
        if header is None or not any(h.strip() for h in header):
            raise error(f"{source}: empty, expected a header line with {','.join(required)}")
        self.header = [h.strip() for h in header]
        self.columns = {name: i for i, name in enumerate(self.header)}
        missing = [c for c in required if c not in self.columns]
        if missing:
            raise error(
                f"{source} line 1: missing column {', '.join(missing)} "
                f"(header has: {','.join(self.header)})"
            )

    def __iter__(self) -> Iterator[Row]:
        for cells in self._reader:
            if not cells or all(not c.strip() for c in cells):
                continue
            where = f"{self.source} line {self._reader.line_num}"
            yield Row(cells, self.columns, where, self.error)
