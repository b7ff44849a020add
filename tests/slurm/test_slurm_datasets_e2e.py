"""End to end through the HTTP API on a real Slurm site: a job's datasets are staged into the
site's staging folder (the sites file's `dataset_staging`), its own account's alone and
read-only, at $FABRIEK_DATASETS; a job in an image from the factory's registry sees them and
its GPUs inside; another project's job on the same cluster cannot read them; nothing
decrypted outlives the job; and a job whose data no site can be handed is refused before it
is queued."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NodeGroupRow, SiteRow
from tests.conftest import problem_of
from tests.container_images import (
    PODMAN_GLOBAL,
    PODMAN_RUN,
    busybox_image,
    ensure_subordinate_ids,
    podman,
)
from tests.jobs_helpers import wait_for
from tests.registry_harness import Registry, ensure_registry, running_registry
from tests.servers import LiveServer, free_port, live_server, prepare, throwaway_database
from tests.slurm.test_slurm_containers import pause_processes
from tests.slurm_harness import SlurmCluster
from tests.test_job_datasets import push

pytestmark = pytest.mark.slurm

DATA = b"token,count\nfabriek,7\n" * 500
DIGEST = hashlib.sha256(DATA).hexdigest()


def _toml(words: list[str]) -> str:
    return "[" + ", ".join(f'"{w}"' for w in words) + "]"


def _group(name: str, gpu_type: str, gpus: int) -> dict[str, object]:
    return {"name": name, "gpu_type": gpu_type, "count": 1, "gpus_per_node": gpus,
            "cpus_per_node": 8, "memory_gb_per_node": 15}  # fmt: skip


@pytest.fixture(scope="module")
def staging() -> Iterator[Path]:
    """The site's staging folder on its shared file system (here: this machine's), made by
    its operators: root's, open for passing through."""
    folder = Path(tempfile.mkdtemp(prefix="fabriek-staging-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def world(
    site_b: SlurmCluster,
    shared_logs: Path,
    staging: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LiveServer, Registry]]:
    """Fabriek with two Slurm sites on one real cluster: site B stages datasets and runs
    images with rootless podman; site Z (L40S nodes) declares no staging folder."""
    if (reason := ensure_registry()) is not None:
        pytest.skip(f"REGISTRY NOT AVAILABLE: {reason}")
    ensure_subordinate_ids("maria", 1_100_000_000)
    tmp = tmp_path_factory.mktemp("slurm-datasets")
    podman_dir = Path(tempfile.mkdtemp(prefix="fabriek-podman-", dir="/tmp"))
    podman_dir.chmod(0o1777)
    (podman_dir / "home").mkdir(mode=0o1777)
    (podman_dir / "home").chmod(0o1777)
    mine = f"{podman_dir}/podman-${{USER}}"
    logs = shared_logs / "siteb-datasets"
    logs.mkdir(exist_ok=True)
    logs.chmod(0o1777)
    sites = tmp / "sites.toml"
    sites.write_text(
        f'[sites.siteb]\nengine = "slurm"\nslurm_conf = "{site_b.conf}"\n'
        f'log_dir = "{logs}"\ncontainer_runtime = "podman"\n'
        f'dataset_staging = "{staging}"\n'
        "container_global_options = "
        f"{_toml([*PODMAN_GLOBAL, '--root', f'{mine}/root', '--runroot', f'{mine}/run'])}\n"
        f"container_run_options = {_toml([*PODMAN_RUN, '--tls-verify=false'])}\n"
        f'container_environment = {{ HOME = "{podman_dir}/home" }}\n'
        f'[sites.sitez]\nengine = "slurm"\nslurm_conf = "{site_b.conf}"\nlog_dir = "{logs}"\n'
    )
    address = f"127.0.0.1:{free_port()}"
    maria_uid = pwd.getpwnam("maria").pw_uid
    before = pause_processes(maria_uid)
    with throwaway_database("sqlite", tmp) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        settings = Settings(
            database_url=url, state_dir=tmp / "state", sites_file=sites, dispatch_interval_s=0.3,
            registry=address, registry_insecure=True, housekeeping_interval_s=0.5,
        )  # fmt: skip
        with live_server(settings) as live:
            admin = {"Authorization": f"Bearer {demo_token('admin').token}"}
            for name, group in (("siteb", _group("gpu", "a100", 2)),
                                ("sitez", _group("l40s", "l40s", 8))):  # fmt: skip
                made = httpx.post(f"{live.url}/api/v1/sites", headers=admin, json={
                    "name": name, "city": "Delft", "province": "Zuid-Holland",
                    "engine": "slurm", "max_time_s": 3600, "node_groups": [group],
                })  # fmt: skip
                assert made.status_code == 201, made.text
            with running_registry(address, live.url, settings.state_dir, tmp / "reg") as reg:
                yield live, reg
    for pid in pause_processes(maria_uid) - before:
        os.kill(pid, 9)
    shutil.rmtree(podman_dir, ignore_errors=True)


