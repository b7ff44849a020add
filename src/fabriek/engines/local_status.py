"""What a local job's files say about it: running, still starting, ended (and how), or lost.

The runner (`local_runner`) records a job's life in its folder; reading those files and
`/proc` is all it takes to observe a job, so a restarted control plane sees what the old
one saw, and observing starts no process.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fabriek.domain.job_states import JobState
from fabriek.engines import local_runner as files
from fabriek.engines.base import Observation
from fabriek.engines.local_containers import left_behind


def read_status(
    job_id: int, handle: str, job_dir: Path, gpus: tuple[int, ...], start_timeout_s: float
) -> Observation:
    """The state of the job in `job_dir` (which has its job file), holding `gpus`. A job
    whose runner has not shown itself after `start_timeout_s` is lost."""
    status = files.read_json(job_dir / files.STATUS_FILE)
    if status is None:
        runner = files.read_json(job_dir / files.RUNNER_FILE)
        if runner and files.is_alive(runner["pid"], runner.get("start_ticks")):
            started = files.read_json(job_dir / files.STARTED_FILE)
            began = _parse_time(started.get("started_at")) if started else None
            state = JobState.RUNNING if began else JobState.STARTING
            return Observation(
                job_id, handle, state, started_at=began, gpu_seconds=_usage(gpus, began, None)
            )
        age = time.time() - (job_dir / files.JOB_FILE).stat().st_mtime
        if runner is None and age < start_timeout_s:
            return Observation(job_id, handle, JobState.STARTING)
        # The runner may have written its status just before it exited: look again.
        status = files.read_json(job_dir / files.STATUS_FILE)
        if status is None:
            return _vanished(job_id, handle, job_dir, runner, start_timeout_s)
    ended = _ended(job_id, handle, status, gpus)
    energy = files.read_json(job_dir / files.ENERGY_FILE)
    if energy and energy.get("readings"):
        ended = replace(ended, energy_readings=tuple(energy["readings"]))
    return ended


def _vanished(
    job_id: int,
    handle: str,
    job_dir: Path,
    runner: dict[str, Any] | None,
    start_timeout_s: float,
) -> Observation:
    """A job whose runner is gone without a status: cancelled before it could start, never
    started, or died."""
    left_behind(job_dir)  # a container its runner could no longer remove
    if (job_dir / files.CANCEL_FILE).exists():
        # The runner was signalled before it could catch the signal: a cancel all right.
        return Observation(job_id, handle, JobState.CANCELLED, "cancelled before it started")
    if runner is None:
        why = f"its runner never started within {start_timeout_s:.0f} s"
    else:
        why = f"runner process {runner['pid']} disappeared without recording an exit status"
    return Observation(job_id, handle, JobState.LOST, why + _last_words(job_dir))


def _parse_time(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _last_words(job_dir: Path) -> str:
    """The runner's last line of output, which says why it died when it could say it."""
    try:
        lines = (job_dir / files.RUNNER_LOG).read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f" (its last words: {lines[-1][:200]})" if lines else ""


def _usage(
    gpus: tuple[int, ...], began: datetime | None, ended: datetime | None
) -> dict[str, float]:
    """GPU-seconds per GPU: each assigned GPU is held for the whole run."""
    if began is None:
        return {}
    elapsed = max(0.0, ((ended or datetime.now(UTC)) - began).total_seconds())
    return {str(gpu): elapsed for gpu in gpus}


def _ended(job_id: int, handle: str, status: dict[str, Any], gpus: tuple[int, ...]) -> Observation:
    """The observation of a job whose runner recorded how it ended."""
    if status.get("cancelled"):
        state = JobState.CANCELLED
    elif status.get("timed_out"):
        state = JobState.TIMED_OUT
    elif status.get("exit_code") == 0:
        state = JobState.COMPLETED
    else:
        state = JobState.FAILED
    began, ended = _parse_time(status.get("started_at")), _parse_time(status.get("ended_at"))
    return Observation(
        job_id,
        handle,
        state,
        reason=status.get("reason"),
        exit_code=status.get("exit_code") if began else None,
        started_at=began,
        ended_at=ended,
        gpu_seconds=_usage(gpus, began, ended),
    )
