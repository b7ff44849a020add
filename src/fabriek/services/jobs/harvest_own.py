"""Accounting records of jobs Fabriek submitted itself: found, keyed, their charge checked.

Fabriek charged its own jobs when they stopped; their records in the site's accounting get
the key (cluster, Slurm job id, submit time) so that no harvest counts them again, and
Slurm's allocated GPUs and elapsed time, the truth, correct a charge that differs. A record
is Fabriek's when the engines' mark in it (the job name `<prefix>-<id>-...`) names a job of
Fabriek at this site whose handle is this Slurm id; without a mark (a name Slurm did not
keep), when such a job not matched yet has this Slurm id as its handle and was submitted
before Slurm recorded it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.budgets import charge
from fabriek.domain.slurm_accounting import AccountingRecord, RecordKey, fabriek_job_id
from fabriek.store.tables import ChargeRow, JobRow

# Clocks of the control plane and the site may differ by this much.
_SKEW = timedelta(minutes=5)
# Fabriek's jobs looked at: submitted at most this long before the batch's oldest record.
_BEFORE = timedelta(days=1)
_CHUNK = 2000
T = TypeVar("T")


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def adopt_fabriek_jobs(
    session: Session, site_id: int, ended: dict[RecordKey, AccountingRecord], tag_prefix: str
) -> int:
    """Records of jobs Fabriek submitted to this site: they get their key and leave the
    batch. Fabriek's own charge stands (corrected to Slurm's figures)."""
    claims = {
        key: claim
        for key, record in ended.items()
        if (claim := fabriek_job_id(record, tag_prefix)) is not None
    }
    jobs: dict[int, JobRow] = {}
    for part in _chunks(sorted(set(claims.values()))):
        query = select(JobRow).where(
            JobRow.id.in_(list(part)), JobRow.site_id == site_id, JobRow.origin == "fabriek"
        )
        jobs.update({job.id: job for job in session.scalars(query)})
    adopted = 0
    for key, claim in claims.items():
        job = jobs.get(claim)
        if job is None or job.handle != str(key.job_id):
            continue  # a name that claims to be ours, but is not: an ordinary record
        record = ended.pop(key)
        adopted += 1
        if job.slurm_job_id is None:
            _key(session, job, record)
        # Else an earlier run of it that Slurm requeued: Fabriek charged the job as one.
    return adopted + _adopt_by_handle(session, site_id, ended)


def _adopt_by_handle(
    session: Session, site_id: int, ended: dict[RecordKey, AccountingRecord]
) -> int:
    """Records of Fabriek's jobs without the engines' mark (a name Slurm did not keep): a
    job of Fabriek at this site, not matched yet, whose handle is the Slurm id and which
    Fabriek submitted before Slurm recorded it."""
    if not ended:
        return 0
    oldest = min(k.submitted_at for k in ended) - _BEFORE
    unkeyed: dict[str, list[JobRow]] = defaultdict(list)
    for job in session.scalars(
        select(JobRow).where(
            JobRow.site_id == site_id,
            JobRow.origin == "fabriek",
            JobRow.slurm_job_id.is_(None),
            JobRow.handle.is_not(None),
            JobRow.submitted_at >= oldest,
        )
    ):
        unkeyed[str(job.handle)].append(job)
    adopted = 0
    for key in [k for k in ended if str(k.job_id) in unkeyed]:
        candidates = [
            j
            for j in unkeyed[str(key.job_id)]
            if j.slurm_job_id is None and j.submitted_at <= key.submitted_at + _SKEW
        ]
        if candidates:
            job = max(candidates, key=lambda j: j.submitted_at)
            _key(session, job, ended.pop(key))
            adopted += 1
    return adopted


def _key(session: Session, job: JobRow, record: AccountingRecord) -> None:
    """A Fabriek job is this record's: it gets the key, its charge Slurm's figures."""
    job.slurm_cluster, job.slurm_job_id = record.cluster, record.job_id
    job.slurm_submitted_at = record.submitted_at
    correct_fabriek_charge(session, job, record)


def correct_fabriek_charge(session: Session, job: JobRow, record: AccountingRecord) -> int:
    """Slurm's allocated GPUs and elapsed time are the truth of a job Fabriek charged
    itself (a single run): 1 when its charge was corrected."""
    lines = list(session.scalars(select(ChargeRow).where(ChargeRow.job_id == job.id)))
    if len(lines) != 1:
        return 0  # not charged yet (the dispatcher will), or preempted runs: left as is
    return int(set_charge(lines[0], record))


def set_charge(line: ChargeRow, record: AccountingRecord) -> bool:
    """Make a charge line say what Slurm says; whether it changed."""
    raw = charge(record.gpus, record.elapsed_s, 1.0).value
    if line.gpus == record.gpus and abs(line.raw_gpu_hours - raw) < 1e-9:
        return False
    line.gpus = record.gpus
    line.raw_gpu_hours = raw
    line.gpu_hours = charge(record.gpus, record.elapsed_s, line.factor).value
    if record.started_at is not None and record.ended_at is not None:
        line.started_at, line.ended_at = record.started_at, record.ended_at
    return True
