"""Re-capture the real Slurm accounting the harvest's parser tests read (`tests/slurm/data/`).

Run as root: `.venv/bin/python -m tests.slurm.capture_accounting` (about a minute). It
starts a throwaway two-node cluster with slurmdbd and slurmrestd (dbv0.0.38), makes an
account and two users with sacctmgr, has them submit with `sbatch --uid` as a person logged
in at the site would, and saves what `sacct --parsable2` prints and what slurmrestd's
`GET /slurmdb/v0.0.38/jobs` answers. The jobs are listed in `JOBS`; Slurm numbers them 1..
in this order (an array's tasks take the ids after it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from fabriek.domain.slurm_accounting import SACCT_FORMAT
from fabriek.engines.slurmrestd import JwtSigner
from tests.slurm.conftest import ensure_user
from tests.slurm_harness import SlurmCluster, ensure_slurm_installed

DATA = Path(__file__).parent / "data"
USERS = {"fab-hv-ann": 1_900_400_001, "fab-hv-ben": 1_900_400_002}
ACCOUNT = "hvclimate"
JOBS = {
    1: "ann: completed, 1 h100 (gres/gpu:h100:1)",
    2: "ann: two nodes, 2 GPUs each, completed",
    3: "ben: array of 3 tasks (3, 4, 5), 1 GPU each, completed",
    6: "ann: failed, exit 3, 2 GPUs",
    7: "ben: requeued once while running, then completed, 1 GPU",
    8: "ann: cancelled while running, 4 GPUs",
    9: "root: Fabriek's own job (comment fabriek:101, name fabriek-101-capture)",
    10: "ben: heterogeneous, 1 GPU + 2 GPUs",
}


def main() -> None:
    """Capture everything into DATA."""
    reason = ensure_slurm_installed()
    if reason:
        sys.exit(reason)
    for name, uid in USERS.items():
        ensure_user(name, uid)
    key = Path(tempfile.mkdtemp()) / "jwt.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    with SlurmCluster(
        "capture", gpu_type="h100", gpus=4, nodes=2, accounting=True, jwt_key=key
    ) as cluster:
        env = {**cluster.client_env(), "TZ": "UTC"}
        out = cluster.root / "out"
        out.mkdir()
        out.chmod(0o1777)

        def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            if check and done.returncode:
                raise RuntimeError(f"{argv}: {done.stderr}")
            return done

        cluster.sacctmgr("add", "account", ACCOUNT, "description=harvest capture")
        for user in USERS:
            cluster.sacctmgr("add", "user", user, f"account={ACCOUNT}")

        def sbatch(user: str | None, *opts: str, wrap: str) -> str:
            who = [f"--uid={user}", f"--gid={user}", f"--account={ACCOUNT}"] if user else []
            files = [f"--output={out}/%j.out", f"--error={out}/%j.err", "--chdir=/tmp"]
            argv = ["sbatch", "--parsable", *who, *files, *opts, "--wrap", wrap]
            return run(*argv).stdout.strip()

        ann, ben = USERS
        sbatch(ann, "--gres=gpu:h100:1", wrap="sleep 2")
        sbatch(ann, "--nodes=2", "--gres=gpu:2", wrap="srun sleep 2")
        sbatch(ben, "--array=0-2", "--gres=gpu:1", wrap="sleep 1")
        sbatch(ann, "--gres=gpu:2", wrap="exit 3")
        requeued = sbatch(ben, "--requeue", "--gres=gpu:1", wrap="sleep 8")
        cancelled = sbatch(ann, "--gres=gpu:4", wrap="sleep 300")
        sbatch(
            None,
            "--comment=fabriek:101",
            "--job-name=fabriek-101-capture",
            "--gres=gpu:h100:1",
            wrap="sleep 1",
        )
        het = run(
            "sbatch", "--parsable", f"--uid={ben}", f"--gid={ben}", f"--account={ACCOUNT}",
            f"--output={out}/%j.out", "--chdir=/tmp", "--gres=gpu:1", ":", "--gres=gpu:2",
            "--wrap", "sleep 2",
        )  # fmt: skip
        print("het:", het.stdout, het.stderr)
        time.sleep(4)
        run("scontrol", "requeue", requeued)
        # A requeued job waits for its credential to expire (BeginTime, about 2 minutes)
        # unless told to start again now.
        time.sleep(2)
        run("scontrol", "update", f"jobid={requeued}", "starttime=now")
        time.sleep(1)
        run("scancel", cancelled)
        _wait_all_done(run)
        time.sleep(3)  # slurmctld hands the last records to slurmdbd
        fields = ["sacct", "--parsable2", "--noheader", "--allocations", "--duplicates"]
        window = ["--starttime=2020-01-01T00:00:00", f"--format={SACCT_FORMAT}", "--allusers"]
        text = run(*fields, *window).stdout
        (DATA / "sacct_22.05_allocations.txt").write_text(text)
        steps = run("sacct", "--parsable2", "--noheader", "--duplicates", *window).stdout
        (DATA / "sacct_22.05_with_steps.txt").write_text(steps)
        url = cluster.start_rest(plugins=("openapi/v0.0.38", "openapi/dbv0.0.38"))
        signer = JwtSigner(key)
        headers = {"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": signer.token_for("root")}
        answer = httpx.get(
            f"{url}/slurmdb/v0.0.38/jobs",
            params={"start_time": "2020-01-01T00:00:00"},
            headers=headers,
        )
        (DATA / "slurmdb_22.05_jobs.json").write_text(
            json.dumps(answer.json(), indent=1, sort_keys=True) + "\n"
        )
        spec = httpx.get(f"{url}/openapi/v3", headers=headers).json()
        (DATA / "slurmrestd-22.05-openapi-dbv0.0.38.json").write_text(
            json.dumps(
                {k: v for k, v in spec["paths"].items() if k.startswith("/slurmdb/")},
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
        cluster.stop_rest()


def _wait_all_done(run: object) -> None:
    call = run  # type: ignore[assignment]
    for _ in range(120):
        left = call("squeue", "-h", "-o", "%i %T").stdout.strip()  # type: ignore[operator]
        if not left:
            return
        time.sleep(1)
    raise RuntimeError(f"jobs still in the queue: {left}")


if __name__ == "__main__":
    main()
