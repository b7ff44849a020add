"""A person's several federated identities: listing them, linking another by a verified
step, and unlinking one.

Linking is never silent: the person, signed in with one identity, signs in with the other
in the same browser session (`oidc.Link`), is shown what came back, and confirms
(`confirm_link`), within a few minutes and from that same session. An identity that signs
in to another account is not moved. Unlinking an identity revokes the tokens that descend
from a sign-in with it; the one the caller is signed in with, and a person's last one,
stay. Each link and unlink is in the audit trail with both identities.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import Conflict, NotFound
from fabriek.domain.identity.oidc import FederatedIdentity
from fabriek.domain.identity.people import IdentityInfo
from fabriek.domain.roles import Principal
from fabriek.services import audit
from fabriek.services.identity.oidc import by_identity
from fabriek.services.identity.oidc_client import SignInRefused
from fabriek.store.tables import ApiTokenRow, IdentityLinkOfferRow, UserIdentityRow, UserRow

# How long a person has to confirm a link after signing in with the second identity.
OFFER_TTL = timedelta(minutes=10)


@dataclass(frozen=True)
class LinkOffer:
    """A second identity waiting for its owner's confirmation; `key` goes in the form."""

    key: str
    issuer: str
    subject: str
    email: str
    assurance: str


def _info(row: UserIdentityRow, current: int | None) -> IdentityInfo:
    return IdentityInfo(
        id=row.id, issuer=row.issuer, subject=row.subject, email=row.email,
        linked_at=row.linked_at, last_sign_in_at=row.last_sign_in_at, current=row.id == current,
    )  # fmt: skip


def list_identities(session: Session, who: Principal) -> list[IdentityInfo]:
    """The caller's identities, oldest first; a user from before identity rows gets its
    one made now."""
    user = session.get(UserRow, who.user_id)
    if user is not None and user.oidc_issuer and user.oidc_sub:
        by_identity(session, user.oidc_issuer, user.oidc_sub)
        session.commit()
    rows = session.scalars(select(UserIdentityRow).where(
        UserIdentityRow.user_id == who.user_id).order_by(UserIdentityRow.id))  # fmt: skip
    return [_info(r, who.identity_id) for r in rows]


def _identity_text(row: UserIdentityRow | IdentityLinkOfferRow | None) -> dict[str, str | None]:
    if row is None:
        return {"issuer": None, "subject": None}
    return {"issuer": row.issuer, "subject": row.subject}


def offer_link(
    session: Session, user_id: int, token_key: str, who: FederatedIdentity, now: datetime
) -> LinkOffer:
    """Keep the identity the person just signed in with for them to confirm; SignInRefused
    when it is theirs already or signs in to another account."""
    session.execute(delete(IdentityLinkOfferRow).where(
        IdentityLinkOfferRow.created_at < now - OFFER_TTL))  # fmt: skip
    found = by_identity(session, who.issuer, who.subject)
    if found is not None and found.user_id == user_id:
        session.commit()
        raise SignInRefused(409, "this identity is linked to your account already")
    if found is not None:
        owner = session.get(UserRow, found.user_id)
        session.commit()
        raise SignInRefused(
            409,
            f"this identity signs in to another account here ({owner.username if owner else '?'}"
            "); it is not moved: ask the factory's operator to merge the two accounts",
        )
    offer = IdentityLinkOfferRow(
        key=secrets.token_urlsafe(32), user_id=user_id, token_key=token_key, issuer=who.issuer,
        subject=who.subject, email=who.email, assurance=who.assurance.code, created_at=now,
    )  # fmt: skip
    session.add(offer)
    session.commit()
    return LinkOffer(offer.key, who.issuer, who.subject, who.email, offer.assurance)


def _offer(session: Session, who: Principal, token_key: str, key: str, now: datetime
           ) -> IdentityLinkOfferRow:  # fmt: skip
    offer = session.get(IdentityLinkOfferRow, key)
    if offer is None or offer.user_id != who.user_id or offer.token_key != token_key:
        raise NotFound("identity to link", "this link (start again on the identities page)")
    if offer.created_at < now - OFFER_TTL:
        session.delete(offer)
        session.commit()
        raise Conflict("this link waited longer than 10 minutes: start it again")
    return offer


def confirm_link(
    session: Session, who: Principal, token_key: str, key: str, now: datetime
) -> IdentityInfo:
    """Link the offered identity to the caller's account, as they confirmed; only from the
    browser session (its token) that started the link."""
    offer = _offer(session, who, token_key, key, now)
    if by_identity(session, offer.issuer, offer.subject) is not None:
        session.delete(offer)
        session.commit()
        raise Conflict("this identity was linked to an account meanwhile: nothing was changed")
    row = UserIdentityRow(user_id=who.user_id, issuer=offer.issuer, subject=offer.subject,
                          email=offer.email, linked_at=now)  # fmt: skip
    session.add(row)
    session.flush()
    signed_in_with = session.get(UserIdentityRow, who.identity_id) if who.identity_id else None
    audit.record(
        session, action=AuditAction.IDENTITY_LINK, at=now, actor_id=who.user_id,
        actor=who.username, target=f"user {who.username}",
        detail={"identity": {"id": row.id, **_identity_text(row), "email": offer.email,
                             "assurance": offer.assurance},
                "signed_in_with": {"id": who.identity_id, **_identity_text(signed_in_with)},
                "confirmed_by": "the person, signed in with both in one browser session"},
    )  # fmt: skip
    session.delete(offer)
    session.commit()
    return _info(row, who.identity_id)


def cancel_link(session: Session, who: Principal, token_key: str, key: str) -> None:
    """Forget an offered identity without linking it (one already gone: nothing to do)."""
    session.execute(delete(IdentityLinkOfferRow).where(
        IdentityLinkOfferRow.key == key, IdentityLinkOfferRow.user_id == who.user_id,
        IdentityLinkOfferRow.token_key == token_key))  # fmt: skip
    session.commit()


def unlink(session: Session, who: Principal, identity_id: int, now: datetime) -> int:
    """Unlink one of the caller's identities and revoke the tokens descending from it; the
    number revoked."""
    row = session.get(UserIdentityRow, identity_id)
    if row is None or row.user_id != who.user_id:
        raise NotFound("identity", str(identity_id))
    if row.id == who.identity_id:
        raise Conflict(
            "you are signed in with this identity: sign in with another of yours to unlink it"
        )
    others = session.scalars(select(UserIdentityRow.id).where(
        UserIdentityRow.user_id == who.user_id, UserIdentityRow.id != row.id)).all()  # fmt: skip
    if not others:
        raise Conflict("this is your only identity: without it you could not sign in here")
    user = session.get(UserRow, who.user_id)
    if user is not None and (user.oidc_issuer, user.oidc_sub) == (row.issuer, row.subject):
        # Else the next sign-in with it would find the user by these and link it again.
        user.oidc_issuer = user.oidc_sub = None
    revoked = session.execute(
        update(ApiTokenRow)
        .where(ApiTokenRow.identity_id == row.id, ApiTokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount  # type: ignore[attr-defined]
    signed_in_with = session.get(UserIdentityRow, who.identity_id) if who.identity_id else None
    audit.record(
        session, action=AuditAction.IDENTITY_UNLINK, at=now, actor_id=who.user_id,
        actor=who.username, target=f"user {who.username}",
        detail={"identity": {"id": row.id, **_identity_text(row), "email": row.email},
                "signed_in_with": {"id": who.identity_id, **_identity_text(signed_in_with)},
                "tokens_revoked": revoked},
    )  # fmt: skip
    session.delete(row)
    session.commit()
    return int(revoked)
