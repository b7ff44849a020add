"""A site's agent through the HTTP API: its token, the desired state it pulls, the
reports it sends, and what the operator sees of them."""

from __future__ import annotations

import httpx
import pytest

from fabriek.domain.site_state import AgentReport, Change, DesiredState, SlurmAssociation
from fabriek.sdk.errors import ApiError
from fabriek.sdk.site_agent import SiteAgentClient
from tests.conftest import Client, problem_of
from tests.people import new_person
from tests.servers import LiveServer


def agent(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def issue(client: Client, site: str, username: str = "otto") -> str:
    done = client(username).post(f"/api/v1/sites/{site}/agent-token")
    assert done.status_code == 201, done.text
    token = done.json()["token"]
    assert token.startswith("fsa_")
    return str(token)


def test_an_operator_issues_a_token_that_is_good_for_their_site_only(client: Client) -> None:
    url = str(client().base_url)
    token = issue(client, "amsterdam")
    with agent(url, token) as a:
        assert a.get("/api/v1/sites/amsterdam/agent/whoami").json()["site"] == "amsterdam"
        # Another site's path with this token: the same 401 as a wrong token.
        problem_of(a.get("/api/v1/sites/groningen/agent/whoami"), 401)
    with agent(url, "fsa_wrong") as a:
        problem_of(a.get("/api/v1/sites/amsterdam/agent/whoami"), 401)
    # A personal token is not a site token.
    problem_of(client("otto").get("/api/v1/sites/amsterdam/agent/whoami"), 401)
    problem_of(client().get("/api/v1/sites/amsterdam/agent/whoami"), 401)


def test_a_new_token_replaces_the_old(client: Client) -> None:
    url = str(client().base_url)
    old = issue(client, "amsterdam")
    new = issue(client, "amsterdam", "admin")
    with agent(url, old) as a:
        problem_of(a.get("/api/v1/sites/amsterdam/agent/whoami"), 401)
    with agent(url, new) as a:
        assert a.get("/api/v1/sites/amsterdam/agent/whoami").status_code == 200


def test_only_the_sites_operator_or_an_admin_issues_its_token(client: Client) -> None:
    problem_of(client("otto").post("/api/v1/sites/groningen/agent-token"), 403)
    problem_of(client("maria").post("/api/v1/sites/amsterdam/agent-token"), 403)
    problem_of(client("otto").post("/api/v1/sites/atlantis/agent-token"), 404)


def test_the_desired_state_of_a_seeded_factory(client: Client) -> None:
    url = str(client().base_url)
    with agent(url, issue(client, "groningen", "admin")) as a:
        body = a.get("/api/v1/sites/groningen/agent/desired-state").json()
    state = DesiredState.from_json(body)  # its generation matches its content
    assert state.site == "groningen" and state.cluster == "groningen"
    users = {u.username: u for u in state.users}
    maria = users["maria"]
    assert maria.gid == maria.uid and not maria.locked
    assert set(maria.groups) >= {"dutch-llm", "photonic-inspect"}
    groups = {g.name: g.gid for g in state.groups}
    assert groups["maria"] == maria.uid
    assert groups["dutch-llm"] != maria.uid
    accounts = {a.name: a for a in state.accounts}
    # Budgets usable anywhere are accounts here; one only for eindhoven or amsterdam is not.
    assert {"dutch-llm", "legal-nl", "machine-twin"} <= set(accounts)
    assert "port-forecast" not in accounts and "wadden-drones" not in accounts
    assert accounts["dutch-llm"].gpu_minutes > 0
    assert accounts["dutch-llm"].qos == ("ai-for-science",)
    assert SlurmAssociation("maria", "dutch-llm") in state.associations
    assert SlurmAssociation("pieter", "dutch-llm") in state.associations
    assert {q.name for q in state.qos} >= {"playground", "fast-lane", "large-scale"}
    playground = next(q for q in state.qos if q.name == "playground")
    assert playground.preemptible
    # The same state asked again is the same generation.
    with agent(url, issue(client, "groningen", "admin")) as a:
        again = a.get("/api/v1/sites/groningen/agent/desired-state").json()
    assert again["generation"] == body["generation"]


def test_my_account_is_the_one_the_desired_state_names(client: Client) -> None:
    mine = client("maria").get("/api/v1/users/me/account")
    assert mine.status_code == 200, mine.text
    account = mine.json()
    assert account["username"] == "maria" and account["gid"] == account["uid"]
    assert {g["project"] for g in account["groups"]} == {"dutch-llm", "photonic-inspect"}
    with agent(str(client().base_url), issue(client, "amsterdam")) as a:
        state = DesiredState.from_json(a.get("/api/v1/sites/amsterdam/agent/desired-state").json())
    assert next(u for u in state.users if u.username == "maria").uid == account["uid"]
    problem_of(client().get("/api/v1/users/me/account"), 401)


def test_a_report_is_kept_and_its_drift_and_errors_shown_to_the_operator_only(
    client: Client,
) -> None:
    url = str(client().base_url)
    with agent(url, issue(client, "amsterdam")) as a:
        state = a.get("/api/v1/sites/amsterdam/agent/desired-state").json()
        report = AgentReport(
            generation=state["generation"],
            applied=(Change("user", "maria", "created with UID 1900000004"),),
            drift=(Change("account", "dutch-llm", "GrpTRESMins gres/gpu=999999 put back"),),
            errors=(
                Change("user", "pieter", "the username pieter is taken by UID 1001 at the site"),
            ),
        )
        done = a.post("/api/v1/sites/amsterdam/agent/reports", json=report.to_json())
        assert done.status_code == 201, done.text
        problem_of(a.post("/api/v1/sites/amsterdam/agent/reports", json={"applied": []}), 422)
    seen = client("otto").get("/api/v1/sites/amsterdam/agent")
    assert seen.status_code == 200, seen.text
    status = seen.json()
    assert status["has_token"] and status["last_seen_at"] is not None
    assert status["applied_generation"] == state["generation"]
    assert status["generation"] == state["generation"]
    assert not status["in_step"]  # an error: pieter has no account there yet
    assert status["errors"][0]["name"] == "pieter" and "taken" in status["errors"][0]["detail"]
    assert status["drift"][0]["name"] == "dutch-llm"
    assert status["reports"][0]["id"] == done.json()["id"]
    # Not for a plain user, nor for the operator of another site.
    problem_of(client("maria").get("/api/v1/sites/amsterdam/agent"), 403)
    problem_of(client("otto").get("/api/v1/sites/groningen/agent"), 403)
    problem_of(client("otto").get("/api/v1/sites/atlantis/agent"), 404)
    # The drift is on the audit trail.
    trail = client("admin").get("/api/v1/audit", params={"action": "site-agent"}).json()
    assert any(e["target"] == "site amsterdam" for e in trail["items"])
    # A clean report of the current state puts the site in step.
    with agent(url, issue(client, "amsterdam")) as a:
        clean = AgentReport(generation=state["generation"])
        assert a.post("/api/v1/sites/amsterdam/agent/reports", json=clean.to_json()).is_success
    assert client("otto").get("/api/v1/sites/amsterdam/agent").json()["in_step"]


def test_a_member_removed_loses_the_association_and_is_locked_when_in_no_project(
    server: LiveServer, client: Client, unique: str
) -> None:
    name = f"a.{unique}"  # a Fabriek username that is no POSIX name
    with new_person(server, name, "Amsterdam Language Models B.V.") as person:
        mine = person.get("/api/v1/users/me/account").json()
    assert mine["username"] == f"a-{unique}" and mine["groups"] == []
    mo = client("mo")
    assert mo.post("/api/v1/projects/legal-nl/members", json={"username": name}).status_code == 201
    url = str(client().base_url)

    def state() -> DesiredState:
        with agent(url, issue(client, "amsterdam")) as a:
            return DesiredState.from_json(
                a.get("/api/v1/sites/amsterdam/agent/desired-state").json()
            )

    member = state()
    assert SlurmAssociation(mine["username"], "legal-nl") in member.associations
    user = next(u for u in member.users if u.username == mine["username"])
    assert user.uid == mine["uid"] and user.groups == ("legal-nl",) and not user.locked
    assert mo.delete(f"/api/v1/projects/legal-nl/members/{name}").status_code == 204
    removed = state()
    assert not any(a.user == mine["username"] for a in removed.associations)
    user = next(u for u in removed.users if u.username == mine["username"])
    assert user.locked and user.uid == mine["uid"] and user.groups == ()
    assert removed.generation != member.generation


def test_the_sdk_client_of_an_agent(client: Client) -> None:
    url = str(client().base_url)
    with SiteAgentClient(url, "eindhoven", issue(client, "eindhoven", "admin")) as sdk:
        state = sdk.desired_state()
        assert state.site == "eindhoven"
        # port-forecast's budget may be spent at eindhoven only: an account there.
        assert "port-forecast" in {a.name for a in state.accounts}
        sdk.report(AgentReport(generation=state.generation))
    assert client("admin").get("/api/v1/sites/eindhoven/agent").json()["in_step"]
    with (
        SiteAgentClient(url, "eindhoven", "fsa_not-the-token") as wrong,
        pytest.raises(ApiError) as refused,
    ):
        wrong.desired_state()
    assert refused.value.status == 401 and "agent-token" in refused.value.detail
