"""A Slurm site's accounting, read into Fabriek's ledger exactly once per job.

Every job that ran at a site is in its slurmdbd, including those a user typed with `sbatch`
after logging in by SSH. The harvest reads that accounting two ways, both parsed here into
one typed `AccountingRecord`: slurmrestd's `GET /slurmdb/v0.0.38/jobs` (the control plane
pulls) and `sacct --parsable2` lines (a site agent pushes them).

The rules that make it exactly once, pure and without I/O:
- A record's key is (cluster, Slurm job id, submit time): Slurm reuses ids after a reset,
  and a requeued job keeps its id but each run is a record of its own with its own submit
  time. Each array task and each heterogeneous component has its own job id (JobIDRaw),
  so each is its own record; a multi-node job is one allocation record.
- Steps (`1.batch`, `2.0`) are never counted: only allocation records are.
- GPUs are read from the allocated TRES (`gres/gpu=4`, `gres/gpu:h100=4`), never from the
  request: what the job held is what it used.
- Only ended records are charged; one still running is harvested when it ends.
- A record seen again replaces the one kept only when it is ended and differs (late
  accounting: energy arrives, an end time is corrected); never a second charge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fabriek.domain.units import GpuHours, KilowattHours, gpu_hours

# What the harvest asks sacct for, in this order: `sacct --parsable2 --noheader
# --allocations --duplicates --format=...`. The two free-text fields come last, the
# comment at the very end, so that a `|` or a newline a user typed in one cannot shift the
# fields before it.
SACCT_FIELDS = (
    "Cluster",
    "JobIDRaw",
    "JobID",
    "User",
    "Account",
    "State",
    "Submit",
    "Start",
    "End",
    "ElapsedRaw",
    "AllocTRES",
    "NNodes",
    "ConsumedEnergyRaw",
    "JobName",
    "Comment",
)
SACCT_FORMAT = ",".join(SACCT_FIELDS)


def sacct_argv(since: datetime) -> list[str]:
    """The sacct call the harvest reads: every allocation record (each run of a requeued
    job too) of every user that was active at or after `since`. Run it with TZ=UTC: sacct
    prints local times without a zone."""
    return [
        "sacct", "--parsable2", "--noheader", "--allocations", "--duplicates", "--allusers",
        f"--starttime={since.astimezone(UTC):%Y-%m-%dT%H:%M:%S}", f"--format={SACCT_FORMAT}",
    ]  # fmt: skip


# Where a harvested job's energy comes from when the site's acct_gather_energy plugin
# measured it (the node's energy over the job, RAPL or IPMI): "measured..." counts as
# measured in every rollup.
MEASURED_SOURCE = "measured-slurm: acct_gather_energy"

# Slurm's final states and what each is in Fabriek's words. REQUEUED and PREEMPTED close a
# run whose job may run again as a record of its own: the run itself is over and charged.
_ENDED = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "OUT_OF_MEMORY": "failed",
    "NODE_FAIL": "failed",
    "BOOT_FAIL": "failed",
    "CANCELLED": "cancelled",
    "REVOKED": "cancelled",
    "REQUEUED": "cancelled",
    "PREEMPTED": "cancelled",
    "TIMEOUT": "timed-out",
    "DEADLINE": "timed-out",
}
_TRES_GPU = re.compile(r"gres/gpu(?::([A-Za-z0-9_.-]+))?")


class AccountingFormatError(ValueError):
    """Accounting output Fabriek cannot read (a Slurm version or format it does not know)."""


@dataclass(frozen=True)
class RecordKey:
    """What identifies one job run in a site's accounting, however often it is read."""

    cluster: str
    job_id: int
    submitted_at: datetime


@dataclass(frozen=True)
class AccountingRecord:
    """One allocation record of a site's accounting: one job run.

    `job_id` is Slurm's raw id (JobIDRaw), unique per array task and heterogeneous
    component. Times are UTC; `started_at`/`ended_at` are None while unset. `gpus` and
    `gpu_type` are what the job was allocated (all its nodes together); `energy_j` is None
    unless acct_gather_energy measured the job. `state` is Slurm's word (COMPLETED,
    CANCELLED, REQUEUED, RUNNING, ...)."""

    cluster: str
    job_id: int
    submitted_at: datetime
    user: str
    account: str
    state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    elapsed_s: int = 0
    gpus: int = 0
    gpu_type: str | None = None
    nodes: int = 1
    cpus: int = 1
    memory_mb: int = 0
    energy_j: int | None = None
    array_job_id: int | None = None
    array_task_id: int | None = None
    het_job_id: int | None = None
    het_offset: int | None = None
    name: str = ""
    comment: str = ""

    @property
    def key(self) -> RecordKey:
        return RecordKey(self.cluster, self.job_id, self.submitted_at)

    @property
    def ended(self) -> bool:
        """Whether the run is over (and so may be charged)."""
        return self.state in _ENDED and self.ended_at is not None

    @property
    def fabriek_state(self) -> str:
        """The run's state in Fabriek's words; a run not over yet is "running"."""
        return _ENDED.get(self.state, "running") if self.ended else "running"

    @property
    def gpu_hours(self) -> GpuHours:
        """GPU-hours used: allocated GPUs times the run's elapsed time."""
        return gpu_hours(self.gpus, max(0, self.elapsed_s))

    @property
    def energy(self) -> KilowattHours | None:
        """The measured energy, when Slurm has one."""
        return None if self.energy_j is None else KilowattHours(self.energy_j / 3.6e6)


