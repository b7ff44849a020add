"""Jobs written as sbatch calls: the options Fabriek decides, and scripts that bash runs.

The scripts are run here with bash itself (no Slurm needed), with a stand-in `apptainer`
on PATH that shows what it was asked to run, so quoting mistakes fail here, not on a site.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path, PurePath
from typing import Any

import pytest

from fabriek.domain.containers import ContainerRuntime, ContainerSupport
from fabriek.domain.jobs import JobSpec
from fabriek.engines.base import EngineJob, LogStream, Placement
from fabriek.engines.slurm_sbatch import (
    SbatchInputError,
    build_sbatch,
    build_script,
    log_file_name,
)

LOGS = PurePath("/shared/logs")


def job(job_id: int = 42, placement: Placement | None = None, **spec: Any) -> EngineJob:
    fields: dict[str, Any] = {"name": "train llama", "command": ("python", "train.py")}
    return EngineJob(job_id, JobSpec(**{**fields, **spec}), placement or Placement())


APPTAINER = ContainerSupport(ContainerRuntime.APPTAINER)  # the site declares Apptainer


def run_script(script: str, tmp_path: Path) -> str:
    """Run a batch script with bash, with a fake apptainer first on PATH."""
    fake = tmp_path / "bin" / "apptainer"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(
        '#!/bin/bash\n[ "$1" = exec ] && shift\nwhile [ "${1#-}" != "$1" ]; do case "$1" in\n'
        "--nv) echo nv; shift;; --no-home) shift;; *) shift 2;; esac; done\n"
        'echo "image=$1"; shift\nexec "$@"\n'
    )
    fake.chmod(0o755)
    path = tmp_path / "job.sh"
    path.write_text(script)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_fabriek_decides_the_resources_and_tags_the_job() -> None:
    spec: dict[str, Any] = {
        "gpus": 4,
        "gpu_type": "h100",
        "cpus": 16,
        "memory_gb": 64,
        "time_limit_s": 3601,
    }
    request = build_sbatch(job(**spec), engine="site a", log_dir=LOGS)
    assert request.args == (
        "--parsable",
        "--job-name=fabriek-42-train_llama",
        "--comment=fabriek:42",
        "--output=/shared/logs/site_a-%j.out",
        "--error=/shared/logs/site_a-%j.err",
        "--nodes=1",
        "--cpus-per-task=16",
        "--mem=64G",
        "--time=61",  # whole minutes, rounded up
        "--gres=gpu:h100:4",
    )
    assert log_file_name("site a", "17", LogStream.STDERR) == "site_a-17.err"


def test_gpus_per_node_and_the_rest() -> None:
    even = build_sbatch(job(gpus=8, nodes=2), engine="a", log_dir=LOGS, tag_prefix="fab2")
    assert "--gres=gpu:4" in even.args and "--comment=fab2:42" in even.args
    uneven = build_sbatch(job(gpus=3, nodes=2, gpu_type="a100"), engine="a", log_dir=LOGS)
    assert "--gpus=a100:3" in uneven.args
    placed = build_sbatch(
        job(working_dir="/data/run", placement=Placement(("n1", "n2"))),
        engine="a",
        log_dir=LOGS,
        partition="gpu",
    )
    assert {"--chdir=/data/run", "--partition=gpu", "--nodelist=n1,n2"} <= set(placed.args)
    assert not any(a.startswith(("--gres", "--gpus")) for a in placed.args)
    assert "--time=1" in build_sbatch(job(time_limit_s=5), engine="a", log_dir=LOGS).args


def test_a_command_runs_with_its_environment_quoted(tmp_path: Path) -> None:
    argv = ("bash", "-c", 'echo "$1 $GREETING"', "_", "it's; $(not run)")
    script = build_script(job(command=argv, environment={"GREETING": "héllo 'x' $HOME"}))
    assert script.startswith("#!/bin/bash\n")
    assert run_script(script, tmp_path) == "it's; $(not run) héllo 'x' $HOME\n"


def test_a_command_in_a_container(tmp_path: Path) -> None:
    spec = job(command=("echo", "inside"), container_image="/img/x.sif", gpus=1)
    script = build_script(spec, APPTAINER)
    assert run_script(script, tmp_path) == "nv\nimage=/img/x.sif\ninside\n"


def test_a_script_keeps_its_header_before_the_environment(tmp_path: Path) -> None:
    text = '#!/bin/bash\n#SBATCH --time=5\n\n# note\necho "$A"\n#SBATCH --late\n'
    script = build_script(job(command=None, script=text, environment={"A": "1 2"}))
    lines = script.splitlines()
    # Its directives are turned off: Fabriek read them at submission and gives sbatch what
    # it honours as options (issue 18: a line it set aside, --partition, never reaches
    # sbatch); the body, a late #SBATCH comment included, is as written.
    assert lines[:4] == ["#!/bin/bash", "##SBATCH --time=5", "", "# note"]
    assert lines[4] == "export A='1 2'"
    assert lines[-1] == "#SBATCH --late"
    assert run_script(script, tmp_path) == "1 2\n"


@pytest.mark.parametrize(
    ("directives", "cpus", "nodes", "expected"),
    [
        ("", 8, 1, ["--cpus-per-task=8"]),
        ("#SBATCH --ntasks-per-node=4 -c 2\n", 8, 2, ["--cpus-per-task=2", "--ntasks-per-node=4"]),
        ("#SBATCH --ntasks=8\n", 8, 2, ["--cpus-per-task=2", "--ntasks=8"]),
        ("#SBATCH -n 3\n", 3, 1, ["--cpus-per-task=1", "--ntasks=3"]),
    ],
)
def test_the_tasks_of_a_script_share_the_cpus_fabriek_counted(
    directives: str, cpus: int, nodes: int, expected: list[str]
) -> None:
    """`JobSpec.cpus` is per node: a script's tasks on a node share them, so that Slurm
    allocates what Fabriek counted, not the tasks times the job's CPUs."""
    script = f"#!/bin/bash\n{directives}srun true\n"
    spec = job(command=None, script=script, cpus=cpus, nodes=nodes)
    args = build_sbatch(spec, engine="a", log_dir=LOGS).args
    assert [a for a in args if a.startswith(("--cpus-per-task", "--ntasks"))] == expected


def test_a_script_without_a_shebang_gets_one(tmp_path: Path) -> None:
    script = build_script(job(command=None, script="echo plain"))
    assert script.splitlines()[0] == "#!/bin/bash"
    assert run_script(script, tmp_path) == "plain\n"


def test_a_script_in_a_container_runs_whole(tmp_path: Path) -> None:
    text = "#!/bin/bash\n#SBATCH -N1\ncat <<'EOF'\nheredoc $x\nEOF\necho \"in $0\" | cut -c1-3\n"
    script = build_script(job(command=None, script=text, container_image="docker://x/y"), APPTAINER)
    assert run_script(script, tmp_path) == "image=docker://x/y\nheredoc $x\nin \n"


@pytest.mark.parametrize(
    "spec",
    [{"environment": {"1BAD": "x"}}, {"environment": {"A B": "x"}}, {"command": None},
     {"nodes": 0}, {"cpus": 0}, {"gpus": -1}],
)  # fmt: skip
def test_jobs_that_cannot_be_written(spec: dict[str, Any]) -> None:
    with pytest.raises(SbatchInputError):
        build_sbatch(job(**spec), engine="a", log_dir=LOGS)
