"""Usage typed with `sbatch` at a site, harvested into Fabriek end to end: a real cluster
with slurmdbd (on this machine's MariaDB) and slurmrestd serving openapi/dbv0.0.38, a
Fabriek server that reaches the site only through that REST API, and people who submit
with `sbatch` themselves (as root with `--uid`, as sshd would have them do it): a 2-node
job, an array of 3, a requeued job, and a job of an account Fabriek does not know. Each run
is charged once to the project's allocation; a second harvest adds nothing; with slurmdbd
down while a job ends the harvest fails visibly, and once slurmdbd is back it takes that
job, once."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from fabriek.engines.slurm import SlurmEngine
from fabriek.sdk.site_agent import SiteAgentClient
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.site_agent.usage import push_usage
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NodeGroupRow, SiteRow
from tests.jobs_helpers import submit, wait_for
from tests.people import new_person
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.slurm.conftest import ensure_user
from tests.slurm_harness import SlurmCluster, SlurmClusterError

pytestmark = pytest.mark.slurm

USERS = {"fab-hv-ann": 1_900_400_001, "fab-hv-ben": 1_900_400_002}
PROJECT = "dutch-llm"  # a demo project, its name the Slurm account (before a POSIX group)
STRANGER_ACCOUNT = "hvother"  # a Slurm account that is no project of Fabriek
SITE = "hvsite"
# The site's people as Fabriek's API knows them (signed-in clients), made with the server.
PEOPLE: dict[str, httpx.Client] = {}


@pytest.fixture(scope="module")
def cluster(slurm_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    key = tmp_path_factory.mktemp("jwt") / "jwt.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    site = SlurmCluster(SITE, gpu_type="h100", gpus=4, nodes=2, accounting=True, jwt_key=key)
    try:
        site.start()
    except SlurmClusterError as exc:
        site.remove()
        pytest.fail(f"the accounting cluster did not start:\n{exc}")
    try:
        for name, uid in USERS.items():
            ensure_user(name, uid)
        site.sacctmgr("add", "account", PROJECT, STRANGER_ACCOUNT)
        for name in USERS:
            site.sacctmgr("add", "user", name, f"account={PROJECT}")
        site.sacctmgr("add", "user", "fab-hv-ann", f"account={STRANGER_ACCOUNT}")
        yield site
    finally:
        site.stop()
        site.remove()


@pytest.fixture(scope="module")
def server(
    cluster: SlurmCluster, shared_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A Fabriek server whose site `hvsite` is the cluster, through slurmrestd only."""
    url = cluster.start_rest(plugins=("openapi/v0.0.38,openapi/dbv0.0.38",))
    assert cluster.jwt_key is not None
    state = tmp_path_factory.mktemp("state")
    # Jobs run as their users: their output goes where every user may write (sticky).
    logs = shared_logs
    sites_file = state / "sites.toml"
    sites_file.write_text(
        f'[sites.{SITE}]\nengine = "slurmrestd"\nurl = "{url}"\n'
        f'jwt_key_file = "{cluster.jwt_key}"\noperator = "root"\nlog_dir = "{logs}"\n'
    )
    with throwaway_database("sqlite", tmp_path_factory.mktemp("db")) as db:
        prepare(db)
        engine = make_engine(db)
        with make_sessions(engine)() as session:
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        # Pulled on demand in this test; the server's own pull runs once, at its start.
        settings = Settings(
            database_url=db, state_dir=state, sites_file=sites_file, harvest_interval_s=86400
        )
        with live_server(settings) as live:
            body = {
                "name": SITE, "city": "Delft", "province": "Zuid-Holland", "engine": "slurm",
                "max_time_s": 3600,
                "node_groups": [{"name": "gpu", "gpu_type": "h100", "count": 2,
                                 "gpus_per_node": 4, "cpus_per_node": 8,
                                 "memory_gb_per_node": 15}],
            }  # fmt: skip
            with admin_client(live) as admin:
                assert admin.post("/api/v1/sites", json=body).status_code == 201
            for name in USERS:
                PEOPLE[name] = new_person(live, name, "Technische Universiteit Delft")
            try:
                yield live
            finally:
                for person in PEOPLE.values():
                    person.close()


