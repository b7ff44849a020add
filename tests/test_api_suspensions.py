"""Suspending a person, a project or an allocation through the HTTP API: what it stops
(new jobs, logins at the sites, the Slurm limit the agents set) and what it leaves alone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx

from fabriek.domain.site_state import DesiredState
from tests.conftest import Client, problem_of

JOB = {"name": "small", "command": ["true"], "gpus": 1, "time_limit": "10m"}


@contextmanager
def suspended(client: Client, path: str, reason: str) -> Iterator[None]:
    done = client("admin").put(f"{path}/suspension", json={"reason": reason})
    assert done.status_code == 200, done.text
    assert done.json()["suspended"] is True
    try:
        yield
    finally:
        lifted = client("admin").delete(f"{path}/suspension")
        assert lifted.status_code == 200 and lifted.json()["suspended"] is False


def desired(client: Client, site: str = "groningen") -> DesiredState:
    token = client("admin").post(f"/api/v1/sites/{site}/agent-token").json()["token"]
    with httpx.Client(
        base_url=str(client().base_url), headers={"Authorization": f"Bearer {token}"}
    ) as agent:
        return DesiredState.from_json(agent.get(f"/api/v1/sites/{site}/agent/desired-state").json())


def test_only_an_admin_suspends_and_a_reason_is_required(client: Client) -> None:
    problem_of(
        client("maria").put("/api/v1/projects/dutch-llm/suspension", json={"reason": "x"}), 403
    )
    problem_of(client("admin").put("/api/v1/projects/dutch-llm/suspension", json={}), 422)
    problem_of(
        client("admin").put("/api/v1/projects/no-such/suspension", json={"reason": "x"}), 404
    )
    problem_of(client("admin").put("/api/v1/users/admin/suspension", json={"reason": "x"}), 403)


def test_a_suspended_project_submits_nothing_and_its_slurm_limit_is_zero(client: Client) -> None:
    before = {a.name: a for a in desired(client).accounts}
    assert before["dutch-llm"].gpu_minutes > 0
    with suspended(client, "/api/v1/projects/dutch-llm", "invoice unpaid since October"):
        refused = problem_of(
            client("maria").post("/api/v1/jobs", json={**JOB, "project": "dutch-llm"}), 403
        )
        assert "dutch-llm is suspended (invoice unpaid since October)" in refused["detail"]
        state = desired(client)
        accounts = {a.name: a for a in state.accounts}
        assert accounts["dutch-llm"].gpu_minutes == 0
        # Its members are still members: their association stays, only the limit stops jobs.
        assert any(a.account == "dutch-llm" for a in state.associations)
        audit = client("admin").get("/api/v1/audit", params={"action": "admin"}).json()
        changes = [e["detail"].get("change") for e in audit["items"]]
        assert "project-suspend" in changes
    after = client("maria").post("/api/v1/jobs", json={**JOB, "project": "dutch-llm"})
    assert after.status_code == 201, after.text
    client("maria").post(f"/api/v1/jobs/{after.json()['id']}/cancel")
    assert {a.name: a for a in desired(client).accounts}["dutch-llm"].gpu_minutes > 0


def test_a_suspended_person_submits_nothing_and_is_locked_at_the_sites(client: Client) -> None:
    with suspended(client, "/api/v1/users/pieter", "left the company"):
        refused = problem_of(
            client("pieter").post("/api/v1/jobs", json={**JOB, "project": "dutch-llm"}), 403
        )
        assert "your account is suspended (left the company)" in refused["detail"]
        users = {u.username: u for u in desired(client).users}
        assert users["pieter"].locked and not users["maria"].locked
        cert = client("pieter").post(
            "/api/v1/users/me/ssh-certificates",
            json={
                "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
            },
        )
        assert cert.status_code in (403, 422)
    assert not {u.username: u for u in desired(client).users}["pieter"].locked


def test_suspended_allocations_are_no_longer_spent_at_the_sites(client: Client) -> None:
    mine = client("admin").get("/api/v1/allocations", params={"project": "dutch-llm"}).json()
    active = [a["id"] for a in mine["items"] if a["active"]]
    assert active
    with ExitStack() as stack:
        for allocation in active:
            stack.enter_context(
                suspended(client, f"/api/v1/allocations/{allocation}", "under review")
            )
        assert {a.name: a for a in desired(client).accounts}["dutch-llm"].gpu_minutes == 0
    assert {a.name: a for a in desired(client).accounts}["dutch-llm"].gpu_minutes > 0
