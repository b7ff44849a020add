"""A certificate waits for the factory's terms of use: refused with links to the terms until
the person accepts the current version (in a database of its own, so that terms published
here bind no other test)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fabriek.domain.ssh_access import CertificateRequest
from fabriek.domain.terms import FACTORY, TermsNotAccepted
from fabriek.services.accounts.ssh_certificates import issue_certificate
from fabriek.services.identity.tokens import principal_for_user
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import TermsAcceptanceRow, TermsRow, UserRow
from tests.servers import prepare, throwaway_database

NOW = datetime.now(UTC)
ID_BASE = 1_900_000_000


def test_no_certificate_before_the_factorys_terms_are_accepted(tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    request = CertificateRequest(public_key=(tmp_path / "k.pub").read_text())
    with throwaway_database("sqlite", tmp_path) as url:
        prepare(url)
        engine = make_engine(url)
        try:
            with make_sessions(engine)() as session:
                maria = session.scalar(select(UserRow.id).where(UserRow.username == "maria"))
                assert maria is not None
                who = principal_for_user(session, maria, "maria")
                newest = session.scalar(
                    select(func.max(TermsRow.version)).where(TermsRow.scope == FACTORY)
                )
                terms = TermsRow(scope=FACTORY, version=(newest or 0) + 1, title="Acceptable use", body="Be fair.",
                                 published_at=NOW - timedelta(days=1))  # fmt: skip
                session.add(terms)
                session.commit()
                with pytest.raises(TermsNotAccepted) as refused:
                    issue_certificate(session, who, request, tmp_path / "state", ID_BASE, NOW)
                session.rollback()
                assert (
                    refused.value.extensions()["accept_url"] == refused.value.pending[0].accept_url
                )
                session.add(TermsAcceptanceRow(user_id=maria, terms_id=terms.id, accepted_at=NOW))
                session.commit()
                signed = issue_certificate(session, who, request, tmp_path / "state", ID_BASE, NOW)
                assert signed.principals == ["maria"]
        finally:
            engine.dispose()
