"""A site's agent pushes its Slurm accounting through the HTTP API (sacct lines captured
from a real Slurm 22.05 cluster, tests/slurm/data/), and the runs are charged exactly once."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fabriek.sdk.errors import ApiError
from fabriek.sdk.site_agent import SiteAgentClient
from tests.conftest import Client, problem_of
from tests.test_api_site_agent import agent, issue

DATA = Path(__file__).parent / "slurm" / "data"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def captured(cluster: str) -> str:
    """The captured sacct lines, on a cluster of this test's own, in the last hours, by
    Fabriek's demo people (maria, pieter) in project dutch-llm's Slurm account."""
    text = (DATA / "sacct_22.05_allocations.txt").read_text()
    first = min(datetime.fromisoformat(t) for t in _TIME.findall(text))
    shift = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2) - first

    def moved(match: re.Match[str]) -> str:
        return (datetime.fromisoformat(match.group(0)) + shift).isoformat(timespec="seconds")

    text = _TIME.sub(moved, text)
    text = text.replace("capture|", f"{cluster}|").replace("fab-hv-ann", "maria")
    return text.replace("fab-hv-ben", "pieter").replace("hvclimate", "dutch-llm")


def _charged(client: Client, cluster: str) -> list[dict[str, object]]:
    pi = client("pieter")
    allocations = pi.get("/api/v1/allocations", params={"project": "dutch-llm"}).json()
    out = []
    for allocation in allocations["items"]:
        charges = pi.get(f"/api/v1/allocations/{allocation['id']}/charges").json()
        jobs = {c["job_id"] for c in charges}
        for job_id in jobs:
            job = pi.get(f"/api/v1/jobs/{job_id}").json()
            if f"at {cluster}:" in (job.get("reason") or ""):
                out.extend(c for c in charges if c["job_id"] == job_id)
    return out


def test_pushed_runs_are_charged_once_and_a_second_push_adds_nothing(client: Client) -> None:
    url = str(client().base_url)
    text = captured("pushone")
    with SiteAgentClient(url, "groningen", issue(client, "groningen", "admin")) as site:
        first = site.push_accounting(text, through=datetime.now(UTC))
        assert (first["records"], first["added"], first["unmatched"]) == (12, 11, 1)
        assert first["gpu_hours"] > 0
        again = site.push_accounting(text)
        assert (again["added"], again["corrected"], again["unchanged"]) == (0, 0, 11)
    charges = _charged(client, "pushone")
    assert len(charges) == 11
    assert len({c["job_id"] for c in charges}) == 11
    # The runs are maria's and pieter's jobs, on the ledger they see.
    listed = client("maria").get("/api/v1/jobs", params={"state": "completed"}).json()
    assert any("at pushone:" in (j.get("reason") or "") for j in listed["items"])


def test_a_push_is_the_sites_own_and_must_be_sacct_output(client: Client) -> None:
    url = str(client().base_url)
    token = issue(client, "groningen", "admin")
    with agent(url, token) as a:
        bad = a.post("/api/v1/sites/groningen/agent/accounting", json={"sacct": "a|b|c\n"})
        assert "fields" in str(problem_of(bad, 422)["detail"])
        # Another site's path with this token: refused like a wrong token.
        other = a.post("/api/v1/sites/amsterdam/agent/accounting", json={"sacct": ""})
        problem_of(other, 401)
    problem_of(
        client("maria").post("/api/v1/sites/groningen/agent/accounting", json={"sacct": ""}),
        401,
    )
    with (
        SiteAgentClient(url, "groningen", "fsa_wrong") as impostor,
        pytest.raises(ApiError) as refused,
    ):
        impostor.push_accounting("")
    assert refused.value.status == 401


def test_the_operator_sees_the_harvest_and_a_site_without_slurm_is_told_why(
    client: Client,
) -> None:
    url = str(client().base_url)
    with SiteAgentClient(url, "groningen", issue(client, "groningen", "admin")) as site:
        site.push_accounting(captured("pushtwo"), through=datetime.now(UTC))
    state = client("admin").get("/api/v1/sites/groningen/harvest").json()
    assert state["through"] is not None and state["jobs_added"] >= 11
    assert {"user": "root", "account": "root"}.items() <= state["unmatched"][0].items()
    problem_of(client("otto").get("/api/v1/sites/groningen/harvest"), 403)
    # Amsterdam runs on the local engine here: nothing to pull, and the answer says so.
    refused = problem_of(client("otto").post("/api/v1/sites/amsterdam/harvest"), 422)
    assert "pushes it" in str(refused["detail"])
