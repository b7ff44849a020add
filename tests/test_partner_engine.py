"""The partner engine against partners that answer unexpectedly: another API version, no
partner API, a refused token, a refused job, a job it no longer knows. The partner here is
a stand-in answering over httpx's in-process transport (the real one is in
tests/test_partner_factories.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import OKPKey

from fabriek.domain.accounts import JobOwner
from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import JobSpec
from fabriek.domain.partners import PARTNER_API
from fabriek.engines.base import EngineJob, EngineRejected, EngineUnavailable
from fabriek.engines.partner import AssertionSigner, PartnerEngine

JOB = EngineJob(7, JobSpec(name="j", command=("true",)), owner=JobOwner(1, "maria", 1, "p"))
Answer = Callable[[httpx.Request], httpx.Response]


def engine(tmp_path: Path, answer: Answer) -> PartnerEngine:
    (tmp_path / "token").write_text("fbk_x_y\n")
    (tmp_path / "key.pem").write_bytes(OKPKey.generate_key("Ed25519").as_pem(private=True))
    return PartnerEngine(
        "partner-b", "http://partner.example", tmp_path / "token", "proj", "factory-a",
        "factory-b", AssertionSigner(tmp_path / "key.pem"),
        transport=httpx.MockTransport(answer),
    )  # fmt: skip


def standin_partner(
    api: str = PARTNER_API, submit: httpx.Response | None = None, items: Sequence[object] = ()
) -> Answer:
    """A stand-in partner factory: its API version, its answer to a submission, its jobs."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/partner":
            return httpx.Response(200, json={"api": api, "factory": "factory-b"})
        if request.method == "POST":
            return submit or httpx.Response(201, json={"id": 41})
        return httpx.Response(200, json={"items": list(items)})

    return answer


def test_a_partner_of_another_api_version_is_named(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable) as found:
        engine(tmp_path, standin_partner(api="fabriek-partner/2")).submit(JOB)
    assert "fabriek-partner/2" in str(found.value) and PARTNER_API in str(found.value)


def test_a_factory_without_the_partner_api(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="offers no partner API"):
        engine(tmp_path, lambda r: httpx.Response(404, json={"detail": "no"})).poll({7: "41"})


def test_a_refused_token_is_a_site_down_with_the_partners_words(tmp_path: Path) -> None:
    refused = httpx.Response(401, json={"detail": "the token was revoked"})
    with pytest.raises(EngineUnavailable, match="the token was revoked"):
        engine(tmp_path, standin_partner(submit=refused)).submit(JOB)


def test_a_refused_job_is_refused_for_good(tmp_path: Path) -> None:
    bad = httpx.Response(422, json={"detail": "gpus: no site has 9000 GPUs"})
    with pytest.raises(EngineRejected, match="9000 GPUs"):
        engine(tmp_path, standin_partner(submit=bad)).submit(JOB)


def test_submit_gives_the_partners_job_id_and_an_unknown_job_is_lost(tmp_path: Path) -> None:
    item = {"job": 7, "id": 41, "state": "running", "reason": None, "exit_code": None,
            "started_at": "2026-12-06T03:00:00+00:00", "ended_at": None, "gpu_seconds": 10.0,
            "energy_readings": [], "usage": None}  # fmt: skip
    partner = engine(tmp_path, standin_partner(items=[item]))
    assert partner.submit(JOB) == "41"
    seen = partner.poll({7: "41", 8: "42"})
    assert seen[7].state is JobState.RUNNING and seen[7].gpu_seconds == {"partner": 10.0}
    assert seen[8].state is JobState.LOST and "no longer knows" in (seen[8].reason or "")
