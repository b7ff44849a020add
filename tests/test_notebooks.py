"""Notebooks end to end on the local engine, with a real JupyterLab (pip-installed once by
the test setup into a world-readable cache, named in the sites file): started through the
API and `fabriek notebook`, opened through Fabriek's proxy by their owner only, a cell run
on a kernel over the proxied WebSocket sees the job's GPUs, and an idle one is stopped with
its files kept, its owner told and its time charged."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabriek.engines import local_runner as files
from fabriek.services.demo.seed import SITES, demo_token
from fabriek.settings import Settings
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.jupyter_install import Unavailable, ensure_jupyter
from tests.jupyter_kernel import channel_url, run_cell, start_kernel, wait_for_lab
from tests.own_loop import run_on_own_loop
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.test_cli import fabriek, one_line_error
from tests.test_web_apps import wait_until_served

# Short enough to watch a notebook be stopped, long enough for JupyterLab to start on a
# busy machine and for a test to use it without pauses.
IDLE_MINUTES = 0.5


@pytest.fixture(scope="module")
def jupyter() -> Path:
    try:
        return ensure_jupyter()
    except Unavailable as why:
        pytest.skip(f"NOTEBOOK TESTS SKIPPED: {why}")


def sites_file(folder: Path, jupyter: Path) -> Path:
    """Every demo site on the local engine, with the test's JupyterLab as its Jupyter."""
    path = folder / "sites.toml"
    path.write_text(
        "".join(f'[sites.{s.name}]\nengine = "local"\njupyter = "{jupyter}"\n\n' for s in SITES)
    )
    return path


@pytest.fixture(scope="module")
def nb_server(jupyter: Path) -> Iterator[LiveServer]:
    """A server whose notebooks stop after IDLE_MINUTES idle, checked every second, on a
    database of its own (on a shared one, another test server could hold the dispatcher's
    lease and run these jobs on its own engine)."""
    with tempfile.TemporaryDirectory() as tmp, throwaway_database("sqlite", Path(tmp)) as url:
        prepare(url)
        settings = Settings(
            database_url=url,
            state_dir=Path(tmp) / "state",
            sites_file=sites_file(Path(tmp), jupyter),
            dispatch_interval_s=0.2,
            housekeeping_interval_s=1.0,
            notebook_idle_minutes=IDLE_MINUTES,
        )
        with live_server(settings) as live:
            yield live


