"""The OpenAI-compatible gateway end to end: the official `openai` client against a real
Fabriek server, through the gateway, to real model server processes on loopback ports
(tests/openai_standin.py), with keys created through the API and usage read back from it.

Routing to replicas is the endpoints' control (tested with its own tests); here the
gateway's resolver is given the stand-in servers' addresses, so that these tests hold the
gateway alone to account."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from sqlalchemy import select

from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.server.app import build_app
from fabriek.services.demo.seed import demo_token
from fabriek.services.endpoints.routing import EndpointRoute, ReplicaTarget
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import AllocationRow, ProjectRow
from fabriek.store.tables.endpoints import EndpointKeyRow, EndpointRow
from tests.servers import free_port, prepare, throwaway_database

STANDIN = Path(__file__).resolve().parent / "openai_standin.py"


def start_standin(delay_s: float = 0.0) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(STANDIN), str(port), str(delay_s)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the stand-in model server did not start")


@dataclass
class StaticRoutes:
    """The gateway's resolver in these tests: endpoints by id and PROJECT/NAME."""

    routes: dict[str, EndpointRoute] = field(default_factory=dict)
    projects: dict[int, str] = field(default_factory=dict)

    def __call__(self, endpoint: int | str, project_id: int | None) -> EndpointRoute:
        for key, route in self.routes.items():
            if endpoint == route.endpoint_id or endpoint == key:
                return route
            if (
                isinstance(endpoint, str)
                and "/" not in endpoint
                and project_id is not None
                and key == f"{self.projects[project_id]}/{endpoint}"
            ):
                return route
        raise NotFound("endpoint", endpoint)


@dataclass
class Stack:
    url: str
    routes: StaticRoutes
    procs: dict[str, subprocess.Popen[bytes]]
    upstreams: dict[str, str]
    app: Any

    def api(self, username: str) -> httpx.Client:
        token = demo_token(username).token
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def openai(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=30)

    def new_key(self, username: str, project: str, **limits: object) -> dict[str, object]:
        with self.api(username) as c:
            r = c.post(f"/api/v1/projects/{project}/endpoint-keys", json={"name": "k", **limits})
            assert r.status_code == 201, r.text
            return dict(r.json())

    def usage(self, username: str, project: str, key: object) -> dict[str, int]:
        with self.api(username) as c:
            r = c.get(f"/api/v1/projects/{project}/endpoint-usage", params={"key": str(key)})
            assert r.status_code == 200, r.text
            rows = r.json()
        total = {"requests": 0, "failed_requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        for row in rows:
            for name in total:
                total[name] += row[name]
        return total


def wait_for(check: object, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("gateway")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with throwaway_database("sqlite", tmp) as url:
        prepare(url)
        engine = make_engine(url)
        routes = StaticRoutes()
        with make_sessions(engine)() as session:
            for project, name in (
                ("dutch-llm", "chat"),
                ("dutch-llm", "slow"),
                ("legal-nl", "law"),
                ("dutch-llm", "tiny"),
            ):
                pid = session.scalars(select(ProjectRow.id).where(ProjectRow.name == project)).one()
                row = EndpointRow(
                    project_id=pid, name=name, model="tiny:1", min_replicas=0, max_replicas=0
                )
                session.add(row)
                session.flush()
                routes.projects[pid] = project
                routes.routes[f"{project}/{name}"] = EndpointRoute(row.id, pid, name, "tiny:1", ())
            session.commit()
        engine.dispose()
        upstreams: dict[str, str] = {}
        for name, delay in (("a", 0.0), ("b", 0.0), ("slow", 0.05)):
            procs[name], upstreams[name] = start_standin(delay)
        for n, (key, names) in enumerate(
            (("dutch-llm/chat", ["a", "b"]), ("dutch-llm/slow", ["slow"]), ("legal-nl/law", ["a"]))
        ):
            route = routes.routes[key]
            targets = tuple(
                ReplicaTarget(10 * n + i, route.endpoint_id, 0, upstreams[u], "", "tiny:1")
                for i, u in enumerate(names)
            )
            routes.routes[key] = replace(route, replicas=targets)
        settings = Settings(database_url=url, state_dir=tmp / "state", dispatch_interval_s=1.0)
        settings.port = free_port()
        app = build_app(settings)
        app.state.gateway.resolve = routes
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda: server.started, "the server started")
        try:
            yield Stack(f"http://127.0.0.1:{settings.port}", routes, procs, upstreams, app)
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            app.state.context.engine.dispose()
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=10)


