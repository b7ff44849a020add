"""`fabriek sites agent-token`, `fabriek sites agent` and `fabriek account` through real
HTTP, as an operator and a user type them."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from fabriek.domain.site_state import AgentReport, Change
from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def env_of(server: LiveServer, username: str, tmp_path: Path) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(username).token,
            "FABRIEK_CONFIG_DIR": str(tmp_path / "cfg")}  # fmt: skip


def test_an_operator_issues_a_token_and_sees_what_the_agent_reported(
    server: LiveServer, tmp_path: Path
) -> None:
    otto = env_of(server, "otto", tmp_path)
    token = fabriek("sites", "agent-token", "amsterdam", env=otto).stdout.strip()
    assert token.startswith("fsa_") and "\n" not in token
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as agent:
        state = agent.get("/api/v1/sites/amsterdam/agent/desired-state").json()
        report = AgentReport(
            generation=state["generation"],
            errors=(Change("user", "pieter", "UID 1900000002 is taken by bob at the site"),),
        )
        assert agent.post("/api/v1/sites/amsterdam/agent/reports", json=report.to_json()).is_success
    table = fabriek("sites", "agent", "amsterdam", env=otto).stdout
    assert "NOT in step" in table and "pieter" in table and "taken by bob" in table
    status = json.loads(fabriek("sites", "agent", "amsterdam", "--json", env=otto).stdout)
    assert status["errors"][0]["name"] == "pieter" and status["has_token"]
    # The listing still works as before.
    assert "amsterdam" in fabriek("sites", env=otto).stdout
    # Another site's agent is not the operator's to see: one line, non-zero.
    refused = fabriek("sites", "agent", "groningen", env=otto, check=False)
    assert "operator" in one_line_error(refused, refused.returncode)
    assert refused.returncode != 0


def test_a_person_sees_their_unix_account(server: LiveServer, tmp_path: Path) -> None:
    maria = env_of(server, "maria", tmp_path)
    mine = json.loads(fabriek("account", "--json", env=maria).stdout)
    assert mine["username"] == "maria" and mine["gid"] == mine["uid"]
    table = fabriek("account", env=maria).stdout
    assert f"uid {mine['uid']}" in table and "dutch-llm" in table and "photonic-inspect" in table
