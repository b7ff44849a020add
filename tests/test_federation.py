"""Fabriek as a site of the EuroHPC federation platform, end to end against
`StandInPlatform` (the platform's paths and payloads, from its own client's models): an
approved allocation ordered there becomes a project whose members run jobs, its usage goes
back once per month and again only when late accounting changes it; orders are applied
once by their UUID, refused with a reason, held for an operator, and a sync that stops half
way is finished by the next one. On SQLite and PostgreSQL (the `server` fixture's store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from waldur_api_client.models.order_state import OrderState
from waldur_api_client.models.request_types import RequestTypes

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import InvalidInput
from fabriek.domain.federation import Components, Period, UnknownPolicy
from fabriek.domain.identity.people import TokenDraft
from fabriek.main import main
from fabriek.services.access.config import load_access_config
from fabriek.services.federation import config
from fabriek.services.federation.orders import OrderRules
from fabriek.services.federation.platform import Platform
from fabriek.services.federation.sync import FederationLoop, SyncResult, sync_once
from fabriek.services.housekeeping import federation_loop
from fabriek.services.identity.tokens import issue_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    AllocationRow,
    AuditRow,
    ChargeRow,
    FederationOrderRow,
    FederationResourceRow,
    FederationUsageRow,
    MembershipRow,
    ProjectRow,
    UserRow,
)
from tests.jobs_helpers import py, submit, wait_for
from tests.people import accept_factory_terms
from tests.servers import LiveServer
from tests.waldur_standin import TOKEN, Member, StandInPlatform, running_platform

DELFT = "Technische Universiteit Delft"


@dataclass
class Site:
    """This factory as the platform's site: its store, its rules, and a sync to run."""

    platform: StandInPlatform
    server: LiveServer
    sessions: sessionmaker[Session]
    rules: OrderRules
    components: Components

    def sync(self, now: datetime | None = None, **rules: Any) -> SyncResult:
        """One sync with a fresh client, as a process started anew would run it."""
        client = Platform(self.platform.url, TOKEN, str(self.platform.offering_uuid))
        try:
            return sync_once(
                self.sessions, client, replace(self.rules, **rules), self.components,
                now or datetime.now(UTC),
            )  # fmt: skip
        finally:
            client.close()

    def resource(self, order: UUID) -> FederationResourceRow:
        with self.sessions() as session:
            row = session.get(FederationResourceRow, str(self.platform.resource_of(order)))
            assert row is not None, "no project for the order's resource"
            session.expunge(row)
            return row

    def members(self, project_id: int) -> dict[str, str]:
        with self.sessions() as session:
            return {
                u: r
                for u, r in session.execute(
                    select(UserRow.username, MembershipRow.role)
                    .join(MembershipRow, MembershipRow.user_id == UserRow.id)
                    .where(MembershipRow.project_id == project_id)
                )
            }

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FABRIEK_DATABASE_URL": self.server.settings.database_url,
            "FABRIEK_FEDERATION_API_URL": self.platform.url,
            "FABRIEK_FEDERATION_API_TOKEN": TOKEN,
            "FABRIEK_FEDERATION_OFFERING_UUID": str(self.platform.offering_uuid),
            "FABRIEK_FEDERATION_UNKNOWN": "create",
        }


@pytest.fixture(scope="module")
def site(server: LiveServer) -> Iterator[Site]:
    """The stand-in platform, and this factory's account that acts on its orders (an admin
    made through the API, as an operator makes it)."""
    from fabriek.services.demo.seed import demo_token

    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {demo_token('admin').token}"},
        timeout=30,
    ) as admin:
        made = admin.post(
            "/api/v1/users",
            json={"username": "federation", "full_name": "EuroHPC federation platform",
                  "email": "federation@fabriek.example", "staff_roles": [{"role": "admin"}]},
        )  # fmt: skip
        assert made.status_code in (201, 409), made.text
    engine = make_engine(server.settings.database_url)
    access = load_access_config()
    rules = OrderRules(
        access=access,
        unknown=UnknownPolicy.CREATE,
        organisation_kind=config.OrganisationKind.UNIVERSITY,
        organisation_province=config.Province.UTRECHT,
        actor="federation",
    )
    with running_platform() as platform:
        yield Site(platform, server, make_sessions(engine), rules, Components())
    engine.dispose()