def fabriek_job_id(record: AccountingRecord, tag_prefix: str) -> int | None:
    """The Fabriek job a record claims to be, from the engines' marks: the comment
    `<prefix>:<id>` (kept by slurmdbd only with AccountingStoreFlags=job_comment) or the
    job name `<prefix>-<id>-<name>`. A claim only: anyone can name a job so, and the
    harvest believes it only when that job's handle at that site is this Slurm id."""
    prefix = re.escape(tag_prefix)
    match = re.fullmatch(rf"{prefix}:([0-9]{{1,18}})", record.comment.strip()) or re.match(
        rf"{prefix}-([0-9]{{1,18}})-", record.name
    )
    return int(match.group(1)) if match else None


# -- merging: the exactly-once rule ----------------------------------------------------------


def _rank(record: AccountingRecord) -> tuple[bool, datetime, bool, int]:
    """Which of two versions of one record is the more complete."""
    return (
        record.ended,
        record.ended_at or datetime.min.replace(tzinfo=UTC),
        record.energy_j is not None,
        record.elapsed_s,
    )


def latest(records: Iterable[AccountingRecord]) -> dict[RecordKey, AccountingRecord]:
    """One record per key from a batch that may hold a key twice (two reads overlapping):
    the more complete version."""
    out: dict[RecordKey, AccountingRecord] = {}
    for record in records:
        kept = out.get(record.key)
        if kept is None or _rank(record) > _rank(kept):
            out[record.key] = record
    return out


@dataclass(frozen=True)
class Merge:
    """What a batch does to the ledger: records new to it, records that correct one it
    holds, and how many it leaves as they are or skips because they have not ended."""

    added: tuple[AccountingRecord, ...] = ()
    changed: tuple[AccountingRecord, ...] = ()
    unchanged: int = 0
    not_ended: int = 0


def merge(ledger: Mapping[RecordKey, AccountingRecord], batch: Iterable[AccountingRecord]) -> Merge:
    """What harvesting `batch` into `ledger` (the ended records it holds, by key) does.

    An ended record is added when its key is new, and replaces the kept one when it
    differs from it; a record not ended yet is left for a later harvest."""
    added: list[AccountingRecord] = []
    changed: list[AccountingRecord] = []
    unchanged = not_ended = 0
    for key, record in latest(batch).items():
        if not record.ended:
            not_ended += 1
            continue
        kept = ledger.get(key)
        if kept is None:
            added.append(record)
        elif kept != record:
            changed.append(record)
        else:
            unchanged += 1
    return Merge(tuple(added), tuple(changed), unchanged, not_ended)


# -- slurmrestd: GET /slurmdb/v0.0.38/jobs ------------------------------------------------------


def parse_slurmdb_jobs(data: Mapping[str, Any]) -> list[AccountingRecord]:
    """The records in slurmrestd's answer to `GET /slurmdb/v0.0.38/jobs` (Slurm 22.05).

    Its `jobs` are allocation records already (steps are nested inside each, and ignored)."""
    jobs = data.get("jobs")
    if not isinstance(jobs, list):
        raise AccountingFormatError("the answer holds no list of jobs")
    return [_rest_record(job) for job in jobs]


def _rest_record(job: Mapping[str, Any]) -> AccountingRecord:
    try:
        times = job["time"]
        allocated = {
            (t.get("type"), t.get("name")): t.get("count") for t in job["tres"]["allocated"]
        }
        gpus, gpu_type = _gpus(
            {f"gres/{n}": c for (kind, n), c in allocated.items() if kind == "gres" and n}
        )
        energy = allocated.get(("energy", None))
        array, het = job.get("array") or {}, job.get("het") or {}
        comment = job.get("comment") or {}
        return AccountingRecord(
            cluster=str(job["cluster"]),
            job_id=int(job["job_id"]),
            submitted_at=_epoch(times["submission"]) or _epoch(times["eligible"]) or _never(),
            user=str(job["user"]),
            account=str(job.get("account") or ""),
            state=str(job["state"]["current"]).split()[0],
            started_at=_epoch(times.get("start")),
            ended_at=_epoch(times.get("end")),
            elapsed_s=int(times.get("elapsed") or 0),
            gpus=gpus,
            gpu_type=gpu_type,
            nodes=int(job.get("allocation_nodes") or 1),
            cpus=int(allocated.get(("cpu", None)) or 1),
            memory_mb=int(allocated.get(("mem", None)) or 0),
            energy_j=int(energy) if isinstance(energy, int) and energy > 0 else None,
            array_job_id=int(array["job_id"]) if array.get("job_id") else None,
            array_task_id=_int_or_none(array.get("task_id")) if array.get("job_id") else None,
            het_job_id=int(het["job_id"]) if het.get("job_id") else None,
            het_offset=_int_or_none(het.get("job_offset")) if het.get("job_id") else None,
            name=str(job.get("name") or ""),
            comment=str(comment.get("job") or "") if isinstance(comment, dict) else str(comment),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AccountingFormatError(f"a job record Fabriek cannot read: {exc!r}") from None


def _epoch(value: Any) -> datetime | None:
    """Slurm's epoch seconds (0: unset) as a UTC time."""
    if isinstance(value, dict):  # later versions: {"set": true, "number": N}
        value = value.get("number") if value.get("set", True) else None
    if not isinstance(value, int) or value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC)


