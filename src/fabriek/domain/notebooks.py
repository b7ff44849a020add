"""Notebooks: JupyterLab as a job, and when an idle one is stopped. Pure rules.

A notebook is an ordinary job (queued, placed, charged and cancelled like any other) whose
draft names `web_app = "jupyterlab"` and leaves its command out: the control plane fills
in JupyterLab's command line (`fabriek.domain.web_apps.jupyterlab_command`) and the port it
declares. One left running without use holds GPUs for nothing, so after a configurable time
without activity (kernels, the API, traffic through Fabriek's proxy) it is stopped; its
files stay in its workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fabriek.domain.jobs import JobDraft
from fabriek.domain.web_apps import (
    JUPYTERLAB,
    NOTEBOOK_PORT,
    idle_for,
    idle_reason,
    is_idle,
    jupyterlab_command,
    latest_activity,
)

NOTEBOOK_NAME = "notebook"


def is_notebook_draft(draft: JobDraft) -> bool:
    """Whether the draft asks for a notebook whose command the control plane fills in."""
    return draft.web_app == JUPYTERLAB and draft.command is None and draft.script is None


def command_of(draft: JobDraft) -> list[str]:
    """The command of a command job: the draft's own, or JupyterLab's for a notebook."""
    if draft.command is not None:
        return draft.command
    if is_notebook_draft(draft):
        return jupyterlab_command()
    raise ValueError("a job without a command or script")  # the draft's validator refuses it


def default_name(draft: JobDraft) -> str | None:
    """A notebook's name when the draft gives none."""
    return NOTEBOOK_NAME if is_notebook_draft(draft) else None


def web_port_of(draft: JobDraft) -> int | None:
    """The port a job declares: the draft's, else JupyterLab's usual one for JupyterLab."""
    if draft.web_port is None and draft.web_app == JUPYTERLAB:
        return NOTEBOOK_PORT
    return draft.web_port


@dataclass(frozen=True)
class IdleCheck:
    """A running notebook as the idle rule sees it."""

    job_id: int
    started_at: datetime
    # Traffic through Fabriek's proxy (jobs.last_active_at), written at most once a minute.
    proxied_at: datetime | None
    # Jupyter's own `last_activity` (kernels, terminals, its API), when it answered.
    jupyter_at: datetime | None


def idle_stop_reason(check: IdleCheck, idle_s: int, now: datetime) -> str | None:
    """The reason to stop the notebook now, or None while it is in use (or `idle_s` <= 0:
    never stopped). Idle time runs from the latest activity seen anywhere, or its start."""
    last = latest_activity(check.proxied_at, check.jupyter_at)
    idle = idle_for(last, check.started_at, now)
    return idle_reason(idle_s) if is_idle(idle, idle_s) else None


def idle_seconds(minutes: float) -> int:
    """The idle setting (minutes, fractions allowed) in whole seconds; 0 means never."""
    return max(0, round(timedelta(minutes=minutes).total_seconds()))
