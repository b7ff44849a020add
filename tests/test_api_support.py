"""The support centre over real HTTP, on SQLite and PostgreSQL: a ticket about a failed job
lands at the hub of the user's province with the job's context; the conversation with
internal notes; handovers; who sees what; every refusal a problem document that says why.
The service-level clocks run on a controllable clock: the service functions get explicit
moments, on the live server's own database (far in the future, so the server's own
housekeeping, on the real clock, never acts on them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.identity.people import TokenDraft
from fabriek.domain.support.shapes import MessageDraft, StatusChange, TicketDraft
from fabriek.services import support
from fabriek.services.access.config import load_access_config
from fabriek.services.identity.tokens import issue_token, principal_for_user
from fabriek.services.support.chores import close_resolved, escalate_breaches
from fabriek.services.support.config import SupportOptions
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NotificationRow, UserRow
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.people import accept_factory_terms
from tests.servers import LiveServer
from tests.test_api_users import org_id, user_body

API = "/api/v1/support"
LIMBURG_ORG = "Limburgse Chemie Modellen B.V."


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class Person:
    username: str
    email: str
    token: str


def person(
    server: LiveServer, client: Client, name: str, organisation: str | None, **extra: Any
) -> Person:
    """A new user made by an admin through the API, with an API token issued in the store
    (only its owner could ask the API for one)."""
    org = org_id(client, organisation) if organisation else None
    ok(client("admin").post("/api/v1/users", json=user_body(name, org, **extra)), 201)
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            user_id = session.scalar(select(UserRow.id).where(UserRow.username == name))
            assert user_id is not None
            new = issue_token(session, user_id, TokenDraft(name="t"), datetime.now(UTC), 1)
            accept_factory_terms(session, user_id)
            session.commit()
    finally:
        engine.dispose()
    return Person(name, f"{name}@example.org", new.token)


@dataclass
class Limburg:
    """A Limburg scale-up's researcher with a project and an allocation, and the staff of
    AI-hub Brightlands, which serves Limburg."""

    user: Person
    staff: Person
    project: str


def limburg(server: LiveServer, client: Client, unique: str) -> Limburg:
    user = person(server, client, f"{unique}-lisa", LIMBURG_ORG)
    staff = person(server, client, f"{unique}-bram", "Universiteit Maastricht",
                   staff_roles=[{"role": "hub-staff", "scope": "brightlands"}])  # fmt: skip
    project = f"{unique}-catalysis"
    ok(client("admin").post("/api/v1/projects", json={
        "name": project, "title": "Catalyst screening", "organisation_id": org_id(client, LIMBURG_ORG),
        "principal_investigator": user.username}), 201)  # fmt: skip
    grant = {"project": project, "track": "fast-lane", "gpu_hours": {"h100": 400}}
    ok(client("eva").post("/api/v1/allocations", json=grant), 201)
    return Limburg(user, staff, project)


def ticket_body(**fields: Any) -> dict[str, Any]:
    return {"subject": "Training stops with NaN loss", "body": "Since yesterday it fails.",
            "category": "jobs", **fields}  # fmt: skip


@pytest.fixture
def session(server: LiveServer) -> Iterator[Session]:
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as s:
        yield s
    engine.dispose()


def notifications_of(session: Session, username: str, kind: str, reference: str) -> list[str]:
    session.expire_all()
    return list(
        session.scalars(
            select(NotificationRow.subject)
            .join(UserRow, UserRow.id == NotificationRow.user_id)
            .where(UserRow.username == username, NotificationRow.kind == kind,
                   NotificationRow.subject.like(f"{reference}%"))
        )
    )  # fmt: skip


# --- the journey --------------------------------------------------------------------------------


def test_a_ticket_about_a_failed_job_in_limburg_lands_at_brightlands_with_the_jobs_context(
    server: LiveServer, client: Client, unique: str, session: Session
) -> None:
    world = limburg(server, client, unique)
    lisa = client(token=world.user.token)
    job = submit(lisa, project=world.project, time_limit="2m", name="screen", command=py(
        "import sys; print('epoch 3: loss nan'); "
        "print('RuntimeError: CUDA error: device-side assert', file=sys.stderr); sys.exit(3)"
    ))  # fmt: skip
    failed = wait_for(lisa, job["id"])
    assert failed["state"] == "failed"

    ticket = ok(lisa.post(f"{API}/tickets", json=ticket_body(
        about=f"job:{job['id']}", share_context=True)), 201)  # fmt: skip
    reference = ticket["reference"]
    assert ticket["queue"] == "brightlands" and ticket["queue_name"] == "AI-hub Brightlands"
    assert ticket["status"] == "new" and ticket["project"] == world.project
    assert ticket["sector"] == "scale-up" and ticket["organisation"] == LIMBURG_ORG
    context = ticket["context"]
    assert context["job"]["state"] == "failed" and context["job"]["exit_code"] == 3
    assert context["job"]["reason"] == failed["reason"] and context["job"]["site"] == failed["site"]
    assert "epoch 3: loss nan" in context["log_lines"]
    assert any("CUDA error" in line for line in context["error_lines"])
    budget = context["budget"]
    assert budget["awarded_gpu_hours"] == 400 and budget["remaining_gpu_hours"] <= 400
    assert budget["consumed_gpu_hours"] + budget["remaining_gpu_hours"] == pytest.approx(
        400, abs=0.01
    )
    assert ticket["reply_address"].startswith(f"support+{reference}-")
    assert ticket["service_level"]["first_answer_working_days"] == 1

    # It is in Brightlands' queue, and its staff were told; not another hub's.
    bram = client(token=world.staff.token)
    queue = ok(bram.get(f"{API}/tickets", params={"queue": "brightlands", "status": "open"}))
    assert reference in [t["reference"] for t in queue["items"]]
    assert notifications_of(session, world.staff.username, "support-ticket", reference)
    problem_of(client("hanna").get(f"{API}/tickets/{ticket['id']}"), 404)
    assert ok(client("eva").get(f"{API}/tickets/{ticket['id']}"))["handling"] is True

    # The conversation: a reply the user reads, a note they never see.
    ok(bram.post(f"{API}/tickets/{ticket['id']}/messages", json={
        "body": "Is it the learning rate? Try 1e-4.", "status": "waiting-for-user"}), 201)  # fmt: skip
    ok(bram.post(f"{API}/tickets/{ticket['id']}/messages", json={
        "body": "Known driver issue on this node; asked the site.", "internal": True}), 201)  # fmt: skip
    seen = ok(lisa.get(f"{API}/tickets/{ticket['id']}"))
    assert [m["body"] for m in seen["messages"]] == ["Is it the learning rate? Try 1e-4."]
    assert seen["status"] == "waiting-for-user" and seen["service_level"]["first_answer_at"]
    assert len(ok(bram.get(f"{API}/tickets/{ticket['id']}"))["messages"]) == 2
    problem = problem_of(lisa.post(f"{API}/tickets/{ticket['id']}/messages",
                                   json={"body": "psst", "internal": True}), 403)  # fmt: skip
    assert "internal notes are for the staff handling" in str(problem["detail"])
    ok(lisa.post(f"{API}/tickets/{ticket['id']}/messages", json={"body": "Still NaN."}), 201)
    assert ok(lisa.get(f"{API}/tickets/{ticket['id']}"))["status"] == "triaged"
    assert notifications_of(session, world.staff.username, "support-reply", reference)

    # Handed to the central desk: recorded, and out of Brightlands' hands.
    moved = ok(bram.post(f"{API}/tickets/{ticket['id']}/handover",
                         json={"to": "central", "note": "needs the site team"}))  # fmt: skip
    assert moved["queue"] == "central"
    history = ok(client("eva").get(f"{API}/tickets/{ticket['id']}"))["history"]
    assert history[-1] | {"at": None} == {
        "at": None, "kind": "handover", "by": world.staff.username, "from_value": "brightlands",
        "to_value": "central", "note": "needs the site team"}  # fmt: skip
    problem_of(bram.get(f"{API}/tickets/{ticket['id']}"), 404)
    trail = ok(client("admin").get("/api/v1/audit", params={
        "actor": world.staff.username, "action": "admin", "limit": 50}))["items"]  # fmt: skip
    assert any(e["target"] == f"ticket:{reference}" and e["detail"]["to_desk"] == "central"
               for e in trail)  # fmt: skip
    assert ok(lisa.get(f"{API}/tickets/{ticket['id']}"))["history"][-1]["note"] is None


def test_routing_follows_the_category_and_the_province(client: Client, unique: str) -> None:
    # Sanne's organisation is in Noord-Brabant (AI-hub Brainport).
    sanne = client("sanne")
    jobs = ok(sanne.post(f"{API}/tickets", json=ticket_body(subject=f"{unique} jobs")), 201)
    assert jobs["queue"] == "brainport"
    access = ok(sanne.post(f"{API}/tickets", json=ticket_body(
        subject=f"{unique} access", category="access-and-proposals")), 201)  # fmt: skip
    assert access["queue"] == "central" and access["queue_name"] == "Central support desk"
    found = ok(client("eva").get(f"{API}/categories"))
    assert {c["code"]: c["owner"] for c in found}["ai-act"] == "central"
    mine = ok(sanne.get(f"{API}/tickets", params={"mine": True, "limit": 1000}))
    assert {jobs["id"], access["id"]} <= {t["id"] for t in mine["items"]}


def test_the_projects_members_see_the_ticket_and_nobody_else_does(
    client: Client, unique: str
) -> None:
    # Maria is a member of photonic-inspect, sanne's project; mo is not.
    ticket = ok(client("sanne").post(f"{API}/tickets", json=ticket_body(
        subject=f"{unique} shared", project="photonic-inspect")), 201)  # fmt: skip
    assert ok(client("maria").get(f"{API}/tickets/{ticket['id']}"))["handling"] is False
    for stranger in ("mo", "henk", "otto", "rita"):
        problem = problem_of(client(stranger).get(f"{API}/tickets/{ticket['id']}"), 404)
        assert "does not exist or is not visible to you" in str(problem["detail"])
    listed = ok(client("mo").get(f"{API}/tickets", params={"limit": 1000}))
    assert ticket["id"] not in [t["id"] for t in listed["items"]]


# --- bad input --------------------------------------------------------------------------------


def test_a_ticket_about_someone_elses_job_is_refused(client: Client, unique: str) -> None:
    job = submit(client("pieter"), project="dutch-llm", command=["true"], time_limit="1m")
    problem = problem_of(client("mo").post(f"{API}/tickets", json=ticket_body(
        about=f"job:{job['id']}", share_context=True)), 404)  # fmt: skip
    assert f"job {job['id']} does not exist" in str(problem["detail"])
    # Hanna sees Brainport's projects, but a ticket about their job is not hers to open.
    theirs = submit(client("sanne"), project="photonic-inspect", command=["true"], time_limit="1m")
    problem = problem_of(client("hanna").post(f"{API}/tickets", json=ticket_body(
        about=f"job:{theirs['id']}")), 403)  # fmt: skip
    assert "not a member of" in str(problem["detail"])
    for fields, says in [
        ({"about": "job:nine"}, "about: 'job:nine': a job is named by its number"),
        ({"about": "proposal:99999999"}, "proposal 99999999 does not exist"),
        (
            {"about": "dataset:dutch-llm/nothing-here"},
            "dataset dutch-llm/nothing-here does not exist",
        ),
        ({"category": "billing"}, "category: no category 'billing'; known: access, jobs"),
        ({"priority": "asap"}, "priority: no priority 'asap'; known: low, normal, high"),
        ({"share_context": True}, "share_context: there is no context to share"),
        ({"project": "legal-nl"}, "project legal-nl does not exist"),
        ({"about": f"job:{theirs['id']}", "project": "dutch-llm"}, "not dutch-llm"),
    ]:
        status = 422 if "does not exist" not in says else 404
        problem = problem_of(client("maria").post(f"{API}/tickets", json=ticket_body(
            subject=f"{unique} bad", **fields)), status)  # fmt: skip
        assert says in str(problem["detail"]), (fields, problem["detail"])
    mine = ok(client("maria").get(f"{API}/tickets", params={"mine": True, "limit": 1000}))
    assert not [t for t in mine["items"] if t["subject"] == f"{unique} bad"]


@contextmanager
def attachment_limit(server: LiveServer, mib: float) -> Iterator[None]:
    before = server.settings.support_attachment_max_mib
    server.settings.support_attachment_max_mib = mib
    try:
        yield
    finally:
        server.settings.support_attachment_max_mib = before


def test_attachments_over_the_limit_or_of_a_forbidden_type_are_refused_and_nothing_is_kept(
    server: LiveServer, client: Client, unique: str
) -> None:
    sanne = client("sanne")
    ticket = ok(sanne.post(f"{API}/tickets", json=ticket_body(subject=f"{unique} files")), 201)
    path = f"{API}/tickets/{ticket['id']}/attachments"

    def attach(name: str, data: bytes, media_type: str, **params: Any) -> httpx.Response:
        return sanne.post(path, params={"name": name, **params}, content=data,
                          headers={"Content-Type": media_type})  # fmt: skip

    log = b"epoch 1: loss 2.3\nepoch 2: loss nan\n"
    kept = ok(attach("train.log", log, "text/plain"), 201)
    assert kept["size_bytes"] == len(log) and kept["name"] == "train.log"
    back = sanne.get(f"{path}/{kept['id']}")
    assert back.content == log and back.headers["content-type"].startswith("text/plain")
    stored = server.settings.state_dir / "support" / "attachments"
    assert sum(1 for p in stored.iterdir() if p.is_file()) >= 1

    with attachment_limit(server, 0.001):  # 1,048 bytes
        problem = problem_of(attach("big.log", b"x" * 5000, "text/plain"), 413)
        assert "attachments may be at most 0.0 MiB" in str(problem["detail"])
    for name, data, media_type, status, says in [
        ("setup.exe", b"MZ\x90\x00\x03", "application/x-msdownload", 415,
         "files of type application/x-msdownload are not accepted; allowed: "),
        ("plot.png", b"GIF89a not a png at all", "image/png", 415, "does not look like image/png"),
        ("notes.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00", "text/plain", 415, "binary data"),
        ("latin.txt", "café".encode("latin-1"), "text/plain", 415, "not text/plain in UTF-8"),
        ("empty.txt", b"", "text/plain", 422, "the file is empty"),
    ]:  # fmt: skip
        problem = problem_of(attach(name, data, media_type), status)
        assert says in str(problem["detail"]), (name, problem["detail"])
    problem_of(attach("note.txt", b"for staff", "text/plain", internal=True), 403)
    files = ok(sanne.get(f"{API}/tickets/{ticket['id']}"))["attachments"]
    assert [f["name"] for f in files] == ["train.log"]
    incoming = stored / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
    problem_of(client("mo").get(f"{path}/{kept['id']}"), 404)


def test_a_closed_ticket_takes_no_reply_and_the_steps_are_checked(
    client: Client, unique: str
) -> None:
    sanne, hanna = client("sanne"), client("hanna")
    ticket = ok(sanne.post(f"{API}/tickets", json=ticket_body(subject=f"{unique} steps")), 201)
    status = f"{API}/tickets/{ticket['id']}/status"
    problem = problem_of(sanne.post(status, json={"status": "triaged"}), 403)
    assert "you may close it" in str(problem["detail"])
    problem_of(sanne.post(status, json={"status": "gone"}), 422)
    assert ok(hanna.post(status, json={"status": "resolved", "note": "answered on the phone"}))[
        "service_level"]["resolved_at"]  # fmt: skip
    # A reply reopens a resolved ticket.
    ok(sanne.post(f"{API}/tickets/{ticket['id']}/messages", json={"body": "Not quite."}), 201)
    reopened = ok(sanne.get(f"{API}/tickets/{ticket['id']}"))
    assert reopened["status"] == "triaged" and reopened["service_level"]["resolved_at"] is None
    assert ok(sanne.post(status, json={"status": "closed"}))["status"] == "closed"
    problem = problem_of(
        sanne.post(f"{API}/tickets/{ticket['id']}/messages", json={"body": "One more thing"}), 409
    )
    assert f"{ticket['reference']} is closed and takes no more replies" in str(problem["detail"])
    problem = problem_of(hanna.post(status, json={"status": "triaged"}), 409)
    assert "is closed; it may go to: nothing" in str(problem["detail"])
    problem_of(hanna.post(f"{API}/tickets/{ticket['id']}/handover", json={"to": "central"}), 409)
    problem_of(hanna.post(f"{API}/tickets/{ticket['id']}/handover", json={"to": "mars"}), 422)
    closed = ok(sanne.get(f"{API}/tickets/{ticket['id']}"))
    assert [m["body"] for m in closed["messages"]] == ["Not quite."]
    assert closed["reply_address"] is None


def test_triage_and_handover_are_the_handling_staffs(client: Client, unique: str) -> None:
    ticket = ok(client("sanne").post(f"{API}/tickets", json=ticket_body(subject=unique)), 201)
    path = f"{API}/tickets/{ticket['id']}"
    problem_of(client("sanne").patch(path, json={"priority": "urgent"}), 403)
    problem_of(client("sanne").post(f"{path}/handover", json={"to": "central"}), 403)
    triaged = ok(client("hanna").patch(path, json={"priority": "high", "category": "data"}))
    assert triaged["priority"] == "high" and triaged["category"] == "data-and-privacy"
    assert triaged["service_level"]["resolution_working_days"] == 10
    problem_of(client("hanna").patch(path, json={"priority": "whenever"}), 422)
    same = problem_of(client("hanna").post(f"{path}/handover", json={"to": "brainport"}), 409)
    assert "already with AI-hub Brainport" in str(same["detail"])
    moved = ok(client("hanna").post(f"{path}/handover", json={"to": "noord-nederland"}))
    assert moved["queue_name"] == "AI-hub Noord-Nederland"
    assert ok(client("henk").get(path))["handling"] is True


# --- service levels on a controllable clock ---------------------------------------------------


def ams(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


def test_a_broken_service_level_is_flagged_once_and_escalated(
    server: LiveServer, client: Client, session: Session, unique: str
) -> None:
    options = SupportOptions.from_settings(server.settings)
    access = load_access_config()
    sanne_row = session.scalars(select(UserRow).where(UserRow.username == "sanne")).one()
    sanne = principal_for_user(session, sanne_row.id, "sanne")
    # Thursday 9 April 2099, before Easter: Goede Vrijdag, the weekend and Tweede Paasdag
    # do not count, so one working day ends with Tuesday 14 April.
    opened = ams(2099, 4, 9, 15)
    draft = TicketDraft(subject=f"{unique} waiting", category="jobs")
    ticket = support.open_ticket(session, sanne, draft, options, access, opened)
    assert ticket.service_level.first_answer_due == ams(2099, 4, 15)

    tuesday_night = ams(2099, 4, 14, 23, 59)
    escalate_breaches(session, tuesday_night, options.config)
    assert not notifications_of(session, "hanna", "support-breach", ticket.reference)
    assert not support.get_ticket(session, sanne, ticket.id, options, tuesday_night).breached

    wednesday = ams(2099, 4, 15, 0, 1)
    assert escalate_breaches(session, wednesday, options.config) >= 1
    for staff in ("hanna", "eva"):  # the hub's staff and the central desk
        assert notifications_of(session, staff, "support-breach", ticket.reference) == [
            f"{ticket.reference} broke its service level: no first answer in time"
        ]
    shown = ok(client("hanna").get(f"{API}/tickets/{ticket.id}"))
    assert shown["service_level"]["first_answer_breached"] and shown["breached"]
    assert shown["service_level"]["escalated_at"] is not None
    assert shown["history"][-1]["kind"] == "breach"
    escalate_breaches(session, wednesday + timedelta(days=3), options.config)
    assert len(notifications_of(session, "eva", "support-breach", ticket.reference)) == 1

    # Resolved, not reopened: closed after five working days by itself.
    hanna_row = session.scalars(select(UserRow).where(UserRow.username == "hanna")).one()
    hanna = principal_for_user(session, hanna_row.id, "hanna")
    resolved_at = ams(2099, 4, 17, 10)  # a Friday
    support.change_status(session, hanna, ticket.id, StatusChange(status="resolved"), options,
                          resolved_at)  # fmt: skip
    close_resolved(session, ams(2099, 4, 24, 23, 59), options.config)
    assert support.get_ticket(session, sanne, ticket.id, options, resolved_at).status == "resolved"
    close_resolved(session, ams(2099, 4, 25), options.config)
    closed = support.get_ticket(session, sanne, ticket.id, options, resolved_at)
    assert closed.status == "closed" and closed.history[-1].note == (
        "closed: not reopened after resolution"
    )


# --- the monthly report -----------------------------------------------------------------------


def test_a_hubs_monthly_report(
    server: LiveServer, client: Client, session: Session, unique: str
) -> None:
    options = SupportOptions.from_settings(server.settings)
    access = load_access_config()
    bram_row = person(server, client, f"{unique}-bram", "Universiteit Maastricht",
                      staff_roles=[{"role": "hub-staff", "scope": "brightlands"}])  # fmt: skip
    lisa_row = person(server, client, f"{unique}-lisa", LIMBURG_ORG)
    rows = {u.username: session.scalars(select(UserRow).where(UserRow.username == u.username)).one()
            for u in (bram_row, lisa_row)}  # fmt: skip
    lisa = principal_for_user(session, rows[lisa_row.username].id, lisa_row.username)
    bram = principal_for_user(session, rows[bram_row.username].id, bram_row.username)
    # November 2024 at Brightlands (long past: the clocks have run out): three tickets from
    # a scale-up; one answered in 2 hours and resolved the next day, one answered a week
    # late, one never.
    monday = ams(2024, 11, 4, 9)
    made = [
        support.open_ticket(session, lisa, TicketDraft(subject=f"{unique} {i}", category=c),
                            options, access, monday + timedelta(hours=i))
        for i, c in enumerate(["jobs", "jobs", "energy"])
    ]  # fmt: skip
    support.post_message(session, bram, made[0].id, MessageDraft(body="Fixed."), options,
                         monday + timedelta(hours=2))  # fmt: skip
    support.change_status(session, bram, made[0].id, StatusChange(status="resolved"), options,
                          monday + timedelta(days=1))  # fmt: skip
    support.post_message(session, bram, made[1].id, MessageDraft(body="Sorry, late."), options,
                         monday + timedelta(days=7))  # fmt: skip

    staff = client(token=bram_row.token)
    report = ok(staff.get(f"{API}/report", params={"hub": "brightlands", "month": "2024-11"}))
    assert report["hub_name"] == "AI-hub Brightlands" and report["tickets"] == 3
    assert report["by_category_and_sector"] == {
        "energy-and-sustainability": {"scale-up": 1},
        "jobs-and-software": {"scale-up": 2},
    }
    assert report["first_answer"] == {"count": 2, "median_hours": 84.5, "mean_hours": 84.5,
                                      "within_service_level": 1}  # fmt: skip
    assert report["resolution"]["count"] == 1 and report["resolution"]["median_hours"] == 24.0
    assert report["breaches"] == {"first_answer": 2, "resolution": 2}
    assert report["still_open"] == 2
    assert report["expert_hours"] == 0 and any("expert hours" in n for n in report["notes"])
    problem_of(client("hanna").get(f"{API}/report", params={"hub": "brightlands"}), 403)
    problem_of(client("sanne").get(f"{API}/report"), 403)
    problem = problem_of(staff.get(f"{API}/report", params={"month": "november"}), 422)
    assert "write it as YYYY-MM" in str(problem["detail"])
    central = ok(client("eva").get(f"{API}/report", params={"hub": "brightlands",
                                                           "month": "2024-11"}))  # fmt: skip
    assert central["tickets"] == report["tickets"]


def test_the_report_counts_the_expert_hours_the_hub_delivered(
    server: LiveServer, client: Client, unique: str
) -> None:
    world = limburg(server, client, unique)
    lisa, bram = client(token=world.user.token), client(token=world.staff.token)
    ticket = ok(lisa.post(f"{API}/tickets", json=ticket_body(subject=f"{unique} help")), 201)
    expert = ok(bram.post("/api/v1/experts", json={
        "name": f"Expert {unique}", "organisation": "Universiteit Maastricht",
        "hub": "brightlands", "skills": ["mlops"], "hours_per_month": 20}), 201)  # fmt: skip
    request = ok(bram.post("/api/v1/expertise-requests", json={
        "skills": ["mlops"], "hours": 3, "ticket_id": ticket["id"],
        "organisation_id": org_id(client, LIMBURG_ORG)}), 201)  # fmt: skip
    path = f"/api/v1/expertise-requests/{request['id']}"
    ok(bram.post(f"{path}/assignments", json={"expert_id": expert["id"]}), 201)
    day = datetime.now(UTC).date()
    ok(bram.post(f"{path}/consultations", json={"hours": 2.5, "day": day.isoformat()}), 201)
    report = ok(bram.get(f"{API}/report", params={"month": f"{day:%Y-%m}"}))
    assert report["hub"] == "brightlands"
    assert report["expert_hours"] >= 2.5
    assert report["expert_hours_by_sector"]["start-ups"] >= 2.5  # a scale-up counts there
