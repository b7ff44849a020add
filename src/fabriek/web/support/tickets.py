"""The portal's support centre: one's tickets, the ticket form and a ticket's conversation.

The form has a step before a ticket is opened: "check for answers" lists the knowledge
base's articles that best match what was written, and only then is the ticket sent, so a
question the articles answer need not wait for a desk. A ticket's page shows the
conversation and its service levels; the staff handling it also see internal notes and
may add one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import FabriekError, InvalidInput
from fabriek.domain.roles import Principal
from fabriek.domain.support.shapes import MessageDraft, TicketDraft
from fabriek.domain.support.tickets import Category
from fabriek.services import jobs, support
from fabriek.services.paging import PageRequest
from fabriek.services.support import knowledge
from fabriek.services.support.config import SupportOptions
from fabriek.web.forms import GENERAL, Form, FormProblems, problem_page, status_of
from fabriek.web.i18n import language_of, translate
from fabriek.web.layout import page
from fabriek.web.session import Person, SignedIn

TICKETS_PER_PAGE = 100
# The recent jobs the form offers to ask about.
JOBS_OFFERED = 20
# How many articles the "check for answers" step suggests.
SUGGESTIONS = 5
TICKET_FIELDS = frozenset({"category", "subject", "body", "job", "share_context"})
# The service's names for the form's fields where they differ.
RENAME = {"about": "job"}


def _problems() -> FormProblems:
    return FormProblems(TICKET_FIELDS)


def draft_of(form: dict[str, str]) -> TicketDraft:
    """The ticket the form describes; ValidationError for what its model refuses."""
    job = form.get("job", "").strip()
    return TicketDraft(
        category=form.get("category", ""),
        subject=" ".join(form.get("subject", "").split()),
        body=form.get("body", "").strip(),
        about=f"job:{job}" if job else None,
        share_context=bool(job) and form.get("share_context") == "yes",
    )


router = APIRouter(include_in_schema=False)

# The forms come back to the page they were on after sign-in.
OnTicketForm = Annotated[Principal, Depends(SignedIn("/support/new"))]
OnTicket = Annotated[Principal, Depends(SignedIn("/support/{ticket_id}"))]


@router.get("/support", response_class=HTMLResponse, response_model=None)
def tickets(request: Request, db: Db, ctx: Ctx, who: Person) -> Response:
    """The tickets the signed-in person may see (their own and their projects'; the staff
    their desk's), newest first."""
    opts = SupportOptions.from_settings(ctx.settings)
    found = support.list_tickets(
        db, who, opts.config, ctx.clock(), PageRequest(limit=TICKETS_PER_PAGE)
    )
    return page(request, "support_list.html", "support.title", who, {"found": found})


def form_page(
    request: Request, db: Db, who: Principal, form: dict[str, str],
    problems: FormProblems, status_code: int = 200, checked: bool = False,
    suggestions: list[object] | None = None,
) -> HTMLResponse:  # fmt: skip
    lang = language_of(request)
    mine = jobs.list_jobs(db, who, PageRequest(limit=JOBS_OFFERED), user=who.username)
    return page(
        request, "support_form.html", "support_form.title", who,
        {"form": form, "problems": problems.fields, "general": GENERAL,
         "checked": checked, "suggestions": suggestions or [],
         "category_options": [("", translate(lang, "support_form.choose"))]
         + [(c.value, translate(lang, f"support_category.{c.value}")) for c in Category],
         "job_options": [("", translate(lang, "support_form.no_job"))]
         + [(str(j.id), f"{j.id}: {j.name or ''} ({j.project})") for j in mine.items]},
        status_code=status_code,
    )  # fmt: skip


@router.get("/support/new", response_class=HTMLResponse, response_model=None)
def new_ticket(request: Request, db: Db, who: Person, job: str = "") -> Response:
    """The ticket form (about a job, if the link said which)."""
    return form_page(request, db, who, {"job": job}, _problems())


@router.post("/support/new", response_class=HTMLResponse, response_model=None)
def send(request: Request, db: Db, ctx: Ctx, who: OnTicketForm, form: Form) -> Response:
    """First the articles that may answer the question; then, asked again, the ticket."""
    problems = _problems()
    try:
        draft = draft_of(form)
    except ValidationError as bad:
        problems.add_invalid(bad, RENAME)
        return form_page(request, db, who, form, problems, 422)
    if form.get("action") != "submit":
        text = f"{draft.subject}\n{draft.body}"
        found = knowledge.suggest(db, text, None, SUGGESTIONS)
        return form_page(request, db, who, form, problems, checked=True,
                         suggestions=list(found))  # fmt: skip
    opts = SupportOptions.from_settings(ctx.settings)
    try:
        made = support.open_ticket(db, who, draft, opts, ctx.access, ctx.clock(), ctx.dispatcher)
    except InvalidInput as bad:
        problems.add_all(bad.problems, RENAME)
        if not problems:
            problems.add(GENERAL, bad.detail)
        return form_page(request, db, who, form, problems, 422, checked=True)
    except FabriekError as bad:
        problems.add("job", bad.detail)
        return form_page(request, db, who, form, problems, status_of(bad), checked=True)
    return RedirectResponse(f"/support/{made.id}", status_code=303)


def ticket_page(
    request: Request, db: Db, ctx: Ctx, who: Principal, ticket_id: int,
    form: dict[str, str], problems: FormProblems, status_code: int = 200,
) -> Response:  # fmt: skip
    opts = SupportOptions.from_settings(ctx.settings)
    try:
        ticket = support.get_ticket(db, who, ticket_id, opts, ctx.clock())
    except FabriekError as bad:
        return problem_page(request, who, bad)
    return page(request, "support_ticket.html", "support_ticket.title", who,
                {"ticket": ticket, "form": form, "problems": problems.fields,
                 "general": GENERAL, "title_params": {"reference": ticket.reference}},
                status_code=status_code)  # fmt: skip


@router.get("/support/{ticket_id}", response_class=HTMLResponse, response_model=None)
def ticket(request: Request, ticket_id: int, db: Db, ctx: Ctx, who: Person) -> Response:
    """A ticket: its conversation, service levels and the reply form."""
    return ticket_page(request, db, ctx, who, ticket_id, {}, FormProblems(frozenset()))


@router.post("/support/{ticket_id}/messages", response_class=HTMLResponse, response_model=None)
def reply(
    request: Request, ticket_id: int, db: Db, ctx: Ctx, who: OnTicket, form: Form
) -> Response:
    """Reply, or (the staff handling it) leave an internal note."""
    problems = FormProblems(frozenset({"body"}))
    try:
        draft = MessageDraft(body=form.get("body", "").strip(),
                             internal=form.get("internal") == "yes")  # fmt: skip
    except ValidationError:
        problems.add("body", translate(language_of(request), "support_ticket.empty"))
        return ticket_page(request, db, ctx, who, ticket_id, form, problems, 422)
    opts = SupportOptions.from_settings(ctx.settings)
    try:
        support.post_message(db, who, ticket_id, draft, opts, ctx.clock())
    except InvalidInput as bad:
        problems.add_all(bad.problems, {})
        if not problems:
            problems.add(GENERAL, bad.detail)
        return ticket_page(request, db, ctx, who, ticket_id, form, problems, 422)
    except FabriekError as bad:
        return problem_page(request, who, bad)
    return RedirectResponse(f"/support/{ticket_id}#messages", status_code=303)
