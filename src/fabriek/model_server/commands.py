"""The command line of one endpoint replica: the CPU model server (this package) where the
job has no GPUs or no vLLM, vLLM on a GPU site. Pure and light (no NumPy), since the
endpoints' control builds it when it submits a replica.

The command is fixed when the job is submitted, before a site is chosen, so whatever is
site- or job-specific comes from the job's environment when it starts: the port
(`FABRIEK_WEB_PORT`, else 8000) and address (`FABRIEK_WEB_HOST`, else the loopback), the secret the server trusts (`FABRIEK_WEB_SECRET`, handed to
vLLM as `VLLM_API_KEY`, never on the argv) and the model's folder (the path may name
variables such as `$FABRIEK_DATASETS`).
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
import sysconfig
from pathlib import Path

from fabriek.model_server.vllm import API_KEY_VARIABLE, VllmOptions, vllm_argv

PORT = '"${FABRIEK_WEB_PORT:-8000}"'
# The loopback, or where a Slurm site's jobs listen (its control plane connects from
# elsewhere; engines/slurm_web.py).
HOST = '"${FABRIEK_WEB_HOST:-127.0.0.1}"'
SECRET_VARIABLE = "FABRIEK_WEB_SECRET"
CPU = "cpu"
VLLM = "vllm"
AUTO = "auto"


def _shell_word(path: str) -> str:
    """`path` in double quotes: its `$VARIABLES` expand in the job, nothing else does."""
    escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    return f'"{escaped}"'


# Where a site's own Python for the CPU server is named, when the job's user cannot run the
# control plane's (its sites-file environment, as FABRIEK_JUPYTER is for notebooks).
PYTHON_VARIABLE = "FABRIEK_MODEL_SERVER_PYTHON"
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3")


def _others_can_run(program: str) -> bool:
    """Whether a user other than its owner may run `program` (every folder above it
    searchable by all, the file itself executable by all)."""
    path = Path(os.path.realpath(program))
    try:
        if not path.stat().st_mode & stat.S_IXOTH:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
    except OSError:
        return False


def job_python() -> tuple[str, str | None]:
    """The interpreter a job's unprivileged user runs the CPU server with, and the
    PYTHONPATH it needs: the project's venv interpreter where anyone may run it; else the
    system's Python of the same version, given the venv's packages and Fabriek's source
    (the venv's own interpreter may live where only root can read, e.g. under /root)."""
    if _others_can_run(sys.executable):
        return sys.executable, None
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in SYSTEM_PYTHONS:
        if _others_can_run(candidate) and Path(os.path.realpath(candidate)).name == version:
            paths = sysconfig.get_paths()
            source = str(Path(__file__).resolve().parents[2])  # the folder holding fabriek/
            found = dict.fromkeys([paths["purelib"], paths["platlib"], source])
            return candidate, os.pathsep.join(found)
    return sys.executable, None


def cpu_server_argv(model_dir: str, served_name: str, python: str | None = None) -> str:
    """The CPU server's command as one shell line, run by the job's own user: with the
    site's FABRIEK_MODEL_SERVER_PYTHON where set, else the project's interpreter (see
    `job_python`; `python3` in an image)."""
    prefix = ""
    if python is None:
        python, pythonpath = job_python()
        if pythonpath:
            prefix = f"export PYTHONPATH={shlex.quote(pythonpath)}; "
    plain = all(c.isalnum() or c in "/._+-" for c in python)
    py = f'"${{{PYTHON_VARIABLE}:-{python}}}"' if plain else shlex.quote(python)
    return (
        f"{prefix}exec {py} -m fabriek.model_server --model {_shell_word(model_dir)} "
        f"--port {PORT} "
        f"--host {HOST} --served-model-name {shlex.quote(served_name)} "
        f"--api-key-env {SECRET_VARIABLE}"
    )


def vllm_line(model_dir: str, served_name: str, gpus: int) -> str:
    """vLLM's command as one shell line, the job's secret passed as VLLM_API_KEY."""
    argv = vllm_argv(VllmOptions(model_dir="MODEL", served_name=served_name, gpus=gpus))
    words = [shlex.quote(a) for a in argv]
    words[words.index("MODEL")] = _shell_word(model_dir)
    words[words.index("8000")] = PORT
    words[words.index("127.0.0.1")] = HOST
    return f'export {API_KEY_VARIABLE}="${SECRET_VARIABLE}"; exec ' + " ".join(words)


def engine_for(gpus: int, image: str | None, engine_kind: str = AUTO) -> str:
    """Which server a replica runs: CPU without GPUs; vLLM in an image (the CPU server's
    venv is not in it) or where `engine_kind` says so; else decided when the job starts
    ("auto": vLLM where it is installed and a real GPU answers, the CPU server otherwise,
    as on this machine's virtual GPUs)."""
    if engine_kind in (CPU, VLLM):
        return engine_kind
    if gpus < 1:
        return CPU
    return VLLM if image else AUTO


def server_command(
    model_path: str,
    served_name: str,
    gpus: int,
    image: str | None = None,
    engine_kind: str = AUTO,
) -> list[str]:
    """The argv of one replica's job serving `model_path` as `served_name` on `gpus` GPUs."""
    kind = engine_for(gpus, image, engine_kind)
    cpu = cpu_server_argv(model_path, served_name, "python3" if image else None)
    if kind == CPU:
        return ["sh", "-c", cpu]
    vllm = vllm_line(model_path, served_name, max(gpus, 1))
    if kind == VLLM:
        return ["sh", "-c", vllm]
    probe = "command -v vllm >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1"
    return ["sh", "-c", f"if {probe}; then {vllm}; else {cpu}; fi"]
