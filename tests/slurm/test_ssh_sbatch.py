"""A person logs in to a real login node with a certificate from Fabriek and types `sbatch`
themselves: the job runs on a real Slurm cluster as their own Unix account.

(Its usage reaches Fabriek through the site's accounting harvest, tested with the harvest.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.servers import LiveServer
from tests.slurm_harness import SlurmCluster, SlurmClusterError
from tests.ssh_login import LoginNode, remove_unix_account
from tests.test_api_ssh_access import certify, keypair
from tests.test_ssh_login import homes, node, person  # noqa: F401 - fixtures used below

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def cluster(slurm_ready: None) -> Iterator[SlurmCluster]:
    """A one-node cluster that the login node's users submit to."""
    made = SlurmCluster("sshsite", gpu_type="h100", gpus=2)
    try:
        made.start()
    except SlurmClusterError as exc:
        made.remove()
        pytest.fail(f"the test cluster did not start:\n{exc}")
    try:
        yield made
    finally:
        made.stop()
        made.remove()


def test_a_person_logged_in_by_certificate_runs_sbatch_as_themselves(
    server: LiveServer,
    client: Client,
    node: LoginNode,  # noqa: F811
    cluster: SlurmCluster,
    unique: str,
    homes: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    name, api, _ = person(server, client, unique, homes)
    try:
        key = keypair(tmp_path, "id_ed25519")
        signed = certify(api, key)
        assert signed.status_code == 201, signed.text
        Path(f"{key}-cert.pub").write_text(signed.json()["certificate"] + "\n")
        remote = f"SLURM_CONF={cluster.conf} sbatch --parsable -o /dev/null --wrap hostname"
        done = node.ssh(name, key, remote)
        assert done.returncode == 0, (done.stderr, node.log(), cluster.logs())
        job_id = done.stdout.strip().split(";")[0]
        assert job_id.isdigit(), done.stdout
        shown = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%u %i"],
            env=cluster.client_env(), capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert shown == [name, job_id], shown
    finally:
        remove_unix_account(name)
