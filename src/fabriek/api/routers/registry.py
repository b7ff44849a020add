"""The image registry: its token service (Fabriek issues the tokens the registry accepts),
and a project's images.

podman (or a site's runtime) is sent here by the registry's 401 with Basic credentials:
a person's username and Fabriek API token, or a job's pull credential. A bearer API token
works too. The answer grants what was asked and is allowed (docs/workloads.md).
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fabriek.api.context import AppContext, Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.errors import InvalidInput, Unauthenticated
from fabriek.domain.images import ProjectImage, Scope, parse_scope
from fabriek.services.identity import tokens
from fabriek.services.images.keys import SigningKey, load_signing_key
from fabriek.services.images.listing import project_images
from fabriek.services.images.tokens import SERVICE, Requester, basic_requester, issue, person

router = APIRouter(prefix=API_PREFIX, tags=["images"])


def _key(ctx: AppContext) -> SigningKey:
    return ctx.images.key if ctx.images is not None else load_signing_key(ctx.settings.state_dir)


def _requester(request: Request, ctx: AppContext, session: Session, key: SigningKey) -> Requester:
    header = request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    now = ctx.clock()
    if scheme.lower() == "basic":
        try:
            username, sep, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sep = ""
        if not sep:
            raise Unauthenticated("Basic credentials are username:token, base64-encoded")
        return basic_requester(session, key, username, password, now)
    if scheme.lower() == "bearer" and value.strip():
        return person(session, tokens.authenticate(session, value.strip(), now))
    raise Unauthenticated(
        "log in to the registry with your username and a Fabriek API token "
        "(podman login -u USERNAME)"
    )


@router.get("/registry/token")
async def registry_token(
    request: Request,
    ctx: Ctx,
    service: str | None = None,
    scope: Annotated[list[str] | None, Query(description="repository:NAME:pull,push")] = None,
) -> dict[str, Any]:
    """A registry token granting the asked scopes, cut to what the caller may do."""
    if service is not None and service != SERVICE:
        raise InvalidInput.on("service", f"this token service issues tokens for {SERVICE!r}")
    asked: list[Scope] = []
    for text in scope or []:
        # One `scope` may hold several, space-separated (Distribution's spec allows it).
        asked.extend(s for part in text.split() if (s := parse_scope(part)) is not None)

    def answer() -> dict[str, Any]:
        key = _key(ctx)
        with ctx.sessions() as session:
            who = _requester(request, ctx, session, key)
            return issue(session, key, who, asked, ctx.clock(), ctx.settings.registry_token_s)

    return await run_in_threadpool(answer)


@router.get("/projects/{ref}/images", response_model=list[ProjectImage])
def list_project_images(ref: str, db: Db, who: Caller, ctx: Ctx) -> list[ProjectImage]:
    """A project's repositories in the factory's registry, with their tags."""
    return project_images(db, who, ref, ctx.images)
