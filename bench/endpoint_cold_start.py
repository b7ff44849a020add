"""An endpoint's cold start: from `wake` (the gateway's call when a request finds an endpoint
scaled to zero) to a healthy replica answering a chat completion.

Serves a fresh SQLite demo factory in this process (the local engine, the dispatcher every
0.2 s, housekeeping with the endpoints' reconcile round every 0.5 s), creates a project with
an allocation, pushes the tests' tiny model (tests/model_fixtures.py) as a dataset and an
endpoint on it with `min_replicas 0` and the shortest idle time (10 s). Then `--runs` times:
wake it, time until `routable` names a healthy replica, and until that replica has answered
one chat completion (`max_tokens` 4); wait until the idle endpoint is back at zero.

    .venv/bin/python -m bench.endpoint_cold_start --runs 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import tarfile
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import text
from tests.model_fixtures import tiny_model
from tests.servers import free_port, prepare

from fabriek.server.app import build_app
from fabriek.services.demo.seed import demo_token
from fabriek.services.endpoints.routing import EndpointRoute, routable, wake
from fabriek.settings import Settings

_RUNNING = text("SELECT id FROM jobs WHERE state IN ('pending', 'starting', 'running')")


def _tar(folder: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return out.getvalue()


def _as(url: str, user: str) -> httpx.Client:
    token = demo_token(user).token
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _setup(url: str) -> str:
    """A project led by pieter with an allocation, the tiny model and an endpoint at zero."""
    import hashlib

    admin, eva, pieter = _as(url, "admin"), _as(url, "eva"), _as(url, "pieter")
    orgs = admin.get("/api/v1/organisations", params={"limit": 500}).json()["items"]
    org = next(o["id"] for o in orgs if o["name"] == "Technische Universiteit Delft")
    project = "bench-endpoints"
    made = admin.post("/api/v1/projects", json={"name": project, "title": "Cold start",
                      "organisation_id": org, "principal_investigator": "pieter"})  # fmt: skip
    assert made.status_code == 201, made.text
    grant = eva.post("/api/v1/allocations", json={"project": project, "track": "ai-for-science",
                     "gpu_hours": {"h100": 100.0}})  # fmt: skip
    assert grant.status_code == 201, grant.text
    pieter.post("/api/v1/datasets", json={"project": project, "name": "tiny"})
    data = _tar(tiny_model())
    pushed = pieter.post(
        f"/api/v1/datasets/{project}/tiny/versions", content=data,
        headers={"X-Content-SHA256": hashlib.sha256(data).hexdigest()},
    )  # fmt: skip
    assert pushed.status_code == 201, pushed.text
    ep = pieter.post(f"/api/v1/projects/{project}/endpoints", json={
        "name": "chat", "model": "tiny", "gpus": 0, "min_replicas": 0, "idle_s": 10})  # fmt: skip
    assert ep.status_code == 201, ep.text
    return project


def _wait_for(get: object, timeout: float = 300) -> EndpointRoute:
    deadline = time.monotonic() + timeout
    while True:
        route = get()  # type: ignore[operator]
        if route.replicas:
            return route  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise TimeoutError("no healthy replica")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fabriek-bench-ep-"))
    url = f"sqlite:///{tmp / 'fabriek.db'}"
    prepare(url)
    settings = Settings(database_url=url, state_dir=tmp / "state", dispatch_interval_s=0.2,
                        housekeeping_interval_s=0.5, port=free_port())  # fmt: skip
    app = build_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{settings.port}"
    ctx = app.state.context
    dispatcher = ctx.dispatcher
    try:
        project = _setup(base)
        ref = f"{project}/chat"

        def route() -> EndpointRoute:
            with ctx.sessions() as session:
                return routable(session, ref, dispatcher.engine, dispatcher.registry.state_dir)

        healthy: list[float] = []
        answered: list[float] = []
        for run in range(args.runs):
            while not route().scaled_to_zero:
                time.sleep(0.2)
            endpoint_id = route().endpoint_id
            started = time.monotonic()
            with ctx.sessions() as session:
                wake(session, endpoint_id, datetime.now(UTC))
            found = _wait_for(route)
            healthy.append(time.monotonic() - started)
            target = found.replicas[0]
            reply = httpx.post(
                f"{target.base_url}/v1/chat/completions",
                headers={"authorization": f"Bearer {target.secret}"},
                json={"model": "chat", "max_tokens": 4,
                      "messages": [{"role": "user", "content": "hello"}]},
                timeout=60, trust_env=False,
            )  # fmt: skip
            reply.raise_for_status()
            answered.append(time.monotonic() - started)
            print(f"run {run + 1}: healthy after {healthy[-1]:.2f} s, "
                  f"first answer after {answered[-1]:.2f} s")  # fmt: skip
        for name, values in (("healthy", healthy), ("first answer", answered)):
            print(f"{name}: median {statistics.median(values):.2f} s, "
                  f"min {min(values):.2f} s, max {max(values):.2f} s")  # fmt: skip
    finally:
        # The last replica's job is stopped before the server goes: no process outlives it.
        _as(base, "pieter").delete("/api/v1/projects/bench-endpoints/endpoints/chat")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with ctx.sessions() as session:
                if not session.execute(_RUNNING).first():
                    break
            time.sleep(0.2)
        server.should_exit = True
        thread.join(timeout=30)


if __name__ == "__main__":
    main()
