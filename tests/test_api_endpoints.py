"""Model endpoints through the HTTP API: create, list, show, change and delete; who may;
bad input as problem documents; a replica is a job of the project, submitted like any job;
deleting an endpoint drains its replicas and cancels their jobs (the reconcile round of
the control plane's housekeeping)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from fabriek.settings import Settings
from tests.conftest import Client, problem_of
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.test_api_budgets import grant, new_project
from tests.test_api_datasets import register, upload
from tests.test_api_models import register as register_model
from tests.test_api_models import version as register_model_version


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with housekeeping (and so the endpoints' reconcile round) every half second,
    on a database of its own of the same kind: on the shared one, the session's server
    could hold the housekeeping lease and reconcile at its own pace."""
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    with throwaway_database(kind, tmp_path_factory.mktemp("db")) as url:
        prepare(url)
        settings = Settings(
            database_url=url,
            state_dir=tmp_path_factory.mktemp("state"),
            dispatch_interval_s=0.2,
            housekeeping_interval_s=0.5,
        )
        with live_server(settings) as live:
            yield live


def _project_with_model(client: Client, unique: str) -> str:
    """A project led by pieter, with a dataset `weights` (the model's files)."""
    project = new_project(client, f"ep-{unique}"[:40])
    pieter = client("pieter")
    register(pieter, project, "weights")
    assert upload(pieter, project, "weights", b"not a real model").status_code == 201
    return project


def _create(c: httpx.Client, project: str, **body: Any) -> httpx.Response:
    payload = {"name": "chat", "model": "weights", "gpus": 0, "min_replicas": 0, **body}
    return c.post(f"/api/v1/projects/{project}/endpoints", json=payload)


def test_the_pi_creates_lists_shows_changes_and_deletes_an_endpoint(
    client: Client, unique: str
) -> None:
    project = _project_with_model(client, unique)
    pieter = client("pieter")
    made = _create(pieter, project, max_replicas=3, idle_s=60)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["name"] == "chat" and body["model"] == "weights"
    assert (body["min_replicas"], body["max_replicas"]) == (0, 3)
    assert body["state"] == "scaled-to-zero" and body["replicas"] == []
    listed = pieter.get(f"/api/v1/projects/{project}/endpoints").json()
    assert [e["name"] for e in listed] == ["chat"]
    changed = pieter.patch(
        f"/api/v1/projects/{project}/endpoints/chat", json={"max_replicas": 2, "idle_s": 30}
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["max_replicas"], changed.json()["idle_s"]) == (2, 30)
    assert pieter.delete(f"/api/v1/projects/{project}/endpoints/chat").status_code == 204
    problem_of(pieter.get(f"/api/v1/projects/{project}/endpoints/chat"), 404)
    # The name is free again at once.
    assert _create(pieter, project).status_code == 201


def test_members_read_only_the_pi_and_admins_manage(client: Client, unique: str) -> None:
    project = _project_with_model(client, unique)
    admin = client("admin")
    add = admin.post(f"/api/v1/projects/{project}/members", json={"username": "maria"})
    assert add.status_code in (200, 201), add.text
    assert _create(client("pieter"), project).status_code == 201
    maria = client("maria")
    assert maria.get(f"/api/v1/projects/{project}/endpoints/chat").status_code == 200
    problem_of(_create(maria, project, name="mine"), 403)
    problem_of(maria.delete(f"/api/v1/projects/{project}/endpoints/chat"), 403)
    # Outside the project it does not exist.
    problem_of(client("mo").get(f"/api/v1/projects/{project}/endpoints"), 404)
    problem_of(client().get(f"/api/v1/projects/{project}/endpoints"), 401)
    assert _create(admin, project, name="by-admin").status_code == 201


