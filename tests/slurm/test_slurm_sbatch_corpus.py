"""Real multi-node batch scripts (tests/data/sbatch_multinode), submitted through the HTTP
API as their authors wrote them, run on a real Slurm cluster of two nodes: the directives
Fabriek set aside (`--partition=xyz-cluster`, `--exclusive`, `--output`) never reach sbatch,
Slurm starts the job on both nodes, and each script's own `srun` runs its launcher once per
node with the node's rank.

torch and accelerate are not installed here (nor a Python the job's user may run): the
job's PATH starts with a test double of `python` that, asked to run the launcher module the
script names (`python -u -m torch.distributed.run`, `python -u -m
accelerate.commands.launch`), prints what it was started with and where, as a launcher
would before starting its processes. Everything else is the script's own.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NodeGroupRow, SiteRow
from tests.jobs_helpers import submit, wait_for
from tests.servers import LiveServer, live_server, prepare, throwaway_database
from tests.slurm_harness import SlurmCluster

pytestmark = pytest.mark.slurm

CORPUS = Path(__file__).parent.parent / "data" / "sbatch_multinode"

# `python` on the job's PATH, a test double of `python -u -m torch.distributed.run ...` and
# `python -u -m accelerate.commands.launch ...` (the only way the scripts start Python): it
# prints the node it runs on, the task Slurm gave it, the launcher module and the options of
# the rendezvous, as a launcher would before starting its processes.
PYTHON_LAUNCHER_TEST_DOUBLE = """\
#!/bin/bash
[ "$1" = -u ] && shift
[ "$1" = -m ] || { echo "python test double: only -m LAUNCHER is known" >&2; exit 2; }
module=$2; shift 2
nnodes=- rank=- endpoint=- program=
while [ $# -gt 0 ]; do
  case $1 in
    --nnodes|--num_machines) nnodes=$2; shift 2;;
    --machine_rank) rank=$2; shift 2;;
    --rdzv_endpoint) endpoint=$2; shift 2;;
    --*) shift 2;;
    *) program=$1; shift;;
  esac
done
echo "$SLURMD_NODENAME task $SLURM_PROCID of $SLURM_NTASKS launcher $module" \\
  "nnodes $nnodes rank $rank endpoint $endpoint program $program"
"""


@pytest.fixture(scope="module")
def settings(
    site_a: SlurmCluster, shared_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A factory whose only site is site A (two nodes of four H100) on a real Slurm."""
    with throwaway_database("sqlite", tmp_path_factory.mktemp("db")) as url:
        prepare(url)
        engine = make_engine(url)
        with make_sessions(engine)() as session:
            session.execute(delete(NodeGroupRow))
            session.execute(delete(SiteRow))
            session.commit()
        engine.dispose()
        state = tmp_path_factory.mktemp("state")
        (shared_logs / "sitea").mkdir(exist_ok=True)
        (shared_logs / "sitea").chmod(0o1777)
        sites_file = state / "sites.toml"
        sites_file.write_text(
            f'[sites.sitea]\nengine = "slurm"\nslurm_conf = "{site_a.conf}"\n'
            f'log_dir = "{shared_logs / "sitea"}"\n'
        )
        settings = Settings(
            database_url=url, state_dir=state, sites_file=sites_file, dispatch_interval_s=0.3
        )
        body = {
            "name": "sitea", "city": "Delft", "province": "Zuid-Holland", "engine": "slurm",
            "max_time_s": 3600,
            "node_groups": [{"name": "gpu", "gpu_type": "h100", "count": 2, "gpus_per_node": 4,
                             "cpus_per_node": 8, "memory_gb_per_node": 15}],
        }  # fmt: skip
        with live_server(settings.model_copy()) as live:
            headers = {"Authorization": f"Bearer {demo_token('admin').token}"}
            with httpx.Client(base_url=live.url, headers=headers) as admin:
                created = admin.post("/api/v1/sites", json=body)
                assert created.status_code == 201, created.text
        yield settings


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[LiveServer]:
    with live_server(settings.model_copy()) as live:
        yield live


