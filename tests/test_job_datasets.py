"""Datasets in jobs, end to end: a job reads its project's (or a granted) dataset decrypted at
$FABRIEK_DATASETS while it runs and not after; the data's residency keeps it to the sites
that may process it, and the scheduler says why; a grant revoked before the start stops it."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from fabriek.domain.residency import DATASETS_ENV
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import LiveServer
from tests.test_api_budgets import grant, new_project

DATA = b"patient,age\n1,54\n2,61\n" * 1000


def push(c: httpx.Client, project: str, name: str, data: bytes = DATA, **terms: Any) -> None:
    made = c.post("/api/v1/datasets", json={"project": project, "name": name, **terms})
    assert made.status_code == 201, made.text
    sent = c.post(
        f"/api/v1/datasets/{project}/{name}/versions",
        content=data,
        headers={
            "Content-Type": "application/octet-stream",
            "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
        },
    )
    assert sent.status_code == 201, sent.text


PERSONAL_NL = {
    "classification": "personal",
    "residency": "nl",
    "legal_basis": "consent",
    "purpose": "training a triage model",
    "retention_until": "2030-01-01",
}

# The job prints the SHA-256 of what it sees, and where.
READ = (
    "import hashlib, os; d = os.environ['" + DATASETS_ENV + "']; "
    "print(d); print(hashlib.sha256(open(os.path.join(d, 'patients'), 'rb').read()).hexdigest())"
)


def logs(c: httpx.Client, job_id: int) -> str:
    return c.get(f"/api/v1/jobs/{job_id}/logs").text


def test_a_job_reads_its_dataset_decrypted_only_while_it_runs(
    client: Client, server: LiveServer, unique: str
) -> None:
    project = new_project(client, unique)
    grant(client, project, {"h200": 10.0, "h100": 10.0, "mi300x": 10.0})
    pieter = client("pieter")
    push(pieter, project, "patients", **PERSONAL_NL)
    job = submit(
        pieter, project=project, command=py(READ), gpus=1, time_limit="5m",
        datasets=["patients"],
    )  # fmt: skip
    assert job["datasets"] == [f"{project}/patients@1"]
    done = wait_for(pieter, job["id"])
    assert done["state"] == "completed", done
    # Personal data with NL residency: only a GDPR-ready site in the Netherlands.
    assert done["site"] in {"amsterdam", "groningen"}
    where, digest = logs(pieter, job["id"]).split()[:2]
    assert digest == hashlib.sha256(DATA).hexdigest()
    # Nothing decrypted outlives the job.
    assert not os.path.exists(where)
    assert str(server.settings.state_dir) in where


def test_residency_excludes_sites_and_says_why(client: Client, unique: str) -> None:
    project = new_project(client, unique)
    grant(client, project, {"mi300x": 10.0, "h100": 10.0})
    pieter = client("pieter")
    push(pieter, project, "patients", **PERSONAL_NL)
    # MI300X GPUs are only at Eindhoven, which is not marked GDPR-ready: refused at once.
    refused = pieter.post(
        "/api/v1/jobs",
        json={"project": project, "command": ["true"], "gpus": 1, "gpu_type": "mi300x",
              "datasets": ["patients"]},
    )  # fmt: skip
    body = problem_of(refused, 422)
    assert "eindhoven" in str(body) and "GDPR" in str(body), body
    # A dataset that may be anywhere does not narrow anything.
    push(pieter, project, "weights", classification="public", residency="anywhere")
    ok = submit(pieter, project=project, command=["true"], gpus=1, gpu_type="mi300x",
                datasets=["weights"], time_limit="1m")  # fmt: skip
    assert wait_for(pieter, ok["id"])["site"] == "eindhoven"


def test_bad_dataset_names_and_other_projects_data(client: Client, unique: str) -> None:
    project = new_project(client, unique)
    grant(client, project, {"h100": 10.0})
    other = new_project(client, unique + "o")
    pieter = client("pieter")
    push(pieter, other, "secret", classification="confidential", residency="eu")
    for ref, status in (("../etc/passwd", 422), ("a\x07b", 422), ("nothere", 404)):
        answer = pieter.post(
            "/api/v1/jobs",
            json={"project": project, "command": ["true"], "datasets": [ref]},
        )
        problem_of(answer, status)
    # Another project's dataset, not granted to this one: not found for it.
    problem_of(
        pieter.post(
            "/api/v1/jobs",
            json={"project": project, "command": ["true"], "datasets": [f"{other}/secret"]},
        ),
        404,
    )
    # Once granted, the job may read it.
    granted = pieter.post(f"/api/v1/datasets/{other}/secret/grants", json={"project": project})
    assert granted.status_code == 201, granted.text
    job = submit(pieter, project=project, command=py(
        "import os; print(sorted(os.listdir(os.environ['" + DATASETS_ENV + "'])))"
    ), datasets=[f"{other}/secret"], time_limit="1m")  # fmt: skip
    assert wait_for(pieter, job["id"])["state"] == "completed"
    assert "['secret']" in logs(pieter, job["id"])


def test_a_grant_revoked_before_the_start_stops_the_job(client: Client, unique: str) -> None:
    project = new_project(client, unique)
    grant(client, project, {"h100": 10.0})
    owner = new_project(client, unique + "w")
    pieter = client("pieter")
    push(pieter, owner, "shared", classification="internal", residency="eu")
    granted = pieter.post(f"/api/v1/datasets/{owner}/shared/grants", json={"project": project})
    assert granted.status_code == 201, granted.text
    begin = datetime.now(UTC) + timedelta(seconds=3)
    job = submit(pieter, project=project, command=["true"], datasets=[f"{owner}/shared"],
                 earliest_start=begin.isoformat(), time_limit="1m")  # fmt: skip
    revoked = pieter.delete(f"/api/v1/datasets/{owner}/shared/grants/{project}")
    assert revoked.status_code == 204, revoked.text
    done = wait_for(pieter, job["id"], timeout=30)
    assert done["state"] == "failed", done
    assert "DatasetUnavailable" in done["reason"] and "revoked" in done["reason"], done
