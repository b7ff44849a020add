"""Fabriek as the registry's token issuer (Distribution's "token" authentication).

The registry answers an unauthenticated request with 401 and a realm: Fabriek's
`/api/v1/registry/token`. The client (podman, a site's runtime) asks it with Basic auth for
the scopes it needs; Fabriek grants what was asked *and* is allowed (`domain.images.grant`)
in a JWT signed by its own key (`keys.py`), which the registry checks against the
certificate it was given. Who may ask: a person (username and a Fabriek API token), or a
job (its pull credential: `job-<id>` and a signed password, valid while the job is active).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import Unauthenticated
from fabriek.domain.images import Grantee, Scope, grant
from fabriek.domain.job_states import ACTIVE_STATE_VALUES
from fabriek.domain.roles import Principal
from fabriek.services import audit
from fabriek.services.identity import tokens
from fabriek.services.images.keys import SigningKey
from fabriek.store.tables import JobRow, MembershipRow, ProjectRow

ISSUER = "fabriek"
# The registry's `auth.token.service`: the audience of every token issued for it.
SERVICE = "fabriek-registry"
JOB_AUDIENCE = "fabriek-job-pull"
JOB_USER_PREFIX = "job-"
# A job's pull credential outlives any queue wait; it is also refused once the job ended.
JOB_CREDENTIAL_DAYS = 14


def sign(key: SigningKey, claims: dict[str, Any]) -> str:
    """A JWT with the registry's `kid` (libtrust form), signed ES256."""
    return jwt.encode({"alg": "ES256", "typ": "JWT", "kid": key.kid}, claims, key.key)


def registry_token(
    key: SigningKey, subject: str, scopes: Iterable[Scope], now: datetime, lifetime_s: int
) -> dict[str, Any]:
    """The token endpoint's answer: the signed token (as `token` and `access_token`) with
    the access it grants, its lifetime and when it was issued."""
    at = int(now.timestamp())
    claims = {
        "iss": ISSUER, "sub": subject, "aud": SERVICE, "iat": at, "nbf": at - 5,
        "exp": at + lifetime_s, "jti": secrets.token_urlsafe(16),
        "access": [s.to_claim() for s in scopes],
    }  # fmt: skip
    token = sign(key, claims)
    return {
        "token": token, "access_token": token, "expires_in": lifetime_s,
        "issued_at": now.isoformat().replace("+00:00", "Z"),
    }  # fmt: skip


def job_credential(key: SigningKey, job_id: int, project: str, now: datetime) -> tuple[str, str]:
    """(username, password) that pulls `project`'s images (and the shared ones) for job
    `job_id`: given to its engine, never stored."""
    at = int(now.timestamp())
    claims = {
        "iss": ISSUER, "aud": JOB_AUDIENCE, "sub": f"{JOB_USER_PREFIX}{job_id}",
        "project": project, "iat": at,
        "exp": at + int(timedelta(days=JOB_CREDENTIAL_DAYS).total_seconds()),
    }  # fmt: skip
    return f"{JOB_USER_PREFIX}{job_id}", sign(key, claims)


def _job_claims(key: SigningKey, username: str, password: str, now: datetime) -> dict[str, Any]:
    try:
        claims = dict(jwt.decode(password, key.key, algorithms=["ES256"]).claims)
    except (JoseError, ValueError) as exc:
        raise Unauthenticated("not a valid pull credential for this job") from exc
    if (
        claims.get("aud") != JOB_AUDIENCE
        or claims.get("sub") != username
        or int(claims.get("exp", 0)) < now.timestamp()
    ):
        raise Unauthenticated("the job's pull credential is not valid (expired or not its)")
    return claims


@dataclass(frozen=True)
class Requester:
    """Who asked for a token: their name in the token, and what they may be granted."""

    subject: str
    grantee: Grantee
    principal: Principal | None = None


def person(session: Session, who: Principal) -> Requester:
    """A signed-in person: their projects' names, and whether they are an admin."""
    names = session.scalars(
        select(ProjectRow.name)
        .join(MembershipRow, MembershipRow.project_id == ProjectRow.id)
        .where(MembershipRow.user_id == who.user_id)
    ).all()
    return Requester(who.username, Grantee(frozenset(names), who.is_admin), who)


def basic_requester(
    session: Session, key: SigningKey, username: str, password: str, now: datetime
) -> Requester:
    """Who Basic credentials are: a job's pull credential, or a person's API token (the
    username must be the token's owner). Unauthenticated otherwise."""
    if username.startswith(JOB_USER_PREFIX) and password.count(".") == 2:
        claims = _job_claims(key, username, password, now)
        job_id = int(username[len(JOB_USER_PREFIX) :])
        state = session.scalar(select(JobRow.state).where(JobRow.id == job_id))
        if state is None or state not in ACTIVE_STATE_VALUES:
            raise Unauthenticated(f"job {job_id} is not active: its pull credential has lapsed")
        grantee = Grantee(frozenset({str(claims["project"])}), pull_only=True)
        return Requester(username, grantee)
    who = tokens.authenticate(session, password, now)
    if who.username != username:
        raise Unauthenticated("the username is not the token's owner: log in as yourself")
    return person(session, who)


def issue(
    session: Session,
    key: SigningKey,
    asker: Requester,
    asked: list[Scope],
    now: datetime,
    lifetime_s: int,
) -> dict[str, Any]:
    """A token for what `asker` asked and may have; a grant to push is audited."""
    granted = grant(asker.grantee, asked)
    pushes = sorted(s.name for s in granted if "push" in s.actions)
    if pushes and asker.principal is not None:
        audit.record_as(
            session, asker.principal, AuditAction.TOKEN_ISSUE, now,
            target=",".join(pushes), detail={"registry": "push", "repositories": pushes},
        )  # fmt: skip
        session.commit()
    return registry_token(key, asker.subject, granted, now, lifetime_s)
