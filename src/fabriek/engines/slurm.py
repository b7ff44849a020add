"""The slurm engine: jobs run on one site's Slurm cluster, driven by its own commands.

sbatch starts, squeue watches, scancel stops; every call is a subprocess with a timeout,
pointed at the cluster by `env` (SLURM_CONF, usually). Choices, and why:

- Tags, not a local database. Every job carries `--comment=<prefix>:<job id>` (and its
  name starts with `<prefix>-<job id>-` for people reading squeue), so a control plane that
  crashed between sbatch and writing the handle down finds the job again with `known_jobs`.
- Idempotent submit at the cost of one squeue per engine life, not one per submit: the ids
  this instance submitted are kept in memory; the cluster is asked (one `squeue --json`)
  only on the first submit of a new instance, after a submit whose outcome is unknown (a
  timeout, the controller unreachable), and whenever `known_jobs` runs. This assumes one
  control plane submits for each tag prefix; the store, not this cache, is the truth.
- One poll, one squeue: `squeue --json --all --states=all` shows every job slurmctld still
  holds, finished ones included. Without accounting (no slurmdbd) a job is held for
  MinJobAge seconds after it ends (300 by default; the test clusters use 900), so poll
  more often than that or finished jobs turn up as LOST. Only when some handles are
  missing is there one more call, `scontrol show job --oneliner` (its `--json` is 23.02+),
  in case a Slurm version's squeue filters what 22.05's does not.
- Slurm forgets a finished job's GPU indices, so the engine remembers them from polls
  while it ran; GPU seconds of a job first seen finished are keyed "0".."n-1".
- Every job runs as its owner (`sbatch --uid`, run by a root control plane that is a client
  of the cluster), charged to its project's Slurm account (`--account`); a job without an
  owner is refused. The owner needs an account of the same name on the cluster's nodes.
- Output files go to `log_dir` as `<engine>-<slurm id>.out|err`: the directory must be
  visible to the compute nodes and to this process (a shared filesystem at a real site),
  and writable by every user, sticky like /tmp; the files are the job user's, mode 0600.
- Jobs get a small environment (PATH, HOME, locale: never the control plane's secrets)
  plus their spec's variables, written as `export` lines into the batch script.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from fabriek.domain.jobs import ACTIVE_STATES, JobState
from fabriek.engines.base import (
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    LogStream,
    Observation,
)
from fabriek.engines.slurm_parse import (
    SlurmJob,
    SlurmOutputError,
    observe,
    parse_squeue_json,
    slurm_job_gone,
    slurm_unreachable,
    tagged_job_id,
    tagged_jobs,
)
from fabriek.engines.slurm_sbatch import SbatchInputError, build_sbatch, log_file_name
from fabriek.engines.slurm_scontrol import parse_scontrol_oneliner

_HANDLE = re.compile(r"[0-9]{1,18}", re.ASCII)
_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR")


def _short(text: str, limit: int = 300) -> str:
    """The last meaningful line of a command's error output, cut to `limit`."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no error output")[:limit]


