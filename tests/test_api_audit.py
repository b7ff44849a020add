"""The audit trail through the HTTP API: sign-ins, tokens, admin actions and job starts are
recorded with the change they record; who may list what; verify for admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from fabriek.domain.audit import AuditAction
from fabriek.domain.datasets import Residency
from fabriek.domain.residency import JobDataset
from fabriek.services import audit
from fabriek.services.demo.seed import demo_token
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobRow, ProjectRow, UserRow
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import LiveServer
from tests.test_api_users import org_id


def entries(c: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    found = c.get("/api/v1/audit", params={"limit": 1000, **filters})
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["items"]
    return items


def test_tokens_issued_and_revoked_are_recorded_without_their_secret(client: Client) -> None:
    maria = client("maria")
    made = maria.post("/api/v1/tokens", json={"name": "audit-test"})
    assert made.status_code == 201, made.text
    key, secret = made.json()["key"], made.json()["token"]
    assert maria.delete(f"/api/v1/tokens/{key}").status_code == 200
    mine = entries(maria, actor="maria")
    issued = [e for e in mine if e["target"] == f"token {key}"]
    assert [e["action"] for e in issued] == ["token-revoke", "token-issue"]  # newest first
    assert issued[0]["seq"] > issued[1]["seq"] and issued[0]["prev_hash"] != issued[0]["hash"]
    assert issued[1]["detail"]["name"] == "audit-test"
    assert secret not in str(entries(client("admin"), action="token-issue"))
    # Someone else's token events are not theirs to see.
    assert not [e for e in entries(client("mo")) if e["target"] == f"token {key}"]


def test_a_portal_sign_in_is_recorded(client: Client, server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as browser:
        done = browser.post("/signin", data={"token": demo_token("rita").token, "next": "/"})
        assert done.status_code == 303
        refused = browser.post("/signin", data={"token": "fbk_nope_nope", "next": "/"})
        assert refused.status_code == 401
    signed = entries(client("admin"), action="sign-in", actor="rita")
    assert signed and signed[0]["detail"] == {"method": "token"}


def test_admin_actions_are_recorded_and_members_see_their_projects_entries(
    client: Client, unique: str
) -> None:
    admin = client("admin")
    org = org_id(client, "Technische Universiteit Delft")
    made = admin.post(
        "/api/v1/projects",
        json={"name": unique, "title": "Audit", "organisation_id": org,
              "principal_investigator": "pieter"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    added = client("pieter").post(
        f"/api/v1/projects/{unique}/members", json={"username": "maria", "role": "member"}
    )
    assert added.status_code == 201, added.text
    assert client("pieter").delete(f"/api/v1/projects/{unique}/members/maria").status_code == 204

    changes = [e["detail"]["change"] for e in entries(admin, project=unique)]
    assert changes == ["member-remove", "member-add", "project-create"]
    by_pieter = entries(client("pieter"), project=unique, action="admin")
    assert [e["actor"] for e in by_pieter] == ["pieter", "pieter", "admin"]
    # Not a member (any more): the project is not there for them.
    problem_of(client("maria").get("/api/v1/audit", params={"project": unique}), 404)
    problem_of(client("mo").get("/api/v1/audit", params={"project": unique}), 404)
    assert unique not in str(entries(client("mo"), action="admin"))


def test_a_dataset_owner_lists_every_access_and_no_one_else_sees_it(
    client: Client, server: LiveServer, unique: str
) -> None:
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            owner = session.query(ProjectRow).filter_by(name="legal-nl").one()
            now = datetime.now(UTC)
            for action, actor in [(AuditAction.UPLOAD, "mo"), (AuditAction.DOWNLOAD, "sanne")]:
                audit.record(
                    session, action=action, at=now, actor_id=None, actor=actor,
                    project_id=owner.id, dataset=unique, detail={"version": 1},
                )  # fmt: skip
            session.commit()
    finally:
        engine.dispose()
    seen = entries(client("mo"), dataset=unique)
    assert [(e["action"], e["actor"]) for e in seen] == [("download", "sanne"), ("upload", "mo")]
    assert [e["action"] for e in entries(client("admin"), dataset=unique, actor="sanne")] == [
        "download"
    ]
    problem_of(client("pieter").get("/api/v1/audit", params={"dataset": unique}), 404)


def test_a_job_start_is_recorded_with_its_site(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, project="dutch-llm", command=py("print('audited')"))
    wait_for(maria, job["id"])
    started = entries(maria, action="job-start", project="dutch-llm")
    mine = [e for e in started if e["target"] == f"job {job['id']}"]
    assert len(mine) == 1, started
    assert mine[0]["actor"] == "maria" and mine[0]["detail"]["site"]


def test_filters_are_checked_and_paged(client: Client) -> None:
    admin = client("admin")
    problem = problem_of(admin.get("/api/v1/audit", params={"action": "teleport"}), 422)
    assert "sign-in" in str(problem["detail"])
    naive = admin.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"})
    problem_of(naive, 422)
    page = admin.get("/api/v1/audit", params={"limit": 2}).json()
    assert len(page["items"]) <= 2 and page["total"] >= len(page["items"])
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert admin.get("/api/v1/audit", params={"since": future}).json()["total"] == 0
    problem_of(client().get("/api/v1/audit"), 401)


def test_only_admins_verify_and_read_the_head(client: Client) -> None:
    admin = client("admin")
    report = admin.get("/api/v1/audit/verify").json()
    assert report["ok"], report
    head = admin.get("/api/v1/audit/head").json()
    assert head["head"] == f"{head['seq']}:{head['hash']}"
    anchored = admin.get("/api/v1/audit/verify", params={"expected_head": head["head"]})
    assert anchored.json()["ok"], anchored.text
    problem_of(admin.get("/api/v1/audit/verify", params={"expected_head": "12"}), 422)
    for who in ("maria", "eva", "hanna"):
        problem_of(client(who).get("/api/v1/audit/verify"), 403)
        problem_of(client(who).get("/api/v1/audit/head"), 403)


def test_a_job_reading_a_dataset_shows_in_the_dataset_owners_trail(
    client: Client, server: LiveServer, unique: str
) -> None:
    """The entry the dispatcher writes for a job that reads another project's dataset is
    listed to that project's members, and the job's own project sees the job start."""
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            reader = session.query(ProjectRow).filter_by(name="dutch-llm").one()
            maria = session.query(UserRow).filter_by(username="maria").one()
            read = JobDataset(0, "legal-nl", unique, 2, 0, Residency.NL, personal=False)
            job = JobRow(
                id=10**9, user_id=maria.id, project_id=reader.id, gpus=1, handle="local-1",
                datasets=[read.to_json()],
            )  # fmt: skip
            audit.record_job_starts(session, [(job, "groningen")], datetime.now(UTC))
            session.commit()
    finally:
        engine.dispose()
    owners = entries(client("mo"), dataset=unique)
    assert [(e["action"], e["actor"], e["target"]) for e in owners] == [
        ("job-start", "maria", f"job {10**9}")
    ]
    assert owners[0]["detail"]["datasets"] == [f"legal-nl/{unique}@2"]
    assert owners[0]["detail"]["site"] == "groningen"
    own = [e for e in entries(client("pieter"), project="dutch-llm", action="job-start")
           if e["target"] == f"job {10**9}"]  # fmt: skip
    assert len(own) == 1 and own[0]["dataset"] is None
