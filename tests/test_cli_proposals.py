"""`fabriek tracks|calls|proposals|reviews|final-report` through the real command and HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer
from tests.test_cli import fabriek, home, one_line_error

__all__ = ["home"]  # the fixture, imported for these tests

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def as_user(server: LiveServer, home: dict[str, str], user: str) -> dict[str, str]:
    return {**home, "FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(user).token}


def test_a_proposal_from_the_command_line(
    server: LiveServer, home: dict[str, str], unique: str
) -> None:
    sanne, eva = as_user(server, home, "sanne"), as_user(server, home, "eva")
    otto, hanna = as_user(server, home, "otto"), as_user(server, home, "hanna")

    tracks = json.loads(fabriek("tracks", "--json", env=sanne).stdout)
    assert "start-up" in {t["code"] for t in tracks["tracks"]}
    table = fabriek("tracks", env=sanne).stdout
    assert "Fast Lane" in table and "50,000 GPU-h" in table and "working days" in table

    out = fabriek("calls", "new", unique, "--track", "start-up", "--title", "Regional",
                  env=eva).stdout  # fmt: skip
    assert f"Opened call {unique}" in out
    calls = json.loads(fabriek("calls", "--open", "--json", "--limit", "1000", env=sanne).stdout)
    assert unique in {c["code"] for c in calls}
    assert unique in fabriek("calls", "--track", "start-up", "--limit", "1000", env=sanne).stdout

    with httpx.Client(base_url=server.url, headers={
            "Authorization": f"Bearer {demo_token('hanna').token}"}) as h:  # fmt: skip
        org = h.get("/api/v1/organisations", params={"name": "Eindhoven Photonics"}).json()
        created = h.post("/api/v1/projects", json={
            "name": unique, "title": "Chips", "organisation_id": org["items"][0]["id"],
            "principal_investigator": "sanne"})  # fmt: skip
        assert created.status_code == 201, created.text

    new = ["proposals", "new", "--call", unique, "--project", unique, "--title", "Wafers",
           "--sector", "semiconductors", "--abstract", "Find defects.", "--months", "2"]  # fmt: skip
    too_big = fabriek(*new, "--gpu-hours", "h100=999999", env=sanne, check=False)
    assert "at most 10,000.00 GPU-h" in one_line_error(too_big, 2)
    bad = fabriek(*new, "--gpu-hours", "h100", env=sanne, check=False)
    assert "TYPE=HOURS" in one_line_error(bad, 2)
    draft = json.loads(
        fabriek(
            *new, "--gpu-hours", "h100=1000", "--gpu-hours", "a100=300", "--json", env=sanne
        ).stdout
    )
    pid = draft["id"]
    assert draft["state"] == "draft" and draft["requested"] == {"h100": 1000, "a100": 300}
    assert f"Proposal {pid} submitted" in fabriek("proposals", "submit", str(pid), env=sanne).stdout
    shown = fabriek("proposals", "show", str(pid), env=sanne).stdout
    assert "of 5 working days used" in shown and "300 a100 GPU-h + 1,000 h100 GPU-h" in shown
    listed = json.loads(fabriek("proposals", "--json", "--call", unique, env=sanne).stdout)
    assert [p["id"] for p in listed] == [pid]
    assert "Wafers" in fabriek("proposals", "list", "--state", "submitted", env=sanne).stdout

    fabriek("proposals", "check", str(pid), "--pass", env=eva)
    assigned = fabriek("proposals", "assign", str(pid), "otto", "--kind", "technical", env=eva)
    assert "Assigned otto a technical review" in assigned.stdout
    pending = json.loads(fabriek("reviews", "--pending", "--json", env=otto).stdout)
    assert pid in {r["proposal_id"] for r in pending}
    assert "Wafers" in fabriek("reviews", env=otto).stdout
    fabriek("reviews", "submit", str(pid), "--kind", "technical", "--feasible", "--comment",
            "fits", env=otto)  # fmt: skip
    decided = fabriek("proposals", "decide", str(pid), "--decision", "award", env=hanna).stdout
    assert "awarded" in decided and "1,200.10 GPU-h normalised" in decided

    allocation = json.loads(fabriek("proposals", "show", str(pid), "--json", env=sanne).stdout)
    alloc_id = allocation["allocation"]["id"]
    filed = fabriek("final-report", str(alloc_id), "--text", "Done.", env=sanne).stdout
    assert f"Filed the final report of allocation {alloc_id}" in filed
    again = fabriek("final-report", str(alloc_id), "--text", "Again.", env=sanne, check=False)
    assert "was filed" in one_line_error(again, 1)