def _client(server: LiveServer, user: str) -> httpx.Client:
    token = demo_token(user).token
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _logs(api: httpx.Client, job_id: int, stream: str = "stdout") -> str:
    return api.get(f"/api/v1/jobs/{job_id}/logs", params={"stream": stream}).text


def _wait_for_output(api: httpx.Client, job_id: int, lines: int, timeout: float = 120) -> str:
    """The job's output once it has printed `lines` lines (it is still running)."""
    deadline = time.monotonic() + timeout
    while True:
        out = _logs(api, job_id)
        if len(out.splitlines()) >= lines:
            return out
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert job["state"] in {"pending", "starting", "running"}, (job, out)
        assert time.monotonic() < deadline, (job, out)
        time.sleep(0.2)


def test_a_job_reads_its_dataset_at_the_site_and_another_project_cannot(
    world: tuple[LiveServer, Registry], staging: Path
) -> None:
    server, _registry = world
    name = f"corpus{os.urandom(3).hex()}"
    # Reads it, tries to write it, then stays, so that another project's job can try.
    script = (
        'echo "$FABRIEK_DATASETS"; sha256sum "$FABRIEK_DATASETS/' + name + '" | cut -d" " -f1; '
        'touch "$FABRIEK_DATASETS/x" 2>/dev/null && echo writable || echo read-only; sleep 300'
    )
    with _client(server, "maria") as maria, _client(server, "mo") as mo:
        push(maria, "dutch-llm", name, DATA)
        made = maria.post("/api/v1/jobs", json={
            "project": "dutch-llm", "gpus": 1, "datasets": [name],
            "command": ["sh", "-c", script], "time_limit": 600,
        })  # fmt: skip
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]
        out = _wait_for_output(maria, job_id, 3)
        where, digest, written = out.splitlines()[:3]
        assert digest == DIGEST and written == "read-only", out
        assert maria.get(f"/api/v1/jobs/{job_id}").json()["site"] == "siteb"
        # In the site's staging folder, the job's own account's alone, read-only.
        copy = Path(where)
        assert copy.parent.parent == staging and copy.name == f"job-{job_id}"
        maria_uid = pwd.getpwnam("maria").pw_uid
        for path, mode in ((copy, 0o500), (copy / name, 0o400)):
            seen = path.stat()
            assert (seen.st_uid, stat.S_IMODE(seen.st_mode)) == (maria_uid, mode), path
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o711  # no listing the others
        # Another project's job on the same cluster tries the path it was never given.
        attack = (
            f'cat "{copy}/{name}" && echo READ; ls "{copy}" && echo LISTED; '
            f'ls "{copy.parent}" && echo SAW; echo done'
        )
        tried = mo.post("/api/v1/jobs", json={
            "project": "legal-nl", "gpus": 1, "command": ["sh", "-c", attack],
            "time_limit": 120,
        })  # fmt: skip
        assert tried.status_code == 201, tried.text
        ended = wait_for(mo, tried.json()["id"], timeout=180)
        attacker = _logs(mo, ended["id"])
        errors = _logs(mo, ended["id"], "stderr")
        assert ended["state"] == "completed", (ended, attacker, errors)
        assert ended["site"] == "siteb"
        assert attacker.splitlines() == ["done"], (attacker, errors)
        assert "Permission denied" in errors, errors
        # Cancelled: its plaintext goes with it.
        assert maria.post(f"/api/v1/jobs/{job_id}/cancel").status_code in (200, 202)
        done = wait_for(maria, job_id, timeout=120)
        assert done["state"] == "cancelled", done
        assert not copy.exists()


