"""`fabriek serve` as `make up` runs it: migrate, load the demo, serve, say how to sign in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from fabriek.services.demo.seed import demo_token
from tests.servers import free_port


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fabriek.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_main_job_from_an_empty_directory(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FABRIEK_PORT": str(port), "COLUMNS": "200"}
    env.pop("FABRIEK_DATABASE_URL", None)
    # The default database lives under ./.fabriek of where the server runs.
    cwd = tmp_path

    def here(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fabriek.main", *args],
            env=env, cwd=cwd, capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    assert here("db", "upgrade").returncode == 0
    loaded = here("demo", "load", "--if-empty")
    assert loaded.returncode == 0 and "admin" in loaded.stdout
    assert (cwd / ".fabriek" / "fabriek.db").exists()
    again = here("demo", "load", "--if-empty")
    assert again.returncode == 0
    server = subprocess.Popen(
        [sys.executable, "-m", "fabriek.main", "serve"],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready within 60 s"
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            time.sleep(0.1)
        page = httpx.get(f"http://127.0.0.1:{port}/").text
        assert "groningen" in page and "AI-hub Brightlands" in page
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}" in out
    assert "fabriek login" in out and "fbk_" in out
    # The line to copy signs in a member of projects, so the README's `fabriek run` works.
    assert "Sign in as maria, member of dutch-llm, photonic-inspect" in out
    assert f"--token {demo_token('maria').token}" in out
    assert demo_token("admin").token not in out
    assert "pieter   principal-investigator of dutch-llm" in out and "eva      access-team" in out


def test_serve_on_a_port_in_use_says_so_in_one_line_before_anything_else(tmp_path: Path) -> None:
    env = {**os.environ, "FABRIEK_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    assert run("db", "upgrade", env=env).returncode == 0
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("serve", "--port", str(port), env=env)
    assert result.returncode == 1 and result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"cannot serve on 127.0.0.1:{port}" in line
    assert "--port" in line and "FABRIEK_PORT" in line


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {**os.environ, "FABRIEK_DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    result = run("serve", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "fabriek db upgrade" in result.stderr and "Traceback" not in result.stderr


def test_serve_on_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://fabriek:pw@127.0.0.1:1/none"
    result = run("serve", env={**os.environ, "FABRIEK_DATABASE_URL": url})
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "127.0.0.1:1" in line and ":pw@" not in line
