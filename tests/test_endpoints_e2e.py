"""Endpoints end to end with the real CPU model server: replicas run as real jobs on the local
engine, the control plane's reconcile round (housekeeping, every half second here) checks
their health, replaces a killed one, rolls a new model version out while every request is
answered, scales an idle endpoint to zero, and `wake` brings a replica back.

The gateway's side is played by `routable` and `wake`, called in-process as the gateway
calls them, and a request sent straight to the replica they name."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from fabriek.server.app import build_app
from fabriek.services.endpoints.routing import EndpointRoute, routable, wake
from fabriek.settings import Settings
from tests.conftest import Client
from tests.model_fixtures import tiny_model
from tests.servers import LiveServer, free_port, prepare, throwaway_database
from tests.test_api_budgets import grant, new_project
from tests.test_api_datasets import register, upload


@dataclass
class Plane:
    """The live server and its app, whose control plane the test asks as the gateway does."""

    live: LiveServer
    app: FastAPI

    def route(self, ref: str) -> EndpointRoute:
        ctx = self.app.state.context
        dispatcher = ctx.dispatcher
        with ctx.sessions() as session:
            return routable(session, ref, dispatcher.engine, dispatcher.registry.state_dir)

    def wake(self, endpoint_id: int) -> bool:
        with self.app.state.context.sessions() as session:
            return wake(session, endpoint_id, datetime.now(UTC))


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    tmp = tmp_path_factory.mktemp("endpoints")
    with throwaway_database("sqlite", tmp) as url:
        prepare(url)
        settings = Settings(
            database_url=url, state_dir=tmp / "state", dispatch_interval_s=0.2,
            housekeeping_interval_s=0.5, port=free_port(),
        )  # fmt: skip
        app = build_app(settings)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.02)
        try:
            yield Plane(LiveServer(f"http://127.0.0.1:{settings.port}", settings), app)
        finally:
            server.should_exit = True
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(plane: Plane) -> LiveServer:
    return plane.live


def model_tar(folder: Path) -> bytes:
    """The model's folder as a dataset holds it: a tar of its files."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return out.getvalue()


WHY: list[Callable[[], str]] = []


