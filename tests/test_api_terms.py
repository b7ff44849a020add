"""Terms of use end to end through the HTTP API, on SQLite and PostgreSQL: published by an
admin (the factory's) or a site's operator (the site's), read and accepted by anyone signed
in, and required before a job, at the site a job can run at only, and before a dataset
upload; the scheduler holds a job at a site whose new terms its user has not accepted.

Each test runs its own server on a fresh store without terms (tests/terms_factory.py)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.terms_factory import Factory, fresh_factory

TERMS_NOT_ACCEPTED = "https://fabriek.eu/problems/terms-not-accepted"


@pytest.fixture(params=BACKENDS)
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    with fresh_factory(request.param, tmp_path) as made:
        yield made


def publish(c: httpx.Client, scope: str, title: str, requires: bool = True) -> dict[str, Any]:
    body = {"scope": scope, "title": title, "body": f"# {title}\n\nBe nice.",
            "requires_acceptance": requires}  # fmt: skip
    made = c.post("/api/v1/terms", json=body)
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


def refused_for(response: httpx.Response, scope: str, version: int) -> dict[str, object]:
    """Assert the 403 problem that asks for `scope`'s terms, version `version`, first."""
    body = problem_of(response, 403)
    assert body["type"] == TERMS_NOT_ACCEPTED
    assert f"version {version}" in str(body["detail"])
    assert body["terms_url"] == f"/api/v1/terms/{scope}/{version}"
    assert body["accept_url"] == f"/api/v1/terms/{scope}/{version}/accept"
    assert body["portal_url"] == "/terms"
    return body


def job(**fields: Any) -> dict[str, Any]:
    return {"project": "dutch-llm", "command": py("print('ok')"), "time_limit": "1m", **fields}


