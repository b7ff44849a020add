"""The portal's forms: reading a submitted form (`Form`, `FormLists`), and what the portal
says when a form or a service refuses: each problem next to the field it concerns (the rest
above the form), and a service's refusal of a whole page in its own words, with the status
the API would answer (404 for what the person may not know exists, 403 for what they see
but may not do, 409 for a state that does not allow it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from fabriek.api.problems import STATUS
from fabriek.domain.errors import FabriekError, FieldProblem, InvalidInput
from fabriek.domain.roles import Principal
from fabriek.web.layout import page

# The portal's largest form has a few dozen fields; more is not a person at a form, and
# gets a 422 rather than costing the server.
MAX_FORM_FIELDS = 64


async def form_fields(request: Request) -> dict[str, str]:
    """An HTML form's fields (application/x-www-form-urlencoded), read without another
    dependency: the first value of each."""
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        return {k: v[0] for k, v in parse_qs(body, max_num_fields=MAX_FORM_FIELDS).items()}
    except ValueError:
        raise InvalidInput(
            f"a form of more than {MAX_FORM_FIELDS} fields; send the page's own form"
        ) from None


async def form_lists(request: Request) -> dict[str, list[str]]:
    """An HTML form's fields with every value each was sent with: ticked boxes that share
    one name."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, max_num_fields=MAX_FORM_FIELDS)


Form = Annotated[dict[str, str], Depends(form_fields)]
FormLists = Annotated[dict[str, list[str]], Depends(form_lists)]

# The bucket of problems that belong to no one field of the form.
GENERAL = "_"

# The page's heading for each status.
TITLES = {403: "portal_problem.forbidden", 404: "portal_problem.not_found",
          409: "portal_problem.conflict", 422: "portal_problem.invalid"}  # fmt: skip


@dataclass
class FormProblems:
    """What is wrong with a submitted form: a message per field of the form (`known`),
    shown next to it; problems of anything else are general, shown above the form."""

    known: frozenset[str]
    fields: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        # The first problem of a field is the one to fix first.
        self.fields.setdefault(name if name in self.known else GENERAL, message)

    def add_all(self, found: Iterable[FieldProblem], rename: Mapping[str, str]) -> None:
        """A service's problems, each renamed to the form's field where the names differ."""
        for p in found:
            self.add(rename.get(p.field, p.field), p.message)

    def add_invalid(self, bad: ValidationError, rename: Mapping[str, str]) -> None:
        """A model's validation errors, by the first part of where each was found."""
        for error in bad.errors():
            where = [str(part) for part in error.get("loc") or ()]
            dotted, first = ".".join(where), where[0] if where else GENERAL
            self.add(rename.get(dotted, rename.get(first, first)), _message(error))

    def __bool__(self) -> bool:
        return bool(self.fields)


def _message(error: Any) -> str:
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def status_of(error: FabriekError) -> int:
    """The HTTP status the API answers this error with."""
    return next((s for kind, s in STATUS.items() if isinstance(error, kind)), 400)


def problem_page(request: Request, who: Principal | None, error: FabriekError) -> HTMLResponse:
    """A page that says why the service refused, in its own words."""
    status = status_of(error)
    return page(request, "portal_problem.html", TITLES.get(status, "portal_problem.other"), who,
                {"detail": error.detail}, status_code=status)  # fmt: skip
