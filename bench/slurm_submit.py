"""Submission overhead through slurmrestd against plain `sbatch`, on one real cluster, in one run.

One throwaway Slurm 22.05 cluster (slurmctld, slurmd, and slurmrestd with JWT
authentication, as the slurmrestd engine's tests start it). N tiny jobs (`true`, 1 CPU,
4 GB, 60 min) are submitted three ways, interleaved in rounds so that the machine's noise
falls on all three alike (the order rotates each round):

- plain: `sbatch --wrap true` as the job's owner (a user at a login node), one process each;
- slurmrestd: Fabriek's `slurmrestd` engine (`SlurmRestEngine.submit`, one HTTP call with a
  token for the owner, no Slurm command, no munge);
- slurm: Fabriek's `slurm` engine (`SlurmEngine.submit`: `sbatch --uid` run by root).

The jobs must not run (a few hundred at once would swamp two cores): the partition is set
DOWN once the cluster is up, so Slurm accepts and queues every job without starting any.
Then the watch side, `--polls` times each: one `squeue` (the peer), one poll of the slurm
engine (one `squeue --json` of every job) and one of the slurmrestd engine (one `GET /jobs`),
each over all N of its jobs. At the end one `scancel` removes every job.

    .venv/bin/python -m bench.slurm_submit --jobs 1000

Needs root and Debian's slurm-wlm, munge and slurmrestd (installed when missing, as the
tests do), and the tests' Unix account fabriek-alice (made when missing).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from tests.slurm.conftest import ALICE, TEST_USERS, ensure_user
from tests.slurm_harness import SlurmCluster, ensure_slurm_installed
from tests.slurmrestd_install import ensure_slurmrestd_installed

from bench.api_load import command_line, machine_description
from fabriek.domain.jobs import JobSpec
from fabriek.engines.base import EngineJob
from fabriek.engines.slurm import SlurmEngine
from fabriek.engines.slurmrestd import JwtSigner, SlurmRestEngine
from fabriek.engines.slurmrestd_request import API_VERSION

# slurmctld's default MaxJobCount: it refuses submissions past this many jobs in memory.
_MAX_JOB_COUNT = 10_000
PLAIN, REST, SLURM = "plain sbatch", "slurmrestd engine", "slurm engine"


@dataclass
class Samples:
    """Per-call wall seconds; the CPU this process and its children (client) and the
    cluster's slurmctld and slurmrestd (site) spent on them."""

    wall_s: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    site_cpu_s: float = 0.0


def _cpu_now() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def site_daemons(cluster: SlurmCluster) -> list[int]:
    """The pids of the cluster's slurmctld and slurmrestd (the harness marks their
    environment with the cluster's folder)."""
    marker = f"FABRIEK_SLURM_HARNESS={cluster.root}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0]
            if argv0 in (b"slurmctld", b"slurmrestd") and marker in (
                entry / "environ"
            ).read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return pids


def _site_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def timed(samples: Samples, calls: list[Callable[[], object]], site: list[int]) -> None:
    """Run each of `calls`, adding each one's wall time to `samples`, and the client's and
    the site's CPU over all of them (the site's is read in clock ticks: per block, not per
    call)."""
    cpu, site_cpu = _cpu_now(), _site_cpu(site)
    for call in calls:
        started = time.perf_counter()
        call()
        samples.wall_s.append(time.perf_counter() - started)
    samples.cpu_s += _cpu_now() - cpu
    samples.site_cpu_s += _site_cpu(site) - site_cpu


