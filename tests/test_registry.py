"""The factory's own registry, for real: Debian's docker-registry with Fabriek as its token
issuer, images pushed and pulled with podman, jobs through the HTTP API.

Who may: a project's member pushes and pulls its repositories; another project's member,
and nobody signed in, is refused by the registry itself (podman fails); a job names only
its own project's (or the shared) images, from the factory's registry or an upstream the
operator allows; the digest the registry served is recorded on the job.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fabriek.services.demo.seed import SITES, demo_token
from fabriek.settings import Settings
from tests.conftest import problem_of
from tests.container_images import busybox_image, podman, podman_sites_file
from tests.registry_harness import Registry, ensure_registry, running_registry
from tests.servers import LiveServer, free_port, live_server, prepare, throwaway_database

UPSTREAM = "harbor.eu.example"


@pytest.fixture(scope="module")
def registry_world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, Registry]]:
    """A Fabriek (SQLite, the demo factory) whose registry is a real one on loopback."""
    if (reason := ensure_registry()) is not None:
        pytest.skip(f"REGISTRY NOT AVAILABLE: {reason}")
    tmp = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    names = [s.name for s in SITES]
    sites = podman_sites_file(tmp / "sites.toml", names, set(names), ("--tls-verify=false",))
    with throwaway_database("sqlite", tmp) as url:
        prepare(url)
        settings = Settings(
            database_url=url, state_dir=tmp / "state", dispatch_interval_s=0.2,
            registry=address, registry_insecure=True, registry_upstreams=UPSTREAM,
            sites_file=sites,
        )  # fmt: skip
        with (
            live_server(settings) as live,
            running_registry(address, live.url, settings.state_dir, tmp / "registry") as registry,
        ):
            yield live, registry


@pytest.fixture
def server(registry_world: tuple[LiveServer, Registry]) -> LiveServer:
    return registry_world[0]


@pytest.fixture
def registry(registry_world: tuple[LiveServer, Registry]) -> Registry:
    return registry_world[1]


def creds(username: str) -> str:
    return f"{username}:{demo_token(username).token}"


def push(
    registry: Registry, name: str, username: str | None, *options: str
) -> subprocess.CompletedProcess[bytes]:
    """`podman push` of the test image to `registry/name`, as `username` (None: anonymous)."""
    who = ["--creds", creds(username)] if username else []
    return podman(
        "push", "--tls-verify=false", *who, *options, busybox_image(),
        f"{registry.address}/{name}",
    )  # fmt: skip


def pull(registry: Registry, name: str, username: str | None) -> subprocess.CompletedProcess[bytes]:
    who = ["--creds", creds(username)] if username else []
    return podman("pull", "--tls-verify=false", *who, f"{registry.address}/{name}")


def api(server: LiveServer, username: str) -> httpx.Client:
    token = demo_token(username).token
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def submit(c: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"command": ["true"], "time_limit": 60, **fields}
    return c.post("/api/v1/jobs", json=body)


@pytest.fixture(scope="module")
def pushed(
    registry_world: tuple[LiveServer, Registry], tmp_path_factory: pytest.TempPathFactory
) -> str:
    """dutch-llm/busybox:v1, pushed by maria (a member of dutch-llm); the digest podman
    says it pushed."""
    _server, registry = registry_world
    digest_file = tmp_path_factory.mktemp("push") / "digest"
    done = push(registry, "dutch-llm/busybox:v1", "maria", "--digestfile", str(digest_file))
    assert done.returncode == 0, done.stderr.decode()[-800:]
    return digest_file.read_text().strip()


def _token(server: LiveServer, username: str, repository: str) -> str:
    answer = httpx.get(
        f"{server.url}/api/v1/registry/token",
        params={"service": "fabriek-registry", "scope": f"repository:{repository}:pull"},
        auth=(username, demo_token(username).token),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


# -- the registry itself: who may push and pull ------------------------------------------------


def test_a_member_pushes_and_pulls_their_projects_image(registry: Registry, pushed: str) -> None:
    assert pushed.startswith("sha256:")
    done = pull(registry, "dutch-llm/busybox:v1", "pieter")
    assert done.returncode == 0, done.stderr.decode()[-800:]


def test_another_projects_member_can_neither_pull_nor_push_it(
    registry: Registry, pushed: str
) -> None:
    refused = pull(registry, "dutch-llm/busybox:v1", "mo")
    assert refused.returncode != 0
    assert b"denied" in refused.stderr.lower() or b"unauthorized" in refused.stderr.lower()
    assert push(registry, "dutch-llm/busybox:mo", "mo").returncode != 0


def test_nobody_signed_in_is_refused(registry: Registry, pushed: str) -> None:
    assert pull(registry, "dutch-llm/busybox:v1", None).returncode != 0
    assert push(registry, "dutch-llm/busybox:anon", None).returncode != 0


def test_the_token_service_grants_only_what_is_allowed(server: LiveServer) -> None:
    url = f"{server.url}/api/v1/registry/token"
    scope = {"service": "fabriek-registry", "scope": "repository:dutch-llm/x:pull,push"}
    assert httpx.get(url, params=scope).status_code == 401
    bad = httpx.get(url, params=scope, auth=("maria", "fbk_nope_nope"))
    assert bad.status_code == 401
    # Someone else's token under maria's name is not maria.
    other = httpx.get(url, params=scope, auth=("maria", demo_token("mo").token))
    assert other.status_code == 401
    mo = httpx.get(url, params=scope, auth=("mo", demo_token("mo").token)).json()
    maria = httpx.get(url, params=scope, auth=("maria", demo_token("maria").token)).json()
    for answer in (mo, maria):
        assert answer["token"] == answer["access_token"] and answer["expires_in"] > 0

    def access(token: str) -> list[dict[str, Any]]:
        claims = token.split(".")[1]
        return list(json.loads(base64.urlsafe_b64decode(claims + "==="))["access"])

    assert access(mo["token"]) == []
    assert access(maria["token"]) == [
        {"type": "repository", "name": "dutch-llm/x", "actions": ["pull", "push"]}
    ]


# -- jobs through the API -----------------------------------------------------------------------


def test_a_jobs_image_is_checked_and_its_digest_recorded(
    server: LiveServer, registry: Registry, pushed: str
) -> None:
    with api(server, "maria") as maria:
        answer = submit(maria, project="dutch-llm", container_image="dutch-llm/busybox:v1")
        assert answer.status_code == 201, answer.text
        job = answer.json()
        assert job["image_digest"] == pushed
        assert maria.get(f"/api/v1/jobs/{job['id']}").json()["image_digest"] == pushed
        # Named with the registry's host, or Pyxis's host#path: the same image.
        pyxis = submit(
            maria, project="dutch-llm", container_image=f"{registry.address}#dutch-llm/busybox:v1"
        )
        assert pyxis.status_code == 201 and pyxis.json()["image_digest"] == pushed


def test_another_projects_image_is_refused_as_if_it_did_not_exist(
    server: LiveServer, pushed: str
) -> None:
    with api(server, "mo") as mo:
        theirs = problem_of(submit(mo, container_image="dutch-llm/busybox:v1"), 404)
        missing = problem_of(submit(mo, container_image="legal-nl/nothing:v1"), 404)
    # The same words for both: nothing leaks whether dutch-llm has such an image.
    assert "does not exist or is not visible" in str(theirs["detail"])
    assert "does not exist or is not visible" in str(missing["detail"])
    with api(server, "maria") as maria:
        gone = problem_of(submit(maria, project="dutch-llm", container_image="dutch-llm/x:v9"), 404)
    assert "dutch-llm/x:v9" in str(gone["detail"])


def test_a_registry_not_allowed_is_refused_naming_the_setting(server: LiveServer) -> None:
    with api(server, "maria") as maria:
        problem = problem_of(submit(maria, container_image="docker.io/library/python:3.12"), 422)
        assert "docker.io" in str(problem["detail"])
        assert "FABRIEK_REGISTRY_UPSTREAMS" in str(problem["detail"])
        bad = problem_of(submit(maria, container_image="Not A Name"), 422)
        assert "container_image" in str(bad["detail"])
        # An allowed upstream passes by name; its digest is not known.
        fine = submit(maria, container_image=f"{UPSTREAM}/team/tool:1")
        assert fine.status_code == 201, fine.text
        assert fine.json()["image_digest"] is None
        maria.post(f"/api/v1/jobs/{fine.json()['id']}/cancel")


def test_with_the_registry_down_a_job_is_accepted_and_waits_with_the_reason(
    server: LiveServer, registry: Registry, pushed: str
) -> None:
    registry.stop()
    try:
        with api(server, "maria") as maria:
            answer = submit(maria, project="dutch-llm", container_image="dutch-llm/busybox:v1")
            assert answer.status_code == 201, answer.text
            job = answer.json()
            assert job["image_digest"] is None
            deadline = time.monotonic() + 60
            while True:
                seen = maria.get(f"/api/v1/jobs/{job['id']}").json()
                if seen["reason"] and "image registry" in seen["reason"]:
                    break
                assert time.monotonic() < deadline, (seen["state"], seen["reason"])
                time.sleep(0.2)
            assert seen["state"] in {"pending", "starting"}
            # One cancelled meanwhile ends without running: no engine has it yet (202 while
            # the dispatcher has it in hand, as for any job that left the queue).
            other = submit(maria, project="dutch-llm", container_image="dutch-llm/busybox:v1")
            other_id = other.json()["id"]
            deadline = time.monotonic() + 60
            while "image registry" not in (
                maria.get(f"/api/v1/jobs/{other_id}").json()["reason"] or ""
            ):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            cancelled = maria.post(f"/api/v1/jobs/{other_id}/cancel")
            assert cancelled.status_code in (200, 202), cancelled.text
            while (now := maria.get(f"/api/v1/jobs/{other_id}").json())["state"] != "cancelled":
                assert time.monotonic() < deadline, (now["state"], now["reason"])
                time.sleep(0.2)
    finally:
        registry.start()
    with api(server, "maria") as maria:
        deadline = time.monotonic() + 120
        while True:
            seen = maria.get(f"/api/v1/jobs/{job['id']}").json()
            if seen["image_digest"] is not None:
                break
            assert time.monotonic() < deadline, (seen["state"], seen["reason"])
            time.sleep(0.2)
        assert seen["image_digest"] == pushed


def test_a_projects_images_are_listed_for_those_who_see_the_project(
    server: LiveServer, pushed: str
) -> None:
    with api(server, "maria") as maria:
        listed = maria.get("/api/v1/projects/dutch-llm/images")
        assert listed.status_code == 200, listed.text
        assert {"repository": "dutch-llm/busybox", "tags": ["v1"]} in listed.json()
    with api(server, "mo") as mo:
        problem_of(mo.get("/api/v1/projects/dutch-llm/images"), 404)


def test_a_token_that_grants_a_push_is_in_the_audit_log(server: LiveServer, pushed: str) -> None:
    with api(server, "admin") as admin:
        found = admin.get(
            "/api/v1/audit", params={"actor": "maria", "action": "token-issue", "limit": 100}
        )
        assert found.status_code == 200, found.text
    pushes = [e for e in found.json()["items"] if e["detail"].get("registry") == "push"]
    assert any("dutch-llm/busybox" in e["detail"]["repositories"] for e in pushes), pushes
    # mo's refused push granted nothing, so it left no such entry.
    with api(server, "admin") as admin:
        mine = admin.get("/api/v1/audit", params={"actor": "mo", "action": "token-issue"})
    assert not [e for e in mine.json()["items"] if e["detail"].get("registry") == "push"]
