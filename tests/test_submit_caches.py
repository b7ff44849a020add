"""The submission path caches who a token is and which project a name means for a few
seconds; a change made through the API must still count from the next request on."""

from __future__ import annotations

from tests.conftest import Client, problem_of
from tests.test_api_users import org_id

JOB = {"command": ["true"], "gpus": 1, "time_limit": "1h", "earliest_start": "2099-01-01T00:00:00Z"}


def test_membership_changes_count_at_once(client: Client, unique: str) -> None:
    created = client("hanna").post(
        "/api/v1/projects",
        json={"name": unique, "title": "Caches", "principal_investigator": "sanne",
              "organisation_id": org_id(client, "Brabantse Machinefabriek")},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    mo, sanne = client("mo"), client("sanne")
    # Mo's principal is cached by this submission (not a member yet: 404).
    problem_of(mo.post("/api/v1/jobs", json={**JOB, "project": unique}), 404)
    assert (
        sanne.post(f"/api/v1/projects/{unique}/members", json={"username": "mo"}).status_code == 201
    )
    submitted = mo.post("/api/v1/jobs", json={**JOB, "project": unique})
    assert submitted.status_code == 201, submitted.text
    assert sanne.delete(f"/api/v1/projects/{unique}/members/mo").status_code == 204
    problem_of(mo.post("/api/v1/jobs", json={**JOB, "project": unique}), 404)


def test_a_revoked_token_stops_submitting_at_once(client: Client) -> None:
    new = client("maria").post("/api/v1/tokens", json={"name": "cache"}).json()
    mine = client(token=new["token"])
    assert mine.post("/api/v1/jobs", json={**JOB, "project": "dutch-llm"}).status_code == 201
    assert client("maria").delete(f"/api/v1/tokens/{new['key']}").status_code == 200
    body = problem_of(mine.post("/api/v1/jobs", json={**JOB, "project": "dutch-llm"}), 401)
    assert "revoked" in str(body["detail"])
