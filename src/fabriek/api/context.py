"""What every request needs: a database session and the authenticated caller.

Authentication is a list of `Authenticator`s tried in order; routes only ever depend on
`current_principal`. Adding OpenID Connect means adding an authenticator, not touching routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.errors import Unauthenticated
from fabriek.domain.roles import Principal
from fabriek.domain.tracks import AccessConfig
from fabriek.services import identity
from fabriek.services.access_config import load_access_config
from fabriek.services.dispatch import Dispatcher
from fabriek.services.jobs import SiteShapeCache
from fabriek.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class Authenticator(Protocol):
    """One way of signing in. Returns None when the request does not use this way."""

    def __call__(self, request: Request, session: Session, now: datetime) -> Principal | None: ...


def bearer_token(request: Request, session: Session, now: datetime) -> Principal | None:
    """`Authorization: Bearer fbk_...`: a personal API token."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("use 'Authorization: Bearer <token>'")
    return identity.authenticate(session, value.strip(), now)


@dataclass
class AppContext:
    """The application's shared parts, built once by `create_app`."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Callable[[], datetime] = utc_now
    dispatcher: Dispatcher | None = None
    site_shapes: SiteShapeCache = field(default_factory=SiteShapeCache)
    authenticators: list[Authenticator] = field(default_factory=lambda: [bearer_token])
    access: AccessConfig = field(default_factory=load_access_config)


async def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.context
    return ctx


def db_session(ctx: Annotated[AppContext, Depends(app_context)]) -> Iterator[Session]:
    with ctx.sessions() as session:
        yield session


def current_principal(
    request: Request,
    ctx: Annotated[AppContext, Depends(app_context)],
    session: Annotated[Session, Depends(db_session)],
) -> Principal:
    now = ctx.clock()
    for authenticate in ctx.authenticators:
        who = authenticate(request, session, now)
        if who is not None:
            return who
    raise Unauthenticated()


Ctx = Annotated[AppContext, Depends(app_context)]
Db = Annotated[Session, Depends(db_session)]
Caller = Annotated[Principal, Depends(current_principal)]