def test_bad_input_is_refused_with_the_field_named(client: Client, unique: str) -> None:
    project = _project_with_model(client, unique)
    pieter = client("pieter")
    problem_of(_create(pieter, project, name="Bad_Name"), 422)
    problem_of(_create(pieter, project, min_replicas=3, max_replicas=2), 422)
    missing = problem_of(_create(pieter, project, model="no-such-dataset"), 422)
    assert "no-such-dataset" in str(missing)
    problem_of(_create(pieter, project, model="nomodel:9"), 404)
    assert _create(pieter, project).status_code == 201
    problem_of(_create(pieter, project), 409)
    problem_of(
        pieter.patch(f"/api/v1/projects/{project}/endpoints/chat", json={"min_replicas": 9,
                     "max_replicas": 2}),
        422,
    )  # fmt: skip


def _wait(c: httpx.Client, path: str, done: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = c.get(path).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_a_replica_is_a_job_of_the_project_and_deleting_ends_it(
    client: Client, unique: str
) -> None:
    project = _project_with_model(client, unique)
    pieter = client("pieter")
    made = _create(pieter, project, min_replicas=1)
    assert made.status_code == 201, made.text
    replica = made.json()["replicas"][0]
    assert replica["state"] == "starting" and replica["model"] == "weights"
    job = pieter.get(f"/api/v1/jobs/{replica['job_id']}").json()
    assert job["project"] == project and job["user"] == "pieter"
    assert job["web_port"] is not None and job["datasets"]
    assert pieter.delete(f"/api/v1/projects/{project}/endpoints/chat").status_code == 204
    _wait(
        pieter, f"/api/v1/jobs/{replica['job_id']}",
        lambda j: j["state"] in ("cancelled", "failed", "completed"),
    )  # fmt: skip


def test_the_portal_lists_a_projects_endpoints_with_their_state(
    client: Client, browser: Callable[[str], httpx.Client], unique: str
) -> None:
    project = _project_with_model(client, unique)
    assert _create(client("pieter"), project, name="portal-chat").status_code == 201
    shown = browser("pieter").get("/endpoints", params={"project": project})
    assert shown.status_code == 200
    assert "portal-chat" in shown.text and "scaled-to-zero" in shown.text
    assert browser("mo").get("/endpoints", params={"project": project}).status_code == 404


def test_an_endpoint_of_a_registry_version_names_it_and_rolls_to_the_next(
    client: Client, unique: str
) -> None:
    project = new_project(client, f"ep-{unique}"[:40])
    pieter = client("pieter")
    model = f"lm-{unique}"
    register_model(pieter, model, project, first_version={"version": "1.0"})
    register_model_version(pieter, model, version="1.1", bases=[{"model": f"{model}:1.0"}])
    # Its files: the project's dataset named as the model.
    refused = _create(pieter, project, model=f"{model}:1.0")
    assert "dataset" in str(problem_of(refused, 422))
    register(pieter, project, model)
    assert upload(pieter, project, model, b"files").status_code == 201
    made = _create(pieter, project, model=f"{model}:1.0")
    assert made.status_code == 201, made.text
    first = made.json()["model_version_id"]
    assert first is not None
    changed = pieter.patch(
        f"/api/v1/projects/{project}/endpoints/chat", json={"model": f"{model}:1.1"}
    ).json()
    assert changed["model"] == f"{model}:1.1" and changed["model_version_id"] not in (None, first)
    problem_of(_create(pieter, project, name="other", model=f"{model}:9.9"), 404)


def test_replicas_that_die_before_answering_are_not_restarted_forever(
    client: Client, unique: str
) -> None:
    project = _project_with_model(client, unique)  # its "model" is no tar: the server never starts
    grant(client, project, {"h100": 10.0})
    pieter = client("pieter")
    assert _create(pieter, project, min_replicas=1).status_code == 201
    path = f"/api/v1/projects/{project}/endpoints/chat"
    shown = _wait(pieter, path, lambda e: e["state"] == "failing")
    assert shown["healthy_replicas"] == 0
    # No replica is started any more: the last one's job ends, and none follows.
    _wait(pieter, path, lambda e: e["replicas"] == [])
    assert pieter.delete(path).status_code == 204