def upload(c: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return c.post(
        f"/api/v1/datasets/dutch-llm/{name}/versions",
        content=data,
        headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
    )


def status(c: httpx.Client) -> dict[str, dict[str, Any]]:
    mine = c.get("/api/v1/users/me/terms")
    assert mine.status_code == 200, mine.text
    return {t["scope"]: t for t in mine.json()}


def test_the_factorys_terms_are_required_again_when_a_new_version_asks(
    factory: Factory,
) -> None:
    admin, maria, pieter = factory.as_("admin"), factory.as_("maria"), factory.as_("pieter")
    # No terms published: nothing to accept, jobs and uploads go through.
    submit(maria, **job())
    assert status(maria) == {}
    made = pieter.post("/api/v1/datasets", json={"project": "dutch-llm", "name": "corpus"})
    assert made.status_code == 201, made.text
    assert upload(pieter, "corpus", b"first").status_code == 201

    first = publish(admin, "factory", "Acceptable use")
    assert (first["version"], first["published_by"]) == (1, "admin")
    body = refused_for(maria.post("/api/v1/jobs", json=job()), "factory", 1)
    assert "fabriek terms accept factory 1" in str(body["detail"])
    assert status(maria)["factory"]["pending"] is True
    refused_for(upload(pieter, "corpus", b"second"), "factory", 1)

    accepted = maria.post("/api/v1/terms/factory/1/accept")
    assert accepted.status_code == 200, accepted.text
    again = maria.post("/api/v1/terms/factory/1/accept")
    assert again.json() == accepted.json()  # accepted once, answered as first recorded
    submit(maria, **job())
    mine = status(maria)["factory"]
    assert (mine["pending"], mine["accepted_version"]) == (False, 1)

    # An editorial version keeps the acceptance of version 1.
    assert publish(admin, "factory", "Acceptable use (typos)", requires=False)["version"] == 2
    submit(maria, **job())
    assert status(maria)["factory"]["newest_version"] == 2

    # Version 3 must be accepted; superseded versions may not be accepted instead.
    publish(admin, "factory", "Acceptable use, with export control")
    refused_for(maria.post("/api/v1/jobs", json=job()), "factory", 3)
    stale = problem_of(maria.post("/api/v1/terms/factory/2/accept"), 409)
    assert "accept version 3" in str(stale["detail"])
    assert maria.post("/api/v1/terms/factory/3/accept").status_code == 200
    done = wait_for(maria, submit(maria, **job())["id"])
    assert done["state"] == "completed"

    # The texts: the newest of each scope, the newest of one, and any version.
    assert [(t["scope"], t["version"]) for t in maria.get("/api/v1/terms").json()] == [
        ("factory", 3)
    ]
    assert maria.get("/api/v1/terms/factory").json()["version"] == 3
    assert maria.get("/api/v1/terms/factory/2").json()["requires_acceptance"] is False
    problem_of(maria.get("/api/v1/terms/factory/9"), 404)
    problem_of(maria.post("/api/v1/terms/factory/9/accept"), 404)

    # Every publication and acceptance is on the audit trail with its version.
    trail = admin.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    published = [e["detail"]["version"] for e in trail if e["action"] == "terms-publish"]
    assert sorted(published) == [1, 2, 3]
    accepts = [(e["actor"], e["detail"]["version"]) for e in trail if e["action"] == "terms-accept"]
    assert sorted(accepts) == [("maria", 1), ("maria", 3)]
    assert all(e["at"] for e in trail if e["action"].startswith("terms-"))


def test_a_sites_terms_bind_jobs_that_can_run_there_only(factory: Factory) -> None:
    admin, otto, maria = factory.as_("admin"), factory.as_("otto"), factory.as_("maria")
    # Who may publish what: an admin the factory's, a site's operator that site's.
    problem_of(otto.post("/api/v1/terms", json=_draft("factory")), 403)
    problem_of(maria.post("/api/v1/terms", json=_draft("amsterdam")), 403)
    problem_of(otto.post("/api/v1/terms", json=_draft("groningen")), 403)
    unknown = problem_of(admin.post("/api/v1/terms", json=_draft("atlantis")), 422)
    assert "no site named 'atlantis'" in str(unknown["detail"])
    assert publish(otto, "amsterdam", "Amsterdam house rules")["version"] == 1

    # Only Amsterdam has H100s: such a job needs Amsterdam's terms; one for Groningen's
    # H200s or for any GPU does not.
    refused_for(maria.post("/api/v1/jobs", json=job(gpus=1, gpu_type="h100")), "amsterdam", 1)
    anywhere = submit(maria, **job(gpus=1))
    assert wait_for(maria, anywhere["id"])["site"] != "amsterdam"
    submit(maria, **job(gpus=1, gpu_type="h200"))
    assert maria.post("/api/v1/terms/amsterdam/1/accept").status_code == 200
    pinned = submit(maria, **job(gpus=1, gpu_type="h100"))
    assert wait_for(maria, pinned["id"])["site"] == "amsterdam"

    # New terms at Amsterdam after a job was queued: the scheduler holds it there until
    # they are accepted (it waits to begin with, so the new terms come first).
    later = (datetime.now(UTC) + timedelta(seconds=15)).isoformat()
    held = submit(maria, **job(gpus=1, gpu_type="h100", earliest_start=later))
    publish(otto, "amsterdam", "Amsterdam house rules, new cooling")
    waiting = _wait_for_reason(maria, held["id"], "TermsNotAccepted")
    assert "terms of use of site amsterdam not accepted by maria" in waiting["reason"]
    assert maria.post("/api/v1/terms/amsterdam/2/accept").status_code == 200
    assert wait_for(maria, held["id"])["state"] == "completed"


def _draft(scope: str) -> dict[str, Any]:
    return {"scope": scope, "title": "Rules", "body": "Be nice."}


def _wait_for_reason(c: httpx.Client, job_id: int, reason: str) -> dict[str, Any]:
    """Poll the job until its reason begins with `reason`; it must stay pending meanwhile."""
    deadline = time.monotonic() + 90
    while True:
        found: dict[str, Any] = c.get(f"/api/v1/jobs/{job_id}").json()
        if (found["reason"] or "").startswith(reason):
            return found
        assert found["state"] == "pending", found
        assert time.monotonic() < deadline, f"job {job_id} waits for: {found['reason']}"
        time.sleep(0.1)
