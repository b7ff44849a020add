"""`fabriek notebook`: JupyterLab as a job, opened through Fabriek at a URL under the portal.

The notebook is an ordinary job (`web_app = "jupyterlab"`, no command: the control plane
fills in JupyterLab's), so it waits like any job on a full site, is charged like one and
can be cancelled with `fabriek cancel`. The command waits with a progress line that shows
why it waits, until JupyterLab answers through Fabriek's proxy, then prints its URL.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json
from fabriek.domain.errors import Conflict
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import Job, JobDraft
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.core import validated

POLL_S = 0.25
# The app's statuses that mean "not yet": the job waits or starts (409), JupyterLab does
# not listen yet (503).
NOT_YET = frozenset({409, 503})


def _line(job: Job, since: float) -> str:
    waited = int(time.monotonic() - since)
    if job.state == JobState.RUNNING:
        return f"Job {job.id} runs on {job.site}: JupyterLab is starting ({waited} s)"
    where = f" on {job.site}" if job.site else ""
    why = f": {job.reason}" if job.reason else ""
    return f"Job {job.id} is {job.state.value}{where}{why} ({waited} s)"


def wait_until_served(c: FabriekClient, job: Job, timeout_s: float | None) -> Job:
    """Poll the job, then its app through the proxy, until JupyterLab answers; the job.
    Raises Conflict when the job ends first, TimeoutError after `timeout_s`."""
    since = time.monotonic()
    with console.status(_line(job, since)) as progress:
        while True:
            if job.state in TERMINAL_STATES:
                raise Conflict(
                    f"notebook job {job.id} ended ({job.state.value}"
                    + (f": {job.reason}" if job.reason else "")
                    + f") before JupyterLab answered; see `fabriek logs {job.id} --stderr`"
                )
            if job.state == JobState.RUNNING and (
                c.jobs.web_app_status(job.id, "lab") not in NOT_YET
            ):
                return job
            if timeout_s is not None and time.monotonic() - since > timeout_s:
                raise TimeoutError(
                    f"notebook job {job.id} is still {job.state.value} after {timeout_s:g} s; "
                    f"it keeps waiting: `fabriek job {job.id}` shows it, `fabriek cancel "
                    f"{job.id}` stops it"
                )
            progress.update(_line(job, since))
            time.sleep(POLL_S)
            job = c.jobs.get(job.id)


@app.command()
def notebook(
    gpus: Annotated[int, typer.Option("--gpus", "-G", min=0, help="GPUs for the notebook")] = 1,
    time_limit: Annotated[
        str, typer.Option("--time", "-t", help="how long it may run: 30m, 4h, 1-00:00:00")
    ] = "4h",
    image: Annotated[
        str | None,
        typer.Option("--image", help="container image with JupyterLab (default: the site's)"),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-A", help="default: your first project")
    ] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="e.g. h100")] = None,
    name: Annotated[str | None, typer.Option("--name", "-J", help="job name")] = None,
    wait: Annotated[
        float | None,
        typer.Option("--wait", min=0, help="seconds to wait for it at most (default: no limit)"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start JupyterLab as a job and print where to open it: `fabriek notebook --gpus 1 --time 4h`."""
    body = {
        k: v
        for k, v in dict(
            project=project, web_app="jupyterlab", gpus=gpus, gpu_type=gpu_type,
            time_limit=time_limit, container_image=image, name=name,
        ).items()
        if v is not None
    }  # fmt: skip
    draft = validated(JobDraft, body)
    with client() as c:
        job = c.jobs.submit(draft)
        try:
            job = wait_until_served(c, job, wait)
        except KeyboardInterrupt:
            print(f"Stopped waiting; notebook job {job.id} goes on (`fabriek cancel {job.id}`)")
            raise typer.Exit(130) from None
        url = c.jobs.web_app_url(job.id, "lab")
    if as_json:
        print_json({**job.model_dump(mode="json"), "url": url})
        return
    print(f"Notebook job {job.id} runs on {job.site}; open it (signed in to the portal):")
    print(url)
