"""Job commands that feel like Slurm's: run, submit, jobs (squeue), job, logs, cancel."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.core import validated

if TYPE_CHECKING:
    # The models import Pydantic: at run time only the commands that submit import them, so
    # that `fabriek jobs` starts without it (bench/cli_startup.py).
    from fabriek.domain.jobs import Job

Project = Annotated[str | None, typer.Option("--project", "-A", help="default: your first project")]
Gpus = Annotated[int | None, typer.Option("--gpus", "-G", min=0, help="GPUs for the job")]
GpusPerNode = Annotated[
    int | None,
    typer.Option("--gpus-per-node", min=0, help="GPUs on each node (with --nodes)"),
]
GpuType = Annotated[str | None, typer.Option("--gpu-type", help="e.g. h100; default: any")]
Time = Annotated[str | None, typer.Option("--time", "-t", help="time limit: 30m, 2h, 1-00:00:00")]
Name = Annotated[str | None, typer.Option("--name", "-J", help="job name")]
Env = Annotated[list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE, repeatable")]
Datasets = Annotated[
    list[str] | None,
    typer.Option(
        "--dataset",
        "-d",
        help="a dataset the job reads (NAME, PROJECT/NAME, @VERSION); at $FABRIEK_DATASETS/NAME",
    ),
]


ModelRef = Annotated[
    str | None,
    typer.Option("--model", help="the AI model version it works on, NAME:VERSION"),
]
Purpose = Annotated[
    str | None,
    typer.Option(
        "--purpose",
        help="why it runs for the model: pre-training, fine-tuning, synthetic-data-private, "
        "synthetic-data-public, evaluation, exploratory-research, reward-model",
    ),
]
Acknowledge = Annotated[
    bool,
    typer.Option(
        "--acknowledge-systemic-risk",
        help="confirm you will notify the Commission if the job takes the model past 1e25 FLOP",
    ),
]


def _env(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--env {pair!r}: use NAME=VALUE")
        out[name] = value
    return out


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v != {}}


def _submit(body: dict[str, Any], as_json: bool) -> None:
    from fabriek.domain.jobs import JobDraft

    with client() as c:
        _submitted(c.jobs.submit(validated(JobDraft, body)), as_json)


def _submitted(job: Job, as_json: bool) -> None:
    if as_json:
        print_json(job)
        return
    print(f"Submitted job {job.id}")
    for note in job.notes:
        # The script's #SBATCH lines Fabriek set aside: said, not silently dropped.
        print(f"note: {note}", file=sys.stderr)
    for warning in job.ai_act_warnings:
        # The EU AI Act lines the job may take its model past: said where the user looks.
        print(f"warning: {warning.message}", file=sys.stderr)


Image = Annotated[
    str | None,
    typer.Option(
        "--image",
        help="run it inside this container image, NAME[:TAG] from the factory's registry "
        "(or a full reference), with the runtime of the site it runs at (podman, "
        "Apptainer or Pyxis): as you, with your working directory and datasets mounted",
    ),
]


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    command: Annotated[list[str], typer.Argument(help="the program and its arguments, after --")],
    project: Project = None,
    gpus: Gpus = None,
    gpu_type: GpuType = None,
    time_limit: Time = None,
    name: Name = None,
    cpus: Annotated[int | None, typer.Option("--cpus", "-c", min=1)] = None,
    mem: Annotated[int | None, typer.Option("--mem", min=1, help="memory in GB")] = None,
    nodes: Annotated[int | None, typer.Option("--nodes", "-N", min=1)] = None,
    gpus_per_node: GpusPerNode = None,
    image: Image = None,
    env: Env = None,
    workdir: Annotated[str | None, typer.Option("--workdir", "-D")] = None,
    web_port: Annotated[
        int | None,
        typer.Option(
            "--web-port",
            min=1,
            max=65535,
            help="a web app it serves (TensorBoard, Gradio), opened at /apps/<id>/",
        ),
    ] = None,
    begin: Annotated[datetime | None, typer.Option("--begin", help="earliest start (UTC)")] = None,
    preemptible: Annotated[bool, typer.Option("--preemptible", help="may be preempted")] = False,
    shiftable: Annotated[bool, typer.Option("--shiftable", help="may move in time")] = False,
    dataset: Datasets = None,
    model: ModelRef = None,
    purpose: Purpose = None,
    acknowledge: Acknowledge = False,
    as_json: JsonFlag = False,
) -> None:
    """Run a command as a job: `fabriek run --gpus 2 --gpu-type h100 --time 1h -- python train.py`."""
    body = _body(
        project=project, command=command, gpus=gpus, gpu_type=gpu_type, time_limit=time_limit,
        name=name, cpus=cpus, memory_gb=mem, nodes=nodes, container_image=image,
        environment=_env(env), working_dir=workdir, web_port=web_port, gpus_per_node=gpus_per_node,
        earliest_start=begin.replace(tzinfo=begin.tzinfo or UTC).isoformat() if begin else None,
        preemptible=preemptible or None, shiftable=shiftable or None, datasets=dataset or None,
        model=model, purpose=purpose, acknowledge_systemic_risk=acknowledge or None,
    )  # fmt: skip
    _submit(body, as_json)


@app.command()
def submit(
    script: Annotated[Path, typer.Argument(help="a batch script with #SBATCH lines")],
    project: Project = None,
    gpus: Gpus = None,
    gpu_type: GpuType = None,
    time_limit: Time = None,
    name: Name = None,
    env: Env = None,
    dataset: Datasets = None,
    model: ModelRef = None,
    purpose: Purpose = None,
    acknowledge: Acknowledge = False,
    image: Image = None,
    as_json: JsonFlag = False,
) -> None:
    """Submit a batch script, as `sbatch` does; its #SBATCH lines are honoured, options win."""
    try:
        text = script.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {script}: {exc.strerror}") from None
    body = _body(
        project=project, script=text, gpus=gpus, gpu_type=gpu_type, time_limit=time_limit,
        name=name, environment=_env(env), datasets=dataset or None, model=model,
        purpose=purpose, acknowledge_systemic_risk=acknowledge or None, container_image=image,
    )  # fmt: skip
    _submit(body, as_json)


