"""One cycle of the live service against its store: read the waiting jobs, decide, write.

Migrates a throwaway database (SQLite or PostgreSQL), loads the demo factory, adds N
waiting jobs of the demo member maria (1-8 GPUs, limits of 10 min to a day), then runs the
service's cycle in its three steps, `load` (the store's rows into values, and the kept
queue index), `decide` (the scheduler) and `apply` (starts and every waiting job's reason
written, then flushed), each timed. Each round is rolled back, so every round writes every
waiting job's reason anew: the worst case, where a steady cycle writes only the reasons
that changed. Run with `PYTHONPATH=OTHER/src` to time another checkout's cycle (an older
commit) in the same virtual environment, for a before and after on one machine.

    .venv/bin/python -m bench.live_cycle --jobs 20000 --db sqlite,postgresql --rounds 4
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.api_load import machine_description


def _cycle_modules() -> dict[str, Any]:
    names = {
        "load": "fabriek.services.scheduling.loading",
        "decide": "fabriek.services.scheduling.deciding",
        "apply": "fabriek.services.scheduling.applying",
    }
    return {step: getattr(importlib.import_module(m), step) for step, m in names.items()}


def run(kind: str, jobs: int, rounds: int, steps: dict[str, Any]) -> list[dict[str, float]]:
    """Time `rounds` cycles over `jobs` waiting jobs on a fresh `kind` database."""
    from sqlalchemy import insert, select
    from tests.servers import prepare, throwaway_database

    from fabriek.scheduler.queue_index import PendingQueue
    from fabriek.services.access.config import load_access_config
    from fabriek.services.jobs.shapes import SiteShapeCache
    from fabriek.store.db import make_engine, make_sessions
    from fabriek.store.tables import JobRow, MembershipRow, UserRow

    timings = []
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(kind, Path(tmp)) as url:
        prepare(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        rng = random.Random(1)
        with sessions() as session:
            member = session.execute(
                select(MembershipRow.user_id, MembershipRow.project_id)
                .join(UserRow, UserRow.id == MembershipRow.user_id)
                .where(UserRow.username == "maria")
                .order_by(MembershipRow.project_id)
            ).first()
            assert member is not None, "the demo factory has no member maria"
            user_id, project_id = member
            submitted = datetime.now(UTC)
            session.execute(insert(JobRow), [
                {"project_id": project_id, "user_id": user_id, "name": f"bench-{i}",
                 "gpus": rng.choice([1, 1, 1, 2, 4, 8]), "nodes": 1, "cpus": 4, "memory_gb": 16,
                 "time_limit_s": rng.choice([600, 3600, 86400]), "environment": {},
                 "state": "pending", "command": ["true"], "submitted_at": submitted}
                for i in range(jobs)
            ])  # fmt: skip
            session.commit()
        access, shapes, queue = load_access_config(), SiteShapeCache(), PendingQueue()
        load_kwargs = {"queue": queue} if "queue" in steps["load"].__code__.co_varnames else {}
        for _ in range(rounds):
            with sessions() as session:
                now = datetime.now(UTC)
                t0 = time.perf_counter()
                loaded = steps["load"](
                    session, shapes.get(session), now, {}, frozenset(), {}, access, **load_kwargs
                )
                t1 = time.perf_counter()
                plan = steps["decide"](loaded.cycle, access)
                t2 = time.perf_counter()
                waiting = getattr(loaded, "reasons", None)
                steps["apply"](session, plan, loaded.rows if waiting is None else waiting, now)
                session.flush()
                t3 = time.perf_counter()
                session.rollback()
            timings.append({"load": t1 - t0, "decide": t2 - t1, "apply": t3 - t2})
        engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    steps = _cycle_modules()
    print("\n".join(machine_description()))
    print(f"Waiting jobs: {args.jobs:,}; rounds: {args.rounds} (median)")
    print("\n| database | load s | decide s | apply s | cycle s |\n|---|---:|---:|---:|---:|")
    for kind in args.db.split(","):
        timings = run(kind, args.jobs, args.rounds, steps)
        median = {k: statistics.median(t[k] for t in timings) for k in timings[0]}
        print(f"| {kind} | {median['load']:.3f} | {median['decide']:.3f} "
              f"| {median['apply']:.3f} | {sum(median.values()):.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
