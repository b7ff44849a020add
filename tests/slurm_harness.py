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

Facts that shaped it (Slurm 22.05 on Debian 12, as root, no systemd):
- munged needs /run/munge (owned by munge) before it starts; the package makes the key.
- GPUs without hardware: gres.conf `File=` must name character devices, or slurmd logs "not a
  valid character or block device" and the job gets no CUDA_VISIBLE_DEVICES. We make them with
  mknod as copies of /dev/null (harmless: proctrack/linuxproc and task/none confine nothing).
- `-f` must be given an absolute path: the daemons chdir before reading it.
- While slurmctld is down every client command retries for about MessageTimeout seconds; a
  small MessageTimeout keeps the "controller down" tests fast.
- Jobs run as root and write their output files where `--output`/`--error` say, on this host.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

SLURM_COMMANDS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "munged")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
_started_munged: list[int] = []  # pids of munged processes this module started


def _missing_commands() -> list[str]:
    return [
        c for c in SLURM_COMMANDS if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()
    ]


def _apt_install() -> str | None:
    """Install slurm-wlm and munge with apt; None on success, else apt's last words."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]
    last = ""
    for attempt in range(2):
        if attempt:  # the package lists may be missing or stale: refresh them once
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode == 0:
            return None
        last = (done.stderr or done.stdout)[-800:]
    return last


def _munge_works() -> bool:
    try:
        made = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if made.returncode != 0:
            return False
        back = subprocess.run(["unmunge"], input=made.stdout, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return back.returncode == 0


def _ensure_munge_key(munge_uid: int, munge_gid: int) -> None:
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(MUNGE_KEY.parent, munge_uid, munge_gid)
        if shutil.which("mungekey") or Path("/usr/sbin/mungekey").exists():
            subprocess.run(
                ["mungekey", "--create", f"--keyfile={MUNGE_KEY}"], check=True, timeout=30
            )
        else:
            MUNGE_KEY.write_bytes(os.urandom(1024))
    os.chown(MUNGE_KEY, munge_uid, munge_gid)
    os.chmod(MUNGE_KEY, 0o400)


def _start_munged() -> str | None:
    """Start munged as user munge unless it already answers; None when it works."""
    if _munge_works():
        return None
    try:
        munge = pwd.getpwnam("munge")
    except KeyError:
        return "user 'munge' does not exist although the munge package is installed"
    _ensure_munge_key(munge.pw_uid, munge.pw_gid)
    # Without systemd nobody makes the socket directory; munged refuses to start without it.
    for directory, mode in ((MUNGE_RUN_DIR, 0o755), (Path("/var/log/munge"), 0o700)):
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
        os.chown(directory, munge.pw_uid, munge.pw_gid)
    # Foreground (-F) as our child so that stop_munged() can end exactly what we started.
    proc = subprocess.Popen(
        ["runuser", "-u", "munge", "--", "/usr/sbin/munged", "-F", "--force"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _munge_works():
            _started_munged.append(proc.pid)
            return None
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            return f"munged exited with {proc.returncode}: {err.strip()[-500:]}"
        time.sleep(0.1)
    proc.kill()
    return "munged started but did not answer `munge -n` within 15 s"


def stop_munged() -> None:
    """Stop the munged this module started, if any (a munged found running is left alone)."""
    while _started_munged:
        pid = _started_munged.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)


def ensure_slurm_installed() -> str | None:
    """Make Slurm's daemons and clients and a working munged available.

    Returns None when ready, or a loud, human-readable reason why not, for `pytest.skip`.
    """
    missing = _missing_commands()
    if missing:
        if os.geteuid() != 0:
            return f"SLURM NOT AVAILABLE: {missing} missing and not root, cannot apt-get install"
        if shutil.which("apt-get") is None:
            return f"SLURM NOT AVAILABLE: {missing} missing and no apt-get on this machine"
        try:
            failure = _apt_install()
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = repr(exc)
        if failure is not None:
            return f"SLURM NOT AVAILABLE: apt-get install slurm-wlm munge failed: {failure}"
        missing = _missing_commands()
        if missing:
            return f"SLURM NOT AVAILABLE: still missing after install: {missing}"
    if os.geteuid() != 0:
        return "SLURM NOT AVAILABLE: the test clusters run their daemons as root; run as root"
    failure = _start_munged()
    if failure is not None:
        return f"SLURM NOT AVAILABLE: munge does not work: {failure}"
    return None


def free_port() -> int:
    """A TCP port on the loopback that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        cpus: int = 2,
        memory_mb: int = 4000,
        max_time_min: int = 60,
        nodes: int = 1,
        message_timeout_s: int = 3,
        root: Path | None = None,
    ) -> None:
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
        r = self.root
        self.conf.write_text(
            "\n".join(
                [
                    f"ClusterName={self.name}",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={self.ctld_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    f"StateSaveLocation={r}/state",
                    f"SlurmdSpoolDir={r}/spool/%n",
                    f"SlurmctldPidFile={r}/slurmctld.pid",
                    f"SlurmdPidFile={r}/slurmd-%n.pid",
                    f"SlurmctldLogFile={r}/log/slurmctld.log",
                    f"SlurmdLogFile={r}/log/slurmd-%n.log",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    # Start jobs as soon as they arrive, not on the next 60 s pass.
                    "SchedulerParameters=sched_min_interval=100000",
                    "AccountingStorageType=accounting_storage/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "JobCompType=jobcomp/none",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    # Without accounting, a finished job is visible only while slurmctld keeps
                    # it: MinJobAge seconds after it ends. The engine relies on that window.
                    "MinJobAge=900",
                    # Fast, exact time limits: no grace minutes, short SIGTERM->SIGKILL wait.
                    "OverTimeLimit=0",
                    "KillWait=2",
                    "InactiveLimit=0",
                    f"MessageTimeout={self.message_timeout_s}",
                    "SlurmdTimeout=300",
                    "GresTypes=gpu",
                    *node_lines,
                    f"PartitionName=main Nodes={','.join(self.node_names)} Default=YES "
                    f"MaxTime={self.max_time_min} State=UP",
                    "",
                ]
            )
        )
        (self.root / "gres.conf").write_text("\n".join([*gres_lines, ""]))

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> SlurmCluster:
        """Write the configuration, start slurmctld and the slurmds, wait until all idle."""
        try:
            self._write_config()
            marker = {**os.environ, "FABRIEK_SLURM_HARNESS": str(self.root), **self.env}
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

    def _daemon(
        self, label: str, argv: list[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        out = open(self.log_dir / f"{label}.stderr", "wb")  # noqa: SIM115
        with out:
            return subprocess.Popen(
                argv, env=dict(env), stdout=out, stderr=out, start_new_session=True
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

    def start_controller(self, timeout_s: float = 30.0) -> None:
        """Start slurmctld again; it recovers its jobs from StateSaveLocation."""
        marker = {**os.environ, "FABRIEK_SLURM_HARNESS": str(self.root), **self.env}
        self._ctld = self._daemon("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)], marker)
        self._wait_idle_or_busy(timeout_s)

    def _wait_idle_or_busy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = subprocess.run(
                ["scontrol", "ping"], env=self.client_env(), capture_output=True, text=True
            )
            if "UP" in done.stdout:
                return
            time.sleep(0.1)
        raise SlurmClusterError(f"slurmctld of {self.name} did not come back\n{self.logs()}")

    def stop(self) -> None:
        """Kill every daemon and job process of this cluster; safe to call twice."""
        for proc in [*self._slurmds, self._ctld]:
            if proc is not None:
                _end(proc)
        self._slurmds = []
        self._ctld = None
        # slurmstepd and the jobs under it are not our children: find them by environment.
        for pid in _pids_with_env(
            {f"SLURM_CONF={self.conf}", f"FABRIEK_SLURM_HARNESS={self.root}"}
        ):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Delete the cluster's directory (only when the harness made it)."""
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        self.remove()


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