def test_chat_and_streaming_are_counted_per_key(stack: Stack) -> None:
    key = stack.new_key("pieter", "dutch-llm")
    assert str(key["key"]).startswith("fbe_") and key["prefix"] in str(key["key"])
    client = stack.openai(str(key["key"]))
    answer = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hallo wereld vandaag"}], max_tokens=5
    )
    assert answer.choices[0].message.content and answer.usage is not None
    assert answer.usage.prompt_tokens == 3 and answer.usage.completion_tokens == 5
    chunks = list(
        client.chat.completions.create(
            model="dutch-llm/chat",
            messages=[{"role": "user", "content": "een twee"}],
            max_tokens=4,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.split() == ["een", "twee", "een", "twee"]
    # The usage chunk the gateway asked for is not passed to a client that did not ask.
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    with_usage = list(
        client.completions.create(
            model="chat",
            prompt="drie",
            max_tokens=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens == 2
    embedded = client.embeddings.create(model="chat", input="vier vijf")
    assert embedded.data[0].embedding
    expected = {"requests": 4, "failed_requests": 0, "prompt_tokens": 3 + 2 + 1 + 2,
                "completion_tokens": 5 + 4 + 2}  # fmt: skip
    wait_for(lambda: stack.usage("pieter", "dutch-llm", key["id"]) == expected, "usage counted")
    models = client.models.list()
    assert {m.id for m in models.data} == {"dutch-llm/chat", "dutch-llm/slow", "dutch-llm/tiny"}


def test_a_members_own_token_calls_its_projects_endpoints_only(stack: Stack) -> None:
    maria = stack.openai(demo_token("maria").token)
    answer = maria.chat.completions.create(
        model="dutch-llm/chat", messages=[{"role": "user", "content": "hoi"}], max_tokens=1
    )
    assert answer.choices[0].message.content == "hoi"
    with pytest.raises(openai.NotFoundError):
        maria.chat.completions.create(
            model="legal-nl/law", messages=[{"role": "user", "content": "x"}]
        )


def test_wrong_revoked_and_other_projects_keys_are_refused(stack: Stack) -> None:
    messages = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.AuthenticationError) as wrong:
        stack.openai("fbe_nosuchkey0_" + "x" * 40).chat.completions.create(
            model="chat", messages=messages
        )  # type: ignore[arg-type]
    assert wrong.value.body and "not known" in str(wrong.value.body)
    others = stack.openai(str(stack.new_key("mo", "legal-nl")["key"]))
    for model in ("chat", "dutch-llm/chat"):
        with pytest.raises(openai.NotFoundError):
            others.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
    key = stack.new_key("pieter", "dutch-llm")
    client = stack.openai(str(key["key"]))
    client.chat.completions.create(model="chat", messages=messages)  # type: ignore[arg-type]
    with stack.api("pieter") as c:
        assert (
            c.delete(f"/api/v1/projects/dutch-llm/endpoint-keys/{key['prefix']}").status_code == 200
        )

    def refused() -> bool:
        try:
            client.chat.completions.create(model="chat", messages=messages)  # type: ignore[arg-type]
        except openai.AuthenticationError as exc:
            return "revoked" in str(exc.body)
        return False

    wait_for(refused, "the revoked key refused")


def test_a_per_minute_limit_answers_429_with_retry_after(stack: Stack) -> None:
    client = stack.openai(str(stack.new_key("pieter", "dutch-llm", requests_per_minute=2)["key"]))
    refusals = []
    # Five requests: at most two per minute window pass, so one is refused even when the
    # minute turns among them.
    for _ in range(5):
        try:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "x"}]
            )
        except openai.RateLimitError as exc:
            refusals.append(exc)
    assert refusals
    assert int(refusals[0].response.headers["retry-after"]) >= 1
    assert refusals[0].code == "rate_limit_exceeded"