def _never() -> datetime:
    raise ValueError("a job without a submit time")


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("number") if value.get("set", True) else None
    return int(value) if isinstance(value, int) else None


# -- sacct --parsable2 ---------------------------------------------------------------------------


def parse_sacct(
    text: str, fields: tuple[str, ...] = SACCT_FIELDS, delimiter: str = "|"
) -> list[AccountingRecord]:
    """The allocation records in `sacct --parsable2 --noheader` output with `fields` (run
    with TZ=UTC: sacct prints local times without a zone). Step lines (`1.batch`) are
    skipped, should `--allocations` have been left out; a line with too few fields
    continues the last one's comment (a newline typed in it)."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() and not rows:
            continue
        parts = line.split(delimiter)
        if len(parts) < len(fields) and rows:
            rows[-1][-1] += "\n" + line
            continue
        if len(parts) < len(fields):
            raise AccountingFormatError(
                f"a sacct line with {len(parts)} fields, not {len(fields)}: {line[:80]!r}"
            )
        # A delimiter typed in the comment, the last field: it is all comment.
        rows.append([*parts[: len(fields) - 1], delimiter.join(parts[len(fields) - 1 :])])
    return [
        record
        for row in rows
        if (record := _sacct_record(dict(zip(fields, row, strict=True)))) is not None
    ]


def _sacct_record(row: Mapping[str, str]) -> AccountingRecord | None:
    shown = row.get("JobID", row["JobIDRaw"])
    if "." in shown or "." in row["JobIDRaw"]:
        return None  # a step
    try:
        tres = dict(
            part.split("=", 1) for part in row.get("AllocTRES", "").split(",") if "=" in part
        )
        gpus, gpu_type = _gpus(tres)
        array = re.fullmatch(r"([0-9]+)_([0-9]+)", shown)
        het = re.fullmatch(r"([0-9]+)\+([0-9]+)", shown)
        energy = row.get("ConsumedEnergyRaw", "").strip()
        submitted = _sacct_time(row["Submit"])
        if submitted is None:
            raise ValueError("no submit time")
        return AccountingRecord(
            cluster=row["Cluster"],
            job_id=int(row["JobIDRaw"]),
            submitted_at=submitted,
            user=row["User"],
            account=row["Account"],
            state=row["State"].split()[0] if row["State"].strip() else "UNKNOWN",
            started_at=_sacct_time(row["Start"]),
            ended_at=_sacct_time(row["End"]),
            elapsed_s=int(row.get("ElapsedRaw") or 0),
            gpus=gpus,
            gpu_type=gpu_type,
            nodes=int(row.get("NNodes") or 1),
            cpus=int(tres.get("cpu", "1")),
            memory_mb=_memory_mb(tres.get("mem", "0")),
            energy_j=int(energy) if energy.isdigit() and int(energy) > 0 else None,
            array_job_id=int(array.group(1)) if array else None,
            array_task_id=int(array.group(2)) if array else None,
            het_job_id=int(het.group(1)) if het else None,
            het_offset=int(het.group(2)) if het else None,
            name=row.get("JobName", ""),
            comment=row.get("Comment", ""),
        )
    except (KeyError, ValueError) as exc:
        raise AccountingFormatError(f"sacct job {shown}: cannot read it: {exc}") from None


def _sacct_time(text: str) -> datetime | None:
    """sacct's `2026-12-05T13:04:22` (UTC, as the harvest runs it) or Unknown/None."""
    text = text.strip()
    if not text or text in {"Unknown", "None"}:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _memory_mb(text: str) -> int:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
    text = text.strip()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(float(text or 0))


def _gpus(tres: Mapping[str, Any]) -> tuple[int, str | None]:
    """GPUs and their type from allocated TRES: `gres/gpu` is the count of every type;
    `gres/gpu:TYPE` (when the site counts types) names them."""
    total: int | None = None
    typed: dict[str, int] = {}
    for name, count in tres.items():
        match = _TRES_GPU.fullmatch(name)
        if match is None or count in (None, ""):
            continue
        if match.group(1):
            typed[match.group(1)] = typed.get(match.group(1), 0) + int(count)
        else:
            total = int(count)
    if total is None:
        total = sum(typed.values())
    gpu_type = max(typed, key=lambda t: (typed[t], t)) if typed else None
    return total, gpu_type