def test_a_job_in_an_image_sees_its_dataset_and_gpus_inside_on_a_slurm_site(
    world: tuple[LiveServer, Registry], staging: Path
) -> None:
    server, registry = world
    maria_token = demo_token("maria").token
    pushed = podman(
        "push", "--tls-verify=false", "--creds", f"maria:{maria_token}",
        busybox_image(), f"{registry.address}/dutch-llm/busybox:datasets",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr.decode()[-800:]
    name = f"corpus{os.urandom(3).hex()}"
    script = (
        'echo "$FABRIEK_DATASETS"; echo gpus=$CUDA_VISIBLE_DEVICES; '
        'sha256sum "$FABRIEK_DATASETS/' + name + '" | cut -d" " -f1; '
        'touch "$FABRIEK_DATASETS/x" 2>/dev/null && echo writable || echo read-only; '
        "ls /bin/busybox"
    )
    with _client(server, "maria") as maria:
        push(maria, "dutch-llm", name, DATA)
        made = maria.post("/api/v1/jobs", json={
            "project": "dutch-llm", "container_image": "dutch-llm/busybox:datasets",
            "gpus": 1, "datasets": [name], "command": ["sh", "-c", script], "time_limit": 300,
        })  # fmt: skip
        assert made.status_code == 201, made.text
        done = wait_for(maria, made.json()["id"], timeout=240)
        out = _logs(maria, done["id"])
        assert done["state"] == "completed", (done, out, _logs(maria, done["id"], "stderr"))
    where, gpus, digest, written, busybox = out.splitlines()[:5]
    assert Path(where).parent.parent == staging
    assert gpus.startswith("gpus=") and gpus != "gpus=", out
    assert (digest, written, busybox) == (DIGEST, "read-only", "/bin/busybox"), out
    assert not Path(where).exists()  # completed: nothing decrypted left


def test_data_no_site_can_be_handed_is_refused_before_it_is_queued(
    world: tuple[LiveServer, Registry],
) -> None:
    server, _registry = world
    name = f"corpus{os.urandom(3).hex()}"
    with _client(server, "maria") as maria:
        push(maria, "dutch-llm", name, DATA)
        before = maria.get("/api/v1/jobs").json()["total"]
        # Only site Z has L40S GPUs, and it declares no staging folder.
        refused = maria.post("/api/v1/jobs", json={
            "project": "dutch-llm", "gpus": 1, "gpu_type": "l40s", "datasets": [name],
            "command": ["true"], "time_limit": 60,
        })  # fmt: skip
        problem = problem_of(refused, 422)
        assert "only siteb can hand it its datasets" in str(problem["detail"]), problem
        assert maria.get("/api/v1/jobs").json()["total"] == before


def test_a_failed_job_leaves_nothing_and_a_crashs_leftovers_are_swept(
    world: tuple[LiveServer, Registry], staging: Path
) -> None:
    server, _registry = world
    name = f"corpus{os.urandom(3).hex()}"
    script = 'head -c 11 "$FABRIEK_DATASETS/' + name + '"; echo; echo "$FABRIEK_DATASETS"; exit 3'
    with _client(server, "maria") as maria:
        push(maria, "dutch-llm", name, DATA)
        made = maria.post("/api/v1/jobs", json={
            "project": "dutch-llm", "gpus": 1, "datasets": [name],
            "command": ["sh", "-c", script], "time_limit": 120,
        })  # fmt: skip
        assert made.status_code == 201, made.text
        done = wait_for(maria, made.json()["id"], timeout=180)
        out = _logs(maria, done["id"])
    assert done["state"] == "failed" and done["exit_code"] == 3, (done, out)
    first, where = out.splitlines()[:2]
    assert first == "token,count"
    folder = Path(where).parent
    assert not Path(where).exists()
    # A copy left by a control plane that crashed before its job ended (the job is long
    # gone): the next housekeeping round removes it, handed over or cut off half-way.
    for left in ("job-999999", ".job-999998.partial"):
        (folder / left).mkdir(mode=0o500)
        (folder / left / "corpus").write_bytes(b"plaintext")  # root writes in spite of 0500
    deadline = time.monotonic() + 30
    while any((folder / left).exists() for left in ("job-999999", ".job-999998.partial")):
        assert time.monotonic() < deadline, sorted(p.name for p in folder.iterdir())
        time.sleep(0.2)
