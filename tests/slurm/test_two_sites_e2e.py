"""Real sites, end to end (issue 17's "done when"), on two sites of one factory.

Each site is its own real Slurm 22.05 cluster with slurmctld, slurmd, slurmdbd (its own
database on this machine's MariaDB) and slurmrestd on a loopback port. Fabriek's server
reaches both only through their REST APIs (the `slurmrestd` engine: a JWT per call, no
munge key, no SLURM_CONF of its own); each site runs `fabriek site-agent run` with its own
site token, which makes the POSIX accounts, QOS, Slurm accounts, limits and associations;
site A has a login node (Debian's sshd on a loopback port) that trusts Fabriek's SSH CA.

Through the API, as its people would:
- a job submitted through Fabriek runs at each site as its user, under its project's account;
- a job typed with `sbatch` over SSH is charged to the right allocation, exactly once;
- an allocation that runs out stops new jobs in Slurm itself (sbatch over SSH waits);
- a change of the terms of use blocks the next job until it is accepted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NodeGroupRow, SiteRow
from tests.jobs_helpers import submit, wait_for
from tests.people import new_person
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.slurm_harness import SlurmCluster, SlurmClusterError, ensure_accounting_installed
from tests.slurmrestd_install import ensure_slurmrestd_installed
from tests.ssh_login import ensure_openssh, login_node
from tests.test_api_ssh_access import certify, keypair

pytestmark = pytest.mark.slurm

GPU_TYPES = {"e2ea": "h100", "e2eb": "a100"}
ANN = "fab-e2e-ann"
# A project of the demo factory whose allocation may be spent at any site.
PROJECT = "dutch-llm"
# A project of its own with a budget of a few GPU-minutes at site A, to run out.
SMALL = "fab-e2e-small"


def forget_unix_accounts() -> None:
    """What this module (or a killed earlier run of it) made on this machine."""
    subprocess.run(["userdel", "--remove", ANN], capture_output=True)
    for group in (ANN, SMALL):
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture(scope="module")
def clusters(
    slurm_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[SlurmCluster, str]]]:
    """Both sites, each with its accounting and its REST API: {name: (cluster, url)}."""
    for reason in (ensure_accounting_installed(), ensure_slurmrestd_installed(), ensure_openssh()):
        if reason:
            pytest.skip(reason)
    forget_unix_accounts()
    found: dict[str, tuple[SlurmCluster, str]] = {}
    with ExitStack() as stack:
        for name, gpu_type in GPU_TYPES.items():
            key = tmp_path_factory.mktemp(f"jwt-{name}") / "jwt_hs256.key"
            key.write_bytes(secrets.token_bytes(32))
            key.chmod(0o600)
            cluster = SlurmCluster(name, gpu_type=gpu_type, gpus=2, accounting=True, jwt_key=key)
            stack.callback(cluster.remove)
            try:
                cluster.start()
            except SlurmClusterError as exc:
                pytest.fail(f"site {name} did not start:\n{exc}")
            stack.callback(cluster.stop)
            found[name] = (cluster, cluster.start_rest(("openapi/v0.0.38", "openapi/dbv0.0.38")))
        stack.callback(forget_unix_accounts)
        yield found


@pytest.fixture(scope="module")
def server(
    clusters: dict[str, tuple[SlurmCluster, str]],
    tmp_path_factory: pytest.TempPathFactory,
    shared_logs: Path,
) -> Iterator[LiveServer]:
    """A Fabriek server whose two sites are the two clusters, through slurmrestd only;
    `shared_logs` is the sites' shared storage (as a parallel filesystem would be)."""
    state = tmp_path_factory.mktemp("state")
    logs = shared_logs
    sites_file = state / "sites.toml"
    sites_file.write_text(
        "".join(
            f'[sites.{name}]\nengine = "slurmrestd"\nurl = "{url}"\n'
            f'jwt_key_file = "{cluster.jwt_key}"\noperator = "root"\nlog_dir = "{logs}"\n'
            for name, (cluster, url) in clusters.items()
        )
    )
    with throwaway_database("sqlite", tmp_path_factory.mktemp("db")) as db:
        prepare(db)
        engine = make_engine(db)
        with make_sessions(engine)() as session:  # the demo's sites are not these
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        settings = Settings(
            database_url=db, state_dir=state, sites_file=sites_file, harvest_interval_s=86400
        )
        with live_server(settings) as live, as_(live, "admin") as admin:
            for name, gpu_type in GPU_TYPES.items():
                body = {
                    "name": name, "city": "Groningen", "province": "Groningen",
                    "engine": "slurmrestd", "max_time_s": 3600,
                    "node_groups": [{"name": "gpu", "gpu_type": gpu_type, "count": 1,
                                     "gpus_per_node": 2, "cpus_per_node": 8,
                                     "memory_gb_per_node": 15}],
                }  # fmt: skip
                assert admin.post("/api/v1/sites", json=body).status_code == 201
            yield live


