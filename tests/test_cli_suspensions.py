"""`fabriek suspend` and `fabriek resume` through real HTTP, as an admin types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def env_of(server: LiveServer, username: str, tmp_path: Path) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(username).token,
            "FABRIEK_CONFIG_DIR": str(tmp_path / "cfg")}  # fmt: skip


def test_an_admin_suspends_a_project_and_its_member_is_told_why(
    server: LiveServer, tmp_path: Path
) -> None:
    admin, maria = env_of(server, "admin", tmp_path), env_of(server, "maria", tmp_path)
    said = fabriek("suspend", "project", "dutch-llm", "--reason", "audit under way", env=admin)
    assert "dutch-llm suspended" in said.stdout
    try:
        refused = fabriek(
            "run", "--project", "dutch-llm", "--gpus", "1", "--", "true", env=maria, check=False
        )
        assert "suspended (audit under way)" in one_line_error(refused, refused.returncode)
    finally:
        lifted = json.loads(fabriek("resume", "project", "dutch-llm", "--json", env=admin).stdout)
    assert lifted["suspended"] is False
    # Not an admin: one line, non-zero.
    denied = fabriek("suspend", "user", "pieter", "--reason", "x", env=maria, check=False)
    assert "admin" in one_line_error(denied, denied.returncode)
