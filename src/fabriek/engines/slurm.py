"""The slurm engine: jobs run on one site's Slurm cluster, driven by its own commands.

sbatch starts, squeue watches, scancel stops; every call is a subprocess with a timeout,
pointed at the cluster by `env` (SLURM_CONF, usually). Choices, and why:

- Tags, idempotent submit, one listing per poll, remembered GPU ids and output files are
  `slurm_tagged`'s, shared with the slurmrestd engine. Here the listing is one
  `squeue --json --all --states=all`: every job slurmctld still holds, finished ones
  included. Without accounting (no slurmdbd) a job is held for MinJobAge seconds after it
  ends (300 by default; the test clusters use 900), so poll more often than that or
  finished jobs turn up as LOST. Only when some handles are missing is there one more call,
  `scontrol show job --oneliner` (its `--json` is 23.02+), in case a Slurm version's squeue
  filters what 22.05's does not.
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
import pwd
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from fabriek.domain.containers import ContainerSupport
from fabriek.domain.slurm_accounting import (
    AccountingFormatError,
    AccountingRecord,
    parse_sacct,
    sacct_argv,
)
from fabriek.engines.base import (
    EngineJob,
    EngineRejected,
    EngineUnavailable,
)
from fabriek.engines.slurm_parse import (
    SlurmJob,
    SlurmOutputError,
    parse_squeue_json,
    slurm_job_gone,
    slurm_unreachable,
)
from fabriek.engines.slurm_sbatch import SbatchInputError, build_sbatch
from fabriek.engines.slurm_scontrol import parse_scontrol_oneliner
from fabriek.engines.slurm_tagged import HANDLE, TaggedSlurmEngine, check_handle
from fabriek.engines.slurm_web import WebPorts, node_address_from_scontrol

_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR")


def _short(text: str, limit: int = 300) -> str:
    """The last meaningful line of a command's error output, cut to `limit`."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "no error output")[:limit]


def _owner_env(user: str) -> dict[str, str]:
    """The owner's own HOME where this machine knows it, for the job's script: sbatch hands
    the job its own environment, which for a root control plane is root's (a notebook would
    keep its files in /root, where its user may not write)."""
    try:
        return {"HOME": pwd.getpwnam(user).pw_dir}
    except KeyError:
        return {}


def _primary_gid(user: str) -> int | None:
    """The user's own primary group where this machine knows them (a control plane that is
    one of the cluster's clients shares its accounts): sbatch run as root with --uid alone
    starts the job in root's group, with root's group's access and no way for rootless
    podman to map its IDs. None where the account is unknown here."""
    try:
        return pwd.getpwnam(user).pw_gid
    except KeyError:
        return None


class SlurmEngine(TaggedSlurmEngine):
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
        containers: ContainerSupport | None = None,
        web_ports: WebPorts | None = None,
        node_addresses: Mapping[str, str] | None = None,
    ) -> None:
        """`tag_prefix` tells this control plane's jobs from others' on a shared cluster;
        `command_timeout_s` bounds every Slurm command (past it: EngineUnavailable);
        `containers`: how the site runs jobs in images (None: it runs none); `web_ports`
        and `node_addresses`: where jobs' web apps listen and are reached (`slurm_web`)."""
        self.containers = containers
        super().__init__(
            name, Path(log_dir).resolve(), tag_prefix=tag_prefix, partition=partition,
            clock=clock, web_ports=web_ports, node_addresses=node_addresses,
        )  # fmt: skip
        self.env = dict(env)
        self.log_dir.mkdir(parents=True, exist_ok=True)  # also the cwd of Slurm's commands
        self.command_timeout_s = command_timeout_s

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

    def read_accounting(self, since: datetime | None) -> list[AccountingRecord]:
        """Every job run the cluster's accounting holds that was active at or after `since`
        (all when None): one `sacct` (it needs the cluster's slurmdbd; down or missing is
        EngineUnavailable, and the harvest tries again later)."""
        start = since or datetime(1970, 1, 2, tzinfo=UTC)
        text = self._query(sacct_argv(start), tz="UTC")
        try:
            return parse_sacct(text)
        except AccountingFormatError as exc:
            raise EngineUnavailable(f"{self.name}: sacct: {exc}") from exc

    # -- listing and starting: what the shared engine asks of this one --------------------

    def _list_jobs(self) -> list[SlurmJob]:
        return self._squeue()

    def _seen(self, handles: Mapping[int, str]) -> dict[str, SlurmJob]:
        seen = {j.handle: j for j in self._squeue()}
        if any(h not in seen for h in handles.values()):
            seen.update({j.handle: j for j in self._scontrol() if j.handle not in seen})
        return seen

    def _start(self, job: EngineJob) -> str:
        """sbatch the job as its owner."""
        if job.owner is not None:  # its own variables win over its owner's defaults
            spec = job.spec
            environment = {**_owner_env(job.owner.user), **spec.environment}
            job = replace(job, spec=replace(spec, environment=environment))
        try:
            request = build_sbatch(
                job,
                engine=self.name,
                log_dir=self.log_dir,
                tag_prefix=self.tag_prefix,
                partition=self.partition,
                containers=self.containers,
                gid=_primary_gid(job.owner.user) if job.owner is not None else None,
                web_ports=self.web_ports,
            )
        except SbatchInputError as exc:
            raise EngineRejected(str(exc)) from exc
        done = self._run(["sbatch", *request.args], stdin=request.script)
        if done.returncode != 0:
            reason = _short(done.stderr)
            if slurm_unreachable(done.stderr):
                raise EngineUnavailable(f"{self.name}: sbatch: {reason}")
            raise EngineRejected(f"{self.name}: sbatch refused the job: {reason}")
        handle = done.stdout.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"
        if not HANDLE.fullmatch(handle):
            raise EngineUnavailable(f"{self.name}: sbatch printed no job id: {handle!r}")
        return handle

    def _node_address(self, node: str) -> str | None:
        """The node's NodeAddr, from `scontrol show node`."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", node):
            return None
        return node_address_from_scontrol(
            self._query(["scontrol", "show", "node", node, "--oneliner"])
        )

    # -- the rest of the Engine protocol ----------------------------------------------------

    def cancel(self, handle: str) -> None:
        """scancel the job; one that already ended (or that Slurm forgot) is not an error."""
        check_handle(handle)
        done = self._run(["scancel", handle])
        if done.returncode == 0 or slurm_job_gone(done.stderr):
            return
        raise EngineUnavailable(f"{self.name}: scancel {handle}: {_short(done.stderr)}")
