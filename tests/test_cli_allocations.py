"""`fabriek allocations` and `fabriek budget`: tables with units, JSON, one-line errors."""

from __future__ import annotations

import json

import pytest

from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer
from tests.test_cli import fabriek, one_line_error

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def env_of(server: LiveServer, user: str) -> dict[str, str]:
    return {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(user).token}


def test_budget_and_allocations_show_normalised_and_raw_gpu_hours(server: LiveServer) -> None:
    sanne = env_of(server, "sanne")
    table = fabriek("budget", env=sanne).stdout
    assert (
        "photonic-inspect" in table and "Remaining GPU-h" in table and "GPU-h normalised" in table
    )
    listed = json.loads(fabriek("budget", "--json", env=sanne).stdout)
    mine = [a for a in listed if a["project"] == "photonic-inspect"]
    assert len(mine) == 1 and mine[0]["track"] == "start-up" and mine[0]["active"]
    assert mine[0]["awarded_raw"] == {"h100": 5000.0}
    assert "legal-nl" not in {a["project"] for a in listed}  # mo's, not hers
    allocations = fabriek("allocations", "-A", "photonic-inspect", env=sanne).stdout
    assert "5,000 h100" in allocations and "start-up" in allocations
    shown = json.loads(
        fabriek("allocations", "show", str(mine[0]["id"]), "--json", env=sanne).stdout
    )
    assert shown["allocation"]["id"] == mine[0]["id"] and isinstance(shown["charges"], list)
    assert "Charges" in fabriek("allocations", "show", str(mine[0]["id"]), env=sanne).stdout


def test_someone_elses_allocation_is_a_one_line_error(server: LiveServer) -> None:
    sanne = env_of(server, "sanne")
    theirs = json.loads(fabriek("allocations", "--json", env=env_of(server, "mo")).stdout)
    assert theirs, "mo's demo project has an allocation"
    result = fabriek("allocations", "show", str(theirs[0]["id"]), env=sanne, check=False)
    assert "not visible to you" in one_line_error(result, 1)
