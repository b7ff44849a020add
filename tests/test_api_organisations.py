"""Organisations: listed for everyone signed in, onboarded by admins and their hub's staff."""

from __future__ import annotations

from tests.conftest import Client, problem_of


def test_list_and_filter(client: Client) -> None:
    c = client("maria")
    everyone = c.get("/api/v1/organisations?limit=1000").json()
    assert everyone["total"] >= 21
    provinces = {o["province"] for o in everyone["items"]}
    assert len(provinces) == 12
    assert len({o["hub"] for o in everyone["items"]}) == 7
    kinds = {o["kind"] for o in everyone["items"]}
    assert len(kinds) == 8
    limburg = c.get("/api/v1/organisations?province=Limburg").json()["items"]
    assert limburg and all(o["hub"] == "brightlands" for o in limburg)
    startups = c.get("/api/v1/organisations?kind=start-up&hub=brainport").json()["items"]
    assert [o["name"] for o in startups] == ["Eindhoven Photonics AI B.V."]
    assert c.get("/api/v1/organisations?name=delft").json()["total"] == 1
    problem_of(c.get("/api/v1/organisations?hub=mars"), 422)
    problem_of(c.get("/api/v1/organisations/999999"), 404)


def test_hub_staff_onboard_in_their_region_only(client: Client, unique: str) -> None:
    hanna = client("hanna")  # hub staff of Brainport
    ok = hanna.post(
        "/api/v1/organisations",
        json={"name": f"{unique} B.V.", "kind": "start-up", "province": "Noord-Brabant",
              "kvk_number": "12345678"},
    )  # fmt: skip
    assert ok.status_code == 201, ok.text
    assert ok.json()["hub"] == "brainport"
    elsewhere = {"name": f"{unique} Groningen", "kind": "sme", "province": "Groningen"}
    problem_of(hanna.post("/api/v1/organisations", json=elsewhere), 403)
    problem_of(client("maria").post("/api/v1/organisations", json=elsewhere), 403)
    assert client("admin").post("/api/v1/organisations", json=elsewhere).status_code == 201


def test_bad_organisation_input(client: Client, unique: str) -> None:
    admin = client("admin")
    base = {"name": unique, "kind": "start-up", "province": "Utrecht"}
    for field, bad in [
        ("province", {**base, "province": "Atlantis"}),
        ("hub", {**base, "hub": "mars"}),
        ("kind", {**base, "kind": "multinational"}),
        ("kvk_number", {**base, "kvk_number": "12ab"}),
        ("name", {**base, "name": ""}),
    ]:
        problem = problem_of(admin.post("/api/v1/organisations", json=bad), 422)
        assert problem["errors"][0]["field"] == field  # type: ignore[index]
    dup = {**base, "name": "TNO"}
    assert "TNO" in str(problem_of(admin.post("/api/v1/organisations", json=dup), 409)["detail"])
