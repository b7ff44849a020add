"""Projects: tenant isolation (404, never data), creation, members managed by their lead."""

from __future__ import annotations

from tests.conftest import Client, problem_of
from tests.test_api_users import org_id


def names(client: Client, user: str, **params: str) -> set[str]:
    page = client(user).get("/api/v1/projects", params={"limit": 1000, **params}).json()
    assert page["total"] == len(page["items"])
    return {p["name"] for p in page["items"]}


def test_each_caller_sees_only_their_projects(client: Client) -> None:
    assert names(client, "maria") == {"dutch-llm", "photonic-inspect"}
    assert names(client, "mo") == {"legal-nl"}
    assert names(client, "rita") == set()
    # Hub staff see their region's projects; admins see all.
    assert {"photonic-inspect", "machine-twin"} <= names(client, "hanna")
    assert "dutch-llm" not in names(client, "hanna")
    assert {"dutch-llm", "legal-nl", "wadden-drones"} <= names(client, "admin")


def test_a_project_of_someone_else_is_not_found(client: Client) -> None:
    mo = client("mo")
    for path in ["/api/v1/projects/dutch-llm", "/api/v1/projects/dutch-llm/members"]:
        body = problem_of(mo.get(path), 404)
        assert "Pieter" not in str(body) and "maria" not in str(body)
    dutch = client("maria").get("/api/v1/projects/dutch-llm").json()
    problem_of(mo.get(f"/api/v1/projects/{dutch['id']}"), 404)
    problem_of(mo.post("/api/v1/projects/dutch-llm/members", json={"username": "mo"}), 404)


def test_pagination_and_filters(client: Client) -> None:
    admin = client("admin")
    first = admin.get("/api/v1/projects", params={"limit": 2}).json()
    second = admin.get("/api/v1/projects", params={"limit": 2, "offset": 2}).json()
    assert len(first["items"]) == 2 and first["total"] == second["total"] >= 6
    assert not {p["id"] for p in first["items"]} & {p["id"] for p in second["items"]}
    assert names(client, "admin", name="llm") == {"dutch-llm"}
    tud = org_id(client, "Technische Universiteit Delft")
    assert "dutch-llm" in names(client, "admin", organisation_id=str(tud))


def test_create_project_and_manage_members(client: Client, unique: str) -> None:
    hanna = client("hanna")
    org = org_id(client, "Brabantse Machinefabriek")
    created = hanna.post(
        "/api/v1/projects",
        json={"name": unique, "title": "Predictive maintenance", "organisation_id": org,
              "principal_investigator": "sanne"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["members"] == 1
    sanne = client("sanne")  # now PI of the new project
    added = sanne.post(f"/api/v1/projects/{unique}/members", json={"username": "mo"})
    assert added.status_code == 201 and added.json()["role"] == "member"
    problem_of(sanne.post(f"/api/v1/projects/{unique}/members", json={"username": "mo"}), 409)
    assert unique in names(client, "mo")
    # A plain member may not change membership.
    problem_of(
        client("mo").post(f"/api/v1/projects/{unique}/members", json={"username": "rita"}), 403
    )
    members = {
        m["username"]: m["role"] for m in sanne.get(f"/api/v1/projects/{unique}/members").json()
    }
    assert members == {"sanne": "principal-investigator", "mo": "member"}
    assert sanne.delete(f"/api/v1/projects/{unique}/members/mo").status_code == 204
    problem_of(client("mo").get(f"/api/v1/projects/{unique}"), 404)
    problem_of(sanne.delete(f"/api/v1/projects/{unique}/members/mo"), 404)


def test_bad_project_input(client: Client, unique: str) -> None:
    admin = client("admin")
    org = org_id(client, "TNO")
    base = {"name": unique, "title": "T", "organisation_id": org}
    problem_of(admin.post("/api/v1/projects", json={**base, "organisation_id": 999999}), 422)
    problem_of(
        admin.post("/api/v1/projects", json={**base, "principal_investigator": "ghost"}), 422
    )
    problem_of(admin.post("/api/v1/projects", json={**base, "name": "Bad Name"}), 422)
    problem_of(admin.post("/api/v1/projects", json={**base, "budget": 5}), 422)
    problem_of(admin.post("/api/v1/projects", json={**base, "name": "dutch-llm"}), 409)
    problem_of(client("maria").post("/api/v1/projects", json=base), 403)
    problem_of(
        admin.post("/api/v1/projects/dutch-llm/members", json={"username": "mo", "role": "admin"}),
        422,
    )
    problem_of(admin.post("/api/v1/projects/dutch-llm/members", json={"username": "ghost"}), 422)
    problem_of(admin.get(f"/api/v1/projects/{unique}"), 404)
