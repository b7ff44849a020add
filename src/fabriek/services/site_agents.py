"""A site's agent and its token: the one credential with which `fabriek site-agent` at a
site pulls that site's desired state and reports back.

A site has at most one token. It is shown once when issued and stored only as its SHA-256
hash; issuing a new one replaces the old at once (a leaked token is stopped by issuing
another). A token is good for its own site only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.errors import Forbidden, NotFound, Unauthenticated
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.services import audit
from fabriek.services.identity.permissions import may_operate_site
from fabriek.store.tables import SiteAgentRow, SiteRow

TOKEN_PREFIX = "fsa_"
# What the agent is told when its token is missing, wrong or another site's: the same
# words each time, so a caller cannot tell which sites have a token.
BAD_TOKEN = (
    "the site agent's token is not valid for this site: an operator of the site issues a "
    "new one with `fabriek sites agent-token SITE` and puts it in the agent's configuration"
)


@dataclass(frozen=True)
class AgentSite:
    """The site an agent's token stands for."""

    id: int
    name: str


def token_hash(presented: str) -> str:
    """The stored form of a site token: its SHA-256, hex."""
    return hashlib.sha256(presented.encode()).hexdigest()


def find_site(session: Session, site_ref: str) -> SiteRow:
    """A site by id or name, or NotFound."""
    query = select(SiteRow)
    query = (
        query.where(SiteRow.id == int(site_ref))
        if is_id(site_ref)
        else query.where(SiteRow.name == site_ref)
    )
    row = session.scalars(query).first()
    if row is None:
        raise NotFound("site", site_ref)
    return row


def require_operator(session: Session, site_ref: str, who: Principal, action: str) -> SiteRow:
    """The site, when the caller operates it (or is an admin); NotFound for an unknown
    site, Forbidden for one the caller does not operate."""
    row = find_site(session, site_ref)
    if not may_operate_site(who, row.name):
        raise Forbidden(f"only an admin or an operator of site {row.name} may {action}")
    return row


def issue_agent_token(
    session: Session, site_ref: str, by: Principal, now: datetime | None = None
) -> str:
    """A new token for the site's agent, replacing any earlier one; returned this once
    (the store keeps its hash). Commits, with an audit entry."""
    now = now or datetime.now(UTC)
    site = require_operator(session, site_ref, by, "issue its agent's token")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    agent = session.get(SiteAgentRow, site.id)
    if agent is None:
        session.add(SiteAgentRow(site_id=site.id, token_hash=token_hash(token), created_at=now))
    else:
        agent.token_hash = token_hash(token)
        agent.created_at = now
    audit.record_admin(
        session, by, now, "site-agent-token", target=f"site {site.name}",
        replaced=agent is not None,
    )  # fmt: skip
    session.commit()
    return token


def site_for_agent_token(session: Session, site_ref: str, presented: str, now: datetime) -> SiteRow:
    """The site whose agent presents this token, its last call noted (the caller commits);
    Unauthenticated when the token is missing, wrong or another site's."""
    if not presented.startswith(TOKEN_PREFIX):
        raise Unauthenticated(BAD_TOKEN)
    try:
        site = find_site(session, site_ref)
    except NotFound:
        raise Unauthenticated(BAD_TOKEN) from None
    agent = session.get(SiteAgentRow, site.id)
    if agent is None or not hmac.compare_digest(agent.token_hash, token_hash(presented)):
        raise Unauthenticated(BAD_TOKEN)
    agent.last_seen_at = now
    return site