@pytest.fixture
def nb(nb_server: LiveServer) -> Iterator[Client]:
    opened: list[httpx.Client] = []

    def make(username: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {demo_token(username).token}"} if username else {}
        c = httpx.Client(base_url=nb_server.url, headers=headers, timeout=30)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


def job_dir(server: LiveServer, job_id: int) -> Path:
    """The local engine's folder of the job (its job file names it)."""
    for found in Path(server.settings.state_dir).rglob(files.JOB_FILE):
        meta = files.read_json(found)
        if meta is not None and meta.get("job_id") == job_id:
            return found.parent
    raise AssertionError(f"no job folder for job {job_id}")


def cell(server: LiveServer, user: str, job_id: int, kernel: str, code: str) -> str:
    url = channel_url(server.url.replace("http://", "ws://"), f"/apps/{job_id}/", kernel)
    headers = {"Authorization": f"Bearer {demo_token(user).token}"}
    return run_on_own_loop(run_cell(url, headers, code))


def test_a_notebook_opens_for_its_owner_and_its_cells_see_the_jobs_gpus(
    nb: Client, nb_server: LiveServer
) -> None:
    maria = nb("maria")
    job = submit(maria, web_app="jupyterlab", gpus=2, time_limit="30m")
    assert job["name"] == "notebook" and job["web_app"] == "jupyterlab"
    assert job["web_port"] == 8888 and job["command"][0] == "sh"
    try:
        page = wait_for_lab(maria, job["id"])
        assert page.status_code == 200 and "JupyterLab" in page.text
        prefix = f"/apps/{job['id']}/"
        kernel = start_kernel(maria, prefix)
        printed = cell(nb_server, "maria", job["id"], kernel,
                       "import os; print('gpus=' + os.environ['CUDA_VISIBLE_DEVICES'])")  # fmt: skip
        gpus = re.fullmatch(r"gpus=([0-9,]+)\n", printed)
        assert gpus is not None, printed
        assert len(gpus.group(1).split(",")) == 2
        # Another user is refused, for the page and the kernel channel alike.
        problem_of(nb("mo").get(f"{prefix}lab"), 403)
        with pytest.raises(Exception, match="403"):
            cell(nb_server, "mo", job["id"], kernel, "print(1)")
        # Round the proxy, Jupyter itself wants the job's secret.
        env = files.read_json(job_dir(nb_server, job["id"]) / files.JOB_FILE)["env"]  # type: ignore[index]
        direct = httpx.get(f"http://127.0.0.1:{env['FABRIEK_WEB_PORT']}{prefix}api/kernels")
        assert direct.status_code == 403
    finally:
        maria.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert wait_for(maria, job["id"])["state"] == "cancelled"


def test_an_idle_notebook_is_stopped_its_files_kept_and_its_owner_told(
    nb: Client, nb_server: LiveServer
) -> None:
    maria = nb("maria")
    job = submit(maria, web_app="jupyterlab", gpus=1, time_limit="30m")
    try:
        assert wait_for_lab(maria, job["id"]).status_code == 200
        kernel = start_kernel(maria, f"/apps/{job['id']}/")
        cell(nb_server, "maria", job["id"], kernel, "open('kept.txt', 'w').write('mine')")
        # Now nobody uses it: the housekeeping round stops it after IDLE_MINUTES.
        ended = wait_for(maria, job["id"], timeout=IDLE_MINUTES * 60 + 90)
    finally:
        maria.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert ended["state"] == "cancelled", ended
    assert ended["reason"].startswith("IdleStopped: stopped after 1 min idle"), ended
    assert ended["gpu_hours"] > 0  # charged for the time it ran, like any job
    events = maria.get(f"/api/v1/jobs/{job['id']}/events").json()
    assert any(e["reason"].startswith("IdleStopped") for e in events[:-1])
    kept = job_dir(nb_server, job["id"]) / "work" / "kept.txt"
    assert kept.read_text() == "mine"
    notes = maria.get("/api/v1/notifications", params={"limit": 50}).json()["items"]
    told = [n for n in notes if n["kind"] == "notebook-idle" and str(job["id"]) in n["subject"]]
    assert len(told) == 1 and "files" in told[0]["body"]


def test_fabriek_notebook_waits_until_jupyterlab_answers_and_prints_its_url(
    nb: Client, nb_server: LiveServer, tmp_path: Path
) -> None:
    env = {"FABRIEK_URL": nb_server.url, "FABRIEK_TOKEN": demo_token("maria").token,
           "FABRIEK_CONFIG_DIR": str(tmp_path)}  # fmt: skip
    shown = json.loads(
        fabriek("notebook", "--gpus", "1", "--time", "20m", "--json", env=env).stdout
    )
    maria = nb("maria")
    try:
        assert shown["state"] == "running" and shown["time_limit_s"] == 1200
        assert shown["url"] == f"{nb_server.url}/apps/{shown['id']}/lab"
        assert maria.get(shown["url"]).status_code == 200
    finally:
        maria.post(f"/api/v1/jobs/{shown['id']}/cancel")
    printed = fabriek("notebook", "--gpus", "1", "--time", "20m", env=env).stdout
    started = re.search(r"/apps/(\d+)/lab\n$", printed)
    assert started is not None, printed
    maria.post(f"/api/v1/jobs/{started.group(1)}/cancel")
    # What no site can run is one line and a non-zero exit; nothing is started.
    refused = fabriek("notebook", "--gpus", "100000", env=env, check=False)
    assert "no site can ever run 100000 GPU" in one_line_error(refused, 2)
    assert "time" in one_line_error(fabriek("notebook", "--time", "soon", env=env, check=False), 2)


def test_a_web_app_other_than_jupyterlab_still_needs_its_command(nb: Client) -> None:
    problem = problem_of(nb("maria").post("/api/v1/jobs", json={"web_app": "gradio"}), 422)
    assert "command" in json.dumps(problem)


def test_the_portal_starts_a_notebook_and_offers_to_open_it(
    nb: Client, nb_server: LiveServer
) -> None:
    page = httpx.Client(base_url=nb_server.url, timeout=30)
    signed = page.post("/signin", data={"token": demo_token("maria").token, "next": "/home"})
    assert signed.status_code == 303
    assert 'href="/jobs/new?kind=notebook"' in page.get("/jobs").text
    form = page.get("/jobs/new", params={"kind": "notebook"}).text
    assert 'name="web_app" value="jupyterlab"' in form and "0.5 minutes" in form
    bad = page.post("/jobs", data={"web_app": "jupyterlab", "gpus": "1", "time_limit": "soon"})
    assert bad.status_code == 422 and 'value="jupyterlab"' in bad.text
    started = page.post("/jobs", data={"web_app": "jupyterlab", "gpus": "1", "time_limit": "1h"})
    assert started.status_code == 303, started.text
    job_id = int(started.headers["location"].rsplit("/", 1)[1])
    maria = nb("maria")
    try:
        assert maria.get(f"/api/v1/jobs/{job_id}").json()["web_app"] == "jupyterlab"
        wait_for(maria, job_id, {"running"})
        assert wait_for_lab(page, job_id).status_code == 200  # the portal session opens it
        # Once its app answers, the job's page offers the way in (before: "starting").
        shown = page.get(f"/jobs/{job_id}").text
        assert f'href="/apps/{job_id}/lab"' in shown and "Open the notebook" in shown
        assert 'id="app-starting"' not in shown
    finally:
        maria.post(f"/api/v1/jobs/{job_id}/cancel")
        page.close()


def test_fabriek_run_with_a_web_port_serves_its_app_through_the_proxy(
    nb: Client, nb_server: LiveServer, tmp_path: Path
) -> None:
    env = {"FABRIEK_URL": nb_server.url, "FABRIEK_TOKEN": demo_token("maria").token,
           "FABRIEK_CONFIG_DIR": str(tmp_path)}  # fmt: skip
    app = (Path(__file__).parent / "web_app_echo.py").read_text()
    args = ["run", "--web-port", "6006", "--time", "10m", "--json", "--", *py(app)]
    job = json.loads(fabriek(*args, env=env).stdout)
    maria = nb("maria")
    try:
        assert job["web_port"] == 6006
        wait_for(maria, job["id"], {"running"})
        answer = wait_until_served(maria, job["id"])
        assert answer.status_code == 200 and answer.json()["job"] == str(job["id"])
        problem_of(nb("mo").get(f"/apps/{job['id']}/"), 403)
    finally:
        maria.post(f"/api/v1/jobs/{job['id']}/cancel")
