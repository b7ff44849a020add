"""Job traces: CSV with a header, one job a row.

Required columns: `job_id,submit_time_s,duration_s,num_gpus` (times in seconds; a
submit time may be negative, a duration may not); optional: `tenant`,
`time_limit_s`, `gpu_type`, `slack_s` (empty means absent; `slack_s`: the job may
start any time up to submission + slack, a later start is a deadline miss). Other
columns are ignored. Bad input raises `TraceError`, whose message is one line naming
the file, line and column.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fabriek.domain.csv_files import CsvError, CsvTable, read_csv_file

REQUIRED = ("job_id", "submit_time_s", "duration_s", "num_gpus")
OPTIONAL = ("tenant", "time_limit_s", "gpu_type", "slack_s")


class TraceError(CsvError):
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
    return read_csv_file(path, parse_trace, TraceError)


def parse_trace(lines: Iterable[str], source: str = "trace") -> list[TraceRow]:
    """Parse CSV text lines (header first) into rows; `source` names it in errors."""
    rows: list[TraceRow] = []
    seen: set[str] = set()
    for cell in CsvTable(lines, source, REQUIRED, TraceError):
        job_id = cell.text("job_id")
        if not job_id:
            raise cell.problem("job_id", "empty")
        if job_id in seen:
            raise cell.problem("job_id", f"duplicate id {job_id!r}")
        seen.add(job_id)
        limit = cell.optional_number("time_limit_s")
        if limit is not None and limit <= 0:
            raise cell.problem("time_limit_s", "must be above 0")
        gpus = cell.number("num_gpus")
        if gpus != int(gpus) or gpus < 1:
            raise cell.problem(
                "num_gpus", f"{cell.text('num_gpus')!r} is not a whole number of at least 1"
            )
        rows.append(
            TraceRow(
                job_id=job_id,
                submit_time_s=cell.number("submit_time_s", negative_ok=True),
                duration_s=cell.number("duration_s"),
                num_gpus=int(gpus),
                tenant=cell.text("tenant") or None,
                time_limit_s=limit,
                gpu_type=cell.text("gpu_type") or None,
                slack_s=cell.optional_number("slack_s"),
            )
        )
    return rows
