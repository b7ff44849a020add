"""What the two Slurm engines share: jobs found again by their tag, watched in one listing.

`slurm` (the cluster's own commands) and `slurmrestd` (the site's REST API) differ only in
how they list, start and cancel jobs. Everything else is here, once:

- Tags, not a local database. Every job carries the comment `<prefix>:<job id>`, so a
  control plane that crashed between submitting and writing the handle down finds the job
  again (`known_jobs`).
- Idempotent submit at the cost of one listing per engine life, not one per submit: the ids
  this instance submitted are kept in memory; the cluster is asked only on the first submit
  of a new instance, after a submit whose outcome is unknown, and whenever `known_jobs`
  runs. This assumes one control plane submits for each tag prefix; the store, not this
  cache, is the truth.
- One poll, one listing of every job the cluster still holds, finished ones included.
- Slurm forgets a finished job's GPU indices, so the engine remembers them from polls while
  it ran; GPU seconds of a job first seen finished are keyed "0".."n-1".
- Output files are `<engine>-<slurm id>.out|err` in `log_dir`, on storage the cluster's nodes
  and this process share.
- Web apps (`slurm_web`): a job's app listens on its batch host, at a port the job picked
  there and recorded in `log_dir`; polls remember each running job's batch host and user, so
  the proxy's `web_address` costs no Slurm call once the job was seen running.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from fabriek.domain.job_states import ACTIVE_STATES, JobState
from fabriek.engines.base import (
    EngineJob,
    EngineRejected,
    EngineUnavailable,
    LogStream,
    Observation,
)
from fabriek.engines.slurm_parse import SlurmJob, observe, tagged_job_id, tagged_jobs
from fabriek.engines.slurm_sbatch import log_file_name
from fabriek.engines.slurm_web import WebPorts, recorded_port, web_file_name
from fabriek.engines.web_apps import WebAddress

HANDLE = re.compile(r"[0-9]{1,18}", re.ASCII)
_LIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED")


class TaggedSlurmEngine:
    """The Engine protocol over a Slurm cluster, less how jobs are listed and started."""

    def __init__(
        self,
        name: str,
        log_dir: Path,
        *,
        tag_prefix: str,
        partition: str | None,
        clock: Callable[[], datetime],
        web_ports: WebPorts | None = None,
        node_addresses: Mapping[str, str] | None = None,
    ) -> None:
        """`tag_prefix` tells this control plane's jobs from others' on a shared cluster;
        `web_ports`: where jobs' web apps listen; `node_addresses`: node name -> the address
        this process reaches it at, where that is not the node's Slurm NodeAddr."""
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", tag_prefix):
            raise ValueError("a tag prefix is a letter, then letters, digits, - or _")
        self.name = name
        self.log_dir = log_dir
        self.tag_prefix = tag_prefix
        self.partition = partition
        self._clock = clock
        self._lock = threading.Lock()
        self._handles: dict[int, str] = {}  # Fabriek id -> Slurm id, for idempotent submit
        self._synced = False  # whether _handles holds what the cluster had when we looked
        self._gpu_ids: dict[str, tuple[str, ...]] = {}  # handle -> GPU indices seen running
        self.web_ports = web_ports or WebPorts()
        self._node_addresses = dict(node_addresses or {})  # configured, then learnt
        self._hosts: dict[str, tuple[str, int | None]] = {}  # handle -> (batch host, uid)
        self._web: dict[str, WebAddress] = {}  # handle -> where its web app was found

    # -- what each engine does its own way -------------------------------------------------

    def _list_jobs(self) -> list[SlurmJob]:
        """Every job the cluster still holds (one call)."""
        raise NotImplementedError

    def _start(self, job: EngineJob) -> str:
        """Start `job` as its owner; its Slurm id. EngineRejected when Slurm refused it (it
        started nothing), EngineUnavailable when the outcome is unknown."""
        raise NotImplementedError

    def _seen(self, handles: Mapping[int, str]) -> dict[str, SlurmJob]:
        """The cluster's jobs by handle, for a poll of `handles`."""
        return {j.handle: j for j in self._list_jobs()}

    def _node_address(self, node: str) -> str | None:
        """The address Slurm reaches `node` at (its NodeAddr); None if it cannot say."""
        raise NotImplementedError

    # -- the Engine protocol ---------------------------------------------------------------

    def submit(self, job: EngineJob) -> str:
        """Start `job` as its owner, unless a Slurm job tagged with its id already exists."""
        if job.owner is None:
            raise EngineRejected("the job names no owner: a cluster runs every job as its user")
        with self._lock:
            if job.job_id in self._handles:
                return self._handles[job.job_id]
            if not self._synced:
                self._sync()
                if job.job_id in self._handles:
                    return self._handles[job.job_id]
            # Until Slurm answers, the job may or may not exist: look before the next submit.
            self._synced = False
            try:
                handle = self._start(job)
            except EngineRejected:
                self._synced = True  # refused: Slurm started nothing
                raise
            self._synced = True
            self._handles[job.job_id] = handle
            return handle

    def _sync(self) -> dict[int, str]:
        """Ask the cluster for every tagged job (one listing); remember them."""
        found: dict[int, SlurmJob] = {}
        for job_id, sjob in tagged_jobs(self._list_jobs(), self.tag_prefix):
            old = found.get(job_id)
            # Two Slurm jobs with one tag should not happen; prefer a live one, then the newest.
            if old is None or _rank(sjob) > _rank(old):
                found[job_id] = sjob
        known = {job_id: sjob.handle for job_id, sjob in found.items()}
        self._handles.update(known)
        self._synced = True
        return known

    def poll(self, handles: Mapping[int, str]) -> dict[int, Observation]:
        """Observe many jobs with one listing of the cluster's jobs."""
        if not handles:
            return {}
        seen = self._seen(handles)
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
                self._note_host(sjob, obs.state)
                out[job_id] = obs
            # Forget the GPU ids of jobs Slurm itself has forgotten.
            for handle in [h for h in self._gpu_ids if h not in seen]:
                del self._gpu_ids[handle]
            for handle in [h for h in self._hosts if h not in seen]:
                self._hosts.pop(handle, None)
                self._web.pop(handle, None)
        return out

    def _note_host(self, sjob: SlurmJob, state: JobState) -> None:
        """Remember where a running job runs; forget it (and its app) once it does not."""
        if state is JobState.RUNNING and sjob.batch_host:
            if self._hosts.get(sjob.handle) != (sjob.batch_host, sjob.user_id):
                self._web.pop(sjob.handle, None)  # requeued elsewhere: look again
            self._hosts[sjob.handle] = (sjob.batch_host, sjob.user_id)
        else:
            self._hosts.pop(sjob.handle, None)
            self._web.pop(sjob.handle, None)

    def web_address(self, handle: str) -> WebAddress | None:
        """Where job `handle`'s web app listens: its batch host's address and the port the
        job recorded; None until it runs and has recorded one (see `slurm_web`)."""
        if not HANDLE.fullmatch(handle):
            return None
        with self._lock:
            if handle in self._web:
                return self._web[handle]
            where = self._hosts.get(handle)
        try:
            if where is None:  # not polled here yet (another process polls): ask once
                sjob = self._seen({0: handle}).get(handle)
                if sjob is None or sjob.state != "RUNNING" or not sjob.batch_host:
                    return None
                where = (sjob.batch_host, sjob.user_id)
            node, user_id = where
            path = self.log_dir / web_file_name(self.name, handle)
            port = recorded_port(path, user_id, self.web_ports)
            host = self._address_of(node) if port is not None else None
        except EngineUnavailable:
            return None  # the proxy says it cannot reach the app now (503)
        if port is None or host is None:
            return None
        address = WebAddress(host, port)
        with self._lock:
            self._hosts[handle] = where
            self._web[handle] = address
        return address

    def _address_of(self, node: str) -> str | None:
        """The node's address: the sites file's, else Slurm's NodeAddr (kept once known)."""
        with self._lock:
            known = self._node_addresses.get(node)
        if known is not None:
            return known
        found = self._node_address(node)
        if found is not None:
            with self._lock:
                self._node_addresses[node] = found
        return found

    def read_log(
        self, handle: str, stream: LogStream, offset: int = 0, limit: int = 1 << 20
    ) -> bytes:
        """Up to `limit` bytes of the job's output file from `offset`; b"" before it exists."""
        check_handle(handle)
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


def check_handle(handle: str) -> None:
    """Refuse what cannot be a Slurm job id (it would reach a path or a URL)."""
    if not HANDLE.fullmatch(handle):
        raise EngineRejected(f"{handle!r} is not a Slurm job id")


def _rank(job: SlurmJob) -> tuple[bool, int]:
    return job.state in _LIVE, int(job.handle) if job.handle.isdigit() else -1
