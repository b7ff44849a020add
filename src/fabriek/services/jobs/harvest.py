"""The harvest: a site's Slurm accounting read into Fabriek's ledger, every job exactly once.

`ingest` takes a batch of accounting records of one site (pulled from its slurmrestd, or
pushed by its agent from sacct) and, in the caller's transaction, with a few bulk queries
whatever the batch's size:
- a record whose key (cluster, Slurm job id, submit time) a job already has is applied only
  when it changed (late accounting: energy measured, an end corrected): the job, its one
  charge and its energy hours are corrected in place, never charged twice;
- a record of a job Fabriek itself submitted (its handle at this site is the Slurm id, and
  the engines' mark names it) gets the key; Slurm's allocated GPUs and elapsed time are the
  truth, so a charge that differs is corrected;
- any other ended record becomes a job of origin "slurm": its user is the person with that
  username at the sites, its project the one with that Slurm account, charged to the
  project's allocation that covered its end at this site (normalised by its GPU type's
  factor), with its energy per hour, so budgets, usage, the dashboard, the EU report and
  the AI Act ledger all count it;
- a record whose user or account is no person or project of Fabriek is counted in the
  site's harvest row (`unmatched`), never dropped silently.
One audit entry per batch names what it added and corrected.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.domain.slurm_accounting import (
    SACCT_FIELDS,
    AccountingFormatError,
    AccountingRecord,
    RecordKey,
    latest,
    parse_sacct,
)
from fabriek.services import audit
from fabriek.services.identity.tokens import installation_id
from fabriek.services.jobs.engine_registry import tag_prefix
from fabriek.services.jobs.harvest_own import (
    adopt_fabriek_jobs,
    correct_fabriek_charge,
    set_charge,
)
from fabriek.services.jobs.harvest_rows import (
    Owner,
    charge_values,
    energy_readings,
    energy_values,
    job_values,
    reason,
    stored_energy,
)
from fabriek.store.tables import (
    AllocationRow,
    ChargeRow,
    JobEnergyRow,
    JobEventRow,
    JobRow,
    NodeGroupRow,
    PosixAccountRow,
    PosixGroupRow,
    ProjectRow,
    SiteHarvestRow,
    SiteRow,
    UserRow,
)

# How far before the cursor a harvest looks again: accounting that arrives late (slurmdbd
# was down while jobs ended, energy added afterwards) is still taken, once.
LOOK_BACK = timedelta(days=1)
# How far back a site's first harvest reads.
FIRST_LOOK_BACK = timedelta(days=30)
# Ids per IN (...) query: well under SQLite's and PostgreSQL's limits on parameters.
_CHUNK = 2000
# Distinct unmatched runs remembered per (user, account), so a look-back does not count
# the same run twice; past it the count goes on by records.
_UNMATCHED_KEYS = 500
T = TypeVar("T")


@dataclass
class HarvestResult:
    """What one batch did."""

    site: str
    records: int = 0
    added: int = 0
    corrected: int = 0
    fabriek: int = 0
    unchanged: int = 0
    not_ended: int = 0
    unmatched: int = 0
    gpu_hours: float = 0.0
    through: datetime | None = None
    unmatched_pairs: dict[tuple[str, str], int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "records": self.records,
            "added": self.added,
            "corrected": self.corrected,
            "fabriek": self.fabriek,
            "unchanged": self.unchanged,
            "not_ended": self.not_ended,
            "unmatched": self.unmatched,
            "gpu_hours": round(self.gpu_hours, 6),
            "through": self.through.isoformat() if self.through else None,
        }


def since(session: Session, site: str) -> datetime | None:
    """From when the next harvest of `site` asks for records: its cursor less the look-back;
    None when it has never been harvested (everything)."""
    through = session.scalar(
        select(SiteHarvestRow.through)
        .join(SiteRow, SiteRow.id == SiteHarvestRow.site_id)
        .where(SiteRow.name == site)
    )
    return None if through is None else through - LOOK_BACK


def harvest_status(session: Session, site: str) -> dict[str, Any]:
    """Where the harvest of a site stands: its cursor, totals, and the runs of people or
    accounts Fabriek does not know, by user and account."""
    row = session.scalar(
        select(SiteHarvestRow)
        .join(SiteRow, SiteRow.id == SiteHarvestRow.site_id)
        .where(SiteRow.name == site)
    )
    if row is None:
        return {"site": site, "through": None, "last_run_at": None, "records_seen": 0,
                "jobs_added": 0, "unmatched": []}  # fmt: skip
    return {
        "site": site,
        "through": row.through.isoformat() if row.through else None,
        "last_run_at": row.last_run_at.isoformat() if row.last_run_at else None,
        "records_seen": row.records_seen,
        "jobs_added": row.jobs_added,
        "unmatched": [
            {"user": e["user"], "account": e["account"], "count": e["count"]}
            for e in row.unmatched or []
        ],
    }


def ingest_sacct(
    session: Session,
    site: str,
    text: str,
    now: datetime,
    *,
    access: AccessConfig,
    fields: Sequence[str] | None = None,
    through: datetime | None = None,
) -> HarvestResult:
    """What a site's agent pushes: `sacct --parsable2 --noheader` output (with `fields`,
    SACCT_FIELDS unless said), read into the ledger and committed. InvalidInput when the
    text is not such output, naming what is wrong."""
    try:
        records = parse_sacct(text, tuple(fields) if fields else SACCT_FIELDS)
    except AccountingFormatError as exc:
        raise InvalidInput.on("sacct", str(exc)) from None
    prefix = tag_prefix(installation_id(session))
    result = ingest(
        session, site, records, now, access=access, tag_prefix=prefix, through=through,
        actor=f"site-agent:{site}",
    )  # fmt: skip
    session.commit()
    return result


def ingest(
    session: Session,
    site: str,
    records: Iterable[AccountingRecord],
    now: datetime,
    *,
    access: AccessConfig,
    tag_prefix: str,
    through: datetime | None = None,
    actor: str | None = None,
) -> HarvestResult:
    """Read a batch of `site`'s accounting into the ledger (not committed). `through`: up
    to when the batch holds every record (the time its query ran); the cursor moves there."""
    site_row = session.scalar(select(SiteRow).where(SiteRow.name == site))
    if site_row is None:
        raise NotFound("site", site)
    batch = latest(records)
    result = HarvestResult(site=site, records=len(batch), through=through)
    ended = {k: r for k, r in batch.items() if r.ended}
    result.not_ended = len(batch) - len(ended)
    site_type = _single_gpu_type(session, site_row.id)
    factors = dict(access.gpu_hour_factors)

    known = _jobs_by_key(session, ended)
    for key, job in known.items():
        record = ended.pop(key)
        if job.origin == "fabriek":
            result.fabriek += 1
            result.corrected += correct_fabriek_charge(session, job, record)
        elif _differs(job, record):
            _correct(session, job, record, site_type)
            result.corrected += 1
        else:
            result.unchanged += 1
    result.fabriek += adopt_fabriek_jobs(session, site_row.id, ended, tag_prefix)

    owners = _owners(session, site_row, ended.values(), site_type, factors)
    new = [(r, owners[r.key]) for r in ended.values() if r.key in owners]
    unmatched = [r for r in ended.values() if r.key not in owners]
    _insert(session, new, now, result)
    _record_unmatched(session, site_row.id, unmatched, result)
    _move_cursor(session, site_row.id, result, now)
    audit.record(
        session,
        action=AuditAction.HARVEST,
        at=now,
        actor_id=None,
        actor=actor or f"harvest:{site}",
        target=f"site:{site}",
        detail={k: v for k, v in result.to_json().items() if k != "site"},
    )
    return result


# -- the steps ---------------------------------------------------------------------------------


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _single_gpu_type(session: Session, site_id: int) -> str | None:
    """The site's GPU type when it has one only: what a record that names none ran on."""
    types = set(
        session.scalars(
            select(NodeGroupRow.gpu_type).where(
                NodeGroupRow.site_id == site_id, NodeGroupRow.gpu_type.is_not(None)
            )
        )
    )
    return types.pop() if len(types) == 1 else None


