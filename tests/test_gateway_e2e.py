"""The gateway with the endpoints' real control plane: an endpoint at zero whose replica is
a real job on the local engine running the CPU model server on the tiny test model. The
first request through `/v1` (the official `openai` client, an endpoint key) wakes it, waits
for the replica to be healthy and is answered; streaming and usage follow."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from fabriek.server.app import build_app
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from tests.conftest import Client
from tests.model_fixtures import tiny_model
from tests.servers import LiveServer, free_port, prepare, throwaway_database
from tests.test_api_budgets import grant, new_project
from tests.test_api_datasets import register, upload


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The whole app with its dispatcher and housekeeping (the endpoints' reconcile)."""
    tmp = tmp_path_factory.mktemp("gateway-e2e")
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
            yield LiveServer(f"http://127.0.0.1:{settings.port}", settings)
        finally:
            server.should_exit = True
            thread.join(timeout=30)


def model_tar(folder: Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return out.getvalue()


def test_the_first_request_wakes_an_endpoint_at_zero_through_the_gateway(
    server: LiveServer, client: Client
) -> None:
    project = new_project(client, "gw-e2e")
    grant(client, project, {"h100": 100.0})
    pieter = httpx.Client(
        base_url=server.url, timeout=60,
        headers={"Authorization": f"Bearer {demo_token('pieter').token}"},
    )  # fmt: skip
    register(pieter, project, "tiny")
    assert upload(pieter, project, "tiny", model_tar(tiny_model())).status_code == 201
    base = f"/api/v1/projects/{project}/endpoints"
    made = pieter.post(base, json={"name": "chat", "model": "tiny", "gpus": 0, "min_replicas": 0})
    assert made.status_code == 201, made.text
    assert pieter.get(f"{base}/chat").json()["replicas"] == []  # nothing runs until asked
    key = pieter.post(f"/api/v1/projects/{project}/endpoint-keys", json={"name": "e2e"}).json()
    gpt = openai.OpenAI(base_url=server.url + "/v1", api_key=key["key"], max_retries=0, timeout=300)
    messages = [{"role": "user", "content": "Hello! How can I help"}]

    answer = gpt.chat.completions.create(model="chat", messages=messages, max_tokens=6)  # type: ignore[arg-type]
    assert answer.usage is not None and answer.usage.completion_tokens >= 1
    chunks = list(
        gpt.chat.completions.create(
            model=f"{project}/chat", messages=messages, max_tokens=6, stream=True
        )  # type: ignore[arg-type]
    )
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
    assert pieter.get(f"{base}/chat").json()["healthy_replicas"] == 1

    def counted() -> bool:
        rows = pieter.get(f"/api/v1/projects/{project}/endpoint-usage").json()
        return sum(r["requests"] for r in rows) == 2

    deadline = time.monotonic() + 30
    while not counted():
        assert time.monotonic() < deadline, "usage never written"
        time.sleep(0.2)
    assert pieter.delete(f"{base}/chat").status_code == 204
    pieter.close()


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def test_a_rollout_through_the_gateway_drops_no_request_and_idle_goes_back_to_zero(
    server: LiveServer, client: Client
) -> None:
    project = new_project(client, "gw-e2e-roll")
    grant(client, project, {"h100": 100.0})
    pieter = httpx.Client(
        base_url=server.url, timeout=60,
        headers={"Authorization": f"Bearer {demo_token('pieter').token}"},
    )  # fmt: skip
    register(pieter, project, "tiny")
    data = model_tar(tiny_model())
    assert upload(pieter, project, "tiny", data).status_code == 201
    base = f"/api/v1/projects/{project}/endpoints"
    made = pieter.post(base, json={"name": "roll", "model": "tiny", "gpus": 0, "min_replicas": 1})
    assert made.status_code == 201, made.text
    key = pieter.post(f"/api/v1/projects/{project}/endpoint-keys", json={"name": "r"}).json()
    # No retries in the client: a request the gateway dropped would raise here.
    gpt = openai.OpenAI(base_url=server.url + "/v1", api_key=key["key"], max_retries=0, timeout=300)
    messages = [{"role": "user", "content": "Hello! How can I help"}]

    def ask() -> str:
        answer = gpt.chat.completions.create(model="roll", messages=messages, max_tokens=2)  # type: ignore[arg-type]
        return answer.model

    ask()  # the first replica is up
    served: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                served.append(ask())
            except Exception as exc:  # collected: the test fails on any
                failures.append(exc)

    workers = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        # A new version of the model's files rolls out while requests keep coming.
        assert upload(pieter, project, "tiny", data + b"\0" * 1024).status_code == 201
        assert pieter.patch(f"{base}/roll", json={"model": "tiny@2"}).status_code == 200

        def rolled() -> bool:
            replicas = pieter.get(f"{base}/roll").json()["replicas"]
            live = [r for r in replicas if r["state"] in ("healthy", "starting", "draining")]
            return bool(live) and all(
                r["model"] == "tiny@2" and r["state"] == "healthy" for r in live
            )

        _wait(rolled, "the new version rolled out", timeout_s=180)
        seen = len(served)
        _wait(lambda: len(served) > seen + 5, "requests answered by the new version")
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=300)
    assert not failures, failures[:3]
    assert served

    # Idle for its idle time, it gives its replica back; the next request brings one again.
    assert pieter.patch(f"{base}/roll", json={"min_replicas": 0, "idle_s": 10}).status_code == 200
    _wait(lambda: pieter.get(f"{base}/roll").json()["state"] == "scaled-to-zero", "back to zero")
    assert pieter.get(f"{base}/roll").json()["replicas"] == []
    ask()
    assert pieter.get(f"{base}/roll").json()["healthy_replicas"] == 1
    assert pieter.delete(f"{base}/roll").status_code == 204
    pieter.close()


def test_an_endpoint_that_may_not_start_a_replica_answers_with_the_reason(
    server: LiveServer, client: Client
) -> None:
    project = new_project(client, "gw-e2e-held")
    grant(client, project, {"h100": 100.0})
    pieter = client("pieter")
    register(pieter, project, "tiny")
    assert upload(pieter, project, "tiny", model_tar(tiny_model())).status_code == 201
    base = f"/api/v1/projects/{project}/endpoints"
    made = pieter.post(base, json={"name": "held", "model": "tiny", "gpus": 0, "min_replicas": 0})
    assert made.status_code == 201, made.text
    key = pieter.post(f"/api/v1/projects/{project}/endpoint-keys", json={"name": "h"}).json()
    # The project stays in good standing (the gateway's own gate lets the request through);
    # the person whose jobs the replicas are is suspended, so the wake's submission fails.
    suspended = client("admin").put(
        "/api/v1/users/pieter/suspension", json={"reason": "unpaid invoice"}
    )
    assert suspended.status_code == 200, suspended.text
    gpt = openai.OpenAI(base_url=server.url + "/v1", api_key=key["key"], max_retries=0, timeout=60)
    # The wake cannot submit a replica's job: the reason comes back in OpenAI's shape.
    with pytest.raises(openai.PermissionDeniedError) as held:
        gpt.chat.completions.create(
            model="held", messages=[{"role": "user", "content": "hello"}], max_tokens=2
        )
    assert held.value.code == "replica_refused", held.value.response.text
    assert "no replica of held may start" in held.value.message
    assert "unpaid invoice" in held.value.message
    assert pieter.get(f"{base}/held").json()["replicas"] == []
    assert client("admin").delete("/api/v1/users/pieter/suspension").status_code == 200
    assert pieter.delete(f"{base}/held").status_code == 204
