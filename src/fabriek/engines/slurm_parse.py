"""What Slurm prints, read into Fabriek's words: pure functions, no I/O, no clock.

Read here: `squeue --json` (Slurm 22.05's OpenAPI v0.0.38 shape, and the later shapes where
numbers are `{"set": true, "number": N}`, states are lists and exit codes are objects; the
same `{"jobs": [...]}` shape is what `scontrol --json show job` prints from 23.02 on) and
`scontrol show job --oneliner` (in `slurm_scontrol`: the text form every version has, as
22.05's scontrol has no `--json`). Both become `SlurmJob`s, and `observe` turns one into an
`Observation`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.engines.base import Observation


class SlurmOutputError(Exception):
    """Slurm's output says the query failed (e.g. squeue could not reach slurmctld)."""


@dataclass(frozen=True)
class SlurmJob:
    """One job as Slurm shows it, the same whichever command or version printed it.

    `state` is the base state (RUNNING); `flags` the extra ones (COMPLETING, CONFIGURING).
    `wait_status` is the raw status of the batch script as waitpid gives it. Times are Unix
    seconds, None when unset. `gpu_ids` are the allocated GPU indices where Slurm lists them
    (only while the job runs); `gpu_count` is how many GPUs the job holds or asked for.
    `batch_host` is the node its batch script runs on (empty until it starts); `user_id` the
    Unix ID it runs as.
    """

    handle: str
    name: str
    comment: str
    state: str
    flags: frozenset[str] = frozenset()
    reason: str | None = None
    wait_status: int | None = None
    start: int | None = None
    end: int | None = None
    nodes: str = ""
    gpu_count: int = 0
    gpu_ids: tuple[str, ...] = ()
    batch_host: str = ""
    user_id: int | None = None


def job_tag(prefix: str, job_id: int) -> str:
    """The comment that marks a Slurm job as Fabriek job `job_id`."""
    return f"{prefix}:{job_id}"


def tagged_job_id(comment: str, prefix: str) -> int | None:
    """The Fabriek job id in a Slurm job's comment, or None when it is not one of ours."""
    match = re.fullmatch(rf"{re.escape(prefix)}:([0-9]{{1,18}})", comment.strip())
    return int(match.group(1)) if match else None


# -- numbers and fields, whichever version printed them ------------------------------------


