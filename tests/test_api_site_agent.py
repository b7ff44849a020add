"""A site's agent through the HTTP API: its token, the desired state it pulls, the
reports it sends, and what the operator sees of them."""

from __future__ import annotations

import httpx

from tests.conftest import Client, problem_of


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