def test_a_request_too_large_for_the_model_gets_the_replicas_400(stack: Stack) -> None:
    client = stack.openai(str(stack.new_key("pieter", "dutch-llm")["key"]))
    with pytest.raises(openai.BadRequestError) as too_large:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "w " * 600}]
        )
    assert "maximum context length is 512" in str(too_large.value)


def test_a_client_that_leaves_mid_stream_stops_the_replica_and_is_counted(stack: Stack) -> None:
    key = stack.new_key("pieter", "dutch-llm")
    body = {"model": "slow", "stream": True, "max_tokens": 400,
            "messages": [{"role": "user", "content": "een twee drie"}]}  # fmt: skip
    before = httpx.get(stack.upstreams["slow"] + "/stats").json()["cancelled"]
    headers = {"Authorization": f"Bearer {key['key']}"}
    with httpx.stream("POST", stack.url + "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200
        received = 0
        for line in r.iter_lines():
            received += line.startswith("data:")
            if received >= 5:
                break
    wait_for(
        lambda: httpx.get(stack.upstreams["slow"] + "/stats").json()["cancelled"] > before,
        "the replica's generation cancelled",
    )

    def counted() -> bool:
        used = stack.usage("pieter", "dutch-llm", key["id"])
        return used["requests"] == 1 and 5 <= used["completion_tokens"] < 400

    wait_for(counted, "the tokens streamed before the client left counted")


def test_a_replica_killed_under_load_loses_no_request_that_had_not_streamed(stack: Stack) -> None:
    client = stack.openai(str(stack.new_key("pieter", "dutch-llm")["key"]))

    def ask(i: int) -> str:
        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": f"vraag {i}"}], max_tokens=2
        )
        return answer.choices[0].message.content or ""

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ask, i) for i in range(120)]
        wait_for(lambda: sum(f.done() for f in futures) >= 20, "some requests answered")
        stack.procs["b"].kill()
        answers = [f.result() for f in futures]
    assert answers == [f"vraag {i}" for i in range(120)]


def fabriek_cli(stack: Stack, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "FABRIEK_CONFIG_DIR": str(tmp),
           "FABRIEK_URL": stack.url, "FABRIEK_TOKEN": demo_token("pieter").token}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "fabriek.main", *args], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_the_cli_creates_lists_and_revokes_keys_and_shows_usage(
    stack: Stack, tmp_path: Path
) -> None:
    made = fabriek_cli(stack, tmp_path, "endpoint", "key", "create", "ci", "-e", "chat",
                       "--rpm", "100", "-p", "dutch-llm")  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = next(line for line in made.stdout.splitlines() if line.startswith("fbe_"))
    stack.openai(secret).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "een"}], max_tokens=1
    )
    with pytest.raises(openai.PermissionDeniedError):
        stack.openai(secret).chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "een"}], max_tokens=1
        )
    listed = fabriek_cli(stack, tmp_path, "endpoint", "key", "list", "-p", "dutch-llm")
    assert "ci" in listed.stdout and "100 req/min" in listed.stdout

    def used() -> bool:
        out = fabriek_cli(
            stack, tmp_path, "endpoint", "usage", "--key", "ci", "--json", "-p", "dutch-llm"
        )
        rows = json.loads(out.stdout)
        return len(rows) == 1 and rows[0]["requests"] == 1 and rows[0]["key_name"] == "ci"

    wait_for(used, "the CLI shows the key's usage")
    table = fabriek_cli(stack, tmp_path, "endpoint", "usage", "-p", "dutch-llm").stdout
    assert "prompt tokens" in table and "key ci" in table
    gone = fabriek_cli(stack, tmp_path, "endpoint", "key", "revoke", "ci", "-p", "dutch-llm")
    assert gone.returncode == 0 and "revoked" in gone.stdout
    missing = fabriek_cli(stack, tmp_path, "endpoint", "key", "revoke", "nosuch", "-p", "dutch-llm")
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1


