"""Job traces: CSV with a header, one job a row.

Required columns: `job_id,submit_time_s,duration_s,num_gpus` (times in seconds; a
submit time may be negative, a duration may not); optional: `tenant`,
`time_limit_s`, `gpu_type`, `slack_s` (empty means absent; `slack_s`: the job may
start any time up to submission + slack, a later start is a deadline miss). Other
columns are ignored. Bad input raises `TraceError`, whose message is one line naming
the file, line and column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REQUIRED = ("job_id", "submit_time_s", "duration_s", "num_gpus")
OPTIONAL = ("tenant", "time_limit_s", "gpu_type", "slack_s")


class TraceError(ValueError):
    """The trace cannot be read; the message is one line naming where and what."""


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One job of a trace: when it arrived, how long it really ran, on how many GPUs."""

    job_id: str
    submit_time_s: float
    duration_s: float
    num_gpus: int
    tenant: str | None = None
    time_limit_s: float | None = None
    gpu_type: str | None = None
    slack_s: float | None = None


def load_trace(path: str | Path) -> list[TraceRow]:
    """Read a trace file; raises `TraceError` (one line) on bad input."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return parse_trace(f, str(path))
    except OSError as e:
        raise TraceError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not UTF-8 text: {e.reason}") from e


def parse_trace(lines: Iterable[str], source: str = "trace") -> list[TraceRow]:
    """Parse CSV text lines (header first) into rows; `source` names it in errors."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise TraceError(f"{source}: empty, expected a header line with {','.join(REQUIRED)}")
    columns = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise TraceError(
            f"{source} line 1: missing column {', '.join(missing)} "
            f"(header has: {' '.join(','.join(h.strip() for h in header).split())})"
        )
    rows: list[TraceRow] = []
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        cell = _Cells(row, columns, f"{source} line {line}")
        job_id = cell.text("job_id")
        if not job_id:
            raise TraceError(f"{source} line {line}, column job_id: empty")
        if job_id in seen:
            raise TraceError(f"{source} line {line}, column job_id: duplicate id {job_id!r}")
        seen.add(job_id)
        limit = cell.number("time_limit_s", optional=True)
        if limit is not None and limit <= 0:
            raise TraceError(f"{source} line {line}, column time_limit_s: must be above 0")
        gpus = cell.number("num_gpus")
        assert gpus is not None
        if gpus != int(gpus) or gpus < 1:
            raise TraceError(
                f"{source} line {line}, column num_gpus: {cell.text('num_gpus')!r} "
                "is not a whole number of at least 1"
            )
        submit = cell.number("submit_time_s", negative_ok=True)
        duration = cell.number("duration_s")
        assert submit is not None and duration is not None
        rows.append(
            TraceRow(
                job_id=job_id,
                submit_time_s=submit,
                duration_s=duration,
                num_gpus=int(gpus),
                tenant=cell.text("tenant") or None,
                time_limit_s=limit,
                gpu_type=cell.text("gpu_type") or None,
                slack_s=cell.number("slack_s", optional=True),
            )
        )
    return rows


class _Cells:
    """One row's cells by column name, parsed with errors that say where."""

    def __init__(self, row: list[str], columns: dict[str, int], where: str) -> None:
        self.row, self.columns, self.where = row, columns, where

    def text(self, name: str) -> str:
        i = self.columns.get(name)
        return self.row[i].strip() if i is not None and i < len(self.row) else ""

    def number(self, name: str, optional: bool = False, negative_ok: bool = False) -> float | None:
        raw = self.text(name)
        if not raw:
            if optional:
                return None
            raise TraceError(f"{self.where}, column {name}: empty")
        try:
            value = float(raw)
        except ValueError:
            raise TraceError(f"{self.where}, column {name}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise TraceError(f"{self.where}, column {name}: {raw!r} is not a finite number")
        if value < 0 and not negative_ok:
            raise TraceError(f"{self.where}, column {name}: {raw!r} is negative")
        return value
