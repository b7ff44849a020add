"""The portal's job pages: the list, the submit form (messages next to the fields it names),
a job's page with its state, the reason it waits, the tail of its output and its energy
and carbon hour by hour, and cancelling with a confirmation.

A job's page is complete without JavaScript (a reload shows the newest state); with it,
htmx asks `/jobs/{id}/live` every few seconds while the job has not ended and swaps the
answer in, so the state, the output and, once a run stops, the charts appear by themselves.
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import FabriekError, Forbidden, InvalidInput, NotFound
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.job_ledger import LedgerHour
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import Job, JobDraft
from fabriek.domain.roles import Principal, Role
from fabriek.services import jobs
from fabriek.services.access.desk import applying_projects
from fabriek.services.identity import projects
from fabriek.services.jobs import ledger as job_ledger
from fabriek.services.jobs import output as job_output
from fabriek.services.paging import PageRequest
from fabriek.services.web_apps.access import web_app_listening
from fabriek.web.charts import Chart, Series
from fabriek.web.forms import GENERAL, Form, FormProblems, problem_page, status_of
from fabriek.web.i18n import language_of, translate
from fabriek.web.layout import page, templates
from fabriek.web.session import Person, SignedIn

# How much of each output stream a job's page shows: the end, where a run's news is.
LOG_TAIL_BYTES = 16 * 1024
# How often a job page that has not ended asks for its state and output (htmx).
POLL_S = 3
JOBS_PER_PAGE = 50

# The submit form's fields, as the form, the draft and the service's problems name them.
FORM_FIELDS = (
    "project", "name", "command", "script", "container_image", "gpus", "gpu_type",
    "time_limit", "shiftable", "preemptible", "deadline", "wait_hours", "datasets",
)  # fmt: skip
# What a batch script's #SBATCH lines set: a problem with one is a problem of the script.
SCRIPT_FIELDS = frozenset({"time", "memory", "nodes", "cpus", "partition", "gres"})


def _problems() -> FormProblems:
    return FormProblems(frozenset(FORM_FIELDS))


def _whole(form: dict[str, str], name: str, problems: FormProblems, lang: str) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        problems.add(name, translate(lang, "job_form.whole_number", value=text))
        return None


def _moment(text: str, name: str, problems: FormProblems, lang: str) -> datetime | None:
    """A date and time from a `datetime-local` field, read as UTC (the form says so)."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        problems.add(name, translate(lang, "job_form.bad_moment", value=text))
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _hours(text: str, name: str, problems: FormProblems, lang: str) -> float | None:
    if not text.strip():
        return None
    try:
        hours = float(text.strip().replace(",", "."))
    except ValueError:
        hours = -1.0
    if not 0 <= hours <= 24 * 366:
        problems.add(name, translate(lang, "job_form.bad_hours", value=text))
        return None
    return hours


def draft_from_form(
    form: dict[str, str], now: datetime, lang: str
) -> tuple[JobDraft | None, FormProblems]:
    """The job a submitted form asks for, or what is wrong with the form. A job that "may
    wait N hours" gets the deadline that lets it start as late as N hours from now
    (deadline = now + N hours + its time limit) and may be shifted."""
    problems = _problems()
    command_text, script = form.get("command", "").strip(), form.get("script", "").strip()
    command: list[str] | None = None
    # A notebook (the "Start a notebook" form): the control plane fills in its command.
    web_app = "jupyterlab" if form.get("web_app") == "jupyterlab" else None
    if web_app is not None:
        command_text = script = ""
    elif command_text and script:
        problems.add("script", translate(lang, "job_form.both_given"))
    elif not command_text and not script:
        problems.add("command", translate(lang, "job_form.none_given"))
    elif command_text:
        try:
            command = shlex.split(command_text)
        except ValueError:
            problems.add("command", translate(lang, "job_form.bad_quotes"))
    gpus = _whole(form, "gpus", problems, lang)
    deadline = _moment(form.get("deadline", ""), "deadline", problems, lang)
    wait = _hours(form.get("wait_hours", ""), "wait_hours", problems, lang)
    if deadline is not None and wait is not None:
        problems.add("wait_hours", translate(lang, "job_form.deadline_or_wait"))
    if problems:
        return None, problems
    try:
        draft = JobDraft(
            project=form.get("project") or None,
            name=form.get("name", "").strip() or None,
            command=command,
            script=(script.replace("\r\n", "\n") + "\n") if script else None,
            container_image=form.get("container_image", "").strip() or None,
            gpus=gpus,
            gpu_type=form.get("gpu_type") or None,
            time_limit=form.get("time_limit", "").strip() or None,
            deadline=deadline,
            shiftable=form.get("shiftable") == "yes" or wait is not None,
            preemptible=form.get("preemptible") == "yes",
            datasets=[d for d in re.split(r"[,\s]+", form.get("datasets", "")) if d],
            web_app=web_app,
        )
    except ValidationError as bad:
        problems.add_invalid(bad, {})
        return None, problems
    if wait is not None:
        limit = jobs.spec_of(draft).time_limit_s
        latest = now + timedelta(hours=wait, seconds=limit)
        draft = draft.model_copy(update={"deadline": latest})
    return draft, problems