def test_an_endpoint_at_zero_is_woken_and_a_timeout_answers_503(stack: Stack) -> None:
    route = stack.routes.routes["dutch-llm/slow"]
    woken: list[int] = []
    gateway = stack.app.state.gateway
    stack.routes.routes["dutch-llm/slow"] = replace(route, replicas=(), scaled_to_zero=True)
    gateway.routes._entries.clear()
    gateway.wake, gateway.wake_timeout_s = woken.append, 1.0
    try:
        with pytest.raises(openai.InternalServerError) as failed:
            stack.openai(demo_token("pieter").token).chat.completions.create(
                model="dutch-llm/slow", messages=[{"role": "user", "content": "x"}]
            )
        assert failed.value.status_code == 503 and "no replica of slow" in str(failed.value.body)
        assert failed.value.response.headers["retry-after"]
        assert woken == [route.endpoint_id]

        def refuse(_endpoint_id: int) -> None:
            raise InvalidInput.on("endpoint", "its creator left and the project has no PI")

        gateway.wake = refuse
        with pytest.raises(openai.InternalServerError) as held:
            stack.openai(demo_token("pieter").token).chat.completions.create(
                model="dutch-llm/slow", messages=[{"role": "user", "content": "x"}]
            )
        assert held.value.status_code == 503 and held.value.code == "no_replica"
        assert "can start" in held.value.message and "no PI" in held.value.message
    finally:
        stack.routes.routes["dutch-llm/slow"] = route
        gateway.routes._entries.clear()


def test_the_portal_shows_a_projects_endpoint_usage(stack: Stack) -> None:
    client = stack.openai(str(stack.new_key("pieter", "dutch-llm")["key"]))
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "een"}])
    with httpx.Client(base_url=stack.url, timeout=30) as portal:
        signed = portal.post("/signin", data={"token": demo_token("pieter").token, "next": "/home"})
        assert signed.status_code == 303

        def shown() -> bool:
            html = portal.get("/endpoint-usage", params={"project": "dutch-llm"}).text
            return 'id="endpoint-usage"' in html and "key k" in html

        wait_for(shown, "the usage table in the portal")
        page = portal.get("/endpoint-usage", params={"project": "dutch-llm"}).text
        assert 'id="endpoint-energy"' in page and "kWh per 1,000 tokens" in page
        other = portal.get("/endpoint-usage", params={"project": "legal-nl"})
        assert other.status_code == 404


def test_the_cpu_model_server_through_the_gateway(stack: Stack) -> None:
    """The real model server (tiny NumPy model) behind the gateway: tokens, streaming and
    the usage the server reports are what the gateway counts."""
    from tests.model_fixtures import model_server, tiny_model

    route = stack.routes.routes["dutch-llm/tiny"]
    with model_server(tiny_model()) as server:
        target = ReplicaTarget(
            99, route.endpoint_id, 0, server.base_url, server.secret, server.name
        )
        stack.routes.routes["dutch-llm/tiny"] = replace(route, replicas=(target,))
        stack.app.state.gateway.routes._entries.clear()
        key = stack.new_key("pieter", "dutch-llm")
        client = stack.openai(str(key["key"]))
        messages = [{"role": "user", "content": "The factory trains models"}]
        answer = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8)  # type: ignore[arg-type]
        assert answer.usage is not None and answer.usage.completion_tokens > 0
        assert answer.model == server.name
        chunks = list(
            client.chat.completions.create(
                model="tiny",
                messages=messages,
                max_tokens=8,
                stream=True,  # type: ignore[arg-type]
                stream_options={"include_usage": True},
            )
        )
        streamed = chunks[-1].usage
        assert streamed is not None and not chunks[-1].choices
        assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) >= 1
        expected = {
            "requests": 2,
            "failed_requests": 0,
            "prompt_tokens": answer.usage.prompt_tokens + streamed.prompt_tokens,
            "completion_tokens": answer.usage.completion_tokens + streamed.completion_tokens,
        }
        wait_for(lambda: stack.usage("pieter", "dutch-llm", key["id"]) == expected, "usage")
        # The model's own context limit, as the server names it, reaches the client.
        with pytest.raises(openai.BadRequestError) as too_large:
            client.completions.create(model="tiny", prompt="fox " * 3000, max_tokens=4)
        assert "maximum context length is 2048 tokens" in str(too_large.value)
    stack.routes.routes["dutch-llm/tiny"] = route