def _jobs_by_key(
    session: Session, ended: dict[RecordKey, AccountingRecord]
) -> dict[RecordKey, JobRow]:
    """The jobs that already hold one of these keys (bulk: per cluster, Slurm ids by the
    hundreds, on the unique index that starts with them)."""
    ids: dict[str, list[int]] = defaultdict(list)
    for key in ended:
        ids[key.cluster].append(key.job_id)
    found: dict[RecordKey, JobRow] = {}
    for cluster, job_ids in ids.items():
        for part in _chunks(sorted(set(job_ids))):
            rows = session.scalars(
                select(JobRow).where(
                    JobRow.slurm_cluster == cluster, JobRow.slurm_job_id.in_(list(part))
                )
            )
            for job in rows:
                assert job.slurm_job_id is not None and job.slurm_submitted_at is not None
                key = RecordKey(cluster, job.slurm_job_id, job.slurm_submitted_at)
                if key in ended:
                    found[key] = job
    return found


def _differs(job: JobRow, record: AccountingRecord) -> bool:
    return (
        job.state != record.fabriek_state
        or job.started_at != (record.started_at or record.ended_at)
        or job.ended_at != record.ended_at
        or job.gpus != record.gpus
        or job.gpu_seconds != float(record.gpus * max(0, record.elapsed_s))
        or stored_energy(job.energy_readings) != record.energy_j
    )