def problems_of(error: InvalidInput, form: dict[str, str]) -> FormProblems:
    """The service's problems, each next to the form field it concerns: one of the batch
    script's own settings is a problem of the script."""
    problems = _problems()
    rename = {name: "script" for name in SCRIPT_FIELDS} if form.get("script") else {}
    problems.add_all(error.problems, rename)
    if not problems:
        problems.add(GENERAL, error.detail)
    return problems


# -- a job's page ------------------------------------------------------------------------------


def _hour_label(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%d %H:00")


def ledger_charts(hours: list[LedgerHour]) -> list[Chart]:
    """The job's GPU power, energy and carbon per clock hour, each drawn and as a table.
    A short job's figures are shown in Wh and g rather than as rows of zeros in kWh and kg."""
    labels = [_hour_label(h.hour) for h in hours]
    small = max(h.facility_energy.value for h in hours) < 1.0
    scale = 1000.0 if small else 1.0

    def kwh(values: list[float]) -> list[float | None]:
        return [v * scale for v in values]

    power = Chart(
        "job-power", "job_page.power_title", labels,
        [Series("job_page.gpu_power", [h.gpu_power.value if h.gpu_power else None
                                       for h in hours])],
        unit="job_page.unit_watts", axis="job_page.hour_utc", digits=0,
    )  # fmt: skip
    energy = Chart(
        "job-energy", "job_page.energy_title", labels,
        [Series("job_page.gpu_energy", kwh([h.gpu_energy.value for h in hours]), stack="it"),
         Series("job_page.cpu_energy", kwh([h.cpu_energy.value for h in hours]), stack="it")],
        unit="job_page.unit_wh" if small else "unit.kwh", axis="job_page.hour_utc", digits=3,
        stacked=True,
        extra=[Series("job_page.facility_energy", kwh([h.facility_energy.value for h in hours]))],
    )  # fmt: skip
    carbon = Chart(
        "job-carbon", "job_page.carbon_title", labels,
        [Series("job_page.carbon", [h.carbon.value * scale if h.carbon else None
                                    for h in hours])],
        unit="job_page.unit_g_co2e" if small else "unit.kg_co2e", axis="job_page.hour_utc",
        digits=3,
        note=None if all(h.carbon is not None for h in hours) else "job_page.carbon_unknown",
    )  # fmt: skip
    return [power, energy, carbon]


def may_cancel(db: Db, who: Principal, job: Job) -> bool:
    """The rule `jobs.request_cancel` enforces, to offer the form only to those it lets
    through: the job's owner, its project's PI, hub staff and admins."""
    if job.state in TERMINAL_STATES:
        return False
    if job.user == who.username or who.is_admin or who.has_role(Role.HUB_STAFF):
        return True
    try:
        return who.leads_project(projects.get_project(db, who, job.project).id)
    except NotFound:
        return False


def _job_values(db: Db, ctx: Ctx, who: Principal, job_id: int) -> dict[str, Any]:
    """What a job's page and its live part show."""
    job = jobs.get_job(db, who, job_id)
    hours = job_ledger.job_hours(db, who, job_id)
    return {
        "job": job,
        "events": jobs.job_events(db, who, job_id),
        "tails": job_output.output_tails(db, who, job_id, LOG_TAIL_BYTES, ctx.dispatcher)
        if ctx.dispatcher is not None
        else [],
        "hours": hours,
        "charts": ledger_charts(hours) if hours else [],
        "ended": job.state in TERMINAL_STATES,
        "waiting": job.state in {JobState.PENDING, JobState.PREEMPTED},
        "poll_s": POLL_S,
        # Its web app, once it accepts connections (the "Open" link; its owner only).
        "app_ready": job.web_port is not None
        and job.state == JobState.RUNNING
        and job.user == who.username
        and ctx.dispatcher is not None
        and web_app_listening(
            db, who, job_id, ctx.dispatcher.engine, ctx.dispatcher.registry.state_dir
        ),
    }


router = APIRouter(include_in_schema=False)

# A form's target and the live part come back to the page they belong to after sign-in.
OnJobForm = Annotated[Principal, Depends(SignedIn("/jobs/new"))]
OnJob = Annotated[Principal, Depends(SignedIn("/jobs/{job_id}"))]


@router.get("/jobs", response_class=HTMLResponse, response_model=None)
def job_list(request: Request, db: Db, who: Person, offset: int = 0) -> Response:
    """The jobs of the projects the signed-in person can see, newest first."""
    found = jobs.list_jobs(db, who, PageRequest(limit=JOBS_PER_PAGE, offset=max(0, offset)))
    return page(request, "jobs_list.html", "job_list.title", who,
                {"found": found, "per_page": JOBS_PER_PAGE})  # fmt: skip


def notebook_idle_minutes(request: Request) -> str | None:
    """After how many idle minutes a notebook is stopped, as the form says it (None: never)."""
    minutes = float(request.app.state.context.settings.notebook_idle_minutes)
    return f"{minutes:g}" if minutes > 0 else None


def form_page(
    request: Request, db: Db, who: Principal, form: dict[str, str],
    problems: FormProblems, status_code: int = 200,
) -> HTMLResponse:  # fmt: skip
    mine = applying_projects(db, who)
    notebook = form.get("web_app") == "jupyterlab"
    return page(
        request, "notebook_form.html" if notebook else "job_form.html",
        "notebooks.title" if notebook else "job_form.title", who,
        {"form": form, "problems": problems.fields, "general": GENERAL, "projects": mine,
         "project_options": [(p.name, f"{p.name}: {p.title}") for p in mine],
         "gpu_options": [(code, gpu.name) for code, gpu in GPU_TYPES.items()],
         "idle_minutes": notebook_idle_minutes(request)},
        status_code=status_code,
    )  # fmt: skip


@router.get("/jobs/new", response_class=HTMLResponse, response_model=None)
def new_job(request: Request, db: Db, who: Person, project: str = "", kind: str = "") -> Response:
    """The submit form; `kind=notebook`: the form that starts a notebook."""
    if kind == "notebook":
        form = {"project": project, "time_limit": "4h", "gpus": "1", "web_app": "jupyterlab"}
        return form_page(request, db, who, form, _problems())
    return form_page(request, db, who, {"project": project, "time_limit": "1h"}, _problems())


@router.post("/jobs", response_class=HTMLResponse, response_model=None)
def submit(request: Request, db: Db, ctx: Ctx, who: OnJobForm, form: Form) -> Response:
    """Submit the form's job; on to its page, or back to the form with the problems next
    to the fields."""
    now = ctx.clock()
    status = 422
    try:
        draft, problems = draft_from_form(form, now, language_of(request))
        if draft is not None:
            job = jobs.submit_job(db, who, draft, now, ctx.site_shapes.get(db),
                                  ctx.project_refs, ctx.images)  # fmt: skip
            if ctx.dispatcher is not None:
                ctx.dispatcher.wake.set()
            return RedirectResponse(f"/jobs/{job.id}", status_code=303)
    except InvalidInput as bad:
        problems = problems_of(bad, form)
    except (NotFound, Forbidden) as bad:
        # The project is not theirs to submit to: said next to the project.
        problems = _problems()
        problems.add("project", bad.detail)
        status = status_of(bad)
    return form_page(request, db, who, form, problems, status)


@router.get("/jobs/{job_id}", response_class=HTMLResponse, response_model=None)
def job_page(request: Request, job_id: int, db: Db, ctx: Ctx, who: Person) -> Response:
    """A job: its state, why it waits, its output's end, its energy and carbon."""
    try:
        values = _job_values(db, ctx, who, job_id)
    except FabriekError as bad:
        return problem_page(request, who, bad)
    values["cancellable"] = may_cancel(db, who, values["job"])
    return page(request, "job_page.html", "job_page.title", who,
                {**values, "title_params": {"id": job_id}})  # fmt: skip


@router.get("/jobs/{job_id}/live", response_class=HTMLResponse, response_model=None)
def job_live(request: Request, job_id: int, db: Db, ctx: Ctx, who: OnJob) -> Response:
    """The live part of a job's page alone, for htmx to swap in."""
    try:
        values = _job_values(db, ctx, who, job_id)
    except FabriekError as bad:
        return problem_page(request, who, bad)
    return templates.TemplateResponse(request, "_job_live.html",
                                      {"who": who, "swap": True, **values})  # fmt: skip


@router.post("/jobs/{job_id}/cancel", response_class=HTMLResponse, response_model=None)
def cancel(request: Request, job_id: int, db: Db, ctx: Ctx, who: OnJob, form: Form) -> Response:
    """Cancel a job once the person has ticked that they mean it."""
    try:
        if form.get("confirm") != "yes":
            values = _job_values(db, ctx, who, job_id)
            values["cancellable"] = may_cancel(db, who, values["job"])
            lang = language_of(request)
            return page(request, "job_page.html", "job_page.title", who,
                        {**values, "title_params": {"id": job_id},
                         "cancel_problem": translate(lang, "job_page.confirm_missing")},
                        status_code=422)  # fmt: skip
        _job, tell_engine = jobs.request_cancel(db, who, job_id, ctx.clock())
    except FabriekError as bad:
        return problem_page(request, who, bad)
    if tell_engine and ctx.dispatcher is not None:
        ctx.dispatcher.wake.set()
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)
