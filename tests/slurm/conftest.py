"""Real Slurm clusters for the slurm tests: installed when missing, stopped afterwards.

Two clusters run at once, as two sites of one factory: site A (2 nodes x 4 H100) and site B
(1 node x 2 A100). When Slurm cannot be installed or started here, every test that needs a
cluster is skipped with the reason, loudly (pytest -ra lists it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.engines.slurm import SlurmEngine
from tests.slurm_harness import SlurmCluster, SlurmClusterError, ensure_slurm_installed


@pytest.fixture(scope="session")
def slurm_ready() -> None:
    """Slurm and a working munged, or a skip that says why not.

    munged is left running afterwards: it is the machine's shared authentication service,
    and another test run may be using it (see tests/slurm_install.py)."""
    reason = ensure_slurm_installed()
    if reason is not None:
        pytest.skip(reason)


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
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One log directory for both engines, as a shared filesystem would be."""
    return tmp_path_factory.mktemp("slurm-logs")


@pytest.fixture(scope="module")
def engine_a(site_a: SlurmCluster, logs: Path) -> SlurmEngine:
    return SlurmEngine("sitea", site_a.env, logs)


@pytest.fixture(scope="module")
def engine_b(site_b: SlurmCluster, logs: Path) -> SlurmEngine:
    return SlurmEngine("siteb", site_b.env, logs, command_timeout_s=20)
