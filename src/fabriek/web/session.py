"""Who is signed in to the portal, and the one dependency of every page that needs a person.

A page that needs a person declares `who: Person` (or, for a form's target or a page's live
part, a `SignedIn` that names the page to come back to). An anonymous request never reaches
the route: `SignedIn` raises `SignInNeeded`, and the handler `install_portal` registers
answers it with the way to the sign-in page and back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from fabriek.api.context import Ctx, Db
from fabriek.domain.roles import Principal
from fabriek.web.layout import signed_in, to_signin


class SignInNeeded(Exception):
    """An anonymous request for a page that needs a person; `back` is where to return."""

    def __init__(self, back: str) -> None:
        super().__init__(back)
        self.back = back


class SignedIn:
    """The signed-in person, or off to sign in and back to `back` afterwards: this
    request's own path and query when None, else a path whose `{names}` are filled from the
    route's path parameters (a form's target goes back to the page the form was on)."""

    def __init__(self, back: str | None = None) -> None:
        self.back = back

    def __call__(self, request: Request, db: Db, ctx: Ctx) -> Principal:
        who = signed_in(request, db, ctx)
        if who is None:
            if self.back is None:
                raise SignInNeeded(request.url.path + _query(request))
            raise SignInNeeded(self.back.format(**request.path_params))
        return who


def _query(request: Request) -> str:
    return f"?{request.url.query}" if request.url.query else ""


async def sign_in_first(_request: Request, needed: Exception) -> RedirectResponse:
    """The answer to `SignInNeeded`: the sign-in page, and back afterwards."""
    assert isinstance(needed, SignInNeeded)
    return to_signin(needed.back)


# The signed-in person of a page that comes back to itself after sign-in.
Person = Annotated[Principal, Depends(SignedIn())]
