"""Who am I, and personal API tokens: shown once, hashed, expiring, revocable."""

from __future__ import annotations

from tests.conftest import Client, problem_of


def test_whoami_shows_roles_and_projects(client: Client) -> None:
    me = client("maria").get("/api/v1/whoami").json()
    assert me["username"] == "maria"
    assert me["projects"] == {"dutch-llm": "member", "photonic-inspect": "member"}
    assert client("hanna").get("/api/v1/whoami").json()["staff_roles"] == ["hub-staff:brainport"]


def test_token_lifecycle(client: Client) -> None:
    maria = client("maria")
    created = maria.post("/api/v1/tokens", json={"name": "laptop", "expires_in_days": 7})
    assert created.status_code == 201
    new = created.json()
    assert new["token"].startswith(f"fbk_{new['key']}_")
    # The secret works, and is never listed again.
    assert client(token=new["token"]).get("/api/v1/whoami").json()["username"] == "maria"
    listed = maria.get("/api/v1/tokens").json()
    mine = next(t for t in listed if t["key"] == new["key"])
    assert "token" not in mine and mine["name"] == "laptop"
    # Revoked: stops working at once.
    assert maria.delete(f"/api/v1/tokens/{new['key']}").json()["revoked_at"]
    body = problem_of(client(token=new["token"]).get("/api/v1/whoami"), 401)
    assert "revoked" in str(body["detail"])


def test_someone_elses_token_cannot_be_revoked(client: Client) -> None:
    new = client("mo").post("/api/v1/tokens", json={}).json()
    problem_of(client("maria").delete(f"/api/v1/tokens/{new['key']}"), 404)
    assert client(token=new["token"]).get("/api/v1/whoami").status_code == 200


def test_token_input_is_validated(client: Client) -> None:
    maria = client("maria")
    body = problem_of(maria.post("/api/v1/tokens", json={"expires_in_days": 0}), 422)
    assert body["errors"][0]["field"] == "expires_in_days"  # type: ignore[index]
    problem_of(maria.post("/api/v1/tokens", json={"name": "x", "scopes": ["all"]}), 422)
