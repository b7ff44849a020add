"""The small process that runs one local job and outlives the control plane that started it.

`LocalEngine` starts it as `python -I local_runner.py JOB_DIR` in a session of its own,
so a restart of the control plane neither kills nor orphans the job. It imports nothing of
Fabriek and, besides the standard library, only NVIDIA's NVML binding where the job has real
GPUs: it starts fast, and a control plane upgraded while jobs run cannot break the runners
already running.

What it reads and writes in JOB_DIR (every write is a temp file plus `os.replace`, so a
reader never sees half a file):
- `job.json` (written by the engine): argv, environment, working directory, time limit;
  for a job in a container image, the environment podman itself runs with
  (`launcher_env`) and the commands that remove the container afterwards (`after`).
- `runner.json`: this runner's pid and start time, so a recycled pid is never taken for it.
- `started.json`: when the job's process started, and its pid.
- `stdout`, `stderr`: the job's output.
- `cancel` (touched by the engine before it signals): cancel even if the signal came early.
- `status.json`: the end: exit code, signal, timed out, cancelled, start and end times.
- `jail.json` (written by `local_jail.py` when the job runs as its own user): how it
  ended, or why it could not start.
- `energy.json`: readings of the job's GPUs' total-energy counters (mJ), and of the CPU
  packages' RAPL counters (µJ) where readable, at its start, at every clock hour and at its
  end, when `job.json` names an energy meter.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
RUNNER_FILE = "runner.json"
STARTED_FILE = "started.json"
STATUS_FILE = "status.json"
CANCEL_FILE = "cancel"
RUNNER_LOG = "runner.log"
ENERGY_FILE = "energy.json"
JAIL_FILE = "jail.json"  # written by local_jail.py: how a jailed job ended
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child, where loading a library is not safe.
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def now_iso() -> str:
    """The wall-clock time now, as ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` so that readers see the old file or the new one, never a part."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)


def write_json_once(path: Path, data: dict[str, Any]) -> None:
    """Write `data` unless `path` exists already (the engine and the runner race to record
    the runner; both write the same facts, and neither may clobber a later file)."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data))
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in `path`, or None if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def process_start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, from /proc/<pid>/stat), or None
    if it does not exist or has exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in field 2 may hold blanks and ')', so split after its last ')'.
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in {"Z", "X"}:
        return None
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3


def is_alive(pid: int, start_ticks: int | None) -> bool:
    """Whether the process recorded as (`pid`, `start_ticks`) still runs."""
    ticks = process_start_ticks(pid)
    return ticks is not None and (start_ticks is None or ticks == start_ticks)


class _Signals:
    """Turns SIGTERM/SIGINT/SIGHUP into a flag plus a byte on a pipe that wakes `poll`."""

    def __init__(self) -> None:
        self.cancel = False
        self.read_fd, write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, self._on_signal)

    def _on_signal(self, number: int, frame: object) -> None:
        self.cancel = True

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self.read_fd, 512):
                pass


class EnergyMeter:
    """Reads the total-energy counters (mJ) of the job's GPUs and keeps the readings.

    `kind` "nvml" reads nvmlDeviceGetTotalEnergyConsumption through the driver's library;
    "test-double" is a stand-in for machines without GPUs: a counter that grows at a
    constant `watts` per GPU from the Unix epoch, so tests can check the arithmetic."""

    def __init__(self, job_dir: Path, spec: dict[str, Any] | None) -> None:
        self.path = job_dir / ENERGY_FILE
        self.kind = (spec or {}).get("kind")
        self.gpus = [int(g) for g in (spec or {}).get("gpus", [])]
        self.watts = float((spec or {}).get("watts", 0.0))
        self.readings: list[dict[str, Any]] = []
        # CPU packages' RAPL counters (µJ) where the kernel lets us read them; the job's
        # share of them is its CPUs over the machine's (the metering applies it).
        self.rapl = rapl_zones(Path((spec or {}).get("rapl_root", RAPL_ROOT)))
        self._nvml: Any = None
        if self.kind == "nvml":
            # Imported only here: the runner needs it only on a machine with NVIDIA GPUs.
            with contextlib.suppress(ImportError, Exception):
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml

    def _counters(self) -> dict[str, int] | None:
        if self.kind == "test-double":
            return {str(g): int(self.watts * time.time() * 1000) for g in self.gpus}
        if self._nvml is None:
            return None
        nvml = self._nvml
        try:
            return {
                str(index): int(
                    nvml.nvmlDeviceGetTotalEnergyConsumption(nvml.nvmlDeviceGetHandleByIndex(index))
                )
                for index in self.gpus
            }
        except nvml.NVMLError:
            return None  # a GPU without the counter (before Volta): none is measured

    def sample(self) -> None:
        """Read the counters now and record the reading (no-op without a meter)."""
        if self.kind is None:
            return
        counters = self._counters() if self.gpus else None
        rapl = read_rapl(self.rapl)
        if counters is None and not rapl:
            return
        reading: dict[str, Any] = {"at": now_iso(), "mj": counters or {}}
        if rapl:
            reading["rapl_uj"] = rapl
            reading["rapl_range_uj"] = {name: top for name, (_, top) in self.rapl.items()}
            reading["node_cpus"] = os.cpu_count() or 1
        self.readings.append(reading)
        write_json(self.path, {"readings": self.readings})


RAPL_ROOT = "/sys/class/powercap"


def rapl_zones(root: Path) -> dict[str, tuple[Path, int]]:
    """The CPU package zones (intel-rapl:N, named package-N) whose counter is readable:
    name -> (energy_uj file, max_energy_range_uj). Empty where there are none or the kernel
    keeps them to root."""
    zones: dict[str, tuple[Path, int]] = {}
    with contextlib.suppress(OSError):
        for zone in sorted(root.glob("intel-rapl:*")):
            if zone.name.count(":") != 1:  # a sub-zone (core, uncore, dram)
                continue
            try:
                name = (zone / "name").read_text().strip()
                top = int((zone / "max_energy_range_uj").read_text())
                int((zone / "energy_uj").read_text())
            except (OSError, ValueError):
                continue
            if name.startswith("package"):
                zones[name] = (zone / "energy_uj", top)
    return zones


def read_rapl(zones: dict[str, tuple[Path, int]]) -> dict[str, int]:
    """Each zone's counter now (µJ); a zone that cannot be read is left out."""
    out: dict[str, int] = {}
    for name, (path, _) in zones.items():
        with contextlib.suppress(OSError, ValueError):
            out[name] = int(path.read_text())
    return out


def _next_hour(now_wall: float) -> float:
    return (now_wall // 3600 + 1) * 3600


def _die_with(runner: int) -> None:
    # In the child, before exec: if this runner is killed outright the job gets SIGKILL
    # rather than running on unsupervised while its GPUs are handed to another job.
    if _LIBC is not None:
        with contextlib.suppress(AttributeError):
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != runner:
        os._exit(137)  # the runner died before the line above took effect


def _kill_group(pgid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, number)


def _supervise(
    child: subprocess.Popen[bytes],
    limit_s: float,
    grace_s: float,
    sig: _Signals,
    meter: EnergyMeter | None = None,
) -> str:
    """Wait for the job; stop it at its time limit or on cancel; read the energy meter at
    every clock hour. Returns why it ended: "exited", "timeout" or "cancelled"."""
    poller = select.poll()
    poller.register(sig.read_fd, select.POLLIN)
    pidfd: int | None = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(child.pid)
        poller.register(pidfd, select.POLLIN)
    deadline = time.monotonic() + limit_s
    cause, kill_at = "exited", None
    hour_at = _next_hour(time.time())
    while child.poll() is None:
        now = time.monotonic()
        if meter is not None and time.time() >= hour_at:
            meter.sample()
            hour_at = _next_hour(time.time())
        if kill_at is None and (sig.cancel or now >= deadline):
            cause = "cancelled" if sig.cancel else "timeout"
            _kill_group(child.pid, signal.SIGTERM)
            kill_at = now + grace_s
        elif kill_at is not None and now >= kill_at:
            _kill_group(child.pid, signal.SIGKILL)
            kill_at = now + 3600.0  # sent; now only wait
        wake_at = deadline if kill_at is None else kill_at
        wake_at = min(wake_at, now + max(0.0, hour_at - time.time()))
        # Without a pidfd nothing wakes us when the child exits, so look every 0.1 s.
        wait_ms = max(1, int((wake_at - now) * 1000))
        poller.poll(wait_ms if pidfd is not None else min(wait_ms, 100))
        sig.drain()
    if pidfd is not None:
        os.close(pidfd)
    # Whatever the job left behind in its process group must not keep its GPUs busy.
    _kill_group(child.pid, signal.SIGKILL)
    return cause


def _final(
    exit_code: int, sig_num: int | None, cause: str, started: str | None, limit_s: float = 0
) -> dict[str, Any]:
    reason: str | None
    if cause == "cancelled":
        reason = "cancelled"
    elif cause == "timeout":
        reason = f"time limit of {limit_s:g} s reached"
    elif sig_num is not None:
        reason = f"killed by signal {signal.Signals(sig_num).name}"
    else:
        reason = f"exit code {exit_code}" if exit_code else None
    return {
        "exit_code": exit_code,
        "signal": sig_num,
        "timed_out": cause == "timeout",
        "cancelled": cause == "cancelled",
        "started_at": started,
        "ended_at": now_iso(),
        "reason": reason,
    }


# podman's (and Docker's) own exit codes: it failed, the command could not be run, or it
# does not exist in the image; and how podman and its init (catatonit) begin their errors.
_RUNTIME_FAILURES = (125, 126, 127)
_RUNTIME_WORDS = ("Error: ", "ERROR (catatonit")


def _runtime_failure(job_dir: Path, exit_code: int) -> str | None:
    """Why a container did not run, in the last line podman or its init wrote to the job's
    stderr; None when the job itself ran and failed."""
    try:
        lines = (job_dir / "stderr").read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    last = lines[-1][:500] if lines else ""
    if exit_code not in _RUNTIME_FAILURES and not last.startswith(_RUNTIME_WORDS):
        return None
    return f"the container did not run (exit code {exit_code})" + (f": {last}" if last else "")


def _after(commands: list[list[str]]) -> None:
    """Run what the job leaves to clean up (a container's runtime may keep it running after
    its client was killed): each command to its end, its output into the runner's log."""
    for argv in commands:
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
                env={"PATH": _SYSTEM_PATH}, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as error:
            print(f"after the job, {argv[0]!r} failed: {error}", file=sys.stderr)
            continue
        if done.returncode != 0:
            text = (done.stderr or done.stdout).decode(errors="replace").strip()[-500:]
            print(f"after the job, {argv[0]!r} exited {done.returncode}: {text}", file=sys.stderr)


def run(job_dir: Path) -> int:
    """Run the job described in `job_dir` to its end and record how it ended."""
    sig = _Signals()  # first, so that a cancel arriving from now on is caught
    me = os.getpid()
    write_json_once(job_dir / RUNNER_FILE, {"pid": me, "start_ticks": process_start_ticks(me)})
    job = read_json(job_dir / JOB_FILE)
    if job is None:
        print(f"no readable {JOB_FILE} in {job_dir}", file=sys.stderr)
        return 2
    if sig.cancel or (job_dir / CANCEL_FILE).exists():
        write_json(job_dir / STATUS_FILE, _final(0, None, "cancelled", None))
        return 0
    started = now_iso()
    jail = job.get("jail")
    with (job_dir / "stdout").open("wb") as out, (job_dir / "stderr").open("wb") as err:
        try:
            child = subprocess.Popen(
                # Jailed: the jail sets up the job's namespaces and becomes its user.
                jail["command"] if jail else job["argv"],
                cwd="/" if jail else job["cwd"],
                env={"PATH": _SYSTEM_PATH} if jail else job.get("launcher_env", job["env"]),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, so it is stopped whole
                preexec_fn=lambda: _die_with(me),
            )
        except OSError as error:
            status = _final(127, None, "exited", started)
            reason = f"could not start {job['argv'][0]!r}: {error.strerror}"
            if error.filename == job["cwd"]:
                reason += f" (working directory {job['cwd']!r})"
            status["reason"] = reason
            write_json(job_dir / STATUS_FILE, status)
            return 0
    meter = EnergyMeter(job_dir, job.get("energy_meter"))
    meter.sample()
    write_json(
        job_dir / STARTED_FILE,
        {"started_at": started, "pid": child.pid, "start_ticks": process_start_ticks(child.pid)},
    )
    limit_s = float(job["time_limit_s"])
    cause = _supervise(child, limit_s, float(job["kill_grace_s"]), sig, meter)
    _after(job.get("after", ()))
    meter.sample()
    code = child.returncode
    sig_num = -code if code < 0 else None
    jailed = read_json(job_dir / JAIL_FILE) if jail else None
    if jailed and jailed.get("signal"):
        sig_num = int(jailed["signal"])  # the jail could only exit with 128 + it
    # A job killed by a signal exits, in the shell's words, with 128 + the signal's number.
    exit_code = 128 + sig_num if sig_num else code
    status = _final(exit_code, sig_num, cause, started, limit_s)
    if jailed and jailed.get("error") and cause == "exited":
        status["reason"] = str(jailed["error"])[:1000]
    if job.get("container") and cause == "exited" and exit_code:
        status["reason"] = _runtime_failure(job_dir, exit_code) or status["reason"]
    write_json(job_dir / STATUS_FILE, status)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