class SlurmEngine:
    """Runs jobs on the Slurm cluster that `env` (SLURM_CONF, PATH...) points at."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        tag_prefix: str = "fabriek",
        partition: str | None = None,
        command_timeout_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`tag_prefix` tells this control plane's jobs from others' on a shared cluster;
        `command_timeout_s` bounds every Slurm command (past it: EngineUnavailable)."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", tag_prefix):
            raise ValueError("a tag prefix is a letter, then letters, digits, - or _")
        self.name = name
        self.env = dict(env)
        self.log_dir = Path(log_dir).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)  # also the cwd of Slurm's commands
        self.tag_prefix = tag_prefix
        self.partition = partition
        self.command_timeout_s = command_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._handles: dict[int, str] = {}  # Fabriek id -> Slurm id, for idempotent submit
        self._synced = False  # whether _handles holds what the cluster had when we looked
        self._gpu_ids: dict[str, tuple[str, ...]] = {}  # handle -> GPU indices seen running

    # -- running Slurm's commands ------------------------------------------------------

    def _command_env(self) -> dict[str, str]:
        # sbatch passes its own environment on to the job: keep it small and harmless.
        base = {k: os.environ[k] for k in _INHERITED if k in os.environ}
        return {**base, **self.env}

    def _run(
        self, argv: list[str], stdin: str | None = None, tz: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # umask 077: sbatch hands it to the job, whose output files are then its user's alone.
        """Run a Slurm command; EngineUnavailable when it cannot run or does not finish."""
        env = self._command_env()
        if tz:
            env["TZ"] = tz
        try:
            return subprocess.run(
                argv,
                input=stdin,
                env=env,
                cwd=self.log_dir,
                capture_output=True,
                text=True,
                timeout=self.command_timeout_s,
                umask=0o077,
            )
        except FileNotFoundError as exc:
            raise EngineUnavailable(f"{self.name}: {argv[0]} is not installed here") from exc
        except subprocess.TimeoutExpired as exc:
            raise EngineUnavailable(
                f"{self.name}: {argv[0]} gave no answer in {self.command_timeout_s:g} s"
            ) from exc
        except OSError as exc:
            raise EngineUnavailable(f"{self.name}: cannot run {argv[0]}: {exc}") from exc

    def _query(self, argv: list[str], tz: str | None = None) -> str:
        done = self._run(argv, tz=tz)
        if done.returncode != 0:
            raise EngineUnavailable(f"{self.name}: {argv[0]} failed: {_short(done.stderr)}")
        return done.stdout

    def _squeue(self) -> list[SlurmJob]:
        text = self._query(["squeue", "--json", "--all", "--states=all"])
        try:
            return parse_squeue_json(text)
        except SlurmOutputError as exc:
            raise EngineUnavailable(f"{self.name}: squeue: {exc}") from exc

    def _scontrol(self) -> list[SlurmJob]:
        # TZ=UTC: scontrol prints zone-less local times, which the parser reads as UTC.
        argv = ["scontrol", "show", "job", "--oneliner", "--details"]
        return parse_scontrol_oneliner(self._query(argv, tz="UTC"))

    # -- the Engine protocol -----------------------------------------------------------

    def submit(self, job: EngineJob) -> str:
        """Start `job` with sbatch as its owner, unless a Slurm job tagged with its id
        already exists."""
        if job.owner is None:
            raise EngineRejected("the job names no owner: a cluster runs every job as its user")
        with self._lock:
            if job.job_id in self._handles:
                return self._handles[job.job_id]
            if not self._synced:
                self._sync()
                if job.job_id in self._handles:
                    return self._handles[job.job_id]
            try:
                request = build_sbatch(
                    job,
                    engine=self.name,
                    log_dir=self.log_dir,
                    tag_prefix=self.tag_prefix,
                    partition=self.partition,
                )
            except SbatchInputError as exc:
                raise EngineRejected(str(exc)) from exc
            # Until sbatch answers, the job may or may not exist: look before the next submit.
            self._synced = False
            done = self._run(["sbatch", *request.args], stdin=request.script)
            if done.returncode != 0:
                reason = _short(done.stderr)
                if slurm_unreachable(done.stderr):
                    raise EngineUnavailable(f"{self.name}: sbatch: {reason}")
                self._synced = True  # refused: Slurm started nothing
                raise EngineRejected(f"{self.name}: sbatch refused the job: {reason}")
            handle = done.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"
            if not _HANDLE.fullmatch(handle):
                raise EngineUnavailable(f"{self.name}: sbatch printed no job id: {handle!r}")
            self._synced = True
            self._handles[job.job_id] = handle
            return handle

    def _sync(self) -> dict[int, str]:
        """Ask the cluster for every tagged job (one squeue); remember them."""
        found: dict[int, SlurmJob] = {}
        for job_id, sjob in tagged_jobs(self._squeue(), self.tag_prefix):
            old = found.get(job_id)
            # Two Slurm jobs with one tag should not happen; prefer a live one, then the newest.
            if old is None or _rank(sjob) > _rank(old):
                found[job_id] = sjob
        known = {job_id: sjob.handle for job_id, sjob in found.items()}
        self._handles.update(known)
        self._synced = True
        return known

    def poll(self, handles: Mapping[int, str]) -> dict[int, Observation]:
        """Observe many jobs with one squeue call (and one scontrol if some are missing)."""
        if not handles:
            return {}
        seen = {j.handle: j for j in self._squeue()}
        if any(h not in seen for h in handles.values()):
            seen.update({j.handle: j for j in self._scontrol() if j.handle not in seen})
        now = self._clock()
        out: dict[int, Observation] = {}
        with self._lock:
            for job_id, handle in handles.items():
                sjob = seen.get(handle)
                tag = tagged_job_id(sjob.comment, self.tag_prefix) if sjob else None
                if sjob is None or tag != job_id:
                    why = (
                        f"Slurm job {handle} is not job {job_id}: the cluster reused its id"
                        if sjob
                        else f"Slurm no longer knows job {handle} (gone from slurmctld)"
                    )
                    out[job_id] = Observation(job_id, handle, JobState.LOST, reason=why)
                    continue
                obs = observe(sjob, job_id, now, self._gpu_ids.get(handle, ()))
                if obs.state in ACTIVE_STATES and sjob.gpu_ids:
                    self._gpu_ids[handle] = sjob.gpu_ids
                out[job_id] = obs
            # Forget the GPU ids of jobs Slurm itself has forgotten.
            for handle in [h for h in self._gpu_ids if h not in seen]:
                del self._gpu_ids[handle]
        return out

    def cancel(self, handle: str) -> None:
        """scancel the job; one that already ended (or that Slurm forgot) is not an error."""
        if not _HANDLE.fullmatch(handle):
            raise EngineRejected(f"{handle!r} is not a Slurm job id")
        done = self._run(["scancel", handle])
        if done.returncode == 0 or slurm_job_gone(done.stderr):
            return
        raise EngineUnavailable(f"{self.name}: scancel {handle}: {_short(done.stderr)}")

    def read_log(
        self, handle: str, stream: LogStream, offset: int = 0, limit: int = 1 << 20
    ) -> bytes:
        """Up to `limit` bytes of the job's output file from `offset`; b"" before it exists."""
        if not _HANDLE.fullmatch(handle):
            raise EngineRejected(f"{handle!r} is not a Slurm job id")
        path = self.log_dir / log_file_name(self.name, handle, stream)
        try:
            with path.open("rb") as f:
                f.seek(max(offset, 0))
                return f.read(max(limit, 0))
        except FileNotFoundError:
            return b""

    def known_jobs(self) -> dict[int, str]:
        """Every job on the cluster tagged with this engine's prefix (Fabriek id -> handle)."""
        with self._lock:
            return self._sync()


def _rank(job: SlurmJob) -> tuple[bool, int]:
    live = job.state in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED")
    return live, int(job.handle) if job.handle.isdigit() else -1