def admin_client(server: LiveServer) -> httpx.Client:
    token = demo_token("admin").token
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def sbatch(cluster: SlurmCluster, user: str, *opts: str, wrap: str) -> str:
    """Submit as `user` would at a login node: their own account, their own files."""
    out = cluster.root / "out"
    out.mkdir(exist_ok=True)
    out.chmod(0o1777)
    argv = [
        "sbatch", "--parsable", f"--uid={user}", f"--gid={user}",
        f"--output={out}/%j.out", "--chdir=/tmp", *opts, "--wrap", wrap,
    ]  # fmt: skip
    done = subprocess.run(argv, env=cluster.client_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def slurm(cluster: SlurmCluster, *argv: str) -> str:
    done = subprocess.run(argv, env=cluster.client_env(), capture_output=True, text=True)
    assert done.returncode == 0, f"{argv}: {done.stderr}"
    return done.stdout


def wait_until(what: str, check: object, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.5)


def ended_in_accounting(cluster: SlurmCluster) -> int:
    """How many allocation records slurmdbd holds that have ended."""
    out = slurm(
        cluster, "sacct", "--parsable2", "--noheader", "--allocations", "--duplicates",
        "--allusers", "--starttime=2020-01-01", "--format=JobIDRaw,State,End",
    )  # fmt: skip
    return sum(1 for line in out.splitlines() if line.split("|")[2] not in ("Unknown", ""))


def queue_empty(cluster: SlurmCluster) -> bool:
    return not slurm(cluster, "squeue", "-h", "-o", "%i").strip()


def harvest(admin: httpx.Client) -> dict[str, object]:
    done = admin.post(f"/api/v1/sites/{SITE}/harvest")
    assert done.status_code == 200, done.text
    answer: dict[str, object] = done.json()
    return answer


def charges_of(server: LiveServer) -> list[dict[str, object]]:
    """The dutch-llm ledger's lines of jobs typed at this site."""
    pi = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {demo_token('pieter').token}"},
        timeout=60,
    )
    with pi:
        lines = []
        for allocation in pi.get("/api/v1/allocations", params={"project": PROJECT}).json()[
            "items"
        ]:
            for line in pi.get(f"/api/v1/allocations/{allocation['id']}/charges").json():
                job = pi.get(f"/api/v1/jobs/{line['job_id']}").json()
                if f"at {SITE}:" in (job.get("reason") or ""):
                    lines.append({**line, "job": job})
        return lines


def test_sbatch_jobs_are_harvested_once_through_slurmrestd(
    cluster: SlurmCluster, server: LiveServer
) -> None:
    account = f"--account={PROJECT}"
    sbatch(cluster, "fab-hv-ann", account, "--gres=gpu:h100:1", wrap="sleep 1")
    sbatch(cluster, "fab-hv-ann", account, "--nodes=2", "--gres=gpu:2", wrap="srun sleep 1")
    sbatch(cluster, "fab-hv-ben", account, "--array=0-2", "--gres=gpu:1", wrap="sleep 1")
    requeued = sbatch(cluster, "fab-hv-ben", account, "--requeue", "--gres=gpu:1", wrap="sleep 4")
    sbatch(cluster, "fab-hv-ann", f"--account={STRANGER_ACCOUNT}", "--gres=gpu:1", wrap="true")
    wait_until(
        "the requeued job to run",
        lambda: "RUNNING" in slurm(cluster, "squeue", "-h", "-j", requeued, "-o", "%T"),
    )
    slurm(cluster, "scontrol", "requeue", requeued)
    # A requeued job waits for its old credential to expire unless told to start now.
    wait_until(
        "the requeued job to wait",
        lambda: "PENDING" in slurm(cluster, "squeue", "-h", "-j", requeued, "-o", "%T"),
    )
    slurm(cluster, "scontrol", "update", f"jobid={requeued}", "starttime=now")
    wait_until("every job to end", lambda: queue_empty(cluster))
    # 1 + 1 (two nodes) + 3 (array) + 2 (the requeued job's two runs) + 1 (stranger)
    wait_until("slurmdbd to hold every run", lambda: ended_in_accounting(cluster) >= 8)

    with admin_client(server) as admin:
        first = harvest(admin)
        assert (first["added"], first["unmatched"]) == (7, 1), first
        lines = charges_of(server)
        assert len(lines) == 7 and len({line["job_id"] for line in lines}) == 7
        two_nodes = [line for line in lines if line["job"]["nodes"] == 2]
        assert [line["gpus"] for line in two_nodes] == [4]  # the allocated TRES, both nodes
        runs = [
            line["job"]["state"] for line in lines if f"job {requeued}" in line["job"]["reason"]
        ]
        # The requeued run (cancelled, in Fabriek's words) and the run after it, whatever
        # its end: two records, two jobs.
        assert len(runs) == 2 and "cancelled" in runs
        # GPU-hours: allocated GPUs times Slurm's elapsed time, at the h100 factor (1).
        sacct = slurm(
            cluster, "sacct", "--parsable2", "--noheader", "--allocations", "--duplicates",
            "--allusers", "--starttime=2020-01-01", f"--accounts={PROJECT}",
            "--format=ElapsedRaw,AllocTRES",
        )  # fmt: skip
        expected = 0.0
        for line in sacct.splitlines():
            elapsed, tres = line.split("|")
            gpus = dict(p.split("=") for p in tres.split(",")).get("gres/gpu", "0")
            expected += int(gpus) * int(elapsed) / 3600
        assert sum(float(line["gpu_hours"]) for line in lines) == pytest.approx(expected)

        again = harvest(admin)
        assert (again["added"], again["corrected"]) == (0, 0), again
        assert len(charges_of(server)) == 7
        state = admin.get(f"/api/v1/sites/{SITE}/harvest").json()
        assert {"user": "fab-hv-ann", "account": STRANGER_ACCOUNT, "count": 1} in state["unmatched"]