def as_(server: LiveServer, username: str) -> httpx.Client:
    token = demo_token(username).token
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


@pytest.fixture(scope="module")
def ann(server: LiveServer) -> Iterator[httpx.Client]:
    """A new person, member of the demo project and of a small project of her own."""
    person = new_person(server, ANN, "Technische Universiteit Delft")
    with as_(server, "admin") as admin, as_(server, "pieter") as pi:
        org = person.get("/api/v1/whoami").json()
        assert pi.post(f"/api/v1/projects/{PROJECT}/members", json={"username": ANN}).is_success
        made = admin.post(
            "/api/v1/projects",
            json={"name": SMALL, "title": "A budget that runs out",
                  "organisation_id": _org_id(admin, "Technische Universiteit Delft"),
                  "principal_investigator": ANN},
        )  # fmt: skip
        assert made.status_code == 201, (made.text, org)
        granted = admin.post(
            "/api/v1/allocations",
            # 0.05 GPU-hours: 3 GPU-minutes of H100, at site A only.
            json={"project": SMALL, "track": "playground", "gpu_hours": {"h100": 0.05},
                  "sites": ["e2ea"]},
        )  # fmt: skip
        assert granted.status_code == 201, granted.text
    yield person
    person.close()


def _org_id(admin: httpx.Client, name: str) -> int:
    found = admin.get("/api/v1/organisations", params={"limit": 500}).json()["items"]
    return int(next(o["id"] for o in found if o["name"] == name))


@pytest.fixture(scope="module")
def agents(
    server: LiveServer, clusters: dict[str, tuple[SlurmCluster, str]], ann: httpx.Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], dict[str, Any]]]:  # fmt: skip
    """Run a site's agent once, as its operator installed it: `agents(site)` -> its report."""
    folder = tmp_path_factory.mktemp("agents")
    # Homes every job can reach, as /home is at a site (pytest's own folders are root's).
    homes = Path(tempfile.mkdtemp(prefix="fabriek-e2e-homes-", dir="/tmp"))
    homes.chmod(0o755)
    tokens: dict[str, Path] = {}
    with as_(server, "admin") as admin:
        for name in clusters:
            issued = admin.post(f"/api/v1/sites/{name}/agent-token")
            assert issued.status_code == 201, issued.text
            tokens[name] = folder / f"{name}.token"
            tokens[name].write_text(issued.json()["token"] + "\n")
            tokens[name].chmod(0o600)

    def run(site: str) -> dict[str, Any]:
        cluster, _url = clusters[site]
        done = subprocess.run(
            [sys.executable, "-m", "fabriek.main", "site-agent", "run", "--once", "--json",
             "--url", server.url, "--site", site, "--token-file", str(tokens[site]),
             "--state-dir", str(folder / f"state-{site}"), "--home-base", str(homes),
             "--ssh-ca-file", str(folder / f"ca-{site}.pub")],
            env={**os.environ, **cluster.env}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with as_(server, "admin") as admin:
            status = admin.get(f"/api/v1/sites/{site}/agent").json()
        return dict(status)

    for name in clusters:
        run(name)
    run.tokens = tokens  # type: ignore[attr-defined]
    yield run
    shutil.rmtree(homes, ignore_errors=True)


def sacct(
    cluster: SlurmCluster, *where: str, fields: str = "JobID,User,Account,State"
) -> list[list[str]]:
    done = subprocess.run(
        ["sacct", "--parsable2", "--noheader", "--allocations", "--allusers",
         "--starttime=now-1days", f"--format={fields}", *where],
        env=cluster.client_env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line.split("|") for line in done.stdout.splitlines() if line]


def squeue(cluster: SlurmCluster, job: str) -> tuple[str, str]:
    done = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T|%r"],
        env=cluster.client_env(), capture_output=True, text=True,
    )  # fmt: skip
    state, _, reason = done.stdout.strip().partition("|")
    return state, reason


