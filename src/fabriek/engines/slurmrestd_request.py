"""An `EngineJob` as a slurmrestd submission: the JSON body of `POST /slurm/v0.0.38/job/submit`.

Pure: no I/O. The same decisions as `slurm_sbatch` (resources, time, output files, the tag
that finds the job again), written as the REST API's job properties instead of sbatch's
options; the batch script is the same (`build_script`), so a job runs alike through both.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from fabriek.domain.containers import ContainerSupport
from fabriek.engines.base import EngineJob, LogStream
from fabriek.engines.slurm_parse import job_tag
from fabriek.engines.slurm_sbatch import (
    WebApp,
    build_script,
    gpu_request,
    job_name,
    log_file_name,
    task_layout_of,
    time_minutes,
)
from fabriek.engines.slurm_web import WebPorts

# The API version Fabriek speaks: Slurm 22.05's newest (Debian 12's slurmrestd).
API_VERSION = "v0.0.38"
# What a job's process starts with besides its own variables (in the script): enough to find
# programs; the control plane's environment never travels to a site.
_BASE_ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    # Output files are the user's alone (slurmd creates them with the job's umask).
    "SLURM_UMASK": "0077",
}


def build_submission(
    job: EngineJob,
    *,
    engine: str,
    log_dir: PurePath,
    account: str,
    tag_prefix: str = "fabriek",
    partition: str | None = None,
    containers: ContainerSupport | None = None,
    web_ports: WebPorts | None = None,
) -> dict[str, Any]:
    """The body that submits `job`, charged to Slurm `account`, tagged for `known_jobs`;
    in its image with the site's container runtime (`containers`) when it names one.

    v0.0.38 has no node list among a job's properties: Slurm places the job itself."""
    spec = job.spec
    layout = task_layout_of(spec)  # the tasks its script asks for, as sbatch would start them
    properties: dict[str, Any] = {
        "name": job_name(job, tag_prefix),
        "comment": job_tag(tag_prefix, job.job_id),
        "account": account,
        "nodes": [spec.nodes, spec.nodes],
        "cpus_per_task": layout.cpus_per_task,
        "memory_per_node": spec.memory_gb * 1024,
        "time_limit": time_minutes(spec.time_limit_s),
        "standard_output": str(log_dir / log_file_name(engine, "%j", LogStream.STDOUT)),
        "standard_error": str(log_dir / log_file_name(engine, "%j", LogStream.STDERR)),
        "current_working_directory": spec.working_dir or "/tmp",
        "environment": dict(_BASE_ENVIRONMENT),
    }
    if layout.tasks_per_node is not None:
        properties["tasks_per_node"] = layout.tasks_per_node
    if layout.tasks is not None:
        properties["tasks"] = layout.tasks
    if spec.gpus:
        option, value = gpu_request(spec.gpus, spec.gpu_type, spec.nodes)
        properties[option] = value  # the REST API names them as sbatch does
    if partition:
        properties["partition"] = partition
    web = WebApp(engine, log_dir, web_ports or WebPorts())
    return {"script": build_script(job, containers, web), "job": properties}
