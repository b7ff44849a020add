"""`fabriek site-agent run` end to end: a Fabriek server with the demo factory, the real
accounting cluster of its site `groningen` (slurmctld, slurmd, slurmdbd on MariaDB), and the
agent as its own process with the site's token, as a site runs it.

The agent runs with --no-posix here (as on a site's Slurm controller): the demo factory's
people are not made as Unix accounts on the test machine; tests/slurm/test_site_agent.py
covers the POSIX side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fabriek.services.demo.seed import demo_token
from tests.servers import LiveServer, free_port
from tests.slurm_harness import SlurmCluster, SlurmClusterError, ensure_accounting_installed

pytestmark = pytest.mark.slurm

SITE = "groningen"  # the demo site; its cluster has the same name


@pytest.fixture
def site(slurm_ready: None) -> Iterator[SlurmCluster]:
    if reason := ensure_accounting_installed():
        pytest.skip(reason)
    cluster = SlurmCluster(SITE, gpu_type="h100", gpus=2, accounting=True)
    try:
        cluster.start()
    except SlurmClusterError as error:
        cluster.remove()
        pytest.fail(f"the accounting test site did not start:\n{error}")
    try:
        yield cluster
    finally:
        cluster.stop()
        cluster.remove()


def agent(
    env: dict[str, str], url: str, token_file: Path, state_dir: Path, *more: str
) -> subprocess.CompletedProcess[str]:
    """`fabriek site-agent run --once`, as the site's service would run it."""
    return subprocess.run(
        [sys.executable, "-m", "fabriek.main", "site-agent", "run", "--url", url,
         "--site", SITE, "--token-file", str(token_file), "--state-dir", str(state_dir),
         "--once", "--no-posix", *more],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_agent_pulls_applies_and_the_operator_sees_its_report(
    server: LiveServer, site: SlurmCluster, tmp_path: Path
) -> None:
    admin = {"Authorization": f"Bearer {demo_token('admin').token}"}
    with httpx.Client(base_url=server.url, headers=admin, timeout=30) as http:
        issued = http.post(f"/api/v1/sites/{SITE}/agent-token")
        assert issued.status_code == 201, issued.text
        token_file = tmp_path / "agent.token"
        token_file.touch(mode=0o600)
        token_file.write_text(issued.json()["token"] + "\n")
        state_dir = tmp_path / "state"

        first = agent(site.env, server.url, token_file, state_dir, "--json")

        assert first.returncode == 0, first.stderr
        # The same pass pushed the site's accounting (no job has run here yet).
        assert first.stderr.startswith("usage pushed: "), first.stderr
        report = json.loads(first.stdout)
        assert report["errors"] == [] and report["drift"] == []
        made = {(c["kind"], c["name"]) for c in report["applied"]}
        assert ("account", "dutch-llm") in made
        assert ("association", "maria in dutch-llm") in made
        shown = subprocess.run(
            ["sacctmgr", "-P", "-n", "show", "assoc", f"cluster={SITE}",
             "format=Account,User,GrpTRESMins"],
            env=site.client_env(), capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        assert "dutch-llm|maria|" in shown
        limit = next(line for line in shown if line.startswith("dutch-llm||"))
        assert limit.startswith("dutch-llm||gres/gpu=") and limit != "dutch-llm||gres/gpu=0"

        status = http.get(f"/api/v1/sites/{SITE}/agent").json()
        assert status["applied_generation"] == report["generation"] == status["generation"]
        assert status["in_step"] and status["errors"] == [] and status["drift"] == []

        # A second pass: nothing to do, and it says so in one line.
        second = agent(site.env, server.url, token_file, state_dir)
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == (
            f"generation {report['generation'][:12]}: 0 applied, 0 drift, 0 errors"
        )

        # Someone raises a limit by hand: the next pass reports it and puts it back.
        subprocess.run(
            ["sacctmgr", "-i", "modify", "account", "where", "name=dutch-llm",
             f"cluster={SITE}", "set", "grptresmins=gres/gpu=99999999"],
            env=site.client_env(), capture_output=True, check=True,
        )  # fmt: skip
        third = agent(site.env, server.url, token_file, state_dir)
        assert third.returncode == 0, third.stderr
        assert (
            "drift    account      dutch-llm: changed by hand (gpu_minutes_limit 99999999"
            in third.stdout
        )
        status = http.get(f"/api/v1/sites/{SITE}/agent").json()
        assert status["drift"][0]["name"] == "dutch-llm"


def test_an_unreachable_control_plane_is_one_line_and_nothing_is_lost(tmp_path: Path) -> None:
    token_file = tmp_path / "agent.token"
    token_file.touch(mode=0o600)
    token_file.write_text("fsa_whatever\n")
    nobody = f"http://127.0.0.1:{free_port()}"

    done = agent({}, nobody, token_file, tmp_path / "state")

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fabriek site-agent: cannot reach Fabriek at")
    assert "Traceback" not in done.stderr
    # A token file others may read is refused before anything is asked.
    token_file.chmod(0o644)
    loose = agent({}, nobody, token_file, tmp_path / "state")
    assert loose.returncode == 2
    assert (
        loose.stderr.strip()
        == f"fabriek site-agent: {token_file} may be read by others: chmod 600 {token_file}"
    )


def test_as_a_daemon_it_tries_again_every_interval(tmp_path: Path) -> None:
    token_file = tmp_path / "agent.token"
    token_file.touch(mode=0o600)
    token_file.write_text("fsa_whatever\n")
    nobody = f"http://127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "fabriek.main", "site-agent", "run", "--url", nobody,
            "--site", SITE, "--token-file", str(token_file),
            "--state-dir", str(tmp_path / "state"), "--interval", "1", "--no-posix"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for line in lines:
        assert line.startswith("fabriek site-agent: cannot reach Fabriek at")
        assert line.rstrip().endswith("; trying again in 1 s")