def run_checked(argv: list[str], cluster: SlurmCluster) -> str:
    """A Slurm command against the cluster; its output, or SystemExit with its error."""
    done = subprocess.run(argv, env=cluster.client_env(), capture_output=True, text=True,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


# A user at a login node: a small process of theirs that starts one `sbatch` per job. It
# runs as the user from the start, because a big Python process forking with `user=`
# cannot use vfork and would add its own fork cost (several ms) to every sbatch.
_LOGIN_SHELL = """
import resource, subprocess, sys
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
for line in sys.stdin:
    before = cpu()
    done = subprocess.run([a.replace("{i}", line.strip()) for a in sys.argv[1:]],
                          capture_output=True, text=True)
    print(done.returncode, cpu() - before, done.stderr.strip().replace("\\n", " "), flush=True)
"""


def _system_python() -> str:
    """The system's Python, which any user may run (this virtual environment's may not be
    reachable for them)."""
    found = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if found is None:
        sys.exit("cannot run: no python3 on the system path for the plain user's shell")
    return found


class PlainUser:
    """`sbatch --wrap true` typed by the job's owner, one sbatch process per job."""

    def __init__(self, cluster: SlurmCluster, logs: Path) -> None:
        argv = ["sbatch", "--parsable", "--job-name=plain-{i}", "-A", ALICE.project, "-c", "1",
                "--mem=4G", "-t", "60", f"--output={logs}/plain-%j.out", "--wrap", "true"]  # fmt: skip
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **cluster.env}
        self._shell = subprocess.Popen(
            [_system_python(), "-I", "-c", _LOGIN_SHELL, *argv], env=env, cwd=logs,
            user=ALICE.user, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.sbatch_cpu_s = 0.0  # what the sbatch processes used (not this process's child)

    def submit(self, i: int) -> None:
        """One sbatch, waited for."""
        assert self._shell.stdin is not None and self._shell.stdout is not None
        self._shell.stdin.write(f"{i}\n")
        self._shell.stdin.flush()
        code, cpu, error = [*self._shell.stdout.readline().split(" ", 2), "", ""][:3]
        if code != "0":
            sys.exit(f"plain sbatch failed: {error.strip() or code or 'the shell ended'}")
        self.sbatch_cpu_s += float(cpu)

    def close(self) -> None:
        """End the user's shell."""
        assert self._shell.stdin is not None
        self._shell.stdin.close()
        self._shell.wait(30)


def engine_job(i: int) -> EngineJob:
    """The same tiny job for both engines (1 CPU, 4 GB, 60 min, `true`), owned by alice."""
    spec = JobSpec(name=f"bench-{i}", command=("true",), time_limit_s=3600)
    return EngineJob(i, spec, owner=ALICE)


def submit_all(
    cluster: SlurmCluster, plain: PlainUser, rest: SlurmRestEngine, slurm: SlurmEngine,
    args: argparse.Namespace,
) -> tuple[dict[str, Samples], dict[str, dict[int, str]]]:  # fmt: skip
    """Submit `--warmup` untimed and then `--jobs` timed jobs each way, in rounds of
    `--round` whose order rotates; the samples per way and each engine's handles."""
    handles: dict[str, dict[int, str]] = {REST: {}, SLURM: {}}
    ways: dict[str, Callable[[int], object]] = {
        PLAIN: plain.submit,
        REST: lambda i: handles[REST].__setitem__(i, rest.submit(engine_job(i))),
        SLURM: lambda i: handles[SLURM].__setitem__(i, slurm.submit(engine_job(i))),
    }
    # The first call of an engine asks the cluster for its tagged jobs (and slurmrestd's
    # for the API version it offers): once per engine life, not part of a submission.
    for i in range(args.warmup):
        for way in ways.values():
            way(i)
    plain.sbatch_cpu_s = 0.0
    site = site_daemons(cluster)
    samples = {name: Samples() for name in ways}
    order = list(ways)
    end = args.warmup + args.jobs
    for start in range(args.warmup, end, args.round):
        for name in order:
            ids = range(start, min(start + args.round, end))
            timed(samples[name], [partial(ways[name], i) for i in ids], site)
        order = order[1:] + order[:1]
    samples[PLAIN].cpu_s += plain.sbatch_cpu_s
    return samples, handles


def changed_since(rest: SlurmRestEngine, since: int) -> int:
    """`GET /jobs?update_time=since` as the operator; how many jobs came back."""
    token = rest.signer.token_for(rest.operator)
    answer = httpx.get(
        f"{rest.url}/slurm/{API_VERSION}/jobs", params={"update_time": since}, timeout=60,
        headers={"X-SLURM-USER-NAME": rest.operator, "X-SLURM-USER-TOKEN": token},
    )  # fmt: skip
    answer.raise_for_status()
    return len(answer.json().get("jobs") or [])


def watch_all(
    cluster: SlurmCluster, rest: SlurmRestEngine, slurm: SlurmEngine,
    handles: dict[str, dict[int, str]], polls: int,
) -> dict[str, Samples]:  # fmt: skip
    """One poll cycle over every job, `polls` times each way, interleaved."""
    ways: dict[str, Callable[[], object]] = {
        "`squeue` (plain)": partial(run_checked, ["squeue", "-h"], cluster),
        "`squeue --json` (plain)": partial(run_checked, ["squeue", "--json"], cluster),
        SLURM: partial(slurm.poll, handles[SLURM]),
        REST: partial(rest.poll, handles[REST]),
        # What an incremental poll could save: slurmctld answers "no change" when no job
        # changed since update_time (Slurm 22.05 filters all or nothing, not per job).
        "`GET /jobs?update_time=` (raw)": partial(changed_since, rest, int(time.time())),
    }
    site = site_daemons(cluster)
    samples = {name: Samples() for name in ways}
    for _ in range(polls):
        for name, way in ways.items():
            timed(samples[name], [way], site)
    return samples


def p95(values: list[float]) -> float:
    """The 95th percentile (linear between ranks)."""
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def report(subs: dict[str, Samples], watch: dict[str, Samples], queued: int) -> None:
    """Markdown tables: per-job latency and throughput, ratios to plain sbatch; polls."""
    base = subs[PLAIN]
    base_med, base_rate = statistics.median(base.wall_s), len(base.wall_s) / sum(base.wall_s)
    print("| way | jobs | median ms | p95 ms | max ms | jobs/s | median vs plain "
          "| jobs/s vs plain | client CPU ms/job | site CPU ms/job |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in subs.items():
        n = len(s.wall_s)
        med, rate = statistics.median(s.wall_s), n / sum(s.wall_s)
        print(f"| {name} | {n} | {med * 1e3:.1f} | {p95(s.wall_s) * 1e3:.1f} "
              f"| {max(s.wall_s) * 1e3:.1f} | {rate:.1f} | {med / base_med:.2f} "
              f"| {rate / base_rate:.2f} | {s.cpu_s / n * 1e3:.1f} "
              f"| {s.site_cpu_s / n * 1e3:.1f} |")  # fmt: skip
    print(f"\nOne poll cycle, {queued} jobs in slurmctld's queue:\n")
    print("| way | polls | median ms | min ms | max ms | client CPU ms/poll | site CPU ms/poll |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, s in watch.items():
        n = len(s.wall_s)
        print(f"| {name} | {n} | {statistics.median(s.wall_s) * 1e3:.0f} "
              f"| {min(s.wall_s) * 1e3:.0f} | {max(s.wall_s) * 1e3:.0f} "
              f"| {s.cpu_s / n * 1e3:.0f} | {s.site_cpu_s / n * 1e3:.0f} |")  # fmt: skip


def prepare_site(work: Path) -> SlurmCluster:
    """Slurm, slurmrestd and the job owner's account ready; a cluster trusting a new key."""
    for reason in (ensure_slurm_installed(), ensure_slurmrestd_installed()):
        if reason:
            sys.exit(f"cannot run: {reason}")
    ensure_user(ALICE.user, TEST_USERS[ALICE.user])
    key = work / "jwt_hs256.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    # A longer MessageTimeout than the tests' 3 s: other work shares this machine.
    return SlurmCluster("bench", gpus=0, jwt_key=key, message_timeout_s=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="timed jobs per way")
    parser.add_argument("--warmup", type=int, default=5, help="untimed jobs per way first")
    parser.add_argument("--round", type=int, default=10, help="jobs per way per round")
    parser.add_argument("--polls", type=int, default=5, help="poll cycles per way")
    args = parser.parse_args()
    if 3 * (args.jobs + args.warmup) >= _MAX_JOB_COUNT:
        sys.exit(f"at most {_MAX_JOB_COUNT // 3 - args.warmup - 1} jobs per way "
                 f"(slurmctld's MaxJobCount is {_MAX_JOB_COUNT})")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="fabriek-bench-submit-"))
    logs = work / "logs"
    logs.mkdir()
    logs.chmod(0o1777)  # the owners' output storage, as at a site (sticky, like /tmp)
    work.chmod(0o755)
    cluster = prepare_site(work)
    load_before = os.getloadavg()
    cluster.start()
    try:
        version = run_checked(["sinfo", "--version"], cluster).strip()
        # Accepted and queued, never started: no job runs on the 2 cores during the run.
        run_checked(["scontrol", "update", "PartitionName=main", "State=DOWN"], cluster)
        url = cluster.start_rest()
        assert cluster.jwt_key is not None
        rest = SlurmRestEngine("bench", url, JwtSigner(cluster.jwt_key), logs,
                               operator="root", tag_prefix="fbkrest")  # fmt: skip
        slurm = SlurmEngine("bench", cluster.env, logs, tag_prefix="fbkslurm")
        started = time.perf_counter()
        plain = PlainUser(cluster, logs)
        subs, handles = submit_all(cluster, plain, rest, slurm, args)
        plain.close()
        submit_s = time.perf_counter() - started
        queued = len(run_checked(["squeue", "-h", "-o", "%i"], cluster).split())
        watch = watch_all(cluster, rest, slurm, handles, args.polls)
        started = time.perf_counter()
        run_checked(["scancel", "--partition=main"], cluster)
        cancel_s = time.perf_counter() - started
        rest.close()
    finally:
        cluster.stop()
        cluster.remove()
        shutil.rmtree(work, ignore_errors=True)  # the key and the (empty) output folder
    print("\n".join(machine_description()))
    print(f"Slurm: {version} (one node, partition DOWN: jobs queued, none started); "
          f"load average before: {load_before[0]:.2f}, after: {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"Command: {command_line()}\n")
    report(subs, watch, queued)
    print(f"\nAll {3 * args.jobs} timed submissions: {submit_s:.1f} s; one `scancel` of all "
          f"{queued} jobs: {cancel_s:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
