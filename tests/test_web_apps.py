"""Web apps behind Fabriek's proxy, end to end on the local engine through real HTTP and a
real WebSocket: the owner gets through (token or portal session), another user gets 403,
nobody signed in gets 401 (a browser: the sign-in page), and the app itself refuses anyone
who comes round the proxy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from fabriek.services.demo.seed import demo_token
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.own_loop import run_on_own_loop
from tests.servers import LiveServer

APP = (Path(__file__).parent / "web_app_echo.py").read_text()


def wait_until_served(c: httpx.Client, job_id: int) -> httpx.Response:
    """The app's first answer through the proxy, once it listens (503 until then)."""
    deadline = time.monotonic() + 60
    while True:
        answer = c.get(f"/apps/{job_id}/hello?x=1")
        if answer.status_code != 503 and answer.status_code != 409:
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.1)


@pytest.fixture
def web_job(client: Client) -> Iterator[dict[str, Any]]:
    """A running job of maria's serving the echo app."""
    maria = client("maria")
    job = submit(maria, command=py(APP), web_port=8080, time_limit=600)
    wait_for(maria, job["id"], {"running"})
    yield job
    maria.post(f"/api/v1/jobs/{job['id']}/cancel")


def test_the_owner_reaches_the_app_and_its_answer_passes_through(
    client: Client, web_job: dict[str, Any]
) -> None:
    maria = client("maria")
    answer = wait_until_served(maria, web_job["id"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-app"] == "echo"
    seen = answer.json()
    assert seen["path"] == f"/apps/{web_job['id']}/hello?x=1"
    assert seen["job"] == str(web_job["id"])
    # The app never sees the caller's Fabriek credentials.
    assert seen["authorization"] is None and seen["cookie"] is None
    shown = maria.get(f"/api/v1/jobs/{web_job['id']}").json()
    assert shown["web_port"] == 8080


def test_the_portal_session_opens_it_and_the_bare_address_gains_its_slash(
    client: Client, browser: Callable[[str], httpx.Client], web_job: dict[str, Any]
) -> None:
    wait_until_served(client("maria"), web_job["id"])
    page = browser("maria")
    assert page.get(f"/apps/{web_job['id']}/x").json()["path"] == f"/apps/{web_job['id']}/x"
    bare = page.get(f"/apps/{web_job['id']}")
    assert bare.status_code == 307 and bare.headers["location"] == f"/apps/{web_job['id']}/"


def test_another_user_is_refused_and_nobody_signed_in_is_sent_to_sign_in(
    client: Client, browser: Callable[[str], httpx.Client], web_job: dict[str, Any]
) -> None:
    wait_until_served(client("maria"), web_job["id"])
    path = f"/apps/{web_job['id']}/hello"
    problem = problem_of(client("mo").get(path), 403)
    assert "only to the person who started it" in str(problem["detail"])
    problem_of(browser("sanne").get(path), 403)
    problem_of(client().get(path), 401)
    signin = client().get(path, headers={"accept": "text/html"})
    assert signin.status_code == 303 and signin.headers["location"].startswith("/signin?next=")
    problem_of(client("maria").get(path, headers={"origin": "https://elsewhere.example"}), 403)


def test_the_app_refuses_whoever_comes_round_the_proxy(
    client: Client, server: LiveServer, web_job: dict[str, Any]
) -> None:
    wait_until_served(client("maria"), web_job["id"])
    env = _job_env(server, web_job["id"])
    direct = httpx.get(f"http://127.0.0.1:{env['FABRIEK_WEB_PORT']}/apps/{web_job['id']}/")
    assert direct.status_code == 403


def test_websocket_messages_echo_through_the_proxy_for_the_owner_only(
    client: Client, server: LiveServer, web_job: dict[str, Any]
) -> None:
    wait_until_served(client("maria"), web_job["id"])
    url = server.url.replace("http://", "ws://") + f"/apps/{web_job['id']}/ws"

    async def talk(user: str) -> list[str]:
        headers = {"Authorization": f"Bearer {demo_token(user).token}"}
        async with connect(url, additional_headers=headers) as ws:
            got = []
            for text in ("hello", "x" * 70_000):
                await ws.send(text)
                got.append(str(await ws.recv()))
            return got

    assert run_on_own_loop(talk("maria")) == ["echo: hello", "echo: " + "x" * 70_000]
    with pytest.raises(InvalidStatus) as refused:
        run_on_own_loop(talk("mo"))
    assert refused.value.response.status_code == 403


def test_a_job_without_a_web_app_has_none_to_open(client: Client) -> None:
    maria = client("maria")
    job = submit(maria, command=["true"])
    problem_of(maria.get(f"/apps/{job['id']}/"), 404)
    problem_of(maria.get("/apps/99999999/"), 404)


def _job_env(server: LiveServer, job_id: int) -> dict[str, str]:
    """The environment the local engine started the job with (its job file)."""
    from fabriek.engines import local_runner as files

    for job_file in Path(server.settings.state_dir).rglob(files.JOB_FILE):
        meta = files.read_json(job_file)
        if meta is not None and meta.get("job_id") == job_id:
            env: dict[str, str] = meta["env"]
            return env
    raise AssertionError(f"no job file for job {job_id}")