def _num(value: Any) -> int | None:
    """22.05 prints plain numbers (or null); later versions {"set", "infinite", "number"}."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, Mapping):
        if not value.get("set", True) or value.get("infinite", False):
            return None
        return _num(value.get("number"))
    return None


def _epoch(value: Any) -> int | None:
    n = _num(value)
    return n if n else None  # 0 means "not set" in every version


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


_GRES_TRES = re.compile(r"gres[:/]gpu(?::[^:,=]+)?[:=]([0-9]+)")
_GRES_DETAIL = re.compile(r"gpu(?::[^:(]+)?(?::([0-9]+))?\(IDX:([^)]*)\)")


def _expand_indices(text: str) -> list[str]:
    """'0-1,3' -> ['0', '1', '3']; anything else (N/A) -> []."""
    out: list[str] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            return []
        out.extend(str(i) for i in range(int(lo), int(hi or lo) + 1))
    return out


def gpu_ids_from_detail(details: Sequence[str], node_names: Sequence[str] = ()) -> list[str]:
    """GPU ids from gres detail strings, one per node ('gpu:h100:2(IDX:0-1)').

    One node: the indices themselves. Several: 'node:index' (or 'i:index' without names),
    because every node numbers its GPUs from 0.
    """
    per_node = []
    for detail in details:
        match = _GRES_DETAIL.search(detail)
        per_node.append(_expand_indices(match.group(2)) if match else [])
    if len(per_node) == 1:
        return per_node[0]
    names = list(node_names) if len(node_names) == len(per_node) else []
    return [f"{names[i] if names else i}:{idx}" for i, ids in enumerate(per_node) for idx in ids]


def gpu_count_from_tres(per_node: str, per_job: str, node_count: int) -> int:
    """GPUs a job asked for: --gres counts per node, --gpus for the whole job."""
    if match := _GRES_TRES.search(per_node):
        return int(match.group(1)) * max(node_count, 1)
    if match := _GRES_TRES.search(per_job):
        return int(match.group(1))
    return 0


# -- squeue --json -----------------------------------------------------------------------


def _states(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.upper()]
    if isinstance(value, list):
        return [s.upper() for s in value if isinstance(s, str)]
    return []


_FLAG_STATES = frozenset(
    {"COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT"}
    | {"POWER_UP_NODE", "UPDATE_DB", "RESV_DEL_HOLD", "REQUEUE_FED", "REQUEUE_HOLD"}
    | {"SPECIAL_EXIT", "STOPPED", "REVOKED", "LAUNCH_FAILED", "RECONFIG_FAIL"}
)


def split_state(tokens: Sequence[str]) -> tuple[str, frozenset[str]]:
    """Base state and flags. 22.05 prints one word, which may be a flag (COMPLETING)
    standing in for the base state; later versions list the base state with its flags."""
    base = [t for t in tokens if t not in _FLAG_STATES]
    flags = frozenset(t for t in tokens if t in _FLAG_STATES)
    if base:
        return base[0], flags
    return (tokens[0] if tokens else "UNKNOWN"), flags


def _wait_status(value: Any) -> int | None:
    """22.05: the raw waitpid status. Later: {"status", "return_code", "signal"}."""
    if not isinstance(value, Mapping):
        return _num(value)
    code = _num(value.get("return_code")) or 0
    signal = value.get("signal")
    sig = _num(signal.get("id")) if isinstance(signal, Mapping) else None
    if sig:
        return sig & 0x7F
    return (code & 0xFF) << 8


def _from_json_job(raw: Mapping[str, Any]) -> SlurmJob:
    state, flags = split_state(_states(raw.get("job_state")))
    node_count = _num(raw.get("node_count")) or 1
    resources = raw.get("job_resources")
    node_names: list[str] = []
    if isinstance(resources, Mapping):
        allocated = resources.get("allocated_nodes")
        if isinstance(allocated, list):
            node_names = [_text(n.get("nodename")) for n in allocated if isinstance(n, Mapping)]
    details = [d for d in raw.get("gres_detail") or [] if isinstance(d, str)]
    ids = tuple(gpu_ids_from_detail(details, node_names))
    count = gpu_count_from_tres(
        _text(raw.get("tres_per_node")), _text(raw.get("tres_per_job")), node_count
    )
    reason = _text(raw.get("state_reason"))
    return SlurmJob(
        handle=str(_num(raw.get("job_id"))),
        name=_text(raw.get("name")),
        comment=_text(raw.get("comment")),
        state=state,
        flags=flags,
        reason=reason if reason and reason != "None" else None,
        wait_status=_wait_status(raw.get("exit_code")),
        start=_epoch(raw.get("start_time")),
        end=_epoch(raw.get("end_time")),
        nodes=_text(raw.get("nodes")),
        gpu_count=len(ids) or count,
        gpu_ids=ids,
        batch_host=_text(raw.get("batch_host")),
        user_id=_num(raw.get("user_id")),
    )


def parse_squeue_json(text: str | Mapping[str, Any]) -> list[SlurmJob]:
    """Every job in `squeue --json` (or `scontrol --json show job`) output, or in the same
    document as slurmrestd's `GET /slurm/v0.0.38/jobs` answers it (already decoded).

    Raises `SlurmOutputError` when the output lists errors: 22.05's squeue exits 0 with an
    empty job list and an error entry when slurmctld cannot be reached, and reading that
    as "no jobs" would call every job lost.
    """
    if isinstance(text, Mapping):
        doc: object = text
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SlurmOutputError(f"squeue printed no JSON: {text[:200]!r}") from exc
    if not isinstance(doc, Mapping):
        raise SlurmOutputError("squeue printed JSON that is not an object")
    errors = [e for e in doc.get("errors") or [] if e]
    if errors:
        first = errors[0]
        words = (
            " / ".join(_text(first.get(k)) for k in ("description", "error", "source"))
            if isinstance(first, Mapping)
            else str(first)
        )
        raise SlurmOutputError(f"Slurm reported: {words}")
    jobs = doc.get("jobs")
    if not isinstance(jobs, list):
        raise SlurmOutputError("squeue JSON has no job list")
    return [_from_json_job(j) for j in jobs if isinstance(j, Mapping)]


# -- what a failing command said ------------------------------------------------------------

# What Slurm's clients print when they cannot reach slurmctld, or it cannot answer now:
# retrying later may work, so these mean "unavailable", never "rejected".
_UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Zero Bytes were transmitted"
    r"|Connection refused|connect failure|Communication connection failure|standby mode"
    r"|Transport endpoint|authentication|munge|configuration source|fetch_config"
    r"|temporarily unable|Resource temporarily unavailable|Slurmctld.*(DOWN|not responding)",
    re.IGNORECASE,
)
_GONE = re.compile(r"Invalid job id|already completing or completed|has already finished", re.I)


def slurm_unreachable(stderr: str) -> bool:
    """Whether a Slurm command failed because the controller could not be reached."""
    return bool(_UNREACHABLE.search(stderr))


def slurm_job_gone(stderr: str) -> bool:
    """Whether scancel failed only because the job already ended or is unknown."""
    return bool(_GONE.search(stderr)) and not slurm_unreachable(stderr)


# -- states and exit codes -----------------------------------------------------------------


def exit_code(wait_status: int | None) -> int | None:
    """A waitpid status as a shell reports it: the exit code, or 128 + the killing signal."""
    if wait_status is None:
        return None
    signal = wait_status & 0x7F
    return 128 + signal if signal else (wait_status >> 8) & 0xFF


_ENDED = {
    "COMPLETED": (JobState.COMPLETED, None),
    "FAILED": (JobState.FAILED, "failed"),
    "CANCELLED": (JobState.CANCELLED, "cancelled in Slurm"),
    "TIMEOUT": (JobState.TIMED_OUT, "time limit reached"),
    "DEADLINE": (JobState.TIMED_OUT, "deadline reached"),
    "NODE_FAIL": (JobState.FAILED, "a node of the job failed"),
    "BOOT_FAIL": (JobState.FAILED, "a node failed to boot"),
    "OUT_OF_MEMORY": (JobState.FAILED, "out of memory"),
    "SPECIAL_EXIT": (JobState.FAILED, "special exit"),
    "REVOKED": (JobState.LOST, "revoked: the job runs on another cluster of a federation"),
}


_BUSY = frozenset({"RESIZING", "SIGNALING", "STAGE_OUT", "UPDATE_DB", "SUSPENDED", "STOPPED"})


def map_state(
    state: str, flags: frozenset[str] = frozenset(), reason: str | None = None, ran: bool = False
) -> tuple[JobState, str | None]:
    """Slurm's state (base + flags) and reason as Fabriek's state and a reason to show.

    A job that is COMPLETING still holds its nodes: it stays RUNNING until Slurm lets go.
    REQUEUED jobs wait again (PENDING). SUSPENDED and STOPPED jobs keep their resources, so
    they count as RUNNING. A state this code does not know is never taken as an ending: it
    is RUNNING when the job `ran` (has nodes), else PENDING.
    """
    why = f" ({reason})" if reason else ""
    if state in _ENDED and "COMPLETING" not in flags:
        fstate, words = _ENDED[state]
        return fstate, (f"{words}{why}" if words else None)
    if state == "PREEMPTED":
        return JobState.PREEMPTED, f"preempted{why}"
    if state in ("PENDING", "RESV_DEL_HOLD") or state.startswith("REQUEUE") or "REQUEUED" in flags:
        return JobState.PENDING, f"waiting in Slurm{why}"
    if "CONFIGURING" in (state, *flags) or state == "POWER_UP_NODE":
        return JobState.STARTING, "nodes are being configured"
    if state == "COMPLETING" or "COMPLETING" in flags or state in _ENDED:
        return JobState.RUNNING, "completing: Slurm is releasing the nodes"
    if state in _BUSY:
        return JobState.RUNNING, f"{state.lower()} in Slurm{why}"
    if state == "RUNNING":
        return JobState.RUNNING, None
    return (JobState.RUNNING if ran else JobState.PENDING), f"unknown Slurm state {state}{why}"


def observe(job: SlurmJob, job_id: int, now: datetime, gpu_ids: Sequence[str] = ()) -> Observation:
    """An `Observation` of `job` at `now` (an aware datetime).

    GPU seconds: elapsed time (to the end, or to `now` while running) for each GPU; the ids
    are `gpu_ids` when given (the engine remembers them from while the job ran: Slurm drops
    a finished job's indices), else Slurm's own, else "0".."n-1".
    """
    # A pending job's start_time is Slurm's forecast; one cancelled while pending has no nodes.
    ran = job.start is not None and bool(job.nodes)
    state, reason = map_state(job.state, job.flags, job.reason, ran)
    ended = state in TERMINAL_STATES
    running = ran and state != JobState.PENDING
    started = datetime.fromtimestamp(job.start, UTC) if running and job.start else None
    finished = datetime.fromtimestamp(job.end, UTC) if ended and job.end else None
    # A job that never ran has no exit code, whatever number Slurm keeps for it.
    code = exit_code(job.wait_status) if ended and started else None
    if state == JobState.FAILED and code is not None and job.wait_status is not None:
        signal = job.wait_status & 0x7F
        if signal:
            reason = f"killed by signal {signal}" + (f" ({job.reason})" if job.reason else "")
        elif job.reason in ("NonZeroExitCode", None):
            reason = f"exit code {code}"
    seconds: dict[str, float] = {}
    if started is not None and job.gpu_count:
        elapsed = max(((finished or now) - started).total_seconds(), 0.0)
        ids = list(gpu_ids) or list(job.gpu_ids) or [str(i) for i in range(job.gpu_count)]
        seconds = dict.fromkeys(ids, elapsed)
    return Observation(
        job_id=job_id,
        handle=job.handle,
        state=state,
        reason=reason,
        exit_code=code,
        started_at=started,
        ended_at=finished,
        gpu_seconds=seconds,
    )


def tagged_jobs(jobs: Sequence[SlurmJob], prefix: str) -> Iterator[tuple[int, SlurmJob]]:
    """(Fabriek id, job) for every job tagged by Fabriek under `prefix`."""
    for job in jobs:
        job_id = tagged_job_id(job.comment, prefix)
        if job_id is not None:
            yield job_id, job