@pytest.fixture
def maria(server: LiveServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {demo_token('maria').token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        yield c


@pytest.fixture
def workdir() -> Iterator[Path]:
    """The job's working directory, which its user may write (the scripts write a log
    there; pytest's own folders are root's alone), with the `python` test double."""
    folder = Path(tempfile.mkdtemp(prefix="fabriek-corpus-", dir="/tmp"))
    folder.chmod(0o1777)
    (folder / "bin").mkdir(mode=0o755)
    python = folder / "bin" / "python"
    python.write_text(PYTHON_LAUNCHER_TEST_DOUBLE)
    python.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def slurm_record(cluster: SlurmCluster, job_id: int) -> dict[str, str]:
    """What Slurm holds of a Fabriek job (`scontrol show job`'s fields), found by the tag
    Fabriek puts in its comment (`<prefix>:<job id>`)."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        env=cluster.client_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in out.splitlines():
        fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
        if fields.get("Comment", "").endswith(f":{job_id}"):
            return fields
    raise AssertionError(f"no Slurm job carries Fabriek job {job_id}:\n{out}")


@pytest.mark.parametrize(
    ("name", "launcher"),
    [
        ("stas00_torchrun-launcher.slurm", "torch.distributed.run"),
        ("stas00_accelerate-launcher.slurm", "accelerate.commands.launch"),
    ],
)
def test_a_real_script_runs_on_two_nodes_as_written(
    maria: httpx.Client, site_a: SlurmCluster, workdir: Path, name: str, launcher: str
) -> None:
    text = (CORPUS / name).read_text()
    # The scripts ask for nodes of 8 GPUs and 96 CPUs; this cluster's have 4 and 8. The
    # submission says so, as sbatch's own options would; the script itself is unchanged.
    job = submit(
        maria, script=text, gpus=8, cpus=8, working_dir=str(workdir),
        environment={"PATH": f"{workdir / 'bin'}:/usr/bin:/bin"},
    )  # fmt: skip
    assert (job["nodes"], job["gpus"], job["name"]) == (2, 8, name.split("_")[1][:-6])
    assert [n.split(" set aside")[0] for n in job["notes"]] == [
        "line 12: --exclusive",
        "line 13: --partition=xyz-cluster",
        "line 14: --output=%x-%j.out",
    ]
    done = wait_for(maria, job["id"], timeout=120)
    out = maria.get(f"/api/v1/jobs/{job['id']}/logs").text
    err = maria.get(f"/api/v1/jobs/{job['id']}/logs?stream=stderr").text
    assert (done["state"], done["exit_code"]) == ("completed", 0), (done, out, err)
    # The script's srun started its launcher once per node, each with its own task.
    ran = sorted(line.split() for line in out.splitlines() if " launcher " in line)
    assert [(r[0], r[2], r[4], r[6]) for r in ran] == [
        ("sitean1", "0", "2", launcher),
        ("sitean2", "1", "2", launcher),
    ], out
    assert all(r[8] == "2" for r in ran), out  # --nnodes / --num_machines from SLURM_NNODES
    if launcher.startswith("accelerate"):
        assert [r[10] for r in ran] == ["0", "1"], out  # --machine_rank, from $SLURM_PROCID
    else:
        assert all(r[12] == "sitean1:6000" for r in ran), out  # node 0, the script's port
    assert "END TIME:" in out  # the script ran to its end
    assert (workdir / "main_log.txt").read_text().count(" launcher ") >= 2  # its own log
    # What sbatch was given: the partition Fabriek chose (the cluster's default), two nodes,
    # one task each; nothing set aside reached it.
    seen = slurm_record(site_a, job["id"])
    assert (seen["Partition"], seen["NumNodes"], seen["NumTasks"]) == ("main", "2", "2"), seen
    assert "xyz-cluster" not in str(seen) and "%x-%j.out" not in seen["StdOut"]
