"""The lines of a Slurm batch script that run a job inside its image, with the runtime the
site declares (rootless podman, Apptainer or Pyxis).

Pure: no I/O. The batch script runs as the job's user, so the container does too: rootless
podman maps that user to itself inside (`--userns keep-id`), Apptainer and Enroot never
change it. The job's working directory (where Slurm started the script) is mounted at the
same path and is the container's working directory; its staged datasets are mounted
read-only. GPUs: Slurm sets CUDA_VISIBLE_DEVICES and confines the job's processes to its
GPUs (`ConstrainDevices`); Apptainer gets `--nv`, podman with CDI every NVIDIA device
(`nvidia.com/gpu=all`, of which the job's cgroup lets it open only its own), Pyxis its
Enroot hooks. A pull credential for the factory's registry never goes on a command line:
podman reads it from an auth file, Enroot from a credentials file (both made with
`mktemp`, the user's alone, removed when the script ends), Apptainer from its
APPTAINER_DOCKER_USERNAME/PASSWORD variables.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence

from fabriek.domain import rendezvous
from fabriek.domain.containers import (
    ContainerRun,
    ContainerRuntime,
    ContainerSupport,
    Mount,
    auth_file_text,
    container_argv,
    registry_host,
    script_line,
)
from fabriek.engines.base import EngineJob
from fabriek.engines.slurm_web import HOST_VARIABLE
from fabriek.engines.web_apps import PORT_VARIABLE

WORK = "${FABRIEK_WORK_DIR}"
BODY = "${FABRIEK_BODY}"
AUTH = "${FABRIEK_AUTH}"
# What a rootless podman container is handed of the script's environment, besides the
# job's own variables: its GPUs, and who and where it is in Slurm's words.
PASSED_THROUGH = (
    "CUDA_VISIBLE_DEVICES", "FABRIEK_DATASETS", "SLURM_JOB_ID", "SLURM_JOB_NAME",
    "SLURM_JOB_NODELIST", "SLURM_NNODES", "SLURM_NODEID", "SLURM_PROCID", "SLURM_NTASKS",
    "SLURM_CPUS_PER_TASK", "SLURM_MEM_PER_NODE", "SLURM_SUBMIT_DIR",
)  # fmt: skip


def container_lines(
    job: EngineJob,
    image: str,
    support: ContainerSupport,
    body: Sequence[str] | None,
    shebang: str = "#!/bin/sh",
) -> list[str]:
    """Shell lines that run `body` (the script's lines after its header, run by `shebang`'s
    interpreter inside the image), or the job's command when `body` is None, in `image`."""
    spec = job.spec
    lines = ['FABRIEK_WORK_DIR="$(pwd -P)"']
    mounts = [Mount(WORK, WORK, writable=True)]
    if job.datasets_dir is not None:
        mounts.append(Mount(str(job.datasets_dir), str(job.datasets_dir)))
    if body is not None:
        text = "\n".join([shebang, *body])
        lines += ['FABRIEK_BODY="$(mktemp)"', *_here("$FABRIEK_BODY", text)]
        lines.append('chmod 700 "$FABRIEK_BODY"')
        mounts.append(Mount(BODY, BODY))
        argv: tuple[str, ...] = (BODY,)
    else:
        argv = tuple(spec.command or ())
    credential, auth_file = _pull_credential(job, image, support.runtime)
    lines += credential
    made = ['"$FABRIEK_BODY"'] if body is not None else []
    if any(line.startswith("FABRIEK_AUTH=") for line in credential):
        made.append('"$FABRIEK_AUTH"')
    if made:  # the temporary files go when the script ends, however it ends
        lines.append(f"trap 'rm -rf {' '.join(made)}' EXIT")
    run_options = support.run_options
    if support.cdi and spec.gpus and support.runtime is ContainerRuntime.PODMAN:
        run_options = ("--device", "nvidia.com/gpu=all", *run_options)
    environment: dict[str, str | None] = {}
    if support.runtime is ContainerRuntime.PODMAN:
        # Podman hands a container nothing of its caller's environment unless named; on
        # several nodes, the rendezvous variables each node's task was given too.
        gang = rendezvous.VARIABLES if spec.nodes > 1 else ()
        environment = {name: None for name in (*spec.environment, *PASSED_THROUGH, *gang)}
        if spec.web_port is not None:  # picked on the node by the script (`slurm_web`)
            environment.update({PORT_VARIABLE: None, HOST_VARIABLE: None})
    run = ContainerRun(
        reference=image,
        argv=argv,
        workdir=spec.working_dir or WORK,
        mounts=tuple(mounts),
        environment=environment,
        # Only whether the job has GPUs matters here (Apptainer's --nv): Slurm picks them.
        gpus=tuple(range(spec.gpus)),
        auth_file=auth_file,
        global_options=support.global_options,
        run_options=run_options,
    )
    line = container_argv(support.runtime, run)
    literal = 0 if body is not None else len(argv)  # the job's own command, as written
    return [*lines, script_line(line, support.environment, literal)]


def _here(path: str, text: str) -> list[str]:
    """Lines that write `text` as it is to the file at `path` (a shell word)."""
    # A delimiter made from the text itself cannot occur in it (short of a hash collision).
    end = "FABRIEK_EOF_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    return [f"cat > \"{path}\" <<'{end}'", text, end]


def _pull_credential(
    job: EngineJob, image: str, runtime: ContainerRuntime
) -> tuple[list[str], str | None]:
    """Lines that hand the runtime the job's pull credential, and the auth file podman is
    to read (None: no credential, or another runtime)."""
    pull = job.image
    if pull is None or pull.username is None or pull.password is None:
        return [], None
    if runtime is ContainerRuntime.PODMAN:
        text = auth_file_text(image, pull.username, pull.password)
        return ['FABRIEK_AUTH="$(mktemp)"', *_here("$FABRIEK_AUTH", text)], AUTH
    if runtime is ContainerRuntime.APPTAINER:
        return [
            f"export APPTAINER_DOCKER_USERNAME={shlex.quote(pull.username)}",
            f"export APPTAINER_DOCKER_PASSWORD={shlex.quote(pull.password)}",
        ], None
    # Enroot reads netrc-style credentials from $ENROOT_CONFIG_PATH/.credentials.
    netrc = f"machine {registry_host(image)} login {pull.username} password {pull.password}"
    return [
        'FABRIEK_AUTH="$(mktemp -d)"',
        *_here("$FABRIEK_AUTH/.credentials", netrc),
        'export ENROOT_CONFIG_PATH="$FABRIEK_AUTH"',
    ], None
