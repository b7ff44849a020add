"""The local engine's multi-node jobs: what it accepts, and the gang program that runs them.

A job on N nodes runs on this one machine as N process groups (`local_gang`), each with its
node's rendezvous variables (`domain.rendezvous`) and its share of the job's GPUs, meeting
at 127.0.0.1. It shows on one machine what the job does on N: a node failing fails the job.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fabriek.domain.jobs import JobSpec
from fabriek.domain.rendezvous import gang_environments, gang_of
from fabriek.engines import local_gang
from fabriek.engines.base import EngineRejected

LOOPBACK = "127.0.0.1"
# The job's user must be able to run the gang's Python: the system's where it has one (the
# control plane's own may live where only root can read, e.g. under /root).
_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


def check_multinode(spec: JobSpec) -> None:
    """Refuse, for good, a multi-node job the local engine cannot simulate."""
    if spec.nodes == 1:
        return
    if spec.nodes < 1:
        raise EngineRejected(f"a job runs on at least one node, not {spec.nodes}")
    if spec.script is not None:
        raise EngineRejected(
            f"a batch script on {spec.nodes} nodes needs a Slurm site (its srun starts the "
            "tasks); on the local engine run a command with --nodes instead"
        )
    if spec.gpus % spec.nodes:
        raise EngineRejected(f"{spec.gpus} GPUs do not split evenly over {spec.nodes} nodes")


def gang_python() -> str:
    """The Python interpreter that runs the gang."""
    for candidate in _PYTHONS:
        if os.access(candidate, os.X_OK):
            return candidate
    return sys.executable


def gang_argv(
    job_id: int, spec: JobSpec, argv: Sequence[str], gpus: Sequence[int], grace_s: float
) -> list[str]:
    """`argv` as the job's program, run once per node by the gang when the job has several
    nodes; `argv` itself for a job on one node. `grace_s` must be shorter than the runner's,
    so that the gang has stopped its nodes before the runner kills it."""
    if spec.nodes == 1:
        return list(argv)
    gang = gang_of(job_id, spec.nodes, len(gpus), LOOPBACK)
    config = {"nodes": gang_environments(gang, {}, gpus), "grace_s": grace_s}
    source = Path(local_gang.__file__).read_text()
    return [gang_python(), "-I", "-S", "-c", source, json.dumps(config), *argv]