def test_a_job_that_ends_while_slurmdbd_is_down_is_charged_once_when_it_is_back(
    cluster: SlurmCluster, server: LiveServer
) -> None:
    with admin_client(server) as admin:
        harvest(admin)  # whatever earlier tests left is in
        before = len(charges_of(server))
        held = ended_in_accounting(cluster)
        cluster.stop_dbd()
        try:
            sbatch(cluster, "fab-hv-ben", f"--account={PROJECT}", "--gres=gpu:2", wrap="sleep 1")
            wait_until("the job to end", lambda: queue_empty(cluster))
            down = admin.post(f"/api/v1/sites/{SITE}/harvest")
            assert down.status_code == 503, down.text
            assert "tries again later" in down.json()["detail"]
        finally:
            cluster.start_dbd()
        wait_until("slurmctld to hand the record over", lambda: ended_in_accounting(cluster) > held)
        back = harvest(admin)
        assert back["added"] == 1, back
        assert harvest(admin)["added"] == 0
        assert len(charges_of(server)) == before + 1


def test_the_site_agent_pushes_sacct_since_its_last_push(
    cluster: SlurmCluster, server: LiveServer, tmp_path: Path
) -> None:
    with admin_client(server) as admin:
        issued = admin.post(f"/api/v1/sites/{SITE}/agent-token")
        assert issued.status_code == 201, issued.text
        harvest(admin)
    token = issued.json()["token"]
    with SiteAgentClient(server.url, SITE, token) as control_plane:
        # Everything is in already (pulled through slurmrestd): sent again, added never.
        first = push_usage(control_plane, tmp_path, cluster.env)
        assert first["added"] == 0 and first["unchanged"] >= 8, first
        assert (tmp_path / "usage_cursor.json").exists()
        held = ended_in_accounting(cluster)
        sbatch(cluster, "fab-hv-ann", f"--account={PROJECT}", "--gres=gpu:1", wrap="sleep 1")
        wait_until("the job in accounting", lambda: ended_in_accounting(cluster) > held)
        second = push_usage(control_plane, tmp_path, cluster.env)
        assert second["added"] == 1, second
        assert push_usage(control_plane, tmp_path, cluster.env)["added"] == 0


def test_the_slurm_engine_reads_the_same_accounting_with_sacct(
    cluster: SlurmCluster, server: LiveServer, tmp_path: Path
) -> None:
    # The control plane as a client of the cluster (munge, SLURM_CONF): sacct itself.
    engine = SlurmEngine(SITE, cluster.env, tmp_path)
    records = engine.read_accounting(None)
    assert len({r.key for r in records}) == len(records) >= 8
    assert sum(1 for r in records if r.ended) == ended_in_accounting(cluster)
    assert {r.array_task_id for r in records if r.array_job_id is not None} == {0, 1, 2}
    recent = engine.read_accounting(datetime.now(UTC) - timedelta(hours=1))
    assert {r.key for r in recent} == {r.key for r in records}  # all ran in the last hour


def test_a_job_submitted_through_fabriek_is_charged_once(
    cluster: SlurmCluster, server: LiveServer
) -> None:
    pi = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {demo_token('pieter').token}"},
        timeout=60,
    )
    with pi:
        added = pi.post(f"/api/v1/projects/{PROJECT}/members", json={"username": "fab-hv-ann"})
        assert added.status_code in (201, 409), added.text
    ann = PEOPLE["fab-hv-ann"]
    job = submit(ann, command=["sleep", "1"], gpus=2, gpu_type="h100", project=PROJECT)
    done = wait_for(ann, job["id"], timeout=120)
    assert done["state"] == "completed", (done["state"], done["reason"], done.get("exit_code"))
    with admin_client(server) as admin:
        wait_until("slurmdbd to have it", lambda: harvest(admin)["fabriek"] >= 1)
        assert harvest(admin)["added"] == 0
    lines = [
        line
        for allocation in ann.get("/api/v1/allocations", params={"project": PROJECT}).json()[
            "items"
        ]
        for line in ann.get(f"/api/v1/allocations/{allocation['id']}/charges").json()
        if line["job_id"] == job["id"]
    ]
    # One line: Fabriek's own, with Slurm's allocated GPUs; no harvested twin of the job.
    assert len(lines) == 1 and lines[0]["gpus"] == 2
    assert not [line for line in charges_of(server) if line["job"]["name"] == job["name"]]