def test_a_spent_allocation_refuses_new_requests_with_402(stack: Stack) -> None:
    client = stack.openai(str(stack.new_key("mo", "legal-nl")["key"]))
    messages = [{"role": "user", "content": "recht"}]
    client.chat.completions.create(model="law", messages=messages)  # type: ignore[arg-type]
    sessions = stack.app.state.context.sessions
    with sessions() as s:
        project = s.scalars(select(ProjectRow.id).where(ProjectRow.name == "legal-nl")).one()
        rows = list(s.scalars(select(AllocationRow).where(AllocationRow.project_id == project)))
        awarded = {r.id: r.gpu_hours for r in rows}
        for r in rows:
            r.gpu_hours = 0.0
        s.commit()
    gateway = stack.app.state.gateway
    try:
        gateway.refusal_cache._entries.clear()
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="law", messages=messages)  # type: ignore[arg-type]
        assert refused.value.status_code == 402
        assert refused.value.code == "allocation_spent" and "spent" in refused.value.message
    finally:
        with sessions() as s:
            for r in s.scalars(select(AllocationRow).where(AllocationRow.id.in_(list(awarded)))):
                r.gpu_hours = awarded[r.id]
            s.commit()
        gateway.refusal_cache._entries.clear()
    client.chat.completions.create(model="law", messages=messages)  # type: ignore[arg-type]


def test_a_running_stream_finishes_when_the_allocation_runs_out(stack: Stack) -> None:
    key = stack.new_key("pieter", "dutch-llm")
    prompt = "een twee drie vier vijf zes zeven acht negen tien"  # echoed: 40 tokens
    body = {"model": "slow", "stream": True, "max_tokens": 40,
            "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {key['key']}"}
    sessions = stack.app.state.context.sessions
    gateway = stack.app.state.gateway
    awarded: dict[int, float] = {}
    try:
        with httpx.stream(
            "POST", stack.url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        ) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            events = [next(line for line in lines if line.startswith("data:"))]
            # The stream is under way: the project's allocation is spent now.
            with sessions() as s:
                project = s.scalars(select(ProjectRow.id).where(ProjectRow.name == "dutch-llm"))
                owner = project.one()
                for row in s.scalars(
                    select(AllocationRow).where(AllocationRow.project_id == owner)
                ):
                    awarded[row.id], row.gpu_hours = row.gpu_hours, 0.0
                s.commit()
            gateway.refusal_cache._entries.clear()
            with pytest.raises(openai.APIStatusError) as refused:
                stack.openai(str(key["key"])).chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "x"}]
                )
            assert refused.value.status_code == 402 and refused.value.code == "allocation_spent"
            events += [line for line in lines if line.startswith("data:")]
    finally:
        with sessions() as s:
            for row in s.scalars(select(AllocationRow).where(AllocationRow.id.in_(list(awarded)))):
                row.gpu_hours = awarded[row.id]
            s.commit()
        gateway.refusal_cache._entries.clear()
    # The stream that was running got every token it asked for, and its end.
    assert events[-1] == "data: [DONE]"
    words = [json.loads(e[5:])["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert len([w for w in words if w]) == 40


def test_a_stale_route_is_read_again_when_its_replicas_fail(stack: Stack) -> None:
    """A route cached before a rollout or a replacement names a replica that is gone; the
    request is sent to the replica healthy now rather than refused."""
    route = stack.routes.routes["dutch-llm/tiny"]
    gone = ReplicaTarget(70, route.endpoint_id, 0, f"http://127.0.0.1:{free_port()}", "", "t")
    now = ReplicaTarget(71, route.endpoint_id, 0, stack.upstreams["a"], "", "tiny:2")
    gateway = stack.app.state.gateway
    stack.routes.routes["dutch-llm/tiny"] = replace(route, replicas=(now,))
    try:
        gateway.routes._entries.clear()
        gateway.routes.put((None, "tiny", route.project_id), replace(route, replicas=(gone,)))
        client = stack.openai(str(stack.new_key("pieter", "dutch-llm")["key"]))
        answer = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "nog hier"}], max_tokens=2
        )
        assert answer.choices[0].message.content == "nog hier"
    finally:
        stack.routes.routes["dutch-llm/tiny"] = route
        gateway.routes._entries.clear()


