"""What a user sees of a job: its row, with its project, owner, site and the AI models it
trains, as the domain's `Job`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import Job
from fabriek.services.ai_act import job_links
from fabriek.services.jobs import datasets as job_datasets
from fabriek.store.tables import (
    JobRow,
)


def job_fields(row: JobRow, project: str, user: str, site: str | None) -> dict[str, Any]:
    return {
        "id": row.id, "project": project, "user": user, "name": row.name,
        "state": JobState(row.state), "reason": row.reason, "site": site, "gpus": row.gpus,
        "gpu_type": row.gpu_type, "nodes": row.nodes, "cpus": row.cpus,
        "memory_gb": row.memory_gb, "time_limit_s": row.time_limit_s, "command": row.command,
        "has_script": row.script is not None, "container_image": row.container_image,
        "working_dir": row.working_dir, "earliest_start": row.earliest_start,
        "deadline": row.deadline, "preemptible": row.preemptible, "shiftable": row.shiftable,
        "exit_code": row.exit_code, "gpu_hours": round(row.gpu_seconds / 3600.0, 6),
        "datasets": [d.label for d in job_datasets.from_row(row.datasets)],
        "submitted_at": row.submitted_at, "started_at": row.started_at, "ended_at": row.ended_at,
        "web_port": row.web_port, "web_app": row.web_app, "image_digest": row.image_digest,
    }  # fmt: skip


def link_fields(link: job_links.JobLink | None) -> dict[str, Any]:
    if link is None:
        return {}
    return {"model": link.ref, "purpose": link.purpose.value,
            "ai_act_warnings": list(link.warnings)}  # fmt: skip


def with_models(session: Session, jobs: list[Job]) -> list[Job]:
    """The jobs with the model version and purpose each is linked to, if any."""
    linked = job_links.job_models(session, [j.id for j in jobs])
    return [
        j.model_copy(update={"model": linked[j.id][0], "purpose": linked[j.id][1]})
        if j.id in linked
        else j
        for j in jobs
    ]
