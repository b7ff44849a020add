"""The path of a proposal over real HTTP, on SQLite and PostgreSQL: call, draft, submission,
administrative check, reviews, decision, allocation; every refusal a problem document that
says why. The turnaround clock and the overdue-report block run on a controllable clock:
the service functions get explicit moments, on the live server's own database."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.access.calls import CallDraft
from fabriek.domain.access.proposals import (
    AdminCheck,
    FinalReportDraft,
    ProposalDraft,
    ProposalState,
)
from fabriek.domain.calendar import AMSTERDAM
from fabriek.domain.errors import Conflict
from fabriek.domain.roles import Principal, Role
from fabriek.services.access import calls as call_service
from fabriek.services.access import proposals as proposal_service
from fabriek.services.access import reviewing, turnaround
from fabriek.services.access.config import load_access_config
from fabriek.services.identity.tokens import principal_for_user
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    AllocationRow,
    MembershipRow,
    NotificationRow,
    OrganisationRow,
    ProjectRow,
    ProposalRow,
    UserRow,
)
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import LiveServer
from tests.test_api_users import org_id, user_body

PHOTONICS = "Eindhoven Photonics AI B.V."
AI_ACT = {"risk": "minimal", "notes": "visual inspection of chips"}


def open_call(
    client: Client, code: str, track: str, opens_in: timedelta = timedelta(days=-1),
    closes_in: timedelta | None = None,
) -> dict[str, Any]:  # fmt: skip
    now = datetime.now(UTC)
    body: dict[str, Any] = {"code": code, "title": f"Call {code}", "track": track,
                            "opens_at": (now + opens_in).isoformat()}  # fmt: skip
    if closes_in is not None:
        body["closes_at"] = (now + closes_in).isoformat()
    created = client("eva").post("/api/v1/calls", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def startup_project(client: Client, name: str, org: str = PHOTONICS) -> str:
    """A fresh project of the start-up with sanne as PI (not the shared demo projects, whose
    budgets other tests use)."""
    created = client("hanna").post(
        "/api/v1/projects",
        json={"name": name, "title": "Chip inspection", "organisation_id": org_id(client, org),
              "principal_investigator": "sanne"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    return name


def draft_body(call: str, project: str, **extra: Any) -> dict[str, Any]:
    return {"call": call, "project": project, "title": "Defect detection at scale",
            "abstract": "Train a vision model on wafer images.", "sector": "semiconductors",
            "requested": {"h100": 2000}, "months": 3, "datasets": ["wafer-scans-2026"],
            "ai_act": AI_ACT, **extra}  # fmt: skip


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def ok_list(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(response.json())


def test_tracks_and_calls_are_listed(client: Client, unique: str) -> None:
    tracks = ok(client("sanne").get("/api/v1/tracks"))
    by_code = {t["code"]: t for t in tracks["tracks"]}
    assert by_code["fast-lane"]["max_gpu_hours"] == 50000
    assert by_code["large-scale"]["durations_months"] == [3, 6, 12]
    assert tracks["gpu_hour_factors"]["h100"] == 1.0
    call = open_call(client, unique, "fast-lane")
    assert call["open"] and call["track_name"] == "Fast Lane"
    assert ok(client("mo").get(f"/api/v1/calls/{unique}"))["id"] == call["id"]
    listed = ok(client("mo").get("/api/v1/calls", params={"open": "true", "limit": 1000}))
    assert unique in {c["code"] for c in listed["items"]}
    problem_of(client("sanne").post("/api/v1/calls", json={**call, "code": unique + "x"}), 422)
    body = {"code": unique + "y", "title": "t", "track": "fast-lane",
            "opens_at": datetime.now(UTC).isoformat()}  # fmt: skip
    assert "only the access team" in problem_of(client("sanne").post("/api/v1/calls", json=body),
                                                403)["detail"]  # fmt: skip
    bad = problem_of(client("eva").post("/api/v1/calls", json={**body, "track": "moon"}), 422)
    assert "no track 'moon'" in str(bad["detail"])
    problem_of(client("eva").post("/api/v1/calls", json={**body, "code": unique}), 409)


def test_a_start_up_walks_from_proposal_to_award(client: Client, unique: str) -> None:
    project = startup_project(client, unique)
    open_call(client, unique, "start-up")
    sanne, eva, otto, hanna = client("sanne"), client("eva"), client("otto"), client("hanna")

    draft = ok(sanne.post("/api/v1/proposals", json=draft_body(unique, project,
                                                               residency="nl")), 201)  # fmt: skip
    pid = draft["id"]
    assert draft["state"] == "draft" and draft["turnaround"]["started_at"] is None
    assert draft["organisation"] == PHOTONICS and draft["requested_gpu_hours"] == 2000
    # Nobody outside the project, the hub or the access team sees it.
    problem_of(client("pieter").get(f"/api/v1/proposals/{pid}"), 404)
    problem_of(client("rita").get(f"/api/v1/proposals/{pid}"), 404)

    submitted = ok(sanne.post(f"/api/v1/proposals/{pid}/submit"))
    clock = submitted["turnaround"]
    assert submitted["state"] == "submitted"
    assert clock["started_at"] == submitted["submitted_at"]
    assert clock["promised_working_days"] == 5 and clock["due_at"] and not clock["breached"]
    problem_of(sanne.post(f"/api/v1/proposals/{pid}/submit"), 409)

    # Applicants do not check or decide their own proposals.
    assert "access team" in str(
        problem_of(sanne.post(f"/api/v1/proposals/{pid}/admin-check", json={"passed": True}),
                   403)["detail"])  # fmt: skip
    problem_of(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                        json={"reviewer": "otto", "kind": "technical"}), 409)  # fmt: skip
    under = ok(eva.post(f"/api/v1/proposals/{pid}/admin-check", json={"passed": True}))
    assert under["state"] == "under-review"

    # A decision before the technical review is refused.
    early = problem_of(hanna.post(f"/api/v1/proposals/{pid}/decision",
                                  json={"decision": "award"}), 409)  # fmt: skip
    assert "technical review" in str(early["detail"])
    # Technical reviews are by site staff; rita is a reviewer, not an operator.
    wrong = problem_of(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                                json={"reviewer": "rita", "kind": "technical"}), 422)  # fmt: skip
    assert "site-operator" in str(wrong["detail"])
    assigned = ok(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                           json={"reviewer": "otto", "kind": "technical"}), 201)  # fmt: skip
    assert assigned["reviewer"] == "otto" and assigned["submitted_at"] is None
    pending = ok(otto.get("/api/v1/reviews", params={"pending": "true", "limit": 1000}))
    assert pid in {r["proposal_id"] for r in pending["items"]}
    assert ok(otto.get(f"/api/v1/proposals/{pid}"))["title"] == draft["title"]
    problem_of(otto.post(f"/api/v1/proposals/{pid}/reviews", json={"kind": "technical"}), 422)
    problem_of(client("rita").post(f"/api/v1/proposals/{pid}/reviews",
                                   json={"kind": "scientific", "score": 5}), 404)  # fmt: skip
    review = ok(otto.post(f"/api/v1/proposals/{pid}/reviews",
                          json={"kind": "technical", "feasible": True, "score": 4,
                                "comment": "fits on the H100 nodes"}))  # fmt: skip
    assert review["feasible"] is True and review["submitted_at"]
    problem_of(otto.post(f"/api/v1/proposals/{pid}/reviews",
                         json={"kind": "technical", "feasible": True}), 409)  # fmt: skip

    # Awarding more than asked needs a reason; the hub that runs the track decides.
    over = problem_of(hanna.post(f"/api/v1/proposals/{pid}/decision",
                                 json={"decision": "award", "awarded": {"h100": 3000}}), 422)  # fmt: skip
    assert "more than requested" in str(over["detail"]) and "reason" in str(over["detail"])
    problem_of(client("henk").post(f"/api/v1/proposals/{pid}/decision",
                                   json={"decision": "award"}), 404)  # another hub  # fmt: skip
    awarded = ok(hanna.post(f"/api/v1/proposals/{pid}/decision",
                            json={"decision": "award", "reason": "a clear plan"}))  # fmt: skip
    assert awarded["state"] == "awarded" and awarded["decision"] == "award"
    assert awarded["awarded"] == {"h100": 2000}
    assert awarded["turnaround"]["decided_at"] == awarded["decided_at"]
    assert not awarded["turnaround"]["breached"]
    allocation = awarded["allocation"]
    assert allocation["project"] == project and allocation["track"] == "start-up"
    assert allocation["awarded_gpu_hours"] == 2000
    assert allocation["awarded_raw"] == {"h100": 2000}
    # Residency nl: every Dutch site (other tests may have registered more).
    assert {"amsterdam", "eindhoven", "groningen"} <= set(allocation["sites"])
    for name in allocation["sites"]:
        assert sanne.get(f"/api/v1/sites/{name}").json()["jurisdiction"] == "nl"
    assert not allocation["preemptible"] and allocation["tier"] == 1
    starts = datetime.fromisoformat(allocation["starts_at"])
    ends = datetime.fromisoformat(allocation["ends_at"])
    assert 89 <= (ends - starts).days <= 92  # three months
    assert allocation["final_report_due"] > allocation["ends_at"]
    # The allocation is a real budget of the project.
    found = ok(sanne.get(f"/api/v1/allocations/{allocation['id']}"))
    assert found["awarded_gpu_hours"] == found["remaining_gpu_hours"] == 2000
    # Its source: the national call it was awarded in (issue 22, point 4).
    assert found["source"]["kind"] == "national-call" and found["source"]["call"] == unique
    assert found["source"]["name"].startswith(f"{unique}: ") and found["turnaround"] is None
    # The start-up runs a job on it, which consumes exactly its GPU-hours.
    job = submit(sanne, project=project, command=py("import time; time.sleep(1)"), gpus=2,
                 gpu_type="h100", time_limit="10m")  # fmt: skip
    done = wait_for(sanne, job["id"])
    assert done["state"] == "completed"
    ran_s = datetime.fromisoformat(done["ended_at"]) - datetime.fromisoformat(done["started_at"])
    used = 2 * ran_s.total_seconds() / 3600  # H100: factor 1
    spent = ok(sanne.get(f"/api/v1/allocations/{allocation['id']}"))
    assert spent["consumed_gpu_hours"] == pytest.approx(used, abs=1e-6) and used > 0
    assert spent["remaining_gpu_hours"] == pytest.approx(2000 - used, abs=1e-6)
    ledger = ok_list(sanne.get(f"/api/v1/allocations/{allocation['id']}/charges"))
    assert [(c["job_id"], c["gpus"], c["gpu_type"]) for c in ledger] == [(job["id"], 2, "h100")]
    # After the decision the applicant reads the review, without the reviewer's name.
    seen = ok(sanne.get(f"/api/v1/proposals/{pid}"))["reviews"]
    assert [(r["reviewer"], r["comment"]) for r in seen] == [(None, "fits on the H100 nodes")]
    problem_of(sanne.post(f"/api/v1/proposals/{pid}/withdraw"), 409)
    listed = ok(sanne.get("/api/v1/proposals", params={"state": "awarded", "call": unique}))
    assert [p["id"] for p in listed["items"]] == [pid]


def test_bad_proposals_are_refused_with_the_reason(client: Client, unique: str) -> None:
    project = startup_project(client, unique)
    sanne = client("sanne")
    open_call(client, unique + "-s", "start-up")
    open_call(client, unique + "-f", "fast-lane")
    open_call(client, unique + "-c", "start-up", timedelta(days=-30), timedelta(hours=-1))
    open_call(client, unique + "-l", "start-up", timedelta(days=2))

    closed = problem_of(sanne.post("/api/v1/proposals", json=draft_body(unique + "-c", project)),
                        409)  # fmt: skip
    assert "closed" in str(closed["detail"]) and "cut-off" in str(closed["detail"])
    later = problem_of(sanne.post("/api/v1/proposals", json=draft_body(unique + "-l", project)),
                       409)  # fmt: skip
    assert "not open yet" in str(later["detail"])
    # A university is not eligible for Fast Lane.
    ineligible = problem_of(client("pieter").post(
        "/api/v1/proposals", json=draft_body(unique + "-f", "dutch-llm")), 422)  # fmt: skip
    assert "university" in str(ineligible["detail"]) and "Fast Lane" in str(ineligible["detail"])
    # More than the start-up track allows (10,000 normalised GPU-h): 8,000 H200 hours are 11,200.
    big = problem_of(sanne.post("/api/v1/proposals", json=draft_body(
        unique + "-s", project, requested={"h200": 8000})), 422)  # fmt: skip
    assert "at most 10,000.00 GPU-h" in str(big["detail"]) and "11,200.00" in str(big["detail"])
    for extra, word in [
        ({"requested": {"tpu": 10}}, "no GPU type"),
        ({"requested": {}}, "at least one GPU type"),
        ({"months": 6}, "1, 2, 3 months, not 6"),
        ({"residency": "mars"}, "no site 'mars'"),
        ({"ai_act": {"risk": "prohibited"}}, "Article 5"),
    ]:
        body = problem_of(sanne.post("/api/v1/proposals",
                                     json=draft_body(unique + "-s", project, **extra)), 422)  # fmt: skip
        assert word in str(body), (extra, body)
    # Only the project's members write its proposals.
    problem_of(client("mo").post("/api/v1/proposals", json=draft_body(unique + "-s", project)),
               404)  # fmt: skip
    member_only = problem_of(client("hanna").post(
        "/api/v1/proposals", json=draft_body(unique + "-s", project)), 403)  # fmt: skip
    assert "members" in str(member_only["detail"])
    problem_of(sanne.post("/api/v1/proposals", json=draft_body("no-such-call", project)), 404)


def test_conflicts_of_interest_are_enforced(client: Client, unique: str) -> None:
    project = startup_project(client, unique)
    open_call(client, unique, "start-up")
    sanne, eva = client("sanne"), client("eva")
    pid = ok(sanne.post("/api/v1/proposals", json=draft_body(unique, project)), 201)["id"]
    ok(sanne.post(f"/api/v1/proposals/{pid}/submit"))
    ok(eva.post(f"/api/v1/proposals/{pid}/admin-check", json={"passed": True, "note": "ok"}))
    # A reviewer from the applicant's own organisation cannot be assigned.
    colleague = user_body(unique, org_id(client, PHOTONICS), staff_roles=[{"role": "reviewer"}])
    ok(client("admin").post("/api/v1/users", json=colleague), 201)
    coi = problem_of(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                              json={"reviewer": unique, "kind": "scientific"}), 422)  # fmt: skip
    assert PHOTONICS in str(coi["detail"]) and "conflict of interest" in str(coi["detail"])
    # A reviewer may declare a conflict: the review is in, and does not count.
    ok(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                json={"reviewer": "rita", "kind": "scientific"}), 201)  # fmt: skip
    problem_of(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                        json={"reviewer": "rita", "kind": "scientific"}), 409)  # fmt: skip
    declared = ok(client("rita").post(
        f"/api/v1/proposals/{pid}/reviews",
        json={"kind": "scientific", "conflict": "I advise the applicant"}))  # fmt: skip
    assert declared["conflict"] == "I advise the applicant" and declared["score"] is None
    seen = ok(eva.get(f"/api/v1/proposals/{pid}"))["reviews"]
    assert [(r["reviewer"], r["conflict"]) for r in seen] == [("rita", "I advise the applicant")]
    # A partial award or rejection without a reason is refused; with one it stands.
    problem_of(eva.post(f"/api/v1/proposals/{pid}/decision", json={"decision": "reject"}), 422)
    mismatch = problem_of(eva.post(f"/api/v1/proposals/{pid}/decision",
                                   json={"decision": "award", "awarded": {"h100": 1000},
                                         "reason": "half"}), 422)  # fmt: skip
    assert "partial" in str(mismatch["detail"])
    rejected = ok(eva.post(f"/api/v1/proposals/{pid}/decision",
                           json={"decision": "reject", "reason": "out of scope"}))  # fmt: skip
    assert rejected["state"] == "rejected" and rejected["allocation"] is None
    assert rejected["decision_reason"] == "out of scope"


def test_a_peer_reviewed_track_needs_a_scientific_review(client: Client, unique: str) -> None:
    # sanne is a member of machine-twin (Brabantse Machinefabriek, large industry).
    open_call(client, unique, "large-scale", closes_in=timedelta(days=10))
    sanne, eva = client("sanne"), client("eva")
    body = draft_body(unique, "machine-twin", requested={"h100": 60000}, months=6)
    pid = ok(sanne.post("/api/v1/proposals", json=body), 201)["id"]
    submitted = ok(sanne.post(f"/api/v1/proposals/{pid}/submit"))
    # The clock of a peer-reviewed track starts at the call's cut-off.
    assert submitted["turnaround"]["started_at"] != submitted["submitted_at"]
    assert submitted["turnaround"]["used_working_days"] == 0
    ok(eva.post(f"/api/v1/proposals/{pid}/admin-check", json={"passed": True}))
    ok(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                json={"reviewer": "otto", "kind": "technical"}), 201)  # fmt: skip
    ok(client("otto").post(f"/api/v1/proposals/{pid}/reviews",
                           json={"kind": "technical", "feasible": True}))  # fmt: skip
    # Hub staff do not decide a track the hub does not run.
    problem_of(client("hanna").post(f"/api/v1/proposals/{pid}/decision",
                                    json={"decision": "award"}), 403)  # fmt: skip
    missing = problem_of(eva.post(f"/api/v1/proposals/{pid}/decision",
                                  json={"decision": "award"}), 409)  # fmt: skip
    assert "peer reviewed" in str(missing["detail"])
    withdrawn = ok(sanne.post(f"/api/v1/proposals/{pid}/withdraw"))
    assert withdrawn["state"] == "withdrawn"


def test_a_failed_administrative_check_rejects(client: Client, unique: str) -> None:
    project = startup_project(client, unique)
    open_call(client, unique, "start-up")
    sanne, eva = client("sanne"), client("eva")
    pid = ok(sanne.post("/api/v1/proposals", json=draft_body(unique, project)), 201)["id"]
    ok(sanne.post(f"/api/v1/proposals/{pid}/submit"))
    problem_of(eva.post(f"/api/v1/proposals/{pid}/admin-check", json={"passed": False}), 422)
    failed = ok(eva.post(f"/api/v1/proposals/{pid}/admin-check",
                         json={"passed": False, "note": "no data management plan"}))  # fmt: skip
    assert failed["state"] == "rejected" and "data management plan" in failed["decision_reason"]


# --- a controllable clock: the services on the live server's database ------------------------


@pytest.fixture
def session(server: LiveServer) -> Iterator[Session]:
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as s:
        yield s
    engine.dispose()


def ams(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


def applicant(session: Session, name: str) -> tuple[Principal, str]:
    """A fresh start-up in Noord-Brabant with its PI and a project: (the PI, the project)."""
    org = OrganisationRow(name=f"{name} B.V.", kind="start-up", province="Noord-Brabant",
                          hub="brainport", country="NL")  # fmt: skip
    session.add(org)
    session.flush()
    user = UserRow(username=name, full_name="Test PI", email=f"{name}@example.org",
                   organisation_id=org.id)  # fmt: skip
    project = ProjectRow(name=name, title="Test", organisation_id=org.id)
    session.add_all([user, project])
    session.flush()
    session.add(
        MembershipRow(project_id=project.id, user_id=user.id,
                      role=Role.PRINCIPAL_INVESTIGATOR.value)
    )  # fmt: skip
    session.commit()
    return principal_for_user(session, user.id, name), name


def staff(session: Session, username: str) -> Principal:
    user = session.scalars(select(UserRow).where(UserRow.username == username)).one()
    return principal_for_user(session, user.id, username)


def proposal(call: str, project: str) -> ProposalDraft:
    return ProposalDraft.model_validate(draft_body(call, project))


def test_an_overdue_final_report_blocks_new_proposals_until_filed(
    session: Session, unique: str
) -> None:
    access = load_access_config()
    pi, project = applicant(session, unique)
    eva = staff(session, "eva")
    call_service.create_call(
        session, eva,
        CallDraft(code=unique, title="t", track="start-up", opens_at=ams(2025, 1, 1)),
        access, ams(2025, 1, 1),
    )  # fmt: skip
    project_id = session.scalars(select(ProjectRow.id).where(ProjectRow.name == project)).one()
    ended = ams(2026, 1, 31, 12)
    allocation = AllocationRow(project_id=project_id, track="start-up", gpu_hours=100.0,
                               awarded={"h100": 100.0}, sites=[], starts_at=ams(2025, 11, 1),
                               ends_at=ended)  # fmt: skip
    session.add(allocation)
    session.commit()

    # Due two months after the end: 31 March 2026 (the end of February has no 31st, March has).
    in_time = ams(2026, 3, 31, 11)
    first = proposal_service.create_proposal(session, pi, proposal(unique, project), access,
                                             in_time)  # fmt: skip
    assert proposal_service.submit_proposal(session, pi, first.id, access, in_time).state == (
        ProposalState.SUBMITTED
    )
    late = ams(2026, 3, 31, 13)
    second = proposal_service.create_proposal(session, pi, proposal(unique, project), access, late)
    with pytest.raises(Conflict, match="overdue final report") as blocked:
        proposal_service.submit_proposal(session, pi, second.id, access, late)
    assert f"allocations/{allocation.id}/final-report" in str(blocked.value)
    assert session.get(ProposalRow, second.id).state == "draft"  # type: ignore[union-attr]

    filed = proposal_service.file_final_report(
        session, pi, allocation.id, FinalReportDraft(report="We found the defects."), late
    )
    assert filed.final_report_at == late
    with pytest.raises(Conflict, match="was filed"):
        proposal_service.file_final_report(session, pi, allocation.id,
                                           FinalReportDraft(report="again"), late)  # fmt: skip
    assert proposal_service.submit_proposal(session, pi, second.id, access, late).state == (
        ProposalState.SUBMITTED
    )


def test_a_breached_turnaround_is_flagged_to_the_access_team_once(
    session: Session, unique: str
) -> None:
    access = load_access_config()
    pi, project = applicant(session, unique)
    eva = staff(session, "eva")
    call_service.create_call(
        session, eva,
        CallDraft(code=unique, title="t", track="start-up", opens_at=ams(2026, 3, 1)),
        access, ams(2026, 3, 1),
    )  # fmt: skip
    # Submitted Wed 1 April 2026; Easter makes five working days end on Fri 10 April.
    submitted = ams(2026, 4, 1, 10)
    p = proposal_service.create_proposal(session, pi, proposal(unique, project), access, submitted)
    proposal_service.submit_proposal(session, pi, p.id, access, submitted)
    reviewing.admin_check(session, eva, p.id, AdminCheck(passed=True), access,
                                 ams(2026, 4, 2))  # fmt: skip

    def breach_notices() -> int:
        return len(
            session.scalars(
                select(NotificationRow).where(
                    NotificationRow.kind == "turnaround-breach",
                    NotificationRow.subject.like(f"Proposal {p.id} %"),
                    NotificationRow.user_id == eva.user_id,
                )
            ).all()
        )

    friday_night = ams(2026, 4, 10, 23, 59)
    clock = proposal_service.get_proposal(session, eva, p.id, access, friday_night).turnaround
    assert clock.due_at == ams(2026, 4, 11) and not clock.breached
    assert clock.used_working_days == 5 and clock.promised_working_days == 5
    turnaround.flag_turnaround_breaches(session, friday_night, access)
    assert breach_notices() == 0

    saturday = ams(2026, 4, 11, 0, 1)
    assert turnaround.flag_turnaround_breaches(session, saturday, access) >= 1
    shown = proposal_service.get_proposal(session, eva, p.id, access, saturday)
    assert shown.turnaround.breached and shown.breach_flagged_at == saturday
    assert breach_notices() == 1
    turnaround.flag_turnaround_breaches(session, saturday + timedelta(days=3), access)
    assert breach_notices() == 1  # once


def test_racing_deciders_award_once(client: Client, unique: str) -> None:
    project = startup_project(client, unique)
    open_call(client, unique, "start-up")
    sanne, eva = client("sanne"), client("eva")
    pid = ok(sanne.post("/api/v1/proposals", json=draft_body(unique, project)), 201)["id"]
    ok(sanne.post(f"/api/v1/proposals/{pid}/submit"))
    ok(eva.post(f"/api/v1/proposals/{pid}/admin-check", json={"passed": True}))
    ok(eva.post(f"/api/v1/proposals/{pid}/reviewers",
                json={"reviewer": "otto", "kind": "technical"}), 201)  # fmt: skip
    ok(client("otto").post(f"/api/v1/proposals/{pid}/reviews",
                           json={"kind": "technical", "feasible": True}))  # fmt: skip
    deciders = [client(u) for u in ["eva", "hanna", "admin", "eva", "hanna", "admin"]]
    with ThreadPoolExecutor(len(deciders)) as pool:
        answers = list(pool.map(
            lambda c: c.post(f"/api/v1/proposals/{pid}/decision", json={"decision": "award"}),
            deciders,
        ))  # fmt: skip
    assert sorted(a.status_code for a in answers) == [200] + [409] * (len(deciders) - 1), [
        a.text for a in answers
    ]
    allocations = ok(sanne.get("/api/v1/allocations", params={"project": project}))
    assert [a["proposal_id"] for a in allocations["items"]] == [pid]
