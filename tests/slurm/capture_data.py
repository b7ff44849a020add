"""Re-capture the real Slurm output the parser tests read (`tests/slurm/data/`).

Run as root: `.venv/bin/python -m tests.slurm.capture_data` (about 80 s: one job runs into
its one-minute time limit). It starts a throwaway cluster with the test harness, submits jobs
that end in each state, and saves `squeue --json`, `scontrol show job --oneliner` and the
error messages of refused submissions and of an unreachable controller.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.slurm_harness import SlurmCluster, ensure_slurm_installed

DATA = Path(__file__).parent / "data"


def main() -> None:
    """Capture everything into DATA."""
    reason = ensure_slurm_installed()
    if reason:
        sys.exit(reason)
    with SlurmCluster("capture", gpu_type="h100", gpus=4) as cluster:
        env = cluster.client_env()
        out = cluster.root / "out"
        out.mkdir()

        def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            return subprocess.run(argv, env=env, capture_output=True, text=True, check=check)

        def sbatch(fid: int, *opts: str, wrap: str) -> str:
            tag = [f"--comment=fabriek:{fid}", f"--job-name=fabriek-{fid}"]
            files = [f"--output={out}/slurm-%j.out", f"--error={out}/slurm-%j.err"]
            argv = ["sbatch", "--parsable", *tag, *files, *opts, "--wrap", wrap]
            return run(*argv).stdout.strip()

        sbatch(101, "--gres=gpu:h100:1", wrap="echo hello")
        sbatch(102, wrap="echo failing >&2; exit 3")
        sbatch(103, wrap="kill -9 $$")
        timeout = sbatch(104, "--time=1", "--gres=gpu:1", wrap="sleep 300")
        running = sbatch(105, "--gres=gpu:h100:2", "--time=10", wrap="sleep 300")
        time.sleep(2)
        pending = sbatch(106, "--gres=gpu:h100:4", wrap="sleep 1")
        held = sbatch(107, "--hold", wrap="true")
        cancel_run = sbatch(108, "--time=5", wrap="sleep 300")
        time.sleep(2)
        run("scancel", cancel_run)
        time.sleep(1)
        (DATA / "squeue_22.05_active.json").write_text(run("squeue", "--json").stdout)
        (DATA / "scontrol_22.05_active.txt").write_text(
            run("scontrol", "show", "job", "--oneliner").stdout
        )
        rejected = run("sbatch", "--parsable", "--gres=gpu:v100:1", "--wrap", "true", check=False)
        too_big = run("sbatch", "--parsable", "--gres=gpu:9", "--wrap", "true", check=False)
        (DATA / "sbatch_rejected.txt").write_text(rejected.stderr + too_big.stderr)
        run("scancel", running, pending, held)
        while run("squeue", "-h", "-j", timeout, "-o", "%T").stdout.strip() != "TIMEOUT":
            time.sleep(2)
        time.sleep(3)
        (DATA / "squeue_22.05_finished.json").write_text(run("squeue", "--json").stdout)
        (DATA / "scontrol_22.05_finished.txt").write_text(
            run("scontrol", "show", "job", "--oneliner").stdout
        )
        cluster.stop_controller()
        down = run("squeue", "--json", check=False)
        (DATA / "squeue_controller_down.txt").write_text(f"rc={down.returncode}\n{down.stderr}")


if __name__ == "__main__":
    main()
