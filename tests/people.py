"""New people for tests that must not change the demo users' memberships (other tests rely
on them): made by an admin through the API, with an API token issued in the store (only its
owner can ask the API for one)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.identity.people import TokenDraft
from fabriek.services.demo.seed import demo_token
from fabriek.services.identity.tokens import issue_token
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import OrganisationRow, TermsAcceptanceRow, TermsRow, UserRow
from tests.servers import LiveServer


def accept_factory_terms(session: Session, user_id: int) -> None:
    """Record (not committed) that the person accepted the newest version of the factory's
    terms of use, if the store has any (the demo factory publishes version 1): new people
    of tests that are not about terms then work as the demo's people do."""
    newest = session.scalar(
        select(TermsRow.id)
        .where(TermsRow.scope == "factory")
        .order_by(TermsRow.version.desc())
        .limit(1)
    )
    if newest is not None:
        session.add(TermsAcceptanceRow(user_id=user_id, terms_id=newest))


def new_person(server: LiveServer, username: str, organisation: str) -> httpx.Client:
    """A signed-in client for a new user `username` of `organisation` (by name)."""
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            org_id = session.scalar(
                select(OrganisationRow.id).where(OrganisationRow.name == organisation)
            )
            assert org_id is not None, organisation
        admin = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {demo_token('admin').token}"},
            timeout=30,
        )
        with admin:
            made = admin.post(
                "/api/v1/users",
                json={"username": username, "full_name": f"Test {username}",
                      "email": f"{username}@example.org", "organisation_id": org_id},
            )  # fmt: skip
            assert made.status_code == 201, made.text
        with make_sessions(engine)() as session:
            user_id = session.scalar(select(UserRow.id).where(UserRow.username == username))
            assert user_id is not None
            token = issue_token(session, user_id, TokenDraft(name="test"), datetime.now(UTC), 1)
            accept_factory_terms(session, user_id)
            session.commit()
    finally:
        engine.dispose()
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token.token}"}, timeout=30
    )
