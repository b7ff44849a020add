"""What a Prometheus scrape of /metrics costs with a busy store (issue 20, point 11).

For each backend (a fresh SQLite file, a fresh PostgreSQL database): the demo factory plus
`--jobs` jobs in a mix of states (60 % pending with a spread of reasons, 5 % starting, 25 %
running on the three sites, 10 % ended), support mail and notifications waiting; then
`--runs` full expositions of the app's registry (the factory's gauges read from the store,
the dispatcher's and the HTTP metrics), timed. The dispatcher is not started, so nothing
moves while it is measured. Prints the median, 95th percentile and largest, as markdown.

    .venv/bin/python -m bench.metrics_scrape --backend both --jobs 10000 --runs 50
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from tests.servers import postgres_unavailable, prepare, throwaway_database

from bench.api_load import BACKENDS, machine_description
from fabriek.api.app import create_app
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobRow, NotificationRow, ProjectRow, SiteRow, UserRow

REASONS = [
    "queued",
    "Resources: first in line: waiting for enough GPUs to free up",
    "Priority: jobs of higher priority are waiting for the GPUs this job needs",
    "NotBeforeStartTime: starts no earlier than 2099-01-01 00:00 UTC",
    "AllocationExhausted: the project's allocation cannot cover GPUs x time limit",
    "SiteUnavailable: amsterdam: connection refused (Resources: first in line)",
    "CleanerHour: a later hour before its latest start is forecast to be cleaner",
]


def fill(url: str, jobs: int) -> None:
    """The demo factory and `jobs` jobs in a mix of states."""
    prepare(url)
    engine = make_engine(url)
    rng = random.Random(20)
    now = datetime.now(UTC)
    with make_sessions(engine)() as session:
        sites = list(session.scalars(select(SiteRow.id)))
        projects = list(session.scalars(select(ProjectRow.id)))
        users = list(session.scalars(select(UserRow.id)))
        rows = []
        for i in range(jobs):
            roll = rng.random()
            state, site, reason = "pending", None, rng.choice(REASONS)
            if roll > 0.60:
                state, site, reason = "starting", rng.choice(sites), "starting on a site"
            if roll > 0.65:
                state, reason = "running", "started"
            if roll > 0.90:
                state, reason = "completed", "exit 0"
            rows.append(
                {
                    "project_id": rng.choice(projects), "user_id": rng.choice(users),
                    "name": f"bench-{i}", "command": ["true"], "gpus": rng.choice([1, 2, 4, 8]),
                    "gpu_type": None, "placed_gpu_type": "h100" if site else None, "nodes": 1,
                    "cpus": 8, "memory_gb": 32, "time_limit_s": 3600, "environment": {},
                    "state": state, "reason": reason, "site_id": site,
                    "handle": f"h{i}" if state == "running" else None,
                    "submitted_at": now - timedelta(minutes=rng.randint(1, 600)),
                    "started_at": now if state == "running" else None,
                }
            )  # fmt: skip
        session.execute(insert(JobRow), rows)
        session.execute(
            insert(NotificationRow),
            [
                {"user_id": rng.choice(users), "kind": "k", "subject": "s", "body": "b",
                 "created_at": now - timedelta(hours=1)}
                for _ in range(jobs // 10)
            ],
        )  # fmt: skip
        session.commit()
    engine.dispose()


def measure(url: str, runs: int, state: Path) -> list[float]:
    """Seconds per full exposition, `runs` times (after one warm-up)."""
    app = create_app(Settings(database_url=url, state_dir=state))
    registry = app.state.metrics
    registry.exposition()
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        registry.exposition()
        took.append(time.perf_counter() - began)
    app.state.context.engine.dispose()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    kinds = list(BACKENDS) if args.backend == "both" else [args.backend]
    print("\n".join(f"- {line}" for line in machine_description()))
    print(f"\n{args.jobs} jobs, {args.runs} scrapes each\n")
    print("| backend | median | p95 | max |")
    print("|---|---|---|---|")
    for kind in kinds:
        if kind == "postgresql" and (why := postgres_unavailable()):
            print(f"| {kind} | skipped: {why} | | |")
            continue
        with tempfile.TemporaryDirectory() as tmp, throwaway_database(kind, Path(tmp)) as url:
            fill(url, args.jobs)
            took = sorted(measure(url, args.runs, Path(tmp) / "state"))
            p95 = took[max(0, int(0.95 * len(took)) - 1)]
            print(
                f"| {kind} | {1000 * statistics.median(took):.1f} ms | {1000 * p95:.1f} ms "
                f"| {1000 * took[-1]:.1f} ms |"
            )


if __name__ == "__main__":
    main()
