"""Re-capture the real Slurm output the parser tests read (`tests/slurm/data/`).

Run as root: `.venv/bin/python -m tests.slurm.capture_data` (about 90 s: one job runs into
its one-minute time limit). It starts a throwaway two-node cluster with the test harness,
submits jobs that end in each state, and saves `squeue --json`, `scontrol show job
--oneliner --details`, the messages of refused submissions and what squeue prints when
slurmctld is down. The Slurm ids and what each job did are listed in `JOBS` below.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.slurm_harness import SlurmCluster, ensure_slurm_installed

DATA = Path(__file__).parent / "data"
# Fabriek id -> what the job does; Slurm numbers them 1.. in this order.
JOBS = {
    106: "running on two nodes, then cancelled: 2 gpus per node",
    101: "completed: echo hello, 1 h100",
    102: "failed: exit 3",
    103: "failed: killed by SIGKILL",
    104: "timeout: sleep past --time=1, 1 gpu",
    105: "running, then cancelled: 2 h100",
    107: "pending for resources, then cancelled: 4 h100",
    108: "pending held, then cancelled",
}


def main() -> None:
    """Capture everything into DATA."""
    reason = ensure_slurm_installed()
    if reason:
        sys.exit(reason)
    with SlurmCluster("capture", gpu_type="h100", gpus=4, nodes=2) as cluster:
        env = {**cluster.client_env(), "TZ": "UTC"}
        out = cluster.root / "out"
        out.mkdir()

        def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return subprocess.run(argv, env=env, capture_output=True, text=True, check=check)

        def sbatch(fid: int, *opts: str, wrap: str) -> str:
            tag = [f"--comment=fabriek:{fid}", f"--job-name=fabriek-{fid}-capture"]
            files = [f"--output={out}/capture-%j.out", f"--error={out}/capture-%j.err"]
            argv = ["sbatch", "--parsable", *tag, *files, *opts, "--wrap", wrap]
            return run(*argv).stdout.strip()

        def save(label: str) -> None:
            (DATA / f"squeue_22.05_{label}.json").write_text(run("squeue", "--json").stdout)
            text = run("scontrol", "show", "job", "--oneliner", "--details").stdout
            (DATA / f"scontrol_22.05_{label}.txt").write_text(text)

        two = sbatch(106, "--nodes=2", "--gres=gpu:h100:2", "--time=10", wrap="sleep 300")
        sbatch(101, "--gres=gpu:h100:1", wrap="echo hello")
        sbatch(102, wrap="echo failing >&2; exit 3")
        sbatch(103, wrap="kill -9 $$")
        timeout = sbatch(104, "--time=1", "--gres=gpu:1", wrap="sleep 300")
        running = sbatch(105, "--gres=gpu:h100:2", "--time=10", wrap="sleep 300")
        time.sleep(3)
        pending = sbatch(107, "--gres=gpu:h100:4", wrap="sleep 1")
        held = sbatch(108, "--hold", wrap="true")
        time.sleep(2)
        save("active")
        rejected = run("sbatch", "--parsable", "--gres=gpu:v100:1", "--wrap", "true", check=False)
        too_big = run("sbatch", "--parsable", "--gres=gpu:9", "--wrap", "true", check=False)
        (DATA / "sbatch_rejected.txt").write_text(rejected.stderr + too_big.stderr)
        run("scancel", running, two, pending, held)
        state = ""
        while state != "TIMEOUT":
            time.sleep(2)
            state = run("squeue", "-h", "-t", "all", "-j", timeout, "-o", "%T").stdout.strip()
        time.sleep(3)
        save("finished")
        cluster.stop_controller()
        down = run("squeue", "--json", check=False)
        (DATA / "squeue_22.05_controller_down.json").write_text(down.stdout)
        sbatch_down = run("sbatch", "--parsable", "--wrap", "true", check=False)
        (DATA / "sbatch_controller_down.txt").write_text(sbatch_down.stderr)


if __name__ == "__main__":
    main()
