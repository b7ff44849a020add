"""Terms of use: admins publish the factory's, a site's operators the site's; anyone signed
in reads them, sees what they must still accept, and accepts."""

from __future__ import annotations

from fastapi import APIRouter, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.terms import Acceptance, Terms, TermsDraft, TermsStatus
from fabriek.services.accounts import terms_publishing

# Two roots (/terms and /users/me/terms), so the paths carry all but the version prefix.
router = APIRouter(prefix=API_PREFIX, tags=["terms"])


@router.get("/terms", response_model=list[Terms])
def list_terms(db: Db, who: Caller) -> list[Terms]:
    """The newest version of the factory's terms and of each site's that has any."""
    del who  # signed in is enough
    return terms_publishing.newest_of_each(db)


@router.post("/terms", response_model=Terms, status_code=status.HTTP_201_CREATED)
def publish_terms(body: TermsDraft, db: Db, who: Caller, ctx: Ctx) -> Terms:
    """Publish the next version of a scope's terms: the factory's (admins) or a site's (its
    operators and admins). The version number is assigned."""
    return terms_publishing.publish(db, who, body, ctx.clock())


@router.get("/terms/{scope}", response_model=Terms)
def newest_terms(scope: str, db: Db, who: Caller) -> Terms:
    """The newest version of a scope's terms."""
    del who
    return terms_publishing.get_terms(db, scope)


@router.get("/terms/{scope}/{version}", response_model=Terms)
def terms_version(scope: str, version: int, db: Db, who: Caller) -> Terms:
    """One version of a scope's terms."""
    del who
    return terms_publishing.get_terms(db, scope, version)


@router.post("/terms/{scope}/{version}/accept", response_model=Acceptance)
def accept_terms(scope: str, version: int, db: Db, who: Caller, ctx: Ctx) -> Acceptance:
    """Accept a version of a scope's terms (again: the first acceptance is answered)."""
    return terms_publishing.accept(db, who, scope, version, ctx.clock())


@router.get("/users/me/terms", response_model=list[TermsStatus])
def my_terms(db: Db, who: Caller) -> list[TermsStatus]:
    """Which terms you accepted when, and which you must accept before your next job."""
    return terms_publishing.status_of(db, who)
