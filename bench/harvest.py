"""The cost of harvesting a site's Slurm accounting: 100,000 records into the ledger.

Records are synthetic but shaped like real ones: each is a record parsed from the captured
Slurm 22.05 sacct output (tests/slurm/data/), given a new job id, submit time, elapsed time,
GPU count, person and account (a 2-node job, an array task, a requeued run's first run,
...), ending in the last 20 hours. About 1 % belong to a person Fabriek does not know. They are
ingested in batches (one transaction each, as one pull or one push), then all of them again:
the second harvest must add nothing, which the row counts show.

    .venv/bin/python -m bench.harvest --records 100000 --batch 10000 --backend both

Prints the machine, the command, and per backend: time and records per second of each
harvest, peak resident memory of the process (ru_maxrss: the whole process, the records
included), and the rows in jobs, charges, job_energy and job_events after each harvest.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from tests.servers import postgres_unavailable, prepare, throwaway_database

from fabriek.domain.slurm_accounting import AccountingRecord, parse_sacct
from fabriek.services.access.config import load_access_config
from fabriek.services.jobs import harvest
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import ChargeRow, JobEnergyRow, JobEventRow, JobRow

DATA = Path(__file__).resolve().parent.parent / "tests" / "slurm" / "data"
SITE = "groningen"
# Demo people and the demo projects they may charge (by name: the Slurm account).
PEOPLE = [("maria", "dutch-llm"), ("pieter", "dutch-llm"), ("maria", "photonic-inspect"),
          ("sanne", "photonic-inspect"), ("mo", "legal-nl"), ("sanne", "machine-twin")]  # fmt: skip


def synthetic(n: int, seed: int = 17) -> list[AccountingRecord]:
    """`n` records built from the captured shapes."""
    shapes = parse_sacct((DATA / "sacct_22.05_allocations.txt").read_text())
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    out = []
    for i in range(n):
        shape = shapes[i % len(shapes)]
        # Mostly short jobs, some long: minutes to a day; each ended in the last 20 hours
        # (the demo's allocations began a day ago: every known person's run is charged).
        elapsed = int(min(86400, rng.expovariate(1 / 5400)))
        ended = now - timedelta(seconds=rng.randrange(20 * 3600))
        started = ended - timedelta(seconds=elapsed)
        submitted = started - timedelta(seconds=rng.randrange(600))
        user, account = rng.choice(PEOPLE)
        if rng.random() < 0.01:
            user, account = "stranger", "nobody-knows"
        out.append(
            replace(
                shape,
                cluster="benchsite",
                job_id=1000 + i,
                submitted_at=submitted,
                started_at=started,
                ended_at=ended,
                elapsed_s=elapsed,
                gpus=shape.gpus * rng.choice([1, 1, 2, 4]),
                user=user,
                account=account,
                array_job_id=shape.array_job_id and 1000 + i,
                het_job_id=shape.het_job_id and 1000 + i,
            )
        )
    return out


def counts(sessions: object) -> dict[str, int]:
    with sessions() as session:  # type: ignore[operator]
        return {
            name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in (
                ("jobs", JobRow), ("charges", ChargeRow), ("job_energy", JobEnergyRow),
                ("job_events", JobEventRow),
            )
        }  # fmt: skip


def run(kind: str, records: list[AccountingRecord], batch: int, tmp: Path) -> None:
    access = load_access_config()
    with throwaway_database(kind, tmp) as url:
        prepare(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        base = counts(sessions)
        for label in ("first harvest", "same records again"):
            began = time.perf_counter()
            added = unmatched = 0
            for i in range(0, len(records), batch):
                with sessions() as session:
                    result = harvest.ingest(
                        session, SITE, records[i : i + batch], datetime.now(UTC),
                        access=access, tag_prefix="fabriek", through=datetime.now(UTC),
                    )  # fmt: skip
                    session.commit()
                added += result.added
                unmatched += result.unmatched
            took = time.perf_counter() - began
            rows = {k: v - base[k] for k, v in counts(sessions).items()}
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(
                f"{kind:10} {label:19} {took:7.1f} s {len(records) / took:8.0f} records/s "
                f"added {added:6d} unmatched {unmatched:5d} | rows: {rows} | "
                f"peak RSS {peak:.0f} MiB",
                flush=True,
            )
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print("command:", " ".join([Path(sys.executable).name, "-m", "bench.harvest", *sys.argv[1:]]))
    began = time.perf_counter()
    records = synthetic(args.records)
    print(f"built {len(records)} records in {time.perf_counter() - began:.1f} s")
    kinds = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            if kind == "postgresql" and (reason := postgres_unavailable()):
                print(f"postgresql skipped: {reason}")
                continue
            run(kind, records, args.batch, Path(tmp))


if __name__ == "__main__":
    main()