def wait_until(what: str, check: Callable[[], object], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.5)


def test_the_agents_make_one_account_per_person_and_project_at_both_sites(
    clusters: dict[str, tuple[SlurmCluster, str]], ann: httpx.Client,
    agents: Callable[[str], dict[str, Any]],
) -> None:  # fmt: skip
    mine = ann.get("/api/v1/users/me/account").json()
    assert mine["username"] == ANN
    entry = subprocess.run(["getent", "passwd", ANN], capture_output=True, text=True).stdout
    assert entry.split(":")[2] == str(mine["uid"])  # the UID Fabriek allocated
    for name, (cluster, _url) in clusters.items():
        status = agents(name)  # a second pass: everything is there already
        assert status["reports"] and status["applied_generation"] == status["generation"], status
        associations = subprocess.run(
            ["sacctmgr", "-P", "-n", "show", "assoc", "where", f"user={ANN}", "format=account"],
            env=cluster.client_env(), capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        expected = {PROJECT, SMALL} if name == "e2ea" else {PROJECT}
        assert expected <= set(associations), (name, associations)


def test_a_job_submitted_through_fabriek_runs_as_its_user_under_its_projects_account(
    clusters: dict[str, tuple[SlurmCluster, str]], ann: httpx.Client,
    agents: Callable[[str], dict[str, Any]],
) -> None:  # fmt: skip
    for site, gpu_type in GPU_TYPES.items():
        job = submit(ann, name=f"whoami-{site}", command=["id", "-un"], gpus=1,
                     gpu_type=gpu_type, project=PROJECT, time_limit="10m")  # fmt: skip
        done = wait_for(ann, job["id"], timeout=180)
        assert done["state"] == "completed" and done["site"] == site, (
            done["state"], done["site"], done["reason"],
            ann.get(f"/api/v1/jobs/{job['id']}/logs", params={"stream": "stderr"}).text,
        )  # fmt: skip
        output = ann.get(f"/api/v1/jobs/{job['id']}/logs").text
        assert output.strip().splitlines()[0] == ANN, output
        cluster, _url = clusters[site]

        def anns(cluster: SlurmCluster = cluster) -> list[list[str]]:
            return [r for r in sacct(cluster) if r[1] == ANN]

        # slurmctld hands each record to slurmdbd a moment after the job ends.
        wait_until("slurmdbd to hold the job", anns, 60)
        rows = anns()
        assert rows and all(r[1:3] == [ANN, PROJECT] for r in rows), rows


def test_sbatch_over_ssh_is_charged_once_and_a_spent_allocation_stops_slurm(
    server: LiveServer, clusters: dict[str, tuple[SlurmCluster, str]], ann: httpx.Client,
    agents: Callable[[str], dict[str, Any]], tmp_path: Path,
) -> None:  # fmt: skip
    cluster, _url = clusters["e2ea"]
    key = keypair(tmp_path, "ann")
    signed = certify(ann, key)
    assert signed.status_code == 201, signed.text
    certificate = Path(f"{key}-cert.pub")
    certificate.write_text(signed.json()["certificate"] + "\n")
    ca = ann.get("/api/v1/users/me/ssh-ca").json()["public_key"]
    token = agents.tokens["e2ea"].read_text().strip()  # type: ignore[attr-defined]

    def sbatch_over_ssh(node: Any, account: str, wrap: str) -> str:
        typed = (
            f"SLURM_CONF={cluster.conf} sbatch --parsable --account={account} "
            f"--gres=gpu:h100:1 --time=3 --output=/tmp/fab-e2e-%j.out --wrap '{wrap}'"
        )
        done = node.ssh(ANN, key, typed, certificate=certificate)
        assert done.returncode == 0, (done.stderr, node.log()[-2000:])
        return str(done.stdout.strip().split(";")[0])

    with login_node(server.url, "e2ea", token, ca) as node, as_(server, "admin") as admin:
        # 90 s of one H100 (charged once), out of the small project's 3 GPU-minutes; its
        # time limit of 3 minutes fits the account's limit (Slurm's `safe` enforcement
        # starts only what can finish within it).
        first = sbatch_over_ssh(node, SMALL, "sleep 90")
        wait_until("the typed job to end", lambda: squeue(cluster, first)[0] == "", 300)
        wait_until(
            "slurmdbd to hold it",
            lambda: any(r[0] == first and r[3] == "COMPLETED" for r in sacct(cluster)),
        )
        harvested = admin.post("/api/v1/sites/e2ea/harvest")
        assert harvested.status_code == 200 and harvested.json()["added"] == 1, harvested.text
        again = admin.post("/api/v1/sites/e2ea/harvest").json()
        assert again["added"] == 0 and again["corrected"] == 0, again
        allocation = ann.get("/api/v1/allocations", params={"project": SMALL}).json()["items"][0]
        lines = ann.get(f"/api/v1/allocations/{allocation['id']}/charges").json()
        assert len(lines) == 1 and lines[0]["gpus"] == 1, lines
        job = ann.get(f"/api/v1/jobs/{lines[0]['job_id']}").json()
        assert job["user"] == ANN and job["project"] == SMALL, job
        assert 1.5 / 60 <= float(lines[0]["gpu_hours"]) < 2 / 60

        # The agent now gives the account only what is left: a job that could use more is
        # held by Slurm itself, whoever typed it.
        agents("e2ea")
        held = sbatch_over_ssh(node, SMALL, "sleep 90")
        wait_until(
            "Slurm to hold the job for its account's limit",
            lambda: "AssocGrp" in squeue(cluster, held)[1],
            60,
        )
        assert squeue(cluster, held)[0] == "PENDING"
        subprocess.run(["scancel", held], env=cluster.client_env(), check=True)
    # Fabriek's own scheduler agrees: the budget is spent.
    refused = submit(ann, name="more", command=["true"], gpus=1, gpu_type="h100",
                     project=SMALL, time_limit="10m")  # fmt: skip
    waited = wait_for(ann, refused["id"], {"pending"}, timeout=30)
    assert waited["state"] == "pending"
    ann.post(f"/api/v1/jobs/{refused['id']}/cancel")


def test_new_terms_of_use_block_the_next_job_until_accepted(
    server: LiveServer, ann: httpx.Client
) -> None:
    with as_(server, "admin") as admin:
        published = admin.post(
            "/api/v1/terms",
            json={"scope": "factory", "title": "Acceptable use, 2027",
                  "body": "Use the factory for lawful research and development only.",
                  "requires_acceptance": True},
        )  # fmt: skip
        assert published.status_code == 201, published.text
    version = published.json()["version"]
    refused = ann.post(
        "/api/v1/jobs", json={"name": "after-terms", "command": ["true"], "gpus": 1,
                              "project": PROJECT, "time_limit": "10m"},
    )  # fmt: skip
    assert refused.status_code == 403, refused.text
    problem = refused.json()
    assert f"version {version}" in problem["detail"] and problem["accept_url"]
    assert ann.post(problem["accept_url"]).status_code in (200, 201)
    accepted = submit(ann, name="after-terms", command=["true"], gpus=1, gpu_type="a100",
                      project=PROJECT, time_limit="10m")  # fmt: skip
    assert wait_for(ann, accepted["id"], timeout=180)["state"] == "completed"


def test_the_typed_work_is_on_the_projects_usage(ann: httpx.Client) -> None:
    usage = ann.get("/api/v1/usage", params={"by": "project"}).json()
    small = [line for line in usage if line["group"] == SMALL]
    # The one job typed with sbatch (1.5 GPU-minutes) is all the small project used.
    assert small and 1.5 / 60 <= float(small[0]["gpu_hours"]) < 2 / 60, usage
