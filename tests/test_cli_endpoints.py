"""`fabriek endpoint`: create, list, show, update and delete through the real server, with
one-line errors."""

from __future__ import annotations

import json

import pytest

from fabriek.services.demo.seed import demo_token
from tests.conftest import Client
from tests.servers import LiveServer
from tests.test_api_budgets import new_project
from tests.test_api_datasets import register, upload
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_create_list_show_update_delete(server: LiveServer, client: Client, unique: str) -> None:
    project = new_project(client, f"cli-{unique}")
    register(client("pieter"), project, "weights")
    assert upload(client("pieter"), project, "weights", b"files").status_code == 201
    pieter = {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token("pieter").token}
    made = json.loads(
        fabriek("endpoint", "create", "chat", "--model", "weights", "--gpus", "0",
                "--replicas", "0..3", "-p", project, "--json", env=pieter).stdout
    )  # fmt: skip
    assert (made["min_replicas"], made["max_replicas"], made["state"]) == (0, 3, "scaled-to-zero")
    listed = json.loads(fabriek("endpoint", "list", "-p", project, "--json", env=pieter).stdout)
    assert [e["name"] for e in listed] == ["chat"]
    assert "chat" in fabriek("endpoint", "list", "-p", project, env=pieter).stdout
    assert "serves weights" in fabriek("endpoint", "show", "chat", "-p", project, env=pieter).stdout
    changed = json.loads(
        fabriek("endpoint", "update", "chat", "--replicas", "0..2", "--idle", "60",
                "-p", project, "--json", env=pieter).stdout
    )  # fmt: skip
    assert (changed["max_replicas"], changed["idle_s"]) == (2, 60)
    bad = fabriek("endpoint", "create", "Bad_Name", "--model", "weights", "-p", project,
                  env=pieter, check=False)  # fmt: skip
    assert "name" in one_line_error(bad, 2)
    bounds = fabriek("endpoint", "update", "chat", "--replicas", "x", "-p", project,
                     env=pieter, check=False)  # fmt: skip
    assert "--replicas" in one_line_error(bounds, 2)
    assert "deleted" in fabriek("endpoint", "delete", "chat", "-p", project, env=pieter).stdout
    gone = fabriek("endpoint", "show", "chat", "-p", project, env=pieter, check=False)
    assert "does not exist" in one_line_error(gone, 1)
