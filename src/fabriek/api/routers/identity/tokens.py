"""The caller: who am I, my API tokens, and my federated identities."""

from __future__ import annotations

from fastapi import APIRouter, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.schemas import WhoAmI
from fabriek.domain.identity.people import IdentityInfo, NewTokenInfo, TokenDraft, TokenInfo
from fabriek.services.identity import identities, users
from fabriek.services.identity import tokens as token_service

router = APIRouter(prefix=API_PREFIX, tags=["identity"])


@router.get("/whoami", response_model=WhoAmI)
def whoami(db: Db, who: Caller) -> WhoAmI:
    """The signed-in user, their staff roles and their projects."""
    user, projects = users.whoami(db, who)
    return WhoAmI(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        staff_roles=[f"{g.role}:{g.scope}" if g.scope else str(g.role) for g in user.staff_roles],
        projects=projects,
        assurance=who.assurance,
        withheld_roles=list(who.withheld),
    )


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(db: Db, who: Caller) -> list[TokenInfo]:
    """The caller's tokens (never their secrets)."""
    return token_service.list_tokens(db, who)


@router.post("/tokens", response_model=NewTokenInfo, status_code=status.HTTP_201_CREATED)
def create_token(body: TokenDraft, db: Db, who: Caller, ctx: Ctx) -> NewTokenInfo:
    """A new token for the caller; the secret is in this answer only."""
    new = token_service.issue_token(db, who.user_id, body, ctx.clock(), ctx.settings.token_days,
                                    lineage=token_service.TokenLineage.of(who))  # fmt: skip
    db.commit()
    return new


@router.delete("/tokens/{key}", response_model=TokenInfo)
def revoke_token(key: str, db: Db, who: Caller, ctx: Ctx) -> TokenInfo:
    """Revoke one of the caller's tokens; it stops working at once."""
    return token_service.revoke_token(db, who, key, ctx.clock())


@router.get("/identities", response_model=list[IdentityInfo])
def list_identities(db: Db, who: Caller) -> list[IdentityInfo]:
    """The caller's federated identities (linking one takes a browser: the portal's
    /account/identities)."""
    return identities.list_identities(db, who)


@router.delete("/identities/{identity_id}", status_code=status.HTTP_204_NO_CONTENT)
def unlink_identity(identity_id: int, db: Db, who: Caller, ctx: Ctx) -> None:
    """Unlink one of the caller's identities (not the one this token descends from, nor
    the last); the tokens descending from it are revoked."""
    identities.unlink(db, who, identity_id, ctx.clock())