def _elapsed(started_at: str | None, ended_at: str | None) -> str:
    """How long a job has run (or ran), from its listing row's ISO 8601 times."""
    if started_at is None:
        return "0:00"
    end = datetime.fromisoformat(ended_at) if ended_at else datetime.now(UTC)
    seconds = int((end - datetime.fromisoformat(started_at)).total_seconds())
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# Like squeue: what is still to run; finished jobs are history, shown with --all or --state.
WAITING_AND_RUNNING = [s.value for s in JobState if s not in TERMINAL_STATES]


def listing_footer(shown: int, total: int, noun: str = "job") -> str:
    """`4 jobs`, or `showing 100 of 4,234 jobs` when the listing was cut at its limit."""
    plural = noun if total == 1 else f"{noun}s"
    if shown < total:
        return f"showing {shown:,} of {total:,} {plural} (--limit for more)"
    return f"{total:,} {plural}"


@app.command()
def jobs(
    as_json: JsonFlag = False,
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-t", help="repeatable; default: waiting and running jobs"),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", "-a", help="finished jobs too, newest first")
    ] = False,
    project: Annotated[str | None, typer.Option("--project", "-A")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u")] = None,
    limit: Limit = 100,
) -> None:
    """The jobs you can see that wait or run, newest first, like `squeue`; `--all` for
    finished ones too."""
    states = state or (None if every else WAITING_AND_RUNNING)
    with client() as c:
        found = c.jobs.rows(limit=limit, states=states, project=project, site=site, user=user)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (j["id"], j["project"], j["name"], j["user"], j["state"],
         _elapsed(j["started_at"], j["ended_at"]),
         f"{j['gpus']}×{j['gpu_type']}" if j["gpu_type"] else j["gpus"], j["site"] or "",
         j["reason"] or "")
        for j in found.items
    ]  # fmt: skip
    footer = listing_footer(len(found.items), found.total)
    if not state and not every:
        footer += "; waiting and running only (--all for finished jobs too)"
    print_table(None, ["JOBID", "PROJECT", "NAME", "USER", "STATE", "TIME", "GPUS", "SITE", "REASON"],
                rows, footer, shortened={"NAME", "REASON"})  # fmt: skip


