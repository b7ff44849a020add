"""The local engine: jobs run as processes on this machine, each under a detached runner.

Everything the engine knows lives in `<state_dir>/<job_id>/` (see `local_runner` for the
files), so a new engine on the same directory, after a restart of the control plane,
sees exactly what the old one saw: finished jobs with their exit status, running jobs with
the GPUs they hold. Polling only reads those files and `/proc`; it starts no process.

Every job runs as its owner, never with the control plane's privileges. A control plane
that runs as root (`Isolation.USERS`) runs each job as the person's own unprivileged UID
with the project's GID, in PID and mount namespaces of its own (`local_jail`): the job sees
its workspace (`<job>/work/`, its own), its staged datasets (read-only) and the machine's
programs, but not the state folder, the database, the keys, other jobs' files or
processes. The runner's files stay in `<job>/`, the root's, so a job cannot forge how it
ended. A control plane that is not root cannot switch users (`Isolation.SINGLE_USER`): it
says so when it starts and runs the jobs of one project only.

Limits, on purpose: one control plane per state directory (GPU assignment is kept in this
process); CPU and memory requests are not enforced (a GPU node's jobs are fenced by their
GPUs); the network is shared (databases must not trust loopback connections); Linux only
(runner liveness comes from `/proc`, isolation from util-linux's `unshare`).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fabriek.domain.accounts import (
    DEFAULT_ID_BASE,
    PosixIdentity,
)
from fabriek.domain.containers import ContainerSupport
from fabriek.domain.errors import NotFound
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import JobSpec
from fabriek.engines import local_runner as files
from fabriek.engines.base import (
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    LogStream,
    Observation,
)
from fabriek.engines.gpus import GpuInventory, discover_gpus
from fabriek.engines.local_containers import (
    check_container,
    container_launch,
    container_name,
    image_of,
)
from fabriek.engines.local_isolation import (
    WORK_DIR,
    Isolation,
    SingleProject,
    default_isolation,
    give,
    jail_spec,
    job_identity,
    write_account_files,
)
from fabriek.engines.local_multinode import check_multinode, gang_argv
from fabriek.engines.local_status import read_status
from fabriek.engines.web_apps import PORT_VARIABLE, WebAddress, free_loopback_port, loopback_address

log = logging.getLogger(__name__)

_HANDLE = re.compile(r"[0-9]{1,18}", re.ASCII)
# What a job inherits from the control plane's environment: enough to find programs and
# run them, and nothing else (the control plane's own settings may hold secrets).
_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL")


class LocalEngine:
    """Runs jobs as child processes of this machine, on its real or virtual GPUs."""

    def __init__(
        self,
        name: str,
        state_dir: Path,
        virtual_gpus: int = 0,
        gpu_type: str | None = None,
        *,
        detect_gpus: bool = True,
        kill_grace_s: float = 10.0,
        start_timeout_s: float = 60.0,
        energy_test_double_watts: float | None = None,
        isolation: Isolation | None = None,
        private_paths: Sequence[Path] = (),
        id_base: int = DEFAULT_ID_BASE,
        containers: ContainerSupport | None = None,
    ) -> None:
        """`detect_gpus=False` skips NVML and always uses `virtual_gpus` (tests do this);
        `kill_grace_s` is the wait between SIGTERM and SIGKILL; a job directory whose
        runner never recorded itself within `start_timeout_s` is taken as lost.
        `energy_test_double_watts` gives virtual GPUs an energy counter that grows at that
        constant power: a test double for NVML where there are no GPUs.
        `isolation` defaults to what this process can do (`default_isolation`);
        `private_paths` are hidden from jobs besides `state_dir` (the control plane's state
        folder, database, keys); UIDs and GIDs are numbered from `id_base`. `containers`:
        how this site runs jobs in images (None: it runs none)."""
        self.containers = containers
        self.energy_test_double_watts = energy_test_double_watts
        self.name = name
        # Absolute, because runners work from their job directories and outlive our cwd.
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.inventory: GpuInventory = discover_gpus(virtual_gpus, gpu_type, detect_gpus)
        self.kill_grace_s = kill_grace_s
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._held: dict[int, tuple[int, ...]] = {}  # job id -> GPUs, until it is seen ended
        self._gpus: dict[int, tuple[int, ...]] = {}  # from job.json, which never changes
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # runners to reap
        self.isolation = isolation or default_isolation()
        self._claims = SingleProject(name, self.state_dir)
        self.id_base = id_base
        self.private_paths = tuple(
            dict.fromkeys([self.state_dir, *(Path(p).resolve() for p in private_paths)])
        )
        if self.isolation is Isolation.SINGLE_USER:
            log.warning(
                "local engine %s runs in single-user mode: the server is not root, so every "
                "job runs as the server's own user %s, and it accepts the jobs of one project "
                "only; run the server as root to run each job as its own user",
                name,
                getpass.getuser(),
            )
        else:
            # Outside a job's namespaces too, no job user may even look in here.
            self.state_dir.chmod(0o700)
        self._adopt()

    def _adopt(self) -> None:
        """Take back the GPUs of jobs that still run (after a restart of the control plane)
        and clear what a crash in the middle of a submit left behind."""
        for entry in os.scandir(self.state_dir):
            if entry.name.startswith(".new-"):
                shutil.rmtree(entry.path, ignore_errors=True)  # never had a runner
        for job_id, handle in self.known_jobs().items():
            if (self.state_dir / handle / files.STATUS_FILE).exists():
                continue  # ended: one stat, so that thousands of old jobs cost little
            gpus = self._job_gpus(job_id)
            if gpus and self._observe(job_id, handle).state not in TERMINAL_STATES:
                self._held[job_id] = gpus

    # -- inventory -------------------------------------------------------------------------

    def free_gpus(self) -> tuple[int, ...]:
        """The indices of the GPUs no running job holds now."""
        with self._lock:
            self._release_ended()
            return self._free()

    def _free(self) -> tuple[int, ...]:
        taken = {gpu for gpus in self._held.values() for gpu in gpus}
        return tuple(i for i in range(self.inventory.count) if i not in taken)

    def _release_ended(self) -> None:
        for job_id in list(self._held):
            if self._observe(job_id, str(job_id)).state in TERMINAL_STATES:
                del self._held[job_id]

    # -- the Engine protocol ---------------------------------------------------------------

    def submit(self, job: EngineJob) -> str:
        """Start `job` under a runner; return its handle (the job id as text).

        Raises `EngineRejected` for a job this machine can never run and
        `EngineUnavailable` when its GPUs are busy now.
        """
        handle = str(job.job_id)
        job_dir = self.state_dir / handle
        with self._lock:
            if job_dir.exists():
                return handle
            self._check(job.job_id, job.spec)
            if (image := image_of(job)) is not None:
                check_container(self.name, self.containers, image, job.spec.nodes)
            identity = job_identity(self.isolation, job.owner, self.id_base, self._claims)
            self._release_ended()
            free = self._free()
            if job.spec.gpus > len(free):
                raise EngineUnavailable(
                    f"not enough free GPUs now: the job asks {job.spec.gpus}, "
                    f"{len(free)} of {self.inventory.count} are free"
                )
            gpus = free[: job.spec.gpus]
            try:
                if not self._create_job_dir(job, job_dir, gpus, identity):
                    return handle  # another process created it first
            except OSError as error:
                raise EngineUnavailable(f"could not write the job's directory: {error}") from error
            try:
                self._start_runner(job.job_id, job_dir)
            except OSError as error:
                shutil.rmtree(job_dir, ignore_errors=True)  # so that a retry starts afresh
                raise EngineUnavailable(f"could not start the job's runner: {error}") from error
            if gpus:
                self._held[job.job_id] = gpus
        return handle

    def poll(self, handles: Mapping[int, str]) -> dict[int, Observation]:
        """What each job is doing now, read from its job directory."""
        with self._lock:
            self._reap()
            seen = {job_id: self._observe(job_id, handle) for job_id, handle in handles.items()}
            for job_id, observation in seen.items():
                if observation.state in TERMINAL_STATES:
                    self._held.pop(job_id, None)
        return seen

    def cancel(self, handle: str) -> None:
        """Ask the job's runner to stop it (SIGTERM to the job's process group, SIGKILL
        after the grace period); the runner records it as cancelled."""
        job_dir = self._job_dir(handle)
        if job_dir is None or not (job_dir / files.JOB_FILE).exists():
            return  # never heard of it: nothing to stop
        if (job_dir / files.STATUS_FILE).exists():
            return
        with self._lock:
            # The marker first: a runner that has not yet set up its signal handling
            # reads it before it starts the job.
            (job_dir / files.CANCEL_FILE).touch()
            runner = files.read_json(job_dir / files.RUNNER_FILE)
        if runner and files.is_alive(runner["pid"], runner.get("start_ticks")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(runner["pid"], signal.SIGTERM)

    def read_log(
        self, handle: str, stream: LogStream, offset: int = 0, limit: int = 1 << 20
    ) -> bytes:
        """Up to `limit` bytes of the job's stdout or stderr from `offset`; b"" before the
        job has written anything."""
        job_dir = self._job_dir(handle)
        if job_dir is None or not job_dir.is_dir():
            raise NotFound("local job", handle)
        try:
            with (job_dir / stream.value).open("rb") as output:
                output.seek(max(0, offset))
                return output.read(max(0, limit))
        except FileNotFoundError:
            return b""

    def known_jobs(self) -> dict[int, str]:
        """Every job with a directory here, finished or not."""
        return {
            int(entry.name): entry.name
            for entry in os.scandir(self.state_dir)
            if _HANDLE.fullmatch(entry.name) and entry.is_dir()
        }

    # -- submitting ------------------------------------------------------------------------

    def _check(self, job_id: int, spec: JobSpec) -> None:
        """Refuse, for good, what this machine can never run."""
        if job_id < 0:
            raise EngineRejected(f"job ids are not negative: {job_id}")
        if (spec.command is None) == (spec.script is None):
            raise EngineRejected("a job needs exactly one of a command and a script")
        if spec.command is not None and not spec.command:
            raise EngineRejected("the job's command is empty")
        check_multinode(spec)  # several nodes: simulated as process groups here
        if spec.gpus > self.inventory.count:
            raise EngineRejected(
                f"the job asks {spec.gpus} GPUs; this machine has {self.inventory.count}"
            )
        have = self.inventory.gpu_type
        if spec.gpus and spec.gpu_type and have and spec.gpu_type.lower() != have.lower():
            raise EngineRejected(f"the job asks {spec.gpu_type} GPUs; this machine has {have}")
        if spec.time_limit_s <= 0:
            raise EngineRejected("the job's time limit must be more than zero")

    def _argv(self, spec: JobSpec, job_dir: Path, gpus: tuple[int, ...]) -> list[str]:
        work = job_dir / WORK_DIR
        return list(spec.command) if spec.command else ["bash", str(work / "script.sh")]

    def _environment(
        self, job: EngineJob, job_dir: Path, gpus: tuple[int, ...], who: PosixIdentity | None
    ) -> dict[str, str]:
        env = {key: os.environ[key] for key in _INHERITED if key in os.environ}
        if who is not None:  # not the control plane's home, name and temporary folder
            home = str(job_dir / WORK_DIR)
            env.update(HOME=home, USER=who.user, LOGNAME=who.user, TMPDIR="/tmp")
        env.update(job.spec.environment)
        visible = ",".join(str(gpu) for gpu in gpus)
        # Set last, so that a job cannot reach past the GPUs it was given.
        env.update(
            {
                "CUDA_VISIBLE_DEVICES": visible,
                # CUDA numbers GPUs fastest-first unless told; NVML numbers them by PCI bus.
                "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                "FABRIEK_GPUS": visible,
                "FABRIEK_JOB_ID": str(job.job_id),
                "FABRIEK_JOB_NAME": job.spec.name,
                "FABRIEK_JOB_DIR": str(job_dir / WORK_DIR),
                "FABRIEK_ENGINE": self.name,
            }
        )
        if job.spec.web_port is not None:
            # Jobs share this host's loopback: each web app gets a port of its own.
            env[PORT_VARIABLE] = str(free_loopback_port())
        return env

    def _energy_meter(self, gpus: tuple[int, ...]) -> dict[str, Any] | None:
        """What the runner reads energy with: NVML's counters on real GPUs, the constant-power
        test double where one is configured, and the CPU packages' RAPL counters wherever
        they can be read (else the metering models them)."""
        if gpus and self.inventory.source == "nvml":
            return {"kind": "nvml", "gpus": list(gpus)}
        if gpus and self.energy_test_double_watts:
            return {"kind": "test-double", "gpus": list(gpus),
                    "watts": self.energy_test_double_watts}  # fmt: skip
        # No GPU counter: the CPU packages' RAPL counters still, where the kernel allows.
        return {"kind": "cpu", "gpus": []}

    def _create_job_dir(
        self, job: EngineJob, job_dir: Path, gpus: tuple[int, ...], who: PosixIdentity | None
    ) -> bool:
        """Build the job directory aside and rename it into place, so that it appears whole
        or not at all. False if it appeared meanwhile."""
        spec = job.spec
        temp = self.state_dir / f".new-{job.job_id}-{uuid.uuid4().hex}"
        temp.mkdir(mode=0o700)  # the job's environment may hold the user's secrets
        try:
            argv = self._argv(spec, job_dir, gpus)
            work = temp / WORK_DIR
            work.mkdir(mode=0o700)
            if spec.script is not None:
                (work / "script.sh").write_text(spec.script)
            if who is not None:
                write_account_files(temp, who, home=job_dir / WORK_DIR)
                give(work, who)
                if job.datasets_dir is not None:
                    give(Path(job.datasets_dir), who, writable=False)
            meta: dict[str, Any] = {
                    "job_id": job.job_id,
                    "name": spec.name,
                    # Several nodes: the gang runs the program once per node.
                    "argv": gang_argv(job.job_id, spec, argv, gpus, self.kill_grace_s / 2),
                    "env": self._environment(job, job_dir, gpus, who),
                    "cwd": spec.working_dir or str(job_dir / WORK_DIR),
                    "jail": (
                        jail_spec(job_dir, who, job.datasets_dir, self.private_paths)
                        if who is not None
                        else None
                    ),
                    "time_limit_s": spec.time_limit_s,
                    "kill_grace_s": self.kill_grace_s,
                    "gpus": list(gpus),
                    "energy_meter": self._energy_meter(gpus),
                    "submitted_at": files.now_iso(),
            }  # fmt: skip
            if image_of(job) is not None and self.containers is not None:
                # In its image: podman, started by the runner, is the job's jail.
                name = container_name(self.state_dir, self.name, job.job_id)
                meta.update(container_launch(
                    job, temp, job_dir, gpus, who, self.containers, name, meta["env"]
                ))  # fmt: skip
            files.write_json(temp / files.JOB_FILE, meta)
            os.rename(temp, job_dir)
        except OSError:
            shutil.rmtree(temp, ignore_errors=True)
            if job_dir.exists():
                return False
            raise
        return True

    def _start_runner(self, job_id: int, job_dir: Path) -> None:
        with (job_dir / files.RUNNER_LOG).open("ab") as log:
            runner = subprocess.Popen(
                # Not -S: the NVML binding is among the environment's packages.
                [sys.executable, "-I", files.__file__, str(job_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=job_dir,
                start_new_session=True,  # a restart of the control plane must not reach it
            )
        # The runner cannot vanish before we read its start time: until we reap it, even a
        # dead child keeps its /proc entry, so this never records a recycled pid.
        ticks = files.process_start_ticks(runner.pid)
        files.write_json_once(
            job_dir / files.RUNNER_FILE, {"pid": runner.pid, "start_ticks": ticks}
        )
        self._children[job_id] = runner

    def _reap(self) -> None:
        for job_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[job_id]

    def web_address(self, handle: str) -> WebAddress | None:
        """Where a job's web app listens: this host's loopback, on the port it was given."""
        job_dir = self._job_dir(handle)
        meta = files.read_json(job_dir / files.JOB_FILE) if job_dir is not None else None
        return loopback_address(meta.get("env", {})) if meta is not None else None

    # -- observing -------------------------------------------------------------------------

    def _job_dir(self, handle: str) -> Path | None:
        return self.state_dir / handle if _HANDLE.fullmatch(handle) else None

    def _job_gpus(self, job_id: int) -> tuple[int, ...]:
        gpus = self._gpus.get(job_id)
        if gpus is None:
            meta = files.read_json(self.state_dir / str(job_id) / files.JOB_FILE)
            if meta is None:
                return ()
            gpus = self._gpus[job_id] = tuple(meta.get("gpus", ()))
        return gpus

    def _observe(self, job_id: int, handle: str) -> Observation:
        job_dir = self._job_dir(handle)
        if job_dir is None or not (job_dir / files.JOB_FILE).exists():
            return Observation(job_id, handle, JobState.LOST, f"no local job {handle!r} here")
        gpus = self._job_gpus(int(handle))
        return read_status(job_id, handle, job_dir, gpus, self.start_timeout_s)
