"""Sites: everyone signed in sees them; admins register; operators change their own."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client, problem_of


def site_body(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "city": "Delft",
        "province": "Zuid-Holland",
        "pue": 1.2,
        "node_groups": [
            {"name": "gpu", "count": 4, "gpu_type": "H100", "gpus_per_node": 8,
             "cpus_per_node": 96, "memory_gb_per_node": 1024},
            {"name": "cpu", "count": 10, "cpus_per_node": 128, "memory_gb_per_node": 512},
        ],
        **extra,
    }  # fmt: skip


def test_list_and_filter_sites(client: Client) -> None:
    c = client("maria")
    page = c.get("/api/v1/sites").json()
    names = {s["name"] for s in page["items"]}
    assert {"amsterdam", "groningen", "eindhoven"} <= names
    assert page["total"] >= 3
    ams = c.get("/api/v1/sites/amsterdam").json()
    assert ams["gpus"] == {"h100": 88, "a100": 72}
    assert ams["nodes"] == 40
    assert [s["name"] for s in c.get("/api/v1/sites?gpu_type=h200").json()["items"]] == [
        "groningen"
    ]
    assert c.get("/api/v1/sites?province=Limburg").json()["total"] == 0
    one = c.get("/api/v1/sites?limit=1&offset=1").json()
    assert len(one["items"]) == 1 and one["offset"] == 1
    problem_of(c.get("/api/v1/sites?province=Atlantis"), 422)
    problem_of(c.get("/api/v1/sites?limit=0"), 422)
    problem_of(c.get("/api/v1/sites/nowhere"), 404)


def test_admin_registers_a_site(client: Client, unique: str) -> None:
    created = client("admin").post("/api/v1/sites", json=site_body(unique))
    assert created.status_code == 201, created.text
    site = created.json()
    assert site["gpus"] == {"h100": 32} and site["nodes"] == 14
    assert client("maria").get(f"/api/v1/sites/{site['id']}").json()["name"] == unique


def test_only_admins_register_sites(client: Client, unique: str) -> None:
    for user in ["maria", "otto", "hanna"]:
        problem_of(client(user).post("/api/v1/sites", json=site_body(unique)), 403)
    problem_of(client("maria").get(f"/api/v1/sites/{unique}"), 404)


def test_bad_site_input_names_the_field_and_writes_nothing(client: Client, unique: str) -> None:
    admin = client("admin")
    cases = {
        "province": site_body(unique, province="Atlantis"),
        "pue": site_body(unique, pue=0.5),
        "node_groups.0.gpu_type": site_body(
            unique, node_groups=[{"name": "g", "count": 1, "gpu_type": "tpu9", "gpus_per_node": 1,
                                  "cpus_per_node": 1, "memory_gb_per_node": 1}]),
        "colour": site_body(unique, colour="blue"),
        "name": site_body("Not A Slug"),
    }  # fmt: skip
    for field, body in cases.items():
        problem = problem_of(admin.post("/api/v1/sites", json=body), 422)
        fields = [e["field"] for e in problem["errors"]]  # type: ignore[attr-defined]
        assert field in fields, (field, problem)
    problem_of(
        admin.post(
            "/api/v1/sites", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
    )
    problem_of(admin.get(f"/api/v1/sites/{unique}"), 404)


def test_duplicate_site_is_a_conflict(client: Client) -> None:
    body = problem_of(client("admin").post("/api/v1/sites", json=site_body("amsterdam")), 409)
    assert "amsterdam" in str(body["detail"])


def test_operator_changes_own_site_only(client: Client) -> None:
    otto = client("otto")
    changed = otto.patch("/api/v1/sites/amsterdam", json={"pue": 1.21})
    assert changed.status_code == 200 and changed.json()["pue"] == 1.21
    problem_of(otto.patch("/api/v1/sites/groningen", json={"pue": 1.1}), 403)
    problem_of(otto.patch("/api/v1/sites/amsterdam", json={"name": "x"}), 422)
