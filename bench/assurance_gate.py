"""What the assurance gate costs a request: authenticating a bearer token (uncached: the
principal cache's miss path, which every token takes once per few seconds) with and without
the operator's minimums (`FABRIEK_ASSURANCE_MINIMUMS`).

A person with `--projects` project memberships (each project with a current allocation, half
of them on the Large Scale track) presents a token; the rules ask MFA of admins and of Large
Scale projects. Three cases: no minimums; minimums and a token from a 'medium+mfa' sign-in
(it meets them all: no query more); minimums and a token from a 'low' sign-in (half the
memberships withheld on every call: the tracks and the withheld projects' names are read).
The cases alternate, run by run, in one process on one SQLite or PostgreSQL store, so the
ratios hold on a shared machine.

    .venv/bin/python -m bench.assurance_gate --calls 2000 --projects 20
    .venv/bin/python -m bench.assurance_gate --database postgresql
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session
from tests.servers import postgres_unavailable, throwaway_database

from bench.api_load import machine_description
from fabriek.domain.identity.assurance import NO_RULES, AssuranceRules, parse_rules
from fabriek.domain.identity.people import TokenDraft
from fabriek.services.identity.tokens import TokenLineage, authenticate, issue_token
from fabriek.store.db import make_engine
from fabriek.store.migrate import upgrade
from fabriek.store.tables import (
    AllocationRow,
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    UserRow,
)


def _arrange(session: Session, projects: int, now: datetime) -> tuple[str, str]:
    """A person in `projects` projects, and two tokens of theirs: from a 'low' sign-in and
    from a 'medium+mfa' one."""
    org = OrganisationRow(name="Bench BV", kind="start-up", province="Utrecht", hub="utrecht")
    user = UserRow(username="bench", full_name="Bench Person", email="bench@example.org")
    session.add_all([org, user])
    session.flush()
    for n in range(projects):
        project = ProjectRow(name=f"bench-{n}", title=f"Bench {n}", organisation_id=org.id)
        session.add(project)
        session.flush()
        session.add(MembershipRow(project_id=project.id, user_id=user.id, role="member"))
        session.add(AllocationRow(
            project_id=project.id, track="large-scale" if n % 2 else "fast-lane",
            gpu_hours=1000.0, starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=90),
        ))  # fmt: skip
    low, sure = (
        issue_token(session, user.id, TokenDraft(name=code), now, 30,
                    lineage=TokenLineage(code, None)).token
        for code in ("low", "medium+mfa")
    )  # fmt: skip
    session.commit()
    return low, sure


def _time(session: Session, token: str, now: datetime, rules: AssuranceRules, calls: int) -> float:
    """Microseconds per authentication, over `calls` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        authenticate(session, token, now, rules)
        session.rollback()
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    if args.database == "postgresql" and (reason := postgres_unavailable()):
        raise SystemExit(reason)
    rules = parse_rules("admin=medium+mfa, track:large-scale=mfa")
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.database, Path(tmp)) as url:
        engine = make_engine(url)
        upgrade(engine)
        with Session(engine) as session:
            low, sure = _arrange(session, args.projects, now)
            assert len(authenticate(session, low, now, rules).withheld) == args.projects // 2
            assert authenticate(session, sure, now, rules).withheld == ()
            _time(session, low, now, rules, 100)  # warm up
            cases = {"no minimums": (low, NO_RULES), "minimums, token meets them": (sure, rules),
                     "minimums, token falls short (half withheld)": (low, rules)}  # fmt: skip
            times: dict[str, list[float]] = {case: [] for case in cases}
            for _run in range(args.runs):
                for case, (token, with_rules) in cases.items():
                    times[case].append(_time(session, token, now, with_rules, args.calls))
        engine.dispose()
    base = statistics.median(times["no minimums"])
    print("\n".join(machine_description()))
    print(f"{args.database}, {args.projects} projects, {args.calls} calls x {args.runs} runs")
    print("| case | µs per authentication (median of runs) | ratio |\n|---|---:|---:|")
    for case, found in times.items():
        print(
            f"| {case} | {statistics.median(found):,.0f} | {statistics.median(found) / base:.2f} |"
        )


if __name__ == "__main__":
    main()
