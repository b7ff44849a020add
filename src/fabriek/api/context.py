"""What every request needs: a database session and the authenticated caller.

Authentication is a list of `Authenticator`s tried in order; routes only ever depend on
`current_principal`. Adding OpenID Connect means adding an authenticator, not touching routes.
A bearer token seen in the last few seconds is answered from `AppContext.principals`
without a thread or a query (see `PrincipalCache` for how long a change can go unseen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from fabriek.domain.access.tracks import AccessConfig
from fabriek.domain.errors import Unauthenticated
from fabriek.domain.identity.assurance import AssuranceRules, parse_rules
from fabriek.domain.roles import Principal
from fabriek.services.access.config import load_access_config
from fabriek.services.identity import tokens
from fabriek.services.images import ImageService
from fabriek.services.jobs import ProjectRefCache, SiteShapeCache
from fabriek.services.jobs.dispatch import Dispatcher
from fabriek.services.jobs.submissions import SubmissionWriter
from fabriek.services.partners import Partners
from fabriek.settings import Settings


def utc_now() -> datetime:
    return datetime.now(UTC)


class Authenticator(Protocol):
    """One way of signing in. Returns None when the request does not use this way."""

    def __call__(self, request: Request, session: Session, now: datetime) -> Principal | None: ...


def _bearer(request: Request) -> str | None:
    """The presented bearer token; None without an Authorization header."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("use 'Authorization: Bearer <token>'")
    return value.strip()


def bearer_token(request: Request, session: Session, now: datetime) -> Principal | None:
    """`Authorization: Bearer fbk_...`: a personal API token."""
    presented = _bearer(request)
    if presented is None:
        return None
    ctx = getattr(request.app.state, "context", None)
    if isinstance(ctx, AppContext):
        return ctx.principals.authenticate(session, presented, now, ctx.assurance)
    return tokens.authenticate(session, presented, now)


def new_submitters() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(16, thread_name_prefix="submit")


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
    # Short-lived caches for the hottest requests; `create_app` ties them to the engine's
    # writes (without that they keep nothing).
    principals: tokens.PrincipalCache = field(default_factory=tokens.PrincipalCache)
    project_refs: ProjectRefCache = field(default_factory=ProjectRefCache)
    # Threads for job submissions, fewer than the store's pool has connections: more
    # would only queue for a connection (or open and close overflow ones) and contend for
    # the interpreter lock. Threads start when first used.
    submitters: ThreadPoolExecutor = field(default_factory=lambda: new_submitters())
    # Group commit of submissions (None: each submission commits on its own).
    writer: SubmissionWriter | None = None
    # The factory's image registry (None: it runs none): checks images at submission.
    images: ImageService | None = None
    # The partner factories this one runs jobs for (None: none).
    partners: Partners | None = None

    @property
    def assurance(self) -> AssuranceRules:
        """The operator's minimum assurance per role (FABRIEK_ASSURANCE_MINIMUMS)."""
        return assurance_rules(self.settings.assurance_minimums)


@lru_cache(maxsize=8)
def assurance_rules(text: str) -> AssuranceRules:
    """The rules of the setting's text; ValueError naming the setting when it is wrong."""
    try:
        return parse_rules(text)
    except ValueError as bad:
        raise ValueError(f"FABRIEK_ASSURANCE_MINIMUMS: {bad}") from None


async def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.context
    return ctx


def db_session(ctx: Annotated[AppContext, Depends(app_context)]) -> Iterator[Session]:
    session = ctx.sessions()
    try:
        yield session
    finally:
        close_session(session)


def close_session(session: Session) -> None:
    """Close a request's session. Where the database dropped the connection meanwhile (a
    restart, a terminated backend), the closing rollback fails: the server ended that
    transaction itself and the pool has discarded the connection, so there is nothing
    left to undo. Raising then would abort an answer already on its way (the client would
    see the connection dropped); anything else still raises."""
    try:
        session.close()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise


def authenticate_request(
    request: Request, ctx: AppContext, session: Session, now: datetime
) -> Principal:
    """The caller, by the first authenticator that recognises the request."""
    for authenticate in ctx.authenticators:
        who = authenticate(request, session, now)
        if who is not None:
            return who
    raise Unauthenticated()


def _authenticate_in_session(request: Request, ctx: AppContext, now: datetime) -> Principal:
    with ctx.sessions() as session:
        return authenticate_request(request, ctx, session, now)


async def current_principal(
    request: Request, ctx: Annotated[AppContext, Depends(app_context)]
) -> Principal:
    """The caller: from the cache when their bearer token was seen just now (no thread, no
    query), else by the authenticators in a worker thread with a session of their own."""
    now = ctx.clock()
    if ctx.authenticators and ctx.authenticators[0] is bearer_token:
        presented = _bearer(request)
        if presented is not None and (who := ctx.principals.get(presented, now)) is not None:
            return _noted(request, who)
    return _noted(request, await run_in_threadpool(_authenticate_in_session, request, ctx, now))


def _noted(request: Request, who: Principal) -> Principal:
    """The caller, with the roles their token's sign-in did not meet the minimum of kept
    on the request, for a refusal (403) to say why (`api/problems.py`)."""
    if who.withheld:
        request.state.withheld_roles = who.withheld
    return who


Ctx = Annotated[AppContext, Depends(app_context)]
Db = Annotated[Session, Depends(db_session)]
Caller = Annotated[Principal, Depends(current_principal)]
