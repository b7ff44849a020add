"""Throwaway real Slurm clusters for tests: install Slurm and munge, start and stop daemons.

Plain Python, no pytest: a fixture, a script or a person at a shell can use it alike.

    reason = ensure_slurm_installed()      # None when ready, else why not (for pytest.skip)
    with SlurmCluster("sitea", gpu_type="h100", gpus=4) as cluster:
        subprocess.run(["sinfo"], env={**os.environ, **cluster.env})

Each cluster lives in its own temporary directory (config, state, spool, logs, pid files,
fake GPU device files) with its own ClusterName and free ports, so several run side by side on
one machine. The daemons run in the foreground (`-D`) as children of this process: stopping
them never depends on pid files, and `stop()` also kills every job process left behind (found
by the SLURM_CONF path in its environment), so no test leaves anything running.

Installing Slurm and starting munged is `tests.slurm_install`'s part (re-exported here).

Facts that shaped it (Slurm 22.05 on Debian 12, as root, no systemd):
- GPUs without hardware: gres.conf `File=` must name character devices, or slurmd logs "not a
  valid character or block device" and the job gets no CUDA_VISIBLE_DEVICES. We make them with
  mknod as copies of /dev/null (harmless: proctrack/linuxproc and task/none confine nothing).
- `-f` must be given an absolute path: the daemons chdir before reading it.
- Jobs run as their owners (real Unix accounts the tests make) and write their output files
  where `--output`/`--error` say, on this host; the cluster's folder is 0755 so that they
  can read their batch scripts in slurmd's spool.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from tests.slurm_accounting_conf import (
    ACCOUNTING,
    JOB_ACCT_GATHER,
    MARIADB_HOST,
    MARIADB_PORT,
    MARIADB_USER,
    NO_ACCOUNTING,
    SLURMDBD_CONF,
    mariadb,
)
from tests.slurm_install import ensure_accounting_installed, ensure_slurm_installed, stop_munged

__all__ = [
    "SlurmCluster",
    "SlurmClusterError",
    "ensure_accounting_installed",
    "ensure_slurm_installed",
    "reap_orphans",
    "stop_munged",
]

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on the loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The parts of slurm.conf that are the same for every test cluster; nodes and the partition
# are added after it. Comments say why a value is not Slurm's default.
_SLURM_CONF = """\
ClusterName={name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
# No cgroups in a container: track processes by parent, confine nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# Start jobs soon after they arrive, and backfill every second instead of every 30 s.
SchedulerParameters=sched_min_interval=100000,bf_interval=1{sched_more}
{accounting}JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Nodes may claim more CPUs and memory than this machine has: a 2-core machine runs
# several test jobs at once.
SlurmdParameters=config_overrides
# Without a default, a job that does not say --mem takes the whole node.
DefMemPerCPU=256
# Without accounting a finished job is visible only while slurmctld keeps it: MinJobAge
# seconds after it ends. The engine relies on that window.
MinJobAge=900
# Exact time limits (no grace minutes) and a short SIGTERM -> SIGKILL wait.
OverTimeLimit=0
KillWait=2
InactiveLimit=0
# While slurmctld is down clients retry for about this long: keep "down" tests fast.
MessageTimeout={message_timeout}
SlurmdTimeout=300
GresTypes=gpu
"""


class SlurmClusterError(RuntimeError):
    """A test cluster did not come up; the message holds the daemons' logs."""


class SlurmCluster:
    """A throwaway Slurm cluster of `nodes` nodes on this machine, each with fake GPUs."""

    def __init__(
        self,
        name: str,
        *,
        gpu_type: str = "h100",
        gpus: int = 4,
        cpus: int = 8,
        memory_mb: int = 16000,
        max_time_min: int = 60,
        nodes: int = 1,
        message_timeout_s: int = 3,
        root: Path | None = None,
        jwt_key: Path | None = None,
        accounting: bool = False,
    ) -> None:
        """`jwt_key`: the site's HS256 key for JSON Web Tokens (AuthAltTypes=auth/jwt), so
        that `start_rest` can serve the cluster's REST API to token holders. `accounting`:
        run slurmdbd on this machine's MariaDB (a database of its own, dropped by
        `remove`) and have Slurm enforce associations, QOS and limits."""
        if not name.isalnum() or not name.islower():
            raise ValueError("a cluster name is lowercase letters and digits")
        self.name = name
        self.gpu_type = gpu_type
        self.gpus = gpus
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.max_time_min = max_time_min
        self.node_names = tuple(f"{name}n{i}" for i in range(1, nodes + 1))
        self.message_timeout_s = message_timeout_s
        self._own_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix=f"slurm-{name}-"))
        self.conf = self.root / "slurm.conf"
        self.log_dir = self.root / "log"
        self.ctld_port = free_port()
        self.slurmd_ports = [free_port() for _ in self.node_names]
        self._ctld: subprocess.Popen[bytes] | None = None
        self._slurmds: list[subprocess.Popen[bytes]] = []
        self.jwt_key = jwt_key
        self._rest: subprocess.Popen[bytes] | None = None
        self.accounting = accounting
        self.dbd_port = free_port() if accounting else None
        # One database per cluster, so that clusters of parallel runs never share one.
        self.database = f"slurm_acct_{name}_{os.urandom(4).hex()}" if accounting else None
        self._dbd: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client (engine, sbatch, squeue) needs to talk to this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    def client_env(self) -> dict[str, str]:
        """The current environment pointed at this cluster, for subprocess calls."""
        return {**os.environ, **self.env}

    # -- configuration ------------------------------------------------------------------

    def _write_config(self) -> None:
        host = socket.gethostname().split(".")[0]
        # Jobs run as their owners, who must reach the batch script slurmd keeps in its
        # spool (the spool's own job folders are private to each job's user).
        self.root.chmod(0o755)
        for sub in ("state", "log", "gpu", *(f"spool/{n}" for n in self.node_names)):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        gres_lines = ["AutoDetect=off"]
        node_lines = []
        for node, port in zip(self.node_names, self.slurmd_ports, strict=True):
            files = [self.root / "gpu" / f"{node}-gpu{i}" for i in range(self.gpus)]
            for f in files:
                _make_fake_device(f)
            if self.gpus:
                gres_lines.append(
                    f"NodeName={node} Name=gpu Type={self.gpu_type} "
                    f"File={self.root}/gpu/{node}-gpu[0-{self.gpus - 1}]"
                )
            gres = f" Gres=gpu:{self.gpu_type}:{self.gpus}" if self.gpus else ""
            node_lines.append(
                f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} "
                f"CPUs={self.cpus} RealMemory={self.memory_mb}{gres} State=UNKNOWN"
            )
        partition = (
            f"PartitionName=main Nodes={','.join(self.node_names)} Default=YES "
            f"MaxTime={self.max_time_min} State=UP"
        )
        jwt = (
            f"AuthAltTypes=auth/jwt\nAuthAltParameters=jwt_key={self.jwt_key}\n"
            if self.jwt_key
            else ""
        )
        accounting = (
            ACCOUNTING.format(dbd_port=self.dbd_port, gather=JOB_ACCT_GATHER)
            if self.accounting
            else NO_ACCOUNTING
        )
        self.conf.write_text(
            jwt
            + _SLURM_CONF.format(
                name=self.name,
                host=host,
                port=self.ctld_port,
                root=self.root,
                message_timeout=self.message_timeout_s,
                accounting=accounting,
                # A limit raised in slurmdbd wakes no scheduler: a job it held waits for
                # the main loop's next pass (60 s by default; 2 s here).
                sched_more=",sched_interval=2" if self.accounting else "",
            )
            + "\n".join([*node_lines, partition, ""])
        )
        (self.root / "gres.conf").write_text("\n".join([*gres_lines, ""]))
        if self.accounting:
            dbd_conf = self.root / "slurmdbd.conf"
            dbd_conf.touch(mode=0o600)
            dbd_conf.chmod(0o600)
            dbd_conf.write_text(
                jwt  # slurmrestd's openapi/dbv0.0.38 hands slurmdbd the client's token
                + SLURMDBD_CONF.format(
                    dbd_port=self.dbd_port,
                    root=self.root,
                    db_host=MARIADB_HOST,
                    db_port=MARIADB_PORT,
                    db_user=MARIADB_USER,
                    database=self.database,
                )
            )

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> SlurmCluster:
        """Write the configuration, start slurmctld and the slurmds, wait until all idle."""
        reap_orphans()  # what a killed earlier run left behind
        try:
            self._write_config()
            marker = {**os.environ, "FABRIEK_SLURM_HARNESS": str(self.root), **self.env}
            if self.accounting:
                self._start_dbd(marker, timeout_s)
            self._ctld = self._daemon(
                "slurmctld", ["slurmctld", "-D", "-f", str(self.conf)], marker
            )
            for node in self.node_names:
                cmd = ["slurmd", "-D", "-f", str(self.conf), "-N", node]
                self._slurmds.append(self._daemon(f"slurmd-{node}", cmd, marker))
            self._wait_idle(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_dbd(self, env: Mapping[str, str], timeout_s: float) -> None:
        """Start slurmdbd (it makes its tables in a new database) and register the cluster,
        which slurmctld needs before it starts, or it runs without associations."""
        self._dbd = self._daemon("slurmdbd", ["slurmdbd", "-D"], env)
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self._dbd.poll() is not None:
                raise SlurmClusterError(
                    f"slurmdbd exited with {self._dbd.returncode}\n{self.logs()}"
                )
            done = self.sacctmgr("add", "cluster", self.name, check=False)
            last = (done.stdout + done.stderr).strip()
            if done.returncode == 0 or "already exists" in last:
                return
            time.sleep(0.2)
        raise SlurmClusterError(
            f"slurmdbd of {self.name} did not answer in {timeout_s} s ({last!r})\n{self.logs()}"
        )

    def sacctmgr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `sacctmgr -i ARGS...` against this cluster's slurmdbd."""
        return subprocess.run(
            ["sacctmgr", "-i", *args],
            env=self.client_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def _daemon(
        self, label: str, argv: list[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        out = open(self.log_dir / f"{label}.stderr", "wb")  # noqa: SIM115
        with out:
            return subprocess.Popen(
                argv,
                env=dict(env),
                stdout=out,
                stderr=out,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _wait_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        states = ""
        while time.monotonic() < deadline:
            for proc in [self._ctld, *self._slurmds]:
                if proc is not None and proc.poll() is not None:
                    raise SlurmClusterError(
                        f"{proc.args!r} exited with {proc.returncode}\n{self.logs()}"
                    )
            try:
                done = subprocess.run(
                    ["sinfo", "-h", "-N", "-o", "%N %T"],
                    env=self.client_env(),
                    capture_output=True,
                    text=True,
                    timeout=self.message_timeout_s + 5,
                )
                states = done.stdout.strip()
            except subprocess.TimeoutExpired:
                states = "sinfo timed out"
            lines = [line.split() for line in states.splitlines()]
            if len(lines) == len(self.node_names) and all(s[1] == "idle" for s in lines):
                return
            time.sleep(0.1)
        raise SlurmClusterError(
            f"cluster {self.name} not idle after {timeout_s} s (sinfo: {states!r})\n{self.logs()}"
        )

    def logs(self, tail: int = 4000) -> str:
        """The end of every daemon log of this cluster, for error messages."""
        parts = []
        for path in sorted(self.log_dir.glob("*")):
            text = path.read_text(errors="replace")[-tail:]
            parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts)

    def stop_controller(self) -> None:
        """Kill slurmctld only (to test what clients do when it is gone)."""
        if self._ctld is not None:
            _end(self._ctld)
            self._ctld = None

    def stop_dbd(self) -> None:
        """Kill slurmdbd only: slurmctld keeps the records of jobs that end meanwhile and
        hands them over when it is back."""
        if self._dbd is not None:
            _end(self._dbd)
            self._dbd = None

    def start_dbd(self, timeout_s: float = 30.0) -> None:
        """Start slurmdbd again, on the cluster's own database."""
        marker = {**os.environ, "FABRIEK_SLURM_HARNESS": str(self.root), **self.env}
        self._start_dbd(marker, timeout_s)

    def start_controller(self, timeout_s: float = 30.0) -> None:
        """Start slurmctld again; it recovers its jobs from StateSaveLocation."""
        marker = {**os.environ, "FABRIEK_SLURM_HARNESS": str(self.root), **self.env}
        self._ctld = self._daemon("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)], marker)
        self._wait_controller(timeout_s)

    def _wait_controller(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._ctld is not None and self._ctld.poll() is not None:
                raise SlurmClusterError(
                    f"slurmctld exited with {self._ctld.returncode}\n{self.logs()}"
                )
            done = subprocess.run(
                ["scontrol", "ping"], env=self.client_env(), capture_output=True, text=True
            )
            if "UP" in done.stdout:
                return
            time.sleep(0.05)
        raise SlurmClusterError(f"slurmctld of {self.name} did not come back\n{self.logs()}")

    def start_rest(self, plugins: tuple[str, ...] = ("openapi/v0.0.38",)) -> str:
        """Serve the cluster's REST API (slurmrestd, JWT pass-through) on a loopback port,
        as `nobody` (slurmrestd refuses root); its URL once it answers."""
        if self.jwt_key is None:
            raise SlurmClusterError("start the cluster with a jwt_key to serve its REST API")
        # slurmrestd reads slurm.conf after dropping to nobody (the key stays root's).
        self.root.chmod(0o755)
        for name in ("slurm.conf", "gres.conf"):
            (self.root / name).chmod(0o644)
        port = free_port()
        argv = ["slurmrestd", "-a", "rest_auth/jwt", "-u", "nobody", "-g", "nogroup"]
        # One -s, comma-separated: slurmrestd 22.05 keeps only the last -s it is given.
        argv += ["-s", ",".join(plugins)]
        marker = {**os.environ, "FABRIEK_SLURM_HARNESS": str(self.root), **self.env}
        # Without it auth/jwt takes the token from slurmrestd's own configuration and
        # rejects each client's ("Rejecting thread config token").
        marker["SLURM_JWT"] = "daemon"
        self._rest = self._daemon("slurmrestd", [*argv, f"127.0.0.1:{port}"], marker)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return f"http://127.0.0.1:{port}"
            if self._rest.poll() is not None or time.monotonic() > deadline:
                raise SlurmClusterError(f"slurmrestd did not start\n{self.logs()}")
            time.sleep(0.05)

    def stop_rest(self) -> None:
        """Stop slurmrestd only."""
        if self._rest is not None:
            _end(self._rest)
            self._rest = None

    def stop(self) -> None:
        """Kill every daemon and job process of this cluster; safe to call twice."""
        self.stop_rest()
        for proc in [*self._slurmds, self._ctld]:
            if proc is not None:
                _end(proc)
        self._slurmds = []
        self._ctld = None
        # Last, so that slurmctld could hand it the jobs' final records first.
        if self._dbd is not None:
            _end(self._dbd)
            self._dbd = None
        # slurmstepd and the jobs under it are not our children: find them by environment.
        for pid in _pids_with_env(
            {f"SLURM_CONF={self.conf}", f"FABRIEK_SLURM_HARNESS={self.root}"}
        ):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Delete the cluster's directory (only when the harness made it) and its
        accounting database."""
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        if self.database is not None:
            mariadb(f"DROP DATABASE IF EXISTS `{self.database}`")

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.remove()  # start() already stopped what it had started
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.remove()


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the test process dies, however it dies,
    so that a killed test run leaves no daemon behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _make_fake_device(path: Path) -> None:
    """A character device with /dev/null's numbers; a regular file if mknod is refused."""
    if path.exists():
        return
    try:
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 3))
    except OSError:
        path.touch()  # slurmd then gives jobs the GPU count but no CUDA_VISIBLE_DEVICES


def _end(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM a daemon's process group, then SIGKILL it if it lingers."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _environ(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def reap_orphans() -> list[int]:
    """Kill the jobs of harness clusters whose daemons are all gone; return their pids.

    The daemons die with the test process however it dies (they get SIGKILL from the
    kernel), but slurmstepd and the jobs under it are not its children and would live on
    after a `kill -9` of pytest. A cluster of another, still running, test run has live
    daemons, so its jobs are left alone.
    """
    prefix = str(Path(tempfile.gettempdir()) / "slurm-")
    live = set()
    pids = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()]
    for pid in pids:
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            if argv[0] in ("slurmctld", "slurmd") and "-f" in argv[:-1]:
                live.add(argv[argv.index("-f") + 1])
            # slurmdbd starts before its cluster's slurmctld and takes no -f: its own
            # SLURM_CONF says whose it is (else a parallel run would reap it meanwhile).
            if argv[0] == "slurmdbd":
                conf = [e[11:] for e in _environ(pid) if e.startswith("SLURM_CONF=")]
                live.update(conf[:1])
    killed = []
    for pid in pids:
        conf = [e[len("SLURM_CONF=") :] for e in _environ(pid) if e.startswith("SLURM_CONF=")]
        if conf and conf[0].startswith(prefix) and conf[0] not in live and int(pid) != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
    return killed


def _pids_with_env(needles: set[str]) -> Iterator[int]:
    """Processes whose environment holds any of `needles` (exact NAME=value entries)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(item.decode(errors="replace") in needles for item in environ):
            yield int(entry.name)
