"""Notebooks on the local engine: how long `fabriek notebook` takes to a usable JupyterLab,
and what Fabriek's web-app proxy costs against reaching the app directly, in one run.

Serves a fresh SQLite demo factory with `fabriek serve` (its own process), every site on
the local engine with the tests' pinned JupyterLab (tests/jupyter_install.py, installed on
first use) named in the sites file. Then:

1. start: `--runs` times, `fabriek notebook --gpus 1 --time 30m --json` as a user types it,
   from spawn to the command's exit (it exits once JupyterLab's page answers 200 through
   the proxy), then that page and the JupyterLab bundle it names fetched through the
   proxy (a browser's first paint needs both): median, min, max; each notebook is
   cancelled after;
2. latency: on one notebook, `--requests` small GETs of Jupyter's `/api/status`, and of a
   small Tornado app's `/ping` (bench/web_app_tornado.py, a job with `web_port`), each
   through `/apps/<id>/` and directly to the app's loopback port with the job's secret,
   interleaved: median and p95 per request, and the proxy's added time (with an ordinary
   API request, `GET /api/v1/jobs/<id>`, for scale);
3. WebSocket: the Tornado app echoes `--ws-mb` MB in 256 KiB binary messages (a window of
   8 in flight), through the proxy and directly: MB/s each way, and the ratio.

    .venv/bin/python -m bench.notebook_start --runs 5 --requests 500 --ws-mb 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tests.jupyter_install import JUPYTERLAB_VERSION, ensure_jupyter, venv_dir
from tests.jupyter_kernel import wait_for_lab
from tests.servers import free_port, prepare, spawn_serve, throwaway_database
from tests.test_notebooks import sites_file
from websockets.asyncio.client import connect

from bench.api_load import command_line, machine_description, server_env, stop_server
from fabriek.engines import local_runner as files
from fabriek.services.demo.seed import demo_token

FABRIEK = [sys.executable, "-m", "fabriek.main"]
TORNADO_APP = Path(__file__).resolve().parent / "web_app_tornado.py"
MESSAGE = 256 * 1024
WINDOW = 8


def job_env(state: Path, job_id: int) -> dict[str, str]:
    for found in state.rglob(files.JOB_FILE):
        meta = files.read_json(found)
        if meta is not None and meta.get("job_id") == job_id:
            env: dict[str, str] = meta["env"]
            return env
    raise RuntimeError(f"no job file for job {job_id}")


def stop(api: httpx.Client, job_id: int) -> None:
    api.post(f"/api/v1/jobs/{job_id}/cancel")
    deadline = time.monotonic() + 60
    while api.get(f"/api/v1/jobs/{job_id}").json()["state"] not in {"cancelled", "failed"}:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not stop")
        time.sleep(0.1)


def time_start(url: str, api: httpx.Client, env: dict[str, str]) -> tuple[float, float, int]:
    """(spawn to exit, spawn to page and bundle fetched, job id) of one `fabriek notebook`."""
    began = time.perf_counter()
    done = subprocess.run(
        [*FABRIEK, "notebook", "--gpus", "1", "--time", "30m", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    exited = time.perf_counter() - began
    shown = json.loads(done.stdout)
    page = api.get(shown["url"])
    page.raise_for_status()
    bundle = page.text.split('src="', 1)[1].split('"', 1)[0] if 'src="' in page.text else None
    if bundle:
        api.get(httpx.URL(shown["url"]).join(bundle)).raise_for_status()
    return exited, time.perf_counter() - began, int(shown["id"])


def latencies(get: Callable[[], httpx.Response], n: int) -> list[float]:
    out = []
    for _ in range(n):
        began = time.perf_counter()
        get().raise_for_status()
        out.append((time.perf_counter() - began) * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def compare(name: str, proxied: Callable[[], httpx.Response],
            direct: Callable[[], httpx.Response], n: int) -> list[str]:  # fmt: skip
    """Interleaved rounds of `n` GETs each way; a report line per way and the difference."""
    p: list[float] = []
    d: list[float] = []
    latencies(proxied, 20), latencies(direct, 20)  # warm both connection pools
    for _ in range(5):
        p += latencies(proxied, n // 5)
        d += latencies(direct, n // 5)
    pm, dm = statistics.median(p), statistics.median(d)
    return [
        f"{name}, through the proxy: median {pm:.2f} ms, p95 {pct(p, 0.95):.2f} ms",
        f"{name}, direct:            median {dm:.2f} ms, p95 {pct(d, 0.95):.2f} ms",
        f"{name}, added by the proxy: median {pm - dm:+.2f} ms, "
        f"p95 {pct(p, 0.95) - pct(d, 0.95):+.2f} ms ({pm / dm:.1f}x)",
    ]


async def echo_mb_s(url: str, headers: dict[str, str], total_mb: int) -> float:
    """MB/s of binary messages echoed through `url` (a window of WINDOW in flight)."""
    payload = os.urandom(MESSAGE)
    count = max(WINDOW, total_mb * 1024 * 1024 // MESSAGE)
    async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        began = time.perf_counter()
        sent = received = 0
        while received < count:
            while sent < count and sent - received < WINDOW:
                await ws.send(payload)
                sent += 1
            got = await ws.recv()
            assert len(got) == MESSAGE
            received += 1
        elapsed = time.perf_counter() - began
    return count * MESSAGE / 1e6 / elapsed


def run(args: argparse.Namespace) -> list[str]:
    jupyter = ensure_jupyter()
    lines = [f"JupyterLab {JUPYTERLAB_VERSION}", *machine_description(), command_line()]
    with tempfile.TemporaryDirectory() as tmp, throwaway_database("sqlite", Path(tmp)) as db:
        prepare(db)
        port = free_port()
        env = server_env(db, port, Path(tmp) / "state")
        env.update(FABRIEK_SITES_FILE=str(sites_file(Path(tmp), jupyter)),
                   FABRIEK_DISPATCH_INTERVAL_S="0.2", FABRIEK_NOTEBOOK_IDLE_MINUTES="0")  # fmt: skip
        server = spawn_serve(env, port)
        url = f"http://127.0.0.1:{port}"
        token = demo_token("maria").token
        cli_env = {**os.environ, "FABRIEK_URL": url, "FABRIEK_TOKEN": token,
                   "FABRIEK_CONFIG_DIR": str(Path(tmp) / "cli")}  # fmt: skip
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                           timeout=60)  # fmt: skip
        try:
            lines += measure(args, api, url, cli_env, Path(tmp) / "state")
        finally:
            api.close()
            stop_server(server)
    return lines


def measure(
    args: argparse.Namespace, api: httpx.Client, url: str, cli_env: dict[str, str], state: Path
) -> list[str]:
    exits, usable = [], []
    for _ in range(args.runs):
        exited, page, job_id = time_start(url, api, cli_env)
        exits.append(exited)
        usable.append(page)
        stop(api, job_id)
    lines = [
        f"start ({args.runs} runs): `fabriek notebook` spawn to exit: median "
        f"{statistics.median(exits):.2f} s (min {min(exits):.2f}, max {max(exits):.2f}); "
        f"to the page and its bundle fetched: median {statistics.median(usable):.2f} s "
        f"(min {min(usable):.2f}, max {max(usable):.2f})"
    ]
    notebook = api.post("/api/v1/jobs", json={"web_app": "jupyterlab", "time_limit": "30m"})
    nb_id = notebook.json()["id"]
    app_body: dict[str, Any] = {
        "command": [str(venv_dir() / "bin" / "python"), str(TORNADO_APP)],
        "web_port": 8080, "time_limit": "30m", "name": "bench-echo",
    }  # fmt: skip
    app_id = api.post("/api/v1/jobs", json=app_body).json()["id"]
    try:
        wait_for_lab(api, nb_id)
        deadline = time.monotonic() + 60
        while api.get(f"/apps/{app_id}/ping").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the Tornado app did not answer")
            time.sleep(0.1)
        nb_env, app_env = job_env(state, nb_id), job_env(state, app_id)
        nb_direct = httpx.Client(
            base_url=f"http://127.0.0.1:{nb_env['FABRIEK_WEB_PORT']}",
            headers={"Authorization": f"token {nb_env['FABRIEK_WEB_SECRET']}"},
        )
        secret = {"x-fabriek-web-secret": app_env["FABRIEK_WEB_SECRET"]}
        app_direct = httpx.Client(
            base_url=f"http://127.0.0.1:{app_env['FABRIEK_WEB_PORT']}", headers=secret
        )
        n = args.requests
        lines += compare("Jupyter /api/status", lambda: api.get(f"/apps/{nb_id}/api/status"),
                         lambda: nb_direct.get(f"/apps/{nb_id}/api/status"), n)  # fmt: skip
        lines += compare("Tornado /ping", lambda: api.get(f"/apps/{app_id}/ping"),
                         lambda: app_direct.get(f"/apps/{app_id}/ping"), n)  # fmt: skip
        # For scale: an ordinary API request of the same server (token, one row read).
        api_ms = latencies(lambda: api.get(f"/api/v1/jobs/{app_id}"), n)
        lines.append(
            f"for scale, GET /api/v1/jobs/<id>: median {statistics.median(api_ms):.2f} ms, "
            f"p95 {pct(api_ms, 0.95):.2f} ms"
        )
        ws_path = f"/apps/{app_id}/ws"
        proxied_url = url.replace("http://", "ws://") + ws_path
        direct_url = f"ws://127.0.0.1:{app_env['FABRIEK_WEB_PORT']}{ws_path}"
        bearer = {"Authorization": api.headers["Authorization"]}
        proxied = [asyncio.run(echo_mb_s(proxied_url, bearer, args.ws_mb)) for _ in range(3)]
        direct = [asyncio.run(echo_mb_s(direct_url, secret, args.ws_mb)) for _ in range(3)]
        pm, dm = statistics.median(proxied), statistics.median(direct)
        lines += [
            f"WebSocket echo ({args.ws_mb} MB in {MESSAGE // 1024} KiB messages, "
            f"{WINDOW} in flight, median of 3): through the proxy {pm:.0f} MB/s, "
            f"direct {dm:.0f} MB/s ({pm / dm:.2f} of direct)"
        ]
    finally:
        stop(api, nb_id)
        stop(api, app_id)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--ws-mb", type=int, default=64)
    for line in run(parser.parse_args()):
        print(line)


if __name__ == "__main__":
    main()