def test_a_replica_failing_mid_stream_ends_the_stream_with_an_error_event(stack: Stack) -> None:
    key = stack.new_key("pieter", "dutch-llm")
    body = {"model": "chat", "stream": True, "max_tokens": 8,
            "messages": [{"role": "user", "content": "een twee BREAK"}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {key['key']}"}
    with httpx.stream("POST", stack.url + "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data:")]
    assert json.loads(events[0][5:])["choices"][0]["delta"]["content"] == "een"
    last = json.loads(events[-1][5:])
    assert last["error"]["type"] == "upstream_error" and "mid-stream" in last["error"]["message"]

    def counted() -> bool:
        used = stack.usage("pieter", "dutch-llm", key["id"])
        return (
            used["requests"] == 1
            and used["failed_requests"] == 1
            and used["completion_tokens"] == 2
        )

    wait_for(counted, "the failed stream counted with its tokens")


def test_a_monthly_budget_and_an_expiry_are_enforced(stack: Stack) -> None:
    messages = [{"role": "user", "content": "een twee drie"}]
    budget = stack.openai(str(stack.new_key("pieter", "dutch-llm", tokens_per_month=5)["key"]))
    budget.chat.completions.create(model="chat", messages=messages, max_tokens=4)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as spent:
        budget.chat.completions.create(model="chat", messages=messages, max_tokens=4)  # type: ignore[arg-type]
    assert spent.value.code == "monthly_budget_exhausted"
    assert int(spent.value.response.headers["retry-after"]) >= 1

    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    expiring = stack.openai(str(stack.new_key("pieter", "dutch-llm", expires_at=soon)["key"]))
    expiring.chat.completions.create(model="chat", messages=messages, max_tokens=1)  # type: ignore[arg-type]

    def refused() -> bool:
        try:
            expiring.chat.completions.create(model="chat", messages=messages, max_tokens=1)  # type: ignore[arg-type]
        except openai.AuthenticationError as exc:
            return "expired" in str(exc.body)
        return False

    wait_for(refused, "the expired key refused")


def test_a_key_is_shown_once_and_kept_only_as_its_hash(stack: Stack) -> None:
    made = stack.new_key("pieter", "dutch-llm")
    secret = str(made["key"])
    with stack.api("pieter") as c:
        listed = c.get("/api/v1/projects/dutch-llm/endpoint-keys")
    assert listed.status_code == 200 and str(made["prefix"]) in listed.text
    # The secret part follows the shown prefix; it may itself hold "_" (base64url).
    hidden = secret.removeprefix(str(made["prefix"]) + "_")
    assert len(hidden) >= 20 and hidden != secret
    assert secret not in listed.text and hidden not in listed.text
    with stack.app.state.context.sessions() as s:
        row = s.scalars(select(EndpointKeyRow).where(EndpointKeyRow.id == made["id"])).one()
        stored = [str(getattr(row, c.key)) for c in EndpointKeyRow.__table__.columns]
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(hidden in value for value in stored)


def test_a_per_minute_token_limit_answers_429_once_the_minutes_tokens_are_used(
    stack: Stack,
) -> None:
    client = stack.openai(str(stack.new_key("pieter", "dutch-llm", tokens_per_minute=6)["key"]))
    messages = [{"role": "user", "content": "een twee drie"}]
    refusals = []
    # Each request uses 3 + 3 tokens: at most one per minute window fits, so of three
    # requests one is refused even when the minute turns among them.
    for _ in range(3):
        try:
            client.chat.completions.create(model="chat", messages=messages, max_tokens=3)  # type: ignore[arg-type]
        except openai.RateLimitError as exc:
            refusals.append(exc)
    assert refusals and refusals[0].code == "rate_limit_exceeded"
    assert int(refusals[0].response.headers["retry-after"]) >= 1


def test_a_server_that_reports_no_usage_is_counted_by_the_gateway(stack: Stack) -> None:
    key = stack.new_key("pieter", "dutch-llm")
    client = stack.openai(str(key["key"]))
    messages = [{"role": "user", "content": "NOUSAGE een twee"}]
    answer = client.chat.completions.create(model="chat", messages=messages, max_tokens=5)  # type: ignore[arg-type]
    assert answer.usage is None and answer.choices[0].message.content
    streamed = list(
        client.chat.completions.create(model="chat", messages=messages, max_tokens=4, stream=True)  # type: ignore[arg-type]
    )
    assert all(c.usage is None for c in streamed)
    # The prompt's words (3 each), the answer's words (5) and one per streamed chunk (4).
    expected = {"requests": 2, "failed_requests": 0, "prompt_tokens": 6, "completion_tokens": 9}
    wait_for(lambda: stack.usage("pieter", "dutch-llm", key["id"]) == expected, "usage counted")


def test_a_stream_whose_replica_is_down_before_its_first_event_goes_to_another(
    stack: Stack,
) -> None:
    route = stack.routes.routes["dutch-llm/tiny"]
    down = ReplicaTarget(80, route.endpoint_id, 0, f"http://127.0.0.1:{free_port()}", "", "t")
    up = ReplicaTarget(81, route.endpoint_id, 0, stack.upstreams["a"], "", "t")
    gateway = stack.app.state.gateway
    # The replica that is down comes first: with none in flight, it is the one picked.
    stack.routes.routes["dutch-llm/tiny"] = replace(route, replicas=(down, up))
    try:
        gateway.routes._entries.clear()
        key = stack.new_key("pieter", "dutch-llm")
        client = stack.openai(str(key["key"]))
        for _ in range(3):
            chunks = list(
                client.chat.completions.create(
                    model="tiny",
                    messages=[{"role": "user", "content": "een twee"}],
                    max_tokens=4,
                    stream=True,
                )  # type: ignore[call-overload]
            )
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            assert text.split() == ["een", "twee", "een", "twee"]
        expected = {"requests": 3, "failed_requests": 0, "prompt_tokens": 6,
                    "completion_tokens": 12}  # fmt: skip
        wait_for(lambda: stack.usage("pieter", "dutch-llm", key["id"]) == expected, "counted")
    finally:
        stack.routes.routes["dutch-llm/tiny"] = route
        gateway.routes._entries.clear()


def test_a_suspended_project_s_endpoints_refuse_new_requests_with_403_until_lifted(
    stack: Stack,
) -> None:
    """A suspension stops what would start: each request is that, so an admin's
    suspension of the project (through the API) refuses the next call with the reason,
    while the replica keeps running; lifting it lets the same key through again."""
    client = stack.openai(str(stack.new_key("mo", "legal-nl")["key"]))
    messages = [{"role": "user", "content": "recht"}]
    client.chat.completions.create(model="law", messages=messages)  # type: ignore[arg-type]
    gateway = stack.app.state.gateway
    admin = stack.api("admin")
    path = "/api/v1/projects/legal-nl/suspension"
    try:
        put = admin.put(path, json={"reason": "unpaid invoice 2026-11"})
        assert put.status_code == 200, put.text
        gateway.refusal_cache._entries.clear()  # what REFUSAL_TTL_S would do within 10 s
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="law", messages=messages)  # type: ignore[arg-type]
        assert refused.value.status_code == 403
        assert refused.value.code == "project_suspended"
        assert "unpaid invoice 2026-11" in refused.value.message
        assert "legal-nl" in refused.value.message
        # A member's own token is refused the same way: the project, not the key, decides.
        member = stack.api("mo")
        body = {"model": "legal-nl/law", "messages": messages}
        answer = member.post("/v1/chat/completions", json=body)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "project_suspended"
    finally:
        assert admin.delete(path).status_code == 200
        gateway.refusal_cache._entries.clear()
    client.chat.completions.create(model="law", messages=messages)  # type: ignore[arg-type]