def _signed_in(site: Site, username: str) -> httpx.Client:
    with site.sessions() as session:
        user_id = session.scalar(select(UserRow.id).where(UserRow.username == username))
        assert user_id is not None, username
        token = issue_token(session, user_id, TokenDraft(name="test"), datetime.now(UTC), 1)
        accept_factory_terms(session, user_id)
        session.commit()
    return httpx.Client(
        base_url=site.server.url, headers={"Authorization": f"Bearer {token.token}"}, timeout=30
    )


def _cli(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """`fabriek ARGS` in this process (the server's command, as an operator runs it), with
    the site's settings in the environment: its exit status, output and errors."""
    for name, value in site.env().items():
        if name.startswith("FABRIEK_"):
            monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    found = capsys.readouterr()
    return code, found.out, found.err


def _next_month(now: datetime) -> datetime:
    return Period.of(now).end + timedelta(hours=1)


def _charged(site: Site, allocation_id: int) -> float:
    with site.sessions() as session:
        return float(
            session.scalar(
                select(func.coalesce(func.sum(ChargeRow.gpu_hours), 0.0)).where(
                    ChargeRow.allocation_id == allocation_id
                )
            )
            or 0.0
        )


def _calls_for(platform: StandInPlatform, resource: UUID) -> list[dict[str, Any]]:
    return [c for c in platform.usage_calls if c["resource"] == str(resource)]


def test_an_ordered_allocation_becomes_a_project_whose_members_run_jobs_and_its_usage_is_reported_once_then_corrected(
    site: Site,
) -> None:
    platform = site.platform
    order = platform.order(
        customer=DELFT,
        resource_name="Dutch LLM",
        creator=("anna.devries@myaccessid.org", "Anna de Vries", "anna.devries@tudelft.nl"),
        team=[
            Member(
                "anna.devries@myaccessid.org",
                "Anna de Vries",
                "anna.devries@tudelft.nl",
                "PROJECT.MANAGER",
            ),
            Member("bram@myaccessid.org", "Bram Peters", "bram.peters@tudelft.nl"),
        ],
    )
    result = site.sync()
    assert result.done == [str(order)], result.to_json()
    assert platform.state(order) == "done"
    resource = site.resource(order)
    assert site.members(resource.project_id) == {
        "anna.devries": "principal-investigator",
        "bram": "member",
    }
    with site.sessions() as session:
        allocation = session.get(AllocationRow, resource.allocation_id)
        assert allocation is not None
        assert (allocation.track, allocation.awarded) == ("fast-lane", {"any": 1000})
        assert allocation.ends_at == datetime(2027, 7, 1, tzinfo=UTC)
        project = session.get(ProjectRow, resource.project_id)
        assert project is not None
        name = project.name

    # A member runs a job, charged to the platform's allocation.
    with _signed_in(site, "bram") as bram:
        job = submit(bram, project=name, command=py("import time; time.sleep(4)"), gpus=1)
        assert wait_for(bram, job["id"])["state"] == "completed"
    used = _charged(site, resource.allocation_id)
    assert used > 0

    # The month is over: its usage goes back once, and once only.
    later = _next_month(datetime.now(UTC))
    site.sync(later)
    uuid = platform.resource_of(order)
    month = Period.of(datetime.now(UTC)).start.date()
    assert platform.usage(uuid, "gpu_hours", month) == pytest.approx(round(used, 3))
    assert platform.usage(uuid, "energy_kwh", month) is not None
    assert len(_calls_for(platform, uuid)) == 1
    site.sync(later)
    assert len(_calls_for(platform, uuid)) == 1

    # Late accounting for that month (a run charged after the report): the figure is
    # corrected, once.
    with _signed_in(site, "anna.devries") as anna:
        job = submit(anna, project=name, command=py("import time; time.sleep(4)"), gpus=1)
        assert wait_for(anna, job["id"])["state"] == "completed"
    more = _charged(site, resource.allocation_id)
    assert round(more, 3) > round(used, 3)
    site.sync(later)
    assert platform.usage(uuid, "gpu_hours", month) == pytest.approx(round(more, 3))
    assert len(_calls_for(platform, uuid)) == 2
    with site.sessions() as session:
        key = (str(uuid), "gpu_hours", str(Period.of(datetime.now(UTC))))
        figure = session.get(FederationUsageRow, key)
        assert figure is not None and figure.revision == 2
    site.sync(later)
    assert len(_calls_for(platform, uuid)) == 2


def test_updates_membership_changes_and_termination_follow_the_platform(site: Site) -> None:
    platform = site.platform
    team = [
        Member("pieter@myaccessid.org", "Pieter Bakker", "pieter@demo.fabriek.example",
               "PROJECT.MANAGER"),
        Member("maria@myaccessid.org", "Maria Visser", "maria@demo.fabriek.example"),
    ]  # fmt: skip
    order = platform.order(
        customer=DELFT,
        resource_name="Photonics vision",
        creator=("pieter@myaccessid.org", "Pieter Bakker", "pieter@demo.fabriek.example"),
        access_mode="AI for Science",
        gpu_hours=500,
        team=team,
    )
    assert site.sync().done == [str(order)]
    resource = site.resource(order)
    uuid = platform.resource_of(order)
    assert site.members(resource.project_id) == {
        "pieter": "principal-investigator",
        "maria": "member",
    }

    update = platform.order(RequestTypes.UPDATE, resource=uuid, gpu_hours=800,
                            end_date=datetime(2027, 12, 31).date())  # fmt: skip
    assert site.sync().done == [str(update)]
    assert platform.state(update) == "done"
    with site.sessions() as session:
        allocation = session.get(AllocationRow, resource.allocation_id)
        assert allocation is not None
        assert allocation.awarded == {"any": 800}
        assert allocation.ends_at == datetime(2028, 1, 1, tzinfo=UTC)

    # Maria leaves the platform's project, Mo joins: Fabriek's project follows.
    platform.teams[uuid] = [team[0], Member("mo@myaccessid.org", "Mo", "mo@demo.fabriek.example")]
    result = site.sync()
    assert (result.members_added, result.members_removed) == (1, 1)
    assert site.members(resource.project_id) == {"pieter": "principal-investigator", "mo": "member"}

    end = platform.order(RequestTypes.TERMINATE, resource=uuid)
    assert site.sync().done == [str(end)]
    assert platform.state(end) == "done"
    with site.sessions() as session:
        allocation = session.get(AllocationRow, resource.allocation_id)
        assert allocation is not None and allocation.ends_at <= datetime.now(UTC)
        row = session.get(FederationResourceRow, str(uuid))
        assert row is not None and row.terminated_at is not None

    # Restored on the platform: the same project and allocation, open again.
    back = platform.order(RequestTypes.RESTORE, resource=uuid, gpu_hours=800,
                          end_date=datetime(2028, 3, 31).date())  # fmt: skip
    assert site.sync().done == [str(back)]
    with site.sessions() as session:
        allocation = session.get(AllocationRow, resource.allocation_id)
        assert allocation is not None and allocation.ends_at == datetime(2028, 4, 1, tzinfo=UTC)
        row = session.get(FederationResourceRow, str(uuid))
        assert row is not None and row.terminated_at is None


def test_the_same_order_twice_is_applied_once(site: Site) -> None:
    platform = site.platform
    order = platform.order(customer=DELFT, resource_name="Twice",
                           creator=("maria@x", "Maria Visser", "maria@demo.fabriek.example"))  # fmt: skip
    assert site.sync().done == [str(order)]
    resource = site.resource(order)
    # The platform lists it again (its "done" was lost on the way): reported, not applied.
    platform.orders[order].state = OrderState.EXECUTING
    result = site.sync()
    assert result.done == [] and result.reported_again == [str(order)]
    assert platform.state(order) == "done"
    # A second create order for the same resource updates it; no second project.
    again = platform.order(resource=platform.resource_of(order), customer=DELFT,
                           resource_name="Twice", gpu_hours=1200,
                           creator=("maria@x", "Maria Visser", "maria@demo.fabriek.example"))  # fmt: skip
    assert site.sync().done == [str(again)]
    with site.sessions() as session:
        assert session.scalar(
            select(func.count()).select_from(AllocationRow)
            .where(AllocationRow.project_id == resource.project_id)
        ) == 1  # fmt: skip
        grants = session.scalar(
            select(func.count())
            .select_from(AuditRow)
            .where(
                AuditRow.project_id == resource.project_id,
                AuditRow.detail["change"].as_string() == "allocation-grant",
            )
        )
        assert grants == 1
        allocation = session.get(AllocationRow, resource.allocation_id)
        assert allocation is not None and allocation.awarded == {"any": 1200}


def test_an_order_that_cannot_be_applied_is_reported_failed_with_its_reason(site: Site) -> None:
    platform = site.platform
    order = platform.order(customer=DELFT, access_mode="Moonshot")
    result = site.sync()
    assert [o for o, _ in result.failed] == [str(order)]
    assert platform.state(order) == "erred"
    reason = platform.error(order)
    assert "Moonshot" in reason and "Fast Lane" in reason
    with site.sessions() as session:
        assert session.scalar(select(func.count()).select_from(FederationResourceRow).where(
            FederationResourceRow.resource_uuid == str(platform.resource_of(order)))) == 0  # fmt: skip


def test_an_unknown_organisation_is_held_for_an_operator_then_taken(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = site.platform
    order = platform.order(customer="Hanzehogeschool Groningen",
                           creator=("pieter@x", "Pieter Bakker", "pieter@demo.fabriek.example"))  # fmt: skip
    result = site.sync(unknown=UnknownPolicy.HOLD)
    assert [o for o, _ in result.held] == [str(order)]
    assert "Hanzehogeschool Groningen" in result.held[0][1]
    assert platform.state(order) == "pending-provider"  # nothing was decided
    code, out, err = _cli(site, monkeypatch, capsys, "federation", "status", "--json")
    assert code == 0, err
    held = json.loads(out)["held"]
    assert [h["order"] for h in held] == [str(order)]
    assert "Hanzehogeschool Groningen" in held[0]["reason"]

    from fabriek.services.demo.seed import demo_token

    with httpx.Client(
        base_url=site.server.url,
        timeout=30,
        headers={"Authorization": f"Bearer {demo_token('admin').token}"},
    ) as admin:
        made = admin.post("/api/v1/organisations", json={
            "name": "Hanzehogeschool Groningen", "kind": "university-of-applied-sciences",
            "province": "Groningen"})  # fmt: skip
        assert made.status_code == 201, made.text
    assert site.sync(unknown=UnknownPolicy.HOLD).done == [str(order)]
    assert platform.state(order) == "done"


def test_a_sync_stopped_half_way_is_finished_by_the_next_one(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = site.platform
    order = platform.order(customer=DELFT, resource_name="Crash",
                           creator=("maria@x", "Maria Visser", "maria@demo.fabriek.example"))  # fmt: skip
    # Applied in Fabriek, then the platform goes away before it hears "done".
    platform.fail_next("set_state_done", 503)
    first = site.sync()
    assert first.done == [str(order)] and first.errors
    assert platform.state(order) == "executing"
    with site.sessions() as session:
        kept = session.get(FederationOrderRow, str(order))
        assert kept is not None and kept.outcome == "done" and kept.reported_at is None

    later = _next_month(datetime.now(UTC))
    uuid = platform.resource_of(order)
    # The next sync (the operator's command, with an engine and a client of its own)
    # finishes it: reported, not applied again.
    code, out, err = _cli(site, monkeypatch, capsys, "federation", "sync", "--json")
    assert code == 0, err
    assert json.loads(out)["reported_again"] == [str(order)]
    assert platform.state(order) == "done"
    with site.sessions() as session:
        resource = session.get(FederationResourceRow, str(uuid))
        assert resource is not None
        assert session.scalar(select(func.count()).select_from(AllocationRow).where(
            AllocationRow.project_id == resource.project_id)) == 1  # fmt: skip
    # Usage of the month: a refused figure is kept due and sent by the next sync, once.
    platform.fail_next("set_usage", 400, times=100)
    refused = site.sync(later)
    assert refused.errors and refused.usage_sent == 0
    platform.failures["set_usage"].clear()
    platform.fail_next("set_usage", 503)
    down = site.sync(later)
    assert down.errors and not _calls_for(platform, uuid)
    site.sync(later)
    assert len(_calls_for(platform, uuid)) == 1
    site.sync(later)
    assert len(_calls_for(platform, uuid)) == 1


def test_the_servers_loop_syncs_when_on_and_checks_its_settings(site: Site) -> None:
    access: AccessConfig = site.rules.access
    off = Settings(database_url=site.server.settings.database_url)
    assert federation_loop(site.sessions, off, access) is None
    with pytest.raises(InvalidInput, match="FABRIEK_FEDERATION_API_URL"):
        federation_loop(site.sessions, Settings(federation_enabled=True), access)
    on = Settings(
        federation_enabled=True, federation_api_url=site.platform.url,
        federation_api_token=TOKEN, federation_offering_uuid=str(site.platform.offering_uuid),
        federation_unknown="create",
    )  # fmt: skip
    loop = federation_loop(site.sessions, on, access)
    assert isinstance(loop, FederationLoop)
    order = site.platform.order(customer=DELFT, resource_name="Loop",
                                creator=("maria@x", "Maria Visser", "maria@demo.fabriek.example"))  # fmt: skip
    try:
        assert loop.tick(datetime.now(UTC))
        loop.wait(60)
        assert not loop.tick(datetime.now(UTC))  # not due again yet
    finally:
        loop.close()
    assert loop.last is not None and loop.last.done == [str(order)]
    assert site.platform.state(order) == "done"


def test_the_command_says_in_one_line_what_setting_is_missing(site: Site) -> None:
    env = {k: v for k, v in site.env().items() if not k.startswith("FABRIEK_FEDERATION_")}
    done = subprocess.run(
        [sys.executable, "-m", "fabriek.main", "federation", "sync"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "FABRIEK_FEDERATION_API_URL" in done.stderr


def test_a_call_refused_for_one_order_keeps_the_others_going(site: Site) -> None:
    platform = site.platform
    maria = ("maria@x", "Maria Visser", "maria@demo.fabriek.example")
    first = platform.order(customer=DELFT, resource_name="Refused first", creator=maria)
    second = platform.order(customer=DELFT, resource_name="Then second", creator=maria)
    platform.fail_next("approve_by_provider", 409)
    result = site.sync()
    assert result.done == [str(first), str(second)] and len(result.errors) == 1
    assert (platform.state(first), platform.state(second)) == ("pending-provider", "done")
    again = site.sync()
    assert again.reported_again == [str(first)] and not again.errors
    assert platform.state(first) == "done"


def test_an_ordered_allocation_shows_its_eurohpc_mode_and_its_turnaround_clock(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22, point 4: the allocation's source and its clock from the platform's decision,
    in the API's answer, the CLI's listing, the portal's home page and the operator's
    monthly medians; an allocation of a national call says which call."""
    platform = site.platform
    approved = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    order = platform.order(
        customer=DELFT, resource_name="Clock LLM", access_mode="ai-for-science",
        creator=("clara.jansen@myaccessid.org", "Clara Jansen", "clara.jansen@tudelft.nl"),
        approved_at=approved,
    )  # fmt: skip
    assert site.sync().done == [str(order)]
    resource = site.resource(order)
    with site.sessions() as session:
        allocation = session.get(AllocationRow, resource.allocation_id)
        assert allocation is not None
        usable = max(allocation.created_at, allocation.starts_at)
        name = session.get(ProjectRow, resource.project_id).name  # type: ignore[union-attr]
    to_usable = (usable - approved).total_seconds() / 3600
    assert to_usable >= 30

    with _signed_in(site, "clara.jansen") as clara:
        seen = clara.get(f"/api/v1/allocations/{resource.allocation_id}")
        assert seen.status_code == 200, seen.text
        body = seen.json()
        assert body["source"] == {"kind": "eurohpc", "name": "AI for Science", "call": None,
                                  "platform_resource": resource.resource_uuid}  # fmt: skip
        clock = body["turnaround"]
        assert datetime.fromisoformat(clock["decided_at"]) == approved
        assert clock["hours_to_usable"] == pytest.approx(to_usable, abs=0.001)
        assert clock["first_job_at"] is None and clock["hours_to_first_job"] is None

        job = submit(clara, project=name, command=py("print('hi')"), gpus=1)
        done = wait_for(clara, job["id"])
        assert done["state"] == "completed"
        clock = clara.get(f"/api/v1/allocations/{resource.allocation_id}").json()["turnaround"]
        started = datetime.fromisoformat(done["started_at"])
        assert datetime.fromisoformat(clock["first_job_at"]) == started
        expected = (started - approved).total_seconds() / 3600
        assert clock["hours_to_first_job"] == pytest.approx(expected, abs=0.001)

        token = clara.headers["Authorization"].removeprefix("Bearer ")

    # The portal's home page, signed in by its cookie.
    with httpx.Client(base_url=site.server.url, timeout=30) as portal:
        signed = portal.post("/signin", data={"token": token, "next": "/home"})
        assert signed.status_code == 303, signed.text
        page = portal.get("/home")
        assert page.status_code == 200
        assert "EuroHPC, AI for Science (ordered on the federation platform)" in page.text
        assert f"Decided by the federation platform on {approved:%Y-%m-%d}" in page.text
        assert "first job" in page.text and "no job yet" not in page.text

    # The CLI's listing, as the principal investigator runs it.
    listing = subprocess.run(
        [sys.executable, "-m", "fabriek.main", "allocations", "--project", name],
        env={**os.environ, "COLUMNS": "250", "FABRIEK_URL": site.server.url,
             "FABRIEK_TOKEN": token},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert "EuroHPC AI for Science" in listing.stdout

    # The operator's medians per month of the platform's decision.
    code, out, err = _cli(site, monkeypatch, capsys, "federation", "status", "--json")
    assert code == 0, err
    [month] = [m for m in json.loads(out)["turnaround"] if m["month"] == f"{approved:%Y-%m}"]
    assert month["allocations"] >= 1 and month["with_first_job"] >= 1

    # An award of a national call names its call; a grant of the access team says so.
    from fabriek.services.demo.seed import demo_token

    with httpx.Client(
        base_url=site.server.url,
        timeout=30,
        headers={"Authorization": f"Bearer {demo_token('admin').token}"},
    ) as admin:
        items = admin.get("/api/v1/allocations", params={"limit": 200}).json()["items"]
    kinds = {a["source"]["kind"] for a in items}
    assert "eurohpc" in kinds and "operator" in kinds
    for a in items:
        if a["source"]["kind"] == "national-call":
            assert a["proposal_id"] is not None and a["source"]["call"]
        if a["source"]["kind"] != "eurohpc":
            assert a["turnaround"] is None
