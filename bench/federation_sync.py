"""The cost of a site's sync with the federation platform, against `StandInPlatform` on
loopback (the platform's paths and payloads; tests/waldur_standin.py).

`--orders` create orders (each with its principal investigator and two more team members,
all new to Fabriek: `FABRIEK_FEDERATION_UNKNOWN=create`) are taken in by one sync; then a
sync with nothing new (each live resource's team is still read: one call per resource);
then the first month's usage of every resource (two figures each); then that again (nothing
due). Also the import of the platform's client, which a sync command pays once.

    .venv/bin/python -m bench.federation_sync --orders 100 --backend both

Prints the machine, the command, and per backend the wall time of each sync with what it did.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.servers import postgres_unavailable, prepare, throwaway_database
from tests.waldur_standin import TOKEN, Member, running_platform

from fabriek.domain.federation import Components, Period, UnknownPolicy
from fabriek.domain.geography import Province
from fabriek.domain.identity.organisations import OrganisationKind
from fabriek.domain.roles import Role
from fabriek.services.access.config import load_access_config
from fabriek.services.federation.orders import OrderRules
from fabriek.services.federation.platform import Platform
from fabriek.services.federation.sync import sync_once
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import OrganisationRow, StaffRoleRow, UserRow


def import_cost() -> tuple[float, float]:
    """CPU seconds of a fresh interpreter importing the platform's client, and Fabriek's
    command line (for scale)."""
    found = []
    for module in (
        "waldur_api_client.api.marketplace_orders.marketplace_orders_list",
        "fabriek.main",
    ):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        found.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return found[0], found[1]


def run(backend: str, orders: int, tmp: Path) -> None:
    with throwaway_database(backend, tmp) as url, running_platform() as standin:
        prepare(url, with_demo=False)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        with sessions() as session:  # the operator's first steps: an admin to act as
            org = OrganisationRow(name="TNO", kind="to2-institute", province="Zuid-Holland",
                                  hub="zuid-holland")  # fmt: skip
            session.add(org)
            session.flush()
            actor = UserRow(username="federation", full_name="Federation",
                            email="federation@example.org", organisation_id=org.id)  # fmt: skip
            session.add(actor)
            session.flush()
            session.add(StaffRoleRow(user_id=actor.id, role=Role.ADMIN.value, scope=None))
            session.commit()
        rules = OrderRules(load_access_config(), UnknownPolicy.CREATE, OrganisationKind.UNIVERSITY,
                           Province.UTRECHT, "federation")  # fmt: skip
        for i in range(orders):
            pi = Member(
                f"pi{i}@myaccessid.org", f"Lead {i}", f"pi{i}@uni{i % 7}.eu", "PROJECT.MANAGER"
            )
            team = [pi] + [Member(f"m{i}-{j}@myaccessid.org", f"Member {i}-{j}", f"m{i}-{j}@uni.eu")
                           for j in range(2)]  # fmt: skip
            standin.order(customer=f"University {i % 7}", resource_name=f"Project {i}",
                          creator=(pi.username, pi.full_name, pi.email), team=team)  # fmt: skip

        def sync(now: datetime) -> tuple[float, str]:
            client = Platform(standin.url, TOKEN, str(standin.offering_uuid))
            started = time.perf_counter()
            try:
                result = sync_once(sessions, client, rules, Components(), now)
            finally:
                client.close()
            took = time.perf_counter() - started
            said = (f"{len(result.done)} done, {len(result.failed)} failed, "
                    f"+{result.members_added} members, {result.usage_sent} figures, "
                    f"{len(result.errors)} errors")  # fmt: skip
            return took, said

        now = datetime.now(UTC)
        later = Period.of(now).end
        for name, at in (
            ("orders in", now),
            ("nothing new", now),
            ("month's usage", later),
            ("usage again", later),
        ):
            took, said = sync(at)
            per = f"{1000 * took / orders:.1f} ms per resource"
            print(f"{backend:10s} {name:14s} {took:7.2f} s  {per:24s} {said}")
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"command: python -m bench.federation_sync --orders {args.orders} --backend {args.backend}"
    )
    client_s, cli_s = import_cost()
    print(f"import of the platform's client: {client_s:.2f} s CPU (fabriek.main: {cli_s:.2f} s)")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "postgresql" and (reason := postgres_unavailable()):
            print(f"postgresql: skipped ({reason})")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            run(backend, args.orders, Path(tmp))


if __name__ == "__main__":
    main()
