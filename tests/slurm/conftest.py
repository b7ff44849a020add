"""Real Slurm clusters for the slurm tests: installed when missing, stopped afterwards.

Two clusters run at once, as two sites of one factory: site A (2 nodes x 4 H100) and site B
(1 node x 2 A100). When Slurm cannot be installed or started here, every test that needs a
cluster is skipped with the reason, loudly (pytest -ra lists it).
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.domain.accounts import JobOwner
from fabriek.engines.slurm import SlurmEngine
from fabriek.services.demo import seed as demo_seed
from tests.slurm_harness import SlurmCluster, SlurmClusterError, ensure_slurm_installed

# The people the engine tests' jobs run as, with their Unix IDs at the test sites.
TEST_USERS = {"fabriek-alice": 1_900_100_001, "fabriek-bob": 1_900_100_002}
ALICE = JobOwner(user_id=1, user="fabriek-alice", project_id=1, project="climate")
BOB = JobOwner(user_id=2, user="fabriek-bob", project_id=2, project="rivals")


def ensure_user(name: str, uid: int | None = None) -> None:
    """A Unix account of that name at the test sites (this machine), as a site's operators
    (or its agent) would make it: every job runs as its owner's own account."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        chosen = ["--uid", str(uid)] if uid is not None else []
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/bash", *chosen, name],
            check=True,
            capture_output=True,
        )


@pytest.fixture(scope="session")
def slurm_ready() -> None:
    """Slurm and a working munged, or a skip that says why not; and the Unix accounts of
    the tests' job owners and of the demo factory's people.

    munged is left running afterwards: it is the machine's shared authentication service,
    and another test run may be using it (see tests/slurm_install.py)."""
    reason = ensure_slurm_installed()
    if reason is not None:
        pytest.skip(reason)
    for name, uid in TEST_USERS.items():
        ensure_user(name, uid)
    for name, *_ in demo_seed.USERS:
        ensure_user(name)


@pytest.fixture(scope="module")
def shared_logs() -> Iterator[Path]:
    """Output storage a site's nodes and the control plane both see: every user may write
    there, none may touch another's files (sticky, like /tmp)."""
    folder = Path(tempfile.mkdtemp(prefix="fabriek-site-logs-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _cluster(name: str, **kwargs: object) -> Iterator[SlurmCluster]:
    cluster = SlurmCluster(name, **kwargs)  # type: ignore[arg-type]
    try:
        cluster.start()
    except SlurmClusterError as exc:
        cluster.remove()
        pytest.fail(f"the test cluster {name} did not start:\n{exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        cluster.remove()


@pytest.fixture(scope="module")
def site_a(slurm_ready: None) -> Iterator[SlurmCluster]:
    """Site A: two nodes of four H100 each."""
    yield from _cluster("sitea", gpu_type="h100", gpus=4, nodes=2)


@pytest.fixture(scope="module")
def site_b(slurm_ready: None) -> Iterator[SlurmCluster]:
    """Site B: one node of two A100."""
    yield from _cluster("siteb", gpu_type="a100", gpus=2)


@pytest.fixture(scope="module")
def logs(shared_logs: Path) -> Path:
    """One log directory for both engines, as a shared filesystem would be."""
    return shared_logs


@pytest.fixture(scope="module")
def engine_a(site_a: SlurmCluster, logs: Path) -> SlurmEngine:
    return SlurmEngine("sitea", site_a.env, logs)


@pytest.fixture(scope="module")
def engine_b(site_b: SlurmCluster, logs: Path) -> SlurmEngine:
    return SlurmEngine("siteb", site_b.env, logs, command_timeout_s=20)