def _correct(
    session: Session, job: JobRow, record: AccountingRecord, site_type: str | None
) -> None:
    """Late accounting for a harvested job: the job, its charge and its energy follow it."""
    job.state = record.fabriek_state
    job.reason = reason(record)
    job.started_at = record.started_at or record.ended_at
    job.ended_at = record.ended_at
    job.gpus = record.gpus
    job.gpu_seconds = float(record.gpus * max(0, record.elapsed_s))
    job.energy_readings = energy_readings(record)
    gpu_type = job.placed_gpu_type or record.gpu_type or site_type
    for line in session.scalars(select(ChargeRow).where(ChargeRow.job_id == job.id)):
        set_charge(line, record)
    session.execute(delete(JobEnergyRow).where(JobEnergyRow.job_id == job.id))
    if job.site_id is not None:
        rows = energy_values(record, job.id, job.site_id, gpu_type)
        if rows:
            session.execute(insert(JobEnergyRow), rows)


def _by_name(session: Session, rows: Any) -> dict[str, int]:
    return {str(name): int(i) for name, i in session.execute(rows)}


def _owners(
    session: Session,
    site: SiteRow,
    records: Iterable[AccountingRecord],
    site_type: str | None,
    factors: dict[str, float],
) -> dict[RecordKey, Owner]:
    """Whose each record is and which allocation pays: by the site's usernames and Slurm
    accounts (the POSIX names Fabriek gave; a person's or project's own name before it
    had one)."""
    records = list(records)
    users_named = sorted({r.user for r in records})
    accounts = sorted({r.account for r in records})
    users: dict[str, int] = {}
    projects: dict[str, int] = {}
    for part in _chunks(users_named):
        users.update(_by_name(session, select(UserRow.username, UserRow.id).where(
            UserRow.username.in_(list(part)))))  # fmt: skip
        users.update(_by_name(session, select(PosixAccountRow.username, PosixAccountRow.user_id)
            .where(PosixAccountRow.username.in_(list(part)))))  # fmt: skip
    for part in _chunks(accounts):
        projects.update(_by_name(session, select(ProjectRow.name, ProjectRow.id).where(
            ProjectRow.name.in_(list(part)))))  # fmt: skip
        projects.update(_by_name(session, select(PosixGroupRow.name, PosixGroupRow.project_id)
            .where(PosixGroupRow.name.in_(list(part)))))  # fmt: skip
    allocations: dict[int, list[AllocationRow]] = defaultdict(list)
    for ids in _chunks(sorted(set(projects.values()))):
        for row in session.scalars(
            select(AllocationRow)
            .where(AllocationRow.project_id.in_(list(ids)))
            .order_by(AllocationRow.ends_at, AllocationRow.id)
        ):
            allocations[row.project_id].append(row)
    owners: dict[RecordKey, Owner] = {}
    for record in records:
        user, project = users.get(record.user), projects.get(record.account)
        if user is None or project is None or record.ended_at is None:
            continue
        gpu_type = record.gpu_type or site_type
        end = record.ended_at
        paid = next(
            (
                a.id
                for a in allocations[project]
                if a.starts_at <= end < a.ends_at and (not a.sites or site.name in a.sites)
            ),
            None,
        )
        factor = factors.get(gpu_type, 1.0) if gpu_type else 1.0
        owners[record.key] = Owner(user, project, site.id, gpu_type, paid, factor)
    return owners