def wait(what: Callable[[], Any], timeout: float = 180, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        why = WHY[0]() if WHY else ""
        assert time.monotonic() < deadline, f"timed out waiting; last: {got!r}; {why}"
        time.sleep(every)


def diagnosis(c: httpx.Client, path: str) -> str:
    """The endpoint, its replicas' jobs and their errors, for a failure's message."""
    shown = c.get(path).json()
    parts = [str(shown)]
    for replica in shown.get("replicas", []):
        job = c.get(f"/api/v1/jobs/{replica['job_id']}").json()
        err = c.get(f"/api/v1/jobs/{replica['job_id']}/logs", params={"stream": "stderr"})
        parts.append(f"job {job.get('state')} {job.get('reason')}: {err.text[-2000:]}")
    return "\n".join(parts)


def ask(route: EndpointRoute) -> dict[str, Any]:
    """One chat completion from the first replica the route names."""
    target = route.replicas[0]
    answer = httpx.post(
        f"{target.base_url}/v1/chat/completions",
        headers={"authorization": f"Bearer {target.secret}"},
        json={"model": route.name, "max_tokens": 4,
              "messages": [{"role": "user", "content": "hello"}]},
        timeout=60, trust_env=False,
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_an_endpoint_serves_is_healed_rolls_out_and_scales_to_zero_and_back(
    plane: Plane, client: Client
) -> None:
    project = new_project(client, "ep-e2e")
    grant(client, project, {"h100": 100.0})
    pieter = client("pieter")
    register(pieter, project, "tiny")
    data = model_tar(tiny_model())
    assert upload(pieter, project, "tiny", data).status_code == 201
    base = f"/api/v1/projects/{project}/endpoints"
    made = pieter.post(base, json={"name": "chat", "model": "tiny", "gpus": 0, "idle_s": 10})
    assert made.status_code == 201, made.text
    endpoint_id = made.json()["id"]
    ref = f"{project}/chat"
    WHY[:] = [lambda: diagnosis(pieter, f"{base}/chat")]

    # 1. Its replica becomes healthy and is routable; the server answers with usage.
    route = wait(lambda: (r := plane.route(ref)).replicas and r)
    assert ask(route)["usage"]["completion_tokens"] >= 1
    first_job = route.replicas[0].job_id

    # 2. A replica whose job is killed is replaced by a new one.
    assert pieter.post(f"/api/v1/jobs/{first_job}/cancel").status_code in (200, 202)
    route = wait(lambda: (r := plane.route(ref)).replicas and r.replicas[0].job_id != first_job
                 and r)  # fmt: skip
    ask(route)
    shown = pieter.get(f"{base}/chat").json()
    assert shown["healthy_replicas"] == 1

    # 3. A new model version rolls out; every request meanwhile is answered.
    assert upload(pieter, project, "tiny", data + b"\0" * 1024).status_code == 201
    changed = pieter.patch(f"{base}/chat", json={"model": "tiny@2"})
    assert changed.status_code == 200, changed.text
    answered = 0
    deadline = time.monotonic() + 180
    while True:
        route = plane.route(ref)
        assert route.replicas, "no healthy replica during the rollout"
        try:
            ask(route)
        except (httpx.TransportError, AssertionError):
            ask(plane.route(ref))  # the replica drained meanwhile: the gateway retries once
        answered += 1
        if {t.model for t in route.replicas} == {"tiny@2"}:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert answered >= 1

    # 4. With min 0 and no request for the idle time, no replica is left (GPUs freed)...
    assert pieter.patch(f"{base}/chat", json={"min_replicas": 0}).status_code == 200
    wait(lambda: pieter.get(f"{base}/chat").json()["state"] == "scaled-to-zero", timeout=120)
    assert plane.route(ref).scaled_to_zero

    # 5. ... and a request wakes it: a replica becomes healthy (the cold start).
    started = time.monotonic()
    assert plane.wake(endpoint_id)
    route = wait(lambda: (r := plane.route(ref)).replicas and r, every=0.1)
    cold_start_s = time.monotonic() - started
    ask(route)
    print(f"cold start: {cold_start_s:.1f} s")
    assert pieter.delete(f"{base}/chat").status_code == 204
    job = route.replicas[0].job_id
    wait(lambda: pieter.get(f"/api/v1/jobs/{job}").json()["state"] == "cancelled", timeout=60)


def test_a_long_queue_adds_a_replica_and_a_quiet_endpoint_gives_it_back(
    plane: Plane, client: Client
) -> None:
    project = new_project(client, "ep-e2e-scale")
    grant(client, project, {"h100": 100.0})
    pieter = client("pieter")
    register(pieter, project, "tiny")
    assert upload(pieter, project, "tiny", model_tar(tiny_model())).status_code == 201
    base = f"/api/v1/projects/{project}/endpoints"
    made = pieter.post(base, json={"name": "busy", "model": "tiny", "gpus": 0,
                                   "min_replicas": 1, "max_replicas": 2})  # fmt: skip
    assert made.status_code == 201, made.text
    ref = f"{project}/busy"
    WHY[:] = [lambda: diagnosis(pieter, f"{base}/busy")]
    route = wait(lambda: (r := plane.route(ref)).replicas and r)
    target = route.replicas[0]

    # Far more long requests than the server runs at once (4): the rest wait in its queue.
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=300, trust_env=False) as http:
            while not stop.is_set():
                try:
                    http.post(
                        f"{target.base_url}/v1/completions",
                        headers={"authorization": f"Bearer {target.secret}"},
                        json={"model": "busy", "prompt": "hello", "max_tokens": 400},
                    )
                except httpx.HTTPError:
                    return

    workers = [threading.Thread(target=load, daemon=True) for _ in range(24)]
    for worker in workers:
        worker.start()
    try:
        wait(lambda: len(plane.route(ref).replicas) == 2, timeout=240)
    finally:
        stop.set()
    # The queue drains: back to the minimum, one replica.
    wait(lambda: len(pieter.get(f"{base}/busy").json()["replicas"]) == 1, timeout=240)
    for worker in workers:
        worker.join(timeout=300)
    jobs = [r["job_id"] for r in pieter.get(f"{base}/busy").json()["replicas"]]
    assert pieter.delete(f"{base}/busy").status_code == 204
    # Its replicas' jobs end before the server does: no model server outlives the test.
    for job in jobs:
        wait(lambda j=job: pieter.get(f"/api/v1/jobs/{j}").json()["state"] == "cancelled")
