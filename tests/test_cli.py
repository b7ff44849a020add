"""The `fabriek` command: sign in, list as tables and JSON, one-line errors, through real HTTP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer, free_port

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def fabriek(
    *args: str, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "fabriek.main", *args],
        env={**os.environ, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """A user's environment with its own config dir and no token set."""
    env = {"FABRIEK_CONFIG_DIR": str(tmp_path / "cfg")}
    for var in ("FABRIEK_TOKEN", "FABRIEK_URL"):
        os.environ.pop(var, None)
    return env


def test_login_stores_token_privately_then_commands_use_it(
    server: LiveServer, home: dict[str, str]
) -> None:
    token = demo_token("maria").token
    out = fabriek("login", "--url", server.url, "--token", token, env=home).stdout
    assert "maria" in out
    stored = Path(home["FABRIEK_CONFIG_DIR"]) / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["token"] == token
    me = json.loads(fabriek("whoami", "--json", env=home).stdout)
    assert me["username"] == "maria"
    projects = json.loads(fabriek("projects", "--json", env=home).stdout)
    assert {p["name"] for p in projects} == {"dutch-llm", "photonic-inspect"}


def test_listings_as_tables_and_json(server: LiveServer, home: dict[str, str]) -> None:
    env = {**home, "FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token("admin").token}
    table = fabriek("sites", env=env).stdout
    assert "amsterdam" in table and "88×h100" in table
    sites = json.loads(fabriek("sites", "--json", "--gpu-type", "mi300x", env=env).stdout)
    assert [s["name"] for s in sites] == ["eindhoven"]
    orgs = json.loads(fabriek("orgs", "--json", "--hub", "brightlands", env=env).stdout)
    assert orgs and all(o["province"] == "Limburg" for o in orgs)
    assert "Universiteit Maastricht" in fabriek("orgs", "--province", "Limburg", env=env).stdout
    assert "dutch-llm" in fabriek("projects", env=env).stdout
    members = json.loads(fabriek("projects", "members", "dutch-llm", "--json", env=env).stdout)
    assert {m["username"] for m in members} == {"pieter", "maria"}
    assert "principal-investigator" in fabriek("projects", "members", "dutch-llm", env=env).stdout


def test_errors_are_one_line_with_exit_codes(server: LiveServer, home: dict[str, str]) -> None:
    line = one_line_error(fabriek("whoami", env=home, check=False), 1)
    assert "fabriek login" in line
    bad = fabriek("login", "--url", server.url, "--token", "fbk_nope", env=home, check=False)
    assert "malformed" in one_line_error(bad, 1)
    mo = {**home, "FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token("mo").token}
    hidden = fabriek("projects", "members", "dutch-llm", env=mo, check=False)
    assert "does not exist" in one_line_error(hidden, 1)
    pieter = {**mo, "FABRIEK_TOKEN": demo_token("pieter").token}
    wrong_role = fabriek(
        "projects", "members", "dutch-llm", "--add", "mo", "--role", "boss", env=pieter, check=False
    )
    assert "role" in one_line_error(wrong_role, 2)
    nowhere = {**mo, "FABRIEK_URL": f"http://127.0.0.1:{free_port()}"}
    assert "cannot reach" in one_line_error(fabriek("sites", env=nowhere, check=False), 1)
    assert one_line_error(fabriek("sites", "--limit", "0", env=mo, check=False), 2)
    assert one_line_error(fabriek("no-such-command", env=mo, check=False), 2)
