"""The portal's terms-of-use page over HTTP, on SQLite and PostgreSQL: the terms a person
must accept, in full, with a button that accepts them; the job form saying why a job is
refused until then; and a stale button answered in words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.terms_factory import Factory, fresh_factory


@pytest.fixture(params=BACKENDS)
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    with fresh_factory(request.param, tmp_path) as made:
        yield made


JOB_FORM = {"project": "photonic-inspect", "command": "true", "gpus": "1", "gpu_type": "h100",
            "time_limit": "5m"}  # fmt: skip


def test_pending_terms_are_shown_in_full_and_accepted_with_a_button(factory: Factory) -> None:
    sanne = factory.browser("sanne")
    assert "You have accepted every set of terms" in sanne.get("/terms").text
    body = {"scope": "factory", "title": "Acceptable use", "body": "No crypto mining, please."}
    assert factory.as_("admin").post("/api/v1/terms", json=body).status_code == 201

    # The job form refuses, naming the terms and where to accept them.
    refused = sanne.post("/jobs", data=JOB_FORM)
    assert refused.status_code == 403
    assert "the factory&#39;s terms of use version 1" in refused.text and "/terms" in refused.text

    shown = sanne.get("/terms")
    assert shown.status_code == 200
    assert "Acceptable use" in shown.text and "No crypto mining, please." in shown.text
    assert 'action="/terms/factory/1/accept"' in shown.text
    accepted = sanne.post("/terms/factory/1/accept")
    assert accepted.status_code == 303 and accepted.headers["location"] == "/terms"
    after = sanne.get("/terms").text
    assert "You have accepted every set of terms" in after and "version 1 on" in after
    mine = factory.as_("sanne").get("/api/v1/users/me/terms").json()
    assert [(t["scope"], t["accepted_version"], t["pending"]) for t in mine] == [
        ("factory", 1, False)
    ]
    submitted = sanne.post("/jobs", data=JOB_FORM)
    assert submitted.status_code == 303 and submitted.headers["location"].startswith("/jobs/")


def test_a_superseded_version_is_refused_in_words(factory: Factory) -> None:
    admin, sanne = factory.as_("admin"), factory.browser("sanne")
    for title in ("First", "Second"):
        body = {"scope": "factory", "title": title, "body": "Rules."}
        assert admin.post("/api/v1/terms", json=body).status_code == 201
    stale = sanne.post("/terms/factory/1/accept")
    assert stale.status_code == 409 and "accept version 2" in stale.text
    assert 'action="/terms/factory/2/accept"' in sanne.get("/terms").text
    # Not signed in: off to sign in, and back to the terms afterwards.
    away = factory.anonymous().get("/terms")
    assert away.status_code == 303 and away.headers["location"] == "/signin?next=/terms"