def _insert(
    session: Session,
    new: list[tuple[AccountingRecord, Owner]],
    now: datetime,
    result: HarvestResult,
) -> None:
    """The new jobs, their events, charges and energy hours: bulk inserts."""
    for part in _chunks(new):
        ids = list(
            session.scalars(
                insert(JobRow).returning(JobRow.id, sort_by_parameter_order=True),
                [job_values(record, owner, now) for record, owner in part],
            )
        )
        events, charges, energy = [], [], []
        for job_id, (record, owner) in zip(ids, part, strict=True):
            events.append(
                {
                    "job_id": job_id,
                    "at": record.ended_at,
                    "from_state": None,
                    "to_state": record.fabriek_state,
                    "reason": f"read from {record.cluster}'s Slurm accounting",
                }
            )
            if owner.allocation_id is not None and record.started_at is not None:
                line = charge_values(
                    record, job_id, owner.allocation_id, owner.gpu_type, owner.factor
                )
                charges.append(line)
                result.gpu_hours += line["gpu_hours"]
            energy.extend(energy_values(record, job_id, owner.site_id, owner.gpu_type))
        for table, rows in ((JobEventRow, events), (ChargeRow, charges), (JobEnergyRow, energy)):
            if rows:
                session.execute(insert(table), rows)
        result.added += len(part)


def _harvest_row(session: Session, site_id: int) -> SiteHarvestRow:
    row = session.get(SiteHarvestRow, site_id)
    if row is None:
        row = SiteHarvestRow(site_id=site_id, records_seen=0, jobs_added=0, unmatched=[])
        session.add(row)
    return row


def _record_unmatched(
    session: Session, site_id: int, records: list[AccountingRecord], result: HarvestResult
) -> None:
    """Count runs of people or accounts Fabriek does not know, once per run."""
    result.unmatched = len(records)
    if not records:
        return
    row = _harvest_row(session, site_id)
    entries = {(e["user"], e["account"]): dict(e) for e in row.unmatched or []}
    for record in records:
        pair = (record.user, record.account)
        result.unmatched_pairs[pair] = result.unmatched_pairs.get(pair, 0) + 1
        entry = entries.setdefault(
            pair, {"user": record.user, "account": record.account, "count": 0, "runs": []}
        )
        run = f"{record.cluster}/{record.job_id}@{record.submitted_at.isoformat()}"
        if run in entry["runs"]:
            continue
        entry["count"] += 1
        if len(entry["runs"]) < _UNMATCHED_KEYS:
            entry["runs"] = [*entry["runs"], run]
    # A new list, so that the JSON column is seen as changed.
    row.unmatched = sorted(entries.values(), key=lambda e: (e["user"], e["account"]))


def _move_cursor(session: Session, site_id: int, result: HarvestResult, now: datetime) -> None:
    row = _harvest_row(session, site_id)
    row.last_run_at = now
    row.records_seen = (row.records_seen or 0) + result.records
    row.jobs_added = (row.jobs_added or 0) + result.added
    if result.through is not None and (row.through is None or result.through > row.through):
        row.through = result.through