@app.command("job")
def show_job(
    job_id: Annotated[int, typer.Argument(help="job id")], as_json: JsonFlag = False
) -> None:
    """One job in full, with its history."""
    with client() as c:
        job = c.jobs.get(job_id)
        events = c.jobs.events(job_id)
    if as_json:
        print_json(
            {**job.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in events]}
        )
        return
    for key, value in job.model_dump().items():
        if value not in (None, [], {}):
            console.print(f"[bold]{key:>15}[/] {escape(str(value))}", soft_wrap=True)
    rows = [
        (e.at.strftime("%Y-%m-%d %H:%M:%S"), e.from_state or "", e.to_state, e.reason or "")
        for e in events
    ]
    print_table("History", ["At (UTC)", "From", "To", "Reason"], rows)


_STREAM_NAMES = {"stdout": "standard output", "stderr": "standard error"}


def _whole_log(c: FabriekClient, job_id: int, stream: str) -> bytes:
    """All of a stream: the server answers in chunks, so read on until it has no more."""
    chunks: list[bytes] = []
    at = 0
    while data := c.jobs.logs(job_id, stream, offset=at):
        chunks.append(data)
        at += len(data)
    return b"".join(chunks)


def _label(stream: str) -> bytes:
    return f"==> {_STREAM_NAMES[stream]} <==\n".encode()


def _no_output(c: FabriekClient, job_id: int, only: str | None) -> None:
    """Say why there is nothing to show: the job has not written any yet, or never did."""
    job = c.jobs.get(job_id)
    what = _STREAM_NAMES[only] if only else "output"
    if job.state in TERMINAL_STATES:
        note = f"job {job_id} ended ({job.state.value}) without {what}"
    else:
        note = f"job {job_id} is {job.state.value}: no {what} yet"
    print(note, file=sys.stderr)


@app.command()
def logs(
    job_id: Annotated[int, typer.Argument(help="job id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="until the job ends")] = False,
    stdout: Annotated[bool, typer.Option("--stdout", help="standard output only")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="standard error only")] = False,
) -> None:
    """A job's output: standard output, then standard error under its own label;
    `-f` follows it until the job ends."""
    if stdout and stderr:
        raise typer.BadParameter(
            "--stdout and --stderr show one stream each; give neither for both"
        )
    only = "stderr" if stderr else "stdout" if stdout else None
    out = sys.stdout.buffer
    with client() as c:
        if follow:
            shown = b""  # the last chunk written, to know whether it ended its line
            for chunk in c.jobs.follow_logs(job_id, only or "stdout"):
                out.write(chunk)
                out.flush()
                shown = chunk or shown
        else:
            shown = _whole_log(c, job_id, only or "stdout")
        # Standard error comes after the output (when following, once the job has ended),
        # labelled, so a failed job's message is never hidden behind a flag.
        errors = b"" if only else _whole_log(c, job_id, "stderr")
        if not follow:
            out.write(_label("stdout") + shown if shown and errors else shown)
        if errors:
            out.write(b"" if not shown or shown.endswith(b"\n") else b"\n")
            out.write(_label("stderr") + errors)
        out.flush()
        if not shown and not errors:
            _no_output(c, job_id, only)


@app.command()
def cancel(job_ids: Annotated[list[int], typer.Argument(help="one or more job ids")]) -> None:
    """Cancel jobs, as `scancel` does; a job that has already ended is an error (exit 1)."""
    ended: list[str] = []
    with client() as c:
        for job_id in job_ids:
            before = c.jobs.get(job_id)
            job = before if before.state in TERMINAL_STATES else c.jobs.cancel(job_id)
            if job.state in TERMINAL_STATES and (
                before.state in TERMINAL_STATES or job.state is not JobState.CANCELLED
            ):
                ended.append(f"job {job_id} has already ended ({job.state.value})")
                continue
            state = "cancelled" if job.state is JobState.CANCELLED else "cancelling"
            print(f"Job {job_id}: {state}")
    if ended:
        print(f"fabriek: {'; '.join(ended)}: nothing to cancel", file=sys.stderr)
        raise typer.Exit(1)
