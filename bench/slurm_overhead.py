"""Fabriek against plain `sbatch` on one real Slurm cluster, in one run.

1. Overhead: N trivial one-GPU jobs submitted with `sbatch` in a loop, then the same N through
   Fabriek's HTTP API; wall time from the first submission until all have completed.
2. Polling cost: N jobs queued or running on Slurm (they sleep), and the control plane's CPU
   use (user + system time of its process) over a steady window.

    .venv/bin/python -m bench.slurm_overhead --jobs 1000 --gpus 8

Needs root and Debian's slurm-wlm and munge (installed when missing, as the tests do).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import delete
from tests.servers import free_port, prepare, spawn_serve, throwaway_database
from tests.slurm_harness import SlurmCluster, ensure_slurm_installed

from fabriek.services.demo.seed import demo_token
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import NodeGroupRow, SiteRow

ADMIN = {"Authorization": f"Bearer {demo_token('admin').token}"}
MARIA = {"Authorization": f"Bearer {demo_token('maria').token}"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def squeue_count(cluster: SlurmCluster) -> int:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], env=cluster.client_env(),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return len(out.split())


def wait_drained(cluster: SlurmCluster, timeout_s: float = 1800) -> None:
    deadline = time.monotonic() + timeout_s
    while squeue_count(cluster):
        if time.monotonic() > deadline:
            raise TimeoutError("Slurm queue did not drain")
        time.sleep(0.2)


def plain_sbatch(cluster: SlurmCluster, jobs: int, work: Path) -> float:
    started = time.perf_counter()
    for i in range(jobs):
        subprocess.run(
            ["sbatch", "--parsable", "--gres=gpu:1", "-t", "5", "-c", "1", "--mem=4G",
             f"--output={work}/plain-%j.out",
             f"--job-name=plain-{i}", "--wrap", "true"],
            env=cluster.client_env(), check=True, capture_output=True, cwd=work,
        )  # fmt: skip
    wait_drained(cluster)
    return time.perf_counter() - started


def start_server(url: str, state: Path, sites_file: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FABRIEK_DATABASE_URL": url, "FABRIEK_STATE_DIR": str(state),
           "FABRIEK_SITES_FILE": str(sites_file), "FABRIEK_LOG_LEVEL": "warning"}  # fmt: skip
    return spawn_serve(env, port)


def count_state(c: httpx.Client, state: str) -> int:
    return int(c.get("/api/v1/jobs", params={"state": state, "limit": 1}).json()["total"])


def through_fabriek(base: str, jobs: int, command: list[str]) -> float:
    with httpx.Client(base_url=base, headers=MARIA, timeout=60) as c:
        started = time.perf_counter()
        for _ in range(jobs):
            r = c.post("/api/v1/jobs", json={"command": command, "gpus": 1, "time_limit": "5"})
            r.raise_for_status()
        while count_state(c, "completed") < jobs:
            time.sleep(0.2)
        return time.perf_counter() - started


def only_bench_site(url: str) -> None:
    """The demo's people and projects, without its (local-engine) sites."""
    engine = make_engine(url)
    with make_sessions(engine)() as session:
        session.execute(delete(NodeGroupRow))
        session.execute(delete(SiteRow))
        session.commit()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs of the one-node cluster")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of CPU sampling")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    args = parser.parse_args()
    if reason := ensure_slurm_installed():
        sys.exit(f"cannot run: {reason}")
    work = Path(tempfile.mkdtemp(prefix="fabriek-bench-"))
    cluster = SlurmCluster("bench", gpus=args.gpus, cpus=max(8, args.gpus),
                           memory_mb=4096 * args.gpus + 1024, max_time_min=60)  # fmt: skip
    cluster.start()
    try:
        plain_s = plain_sbatch(cluster, args.jobs, work)
        with throwaway_database(args.database, work) as url:
            prepare(url)
            only_bench_site(url)
            sites = work / "sites.toml"
            # Like plain sbatch, every job may wait in Slurm's own queue.
            sites.write_text(f'[sites.bench]\nengine = "slurm"\nslurm_conf = "{cluster.conf}"\n'
                             f"queue_depth = {args.jobs}\n")  # fmt: skip
            port = free_port()
            proc = start_server(url, work / "state", sites, port)
            base = f"http://127.0.0.1:{port}"
            try:
                with httpx.Client(base_url=base, headers=ADMIN) as admin:
                    admin.post("/api/v1/sites", json={
                        "name": "bench", "city": "Delft", "province": "Zuid-Holland",
                        "engine": "slurm", "node_groups": [{"name": "gpu", "count": 1,
                        "gpu_type": "h100", "gpus_per_node": args.gpus,
                        "cpus_per_node": max(8, args.gpus), "memory_gb_per_node": 15}],
                    }).raise_for_status()  # fmt: skip
                fabriek_s = through_fabriek(base, args.jobs, ["true"])
                # Polling cost: N sleeping jobs, GPUs full, the rest queued on Slurm.
                with httpx.Client(base_url=base, headers=MARIA, timeout=60) as c:
                    for _ in range(args.jobs):
                        c.post("/api/v1/jobs", json={"command": ["sleep", "3000"], "gpus": 1,
                                                     "gpu_type": "h100", "time_limit": "60"}
                               ).raise_for_status()  # fmt: skip
                    while count_state(c, "pending"):  # all handed to Slurm
                        time.sleep(0.5)
                    time.sleep(5)  # let the burst of submissions settle
                    queued_on_slurm = squeue_count(cluster)
                    before, t0 = cpu_seconds(proc.pid), time.perf_counter()
                    time.sleep(args.window)
                    cpu = (cpu_seconds(proc.pid) - before) / (time.perf_counter() - t0)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    finally:
        cluster.stop()
        cluster.remove()
    cores = os.cpu_count()
    print(f"Machine: {cores} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, Slurm cluster of 1 node × {args.gpus} GPUs; "
          f"store: {args.database}")  # fmt: skip
    print(f"Command: .venv/bin/python -m bench.slurm_overhead --jobs {args.jobs} --gpus {args.gpus} "
          f"--database {args.database}\n")  # fmt: skip
    print("| | wall time until all completed | ratio |")
    print("|---|---|---|")
    print(f"| {args.jobs} × `sbatch --wrap true` (plain) | {plain_s:.1f} s | 1.00 |")
    print(
        f"| {args.jobs} × through Fabriek's API | {fabriek_s:.1f} s | {fabriek_s / plain_s:.2f} |"
    )
    print(f"\nPolling cost: {queued_on_slurm} jobs queued or running on Slurm; control plane CPU "
          f"{cpu * 100:.1f}% of one core over {args.window:.0f} s (dispatch interval 1 s)")  # fmt: skip


if __name__ == "__main__":
    main()
