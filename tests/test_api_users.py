"""People: admins add anyone with roles; hub staff add people of their hub; others cannot."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client, problem_of


def org_id(client: Client, name: str) -> int:
    found = client("admin").get("/api/v1/organisations", params={"name": name}).json()["items"]
    return int(found[0]["id"])


def user_body(name: str, org: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"username": name, "full_name": "Test Person", "email": f"{name}@example.org",
            "organisation_id": org, **extra}  # fmt: skip


def test_admin_adds_user_with_roles_who_can_then_be_found(client: Client, unique: str) -> None:
    admin = client("admin")
    body = user_body(unique, staff_roles=[{"role": "site-operator", "scope": "groningen"}])
    created = admin.post("/api/v1/users", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["staff_roles"] == [{"role": "site-operator", "scope": "groningen"}]
    assert admin.get(f"/api/v1/users/{unique}").json()["email"] == f"{unique}@example.org"
    assert admin.get("/api/v1/users", params={"q": unique}).json()["total"] == 1
    problem_of(admin.post("/api/v1/users", json=body), 409)


def test_hub_staff_add_people_of_their_hub_without_roles(client: Client, unique: str) -> None:
    hanna = client("hanna")
    fontys = org_id(client, "Fontys")
    assert hanna.post("/api/v1/users", json=user_body(unique, fontys)).status_code == 201
    rug = org_id(client, "Rijksuniversiteit Groningen")
    problem_of(hanna.post("/api/v1/users", json=user_body(unique + "x", rug)), 403)
    with_role = user_body(unique + "y", fontys, staff_roles=[{"role": "admin"}])
    problem_of(hanna.post("/api/v1/users", json=with_role), 403)


def test_hub_staff_see_only_the_people_their_hub_serves(client: Client) -> None:
    # Hanna serves Brainport (Noord-Brabant: Fontys, Eindhoven Photonics); Henk serves
    # Noord-Nederland (Groningen). Personal data is shared no wider than the hub serves.
    hanna = client("hanna")
    names = {
        u["username"] for u in hanna.get("/api/v1/users", params={"limit": 1000}).json()["items"]
    }
    assert {"hanna", "sanne"} <= names and "henk" not in names and "pieter" not in names
    assert hanna.get("/api/v1/users/sanne").status_code == 200
    problem_of(hanna.get("/api/v1/users/henk"), 404)
    admin_sees = client("admin").get("/api/v1/users", params={"limit": 1000}).json()["items"]
    assert {"hanna", "henk", "pieter"} <= {u["username"] for u in admin_sees}


def test_members_cannot_add_or_list_users(client: Client, unique: str) -> None:
    maria = client("maria")
    problem_of(maria.post("/api/v1/users", json=user_body(unique)), 403)
    problem_of(maria.get("/api/v1/users"), 403)
    assert maria.get("/api/v1/users/maria").json()["username"] == "maria"
    problem_of(maria.get("/api/v1/users/pieter"), 404)


def test_bad_roles_and_fields(client: Client, unique: str) -> None:
    admin = client("admin")
    cases = [
        ("staff_roles.0", [{"role": "hub-staff", "scope": "mars"}]),
        ("staff_roles.0", [{"role": "hub-staff"}]),
        ("staff_roles.0", [{"role": "admin", "scope": "amsterdam"}]),
        ("staff_roles.0", [{"role": "member"}]),
        ("staff_roles.0", [{"role": "site-operator", "scope": "nowhere"}]),
    ]
    for field, roles in cases:
        problem = problem_of(
            admin.post("/api/v1/users", json=user_body(unique, staff_roles=roles)), 422
        )
        assert problem["errors"][0]["field"] == field  # type: ignore[index]
    problem_of(admin.post("/api/v1/users", json=user_body(unique, email="not-an-email")), 422)
    problem_of(admin.post("/api/v1/users", json=user_body(unique, organisation_id=999999)), 422)
    problem_of(admin.get(f"/api/v1/users/{unique}"), 404)
