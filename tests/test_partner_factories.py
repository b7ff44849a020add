"""Two real Fabriek installations on loopback: factory A places jobs on partner factory B.

B runs as its own process (so it can be killed), on a database (PostgreSQL where it runs)
and state folder of its own, with a partners file trusting A's public key; A is served in this process with B as a
`partner` site in its sites file. Each test goes through both HTTP APIs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey
from sqlalchemy import select, update

from fabriek.domain.accounts import JobOwner
from fabriek.domain.identity import tokens
from fabriek.domain.jobs import JobSpec
from fabriek.domain.partners import ASSERTION_ALG, ASSERTION_HEADER, WEB_APP_HOME, assertion_for
from fabriek.engines.base import EngineJob, EngineUnsure
from fabriek.engines.partner import AssertionSigner, PartnerEngine
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    AllocationRow,
    ApiTokenRow,
    GridIntensityRow,
    JobEnergyRow,
    JobEventRow,
    JobRow,
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    TermsAcceptanceRow,
    TermsRow,
    UserRow,
)
from tests.jobs_helpers import py, wait_for
from tests.servers import (
    free_port,
    live_server,
    postgres_unavailable,
    prepare,
    throwaway_database,
)

MARIA = demo_token("maria").token
ADMIN = demo_token("admin").token
PARTNER_ACCOUNT = "factory-a"
PARTNER_PROJECT = "partner-factory-a"
SITE = "partner-b"


@dataclass
class Pair:
    a_url: str
    a_db: str
    b_url: str
    b_db: str
    b_state: Path
    b_env: dict[str, str]
    b_port: int
    b_proc: subprocess.Popen[bytes]
    partner_token: str
    key: OKPKey
    tmp: Path


def grant_allocation(db_url: str, now: datetime) -> str:
    """What B's operator does for A: an account and a project with an allocation (as for
    any project), and the account's API token, which B's operator hands to A's."""
    engine = make_engine(db_url)
    with make_sessions(engine)() as session:
        org = session.scalar(select(OrganisationRow).where(OrganisationRow.name == "TNO"))
        assert org is not None
        user = UserRow(
            username=PARTNER_ACCOUNT, full_name="Factory A (partner)",
            email="ops@factory-a.example", organisation_id=org.id,
        )  # fmt: skip
        project = ProjectRow(name=PARTNER_PROJECT, title="Allocation of factory A",
                             organisation_id=org.id)  # fmt: skip
        session.add_all([user, project])
        session.flush()
        session.add(MembershipRow(project_id=project.id, user_id=user.id, role="member"))
        session.add(
            AllocationRow(
                project_id=project.id, track="fast-lane", gpu_hours=1000.0,
                awarded={"h100": 1000.0}, sites=[], preemptible=False, tier=2,
                starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=90),
                created_at=now,
            )
        )  # fmt: skip
        terms = session.scalar(select(TermsRow).where(TermsRow.scope == "factory"))
        assert terms is not None
        session.add(TermsAcceptanceRow(user_id=user.id, terms_id=terms.id, accepted_at=now))
        token = tokens.make_token()
        session.add(
            ApiTokenRow(key=token.key, user_id=user.id, name="factory-a", token_hash=token.hash,
                        created_at=now, expires_at=now + timedelta(days=90))
        )  # fmt: skip
        # B's grid: a flat 250 g/kWh around now, so its carbon figure is known.
        hour = now.replace(minute=0, second=0, microsecond=0)
        session.add_all(
            GridIntensityRow(zone="NL", hour=hour + timedelta(hours=h), g_per_kwh=250.0,
                             source="test")
            for h in range(-2, 4)
        )  # fmt: skip
        session.commit()
    engine.dispose()
    return token.token


def _a_to_the_partner_only(db_url: str) -> None:
    """A's allocations of dutch-llm and photonic-inspect may be spent at the partner only,
    so their jobs go there or nowhere."""
    engine = make_engine(db_url)
    with make_sessions(engine)() as session:
        ids = session.scalars(
            select(ProjectRow.id).where(ProjectRow.name.in_(["dutch-llm", "photonic-inspect"]))
        ).all()
        session.execute(
            update(AllocationRow).where(AllocationRow.project_id.in_(ids)).values(sites=[SITE])
        )
        session.commit()
    engine.dispose()


def _start_b(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """B's `fabriek serve`, given longer than `spawn_serve` allows to become ready: on a
    machine busy with other work its start alone has taken most of a minute."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fabriek.main", "serve", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"partner B did not become ready (exit {proc.poll()})")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("partners")
    now = datetime.now(UTC)
    key = OKPKey.generate_key("Ed25519")
    (tmp / "a-signing.pem").write_bytes(key.as_pem(private=True))
    (tmp / "a-signing.pem").chmod(0o600)
    (tmp / "b").mkdir()
    # B on PostgreSQL where it runs (its idempotency rests on a unique key), A on SQLite.
    b_kind = "sqlite" if postgres_unavailable() else "postgresql"
    with throwaway_database(b_kind, tmp / "b") as b_db:
        prepare(b_db)
        partner_token = grant_allocation(b_db, now)
        (tmp / "b-partners.toml").write_text(
            'factory = "factory-b"\n\n[partners.factory-a]\n'
            f'account = "{PARTNER_ACCOUNT}"\n'
            f'public_key = """\n{key.as_pem(private=False).decode()}"""\n'
        )
        (tmp / "b-sites.toml").write_text(
            '[sites.amsterdam]\nengine = "local"\nvirtual_gpus = 4\n'
            "energy_test_double_watts = 300.0\n"
        )
        b_port = free_port()
        b_state = tmp / "b-state"
        b_env = {
            **os.environ, "FABRIEK_DATABASE_URL": b_db, "FABRIEK_STATE_DIR": str(b_state),
            "FABRIEK_PORT": str(b_port), "FABRIEK_DISPATCH_INTERVAL_S": "0.2",
            "FABRIEK_SITES_FILE": str(tmp / "b-sites.toml"),
            "FABRIEK_PARTNERS_FILE": str(tmp / "b-partners.toml"),
        }  # fmt: skip
        b_url = f"http://127.0.0.1:{b_port}"
        (tmp / "a-token").write_text(partner_token + "\n")
        (tmp / "a-token").chmod(0o600)
        (tmp / "a-sites.toml").write_text(
            f'[sites.{SITE}]\nengine = "partner"\nurl = "{b_url}"\n'
            f'token_file = "{tmp / "a-token"}"\npartner_project = "{PARTNER_PROJECT}"\n'
            'factory = "factory-a"\npartner = "factory-b"\n'
            f'signing_key_file = "{tmp / "a-signing.pem"}"\ncountry = "de"\n'
            'projects = ["dutch-llm"]\n'
        )
        b_proc = _start_b(b_env, b_port)
        try:
            with throwaway_database("sqlite", tmp) as a_db:
                prepare(a_db)
                _a_to_the_partner_only(a_db)
                settings = Settings(
                    database_url=a_db, state_dir=tmp / "a-state", dispatch_interval_s=0.2,
                    sites_file=tmp / "a-sites.toml",
                )  # fmt: skip
                with live_server(settings) as a:
                    with httpx.Client(base_url=a.url, timeout=30) as admin:
                        site = admin.post(
                            "/api/v1/sites",
                            headers={"Authorization": f"Bearer {ADMIN}"},
                            json={
                                "name": SITE, "city": "Jülich", "province": "Limburg",
                                "jurisdiction": "eu", "grid_zone": "DE", "engine": "partner",
                                "node_groups": [{"name": "b-h100", "count": 1,
                                                 "gpu_type": "h100", "gpus_per_node": 4,
                                                 "cpus_per_node": 16,
                                                 "memory_gb_per_node": 64}],
                            },
                        )  # fmt: skip
                        assert site.status_code == 201, site.text
                    found = Pair(a.url, a_db, b_url, b_db, b_state, b_env, b_port, b_proc,
                                 partner_token, key, tmp)  # fmt: skip
                    yield found
                    b_proc = found.b_proc
        finally:
            b_proc.send_signal(signal.SIGTERM)
            try:
                b_proc.wait(30)
            except subprocess.TimeoutExpired:
                b_proc.kill()


def maria(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MARIA}"}, timeout=30)


def as_partner(pair: Pair) -> httpx.Client:
    return httpx.Client(
        base_url=pair.b_url, headers={"Authorization": f"Bearer {pair.partner_token}"}, timeout=30
    )


def submit(c: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = c.post("/api/v1/jobs", json=body)
    assert answer.status_code == 201, answer.text
    job: dict[str, Any] = answer.json()
    return job


def partner_jobs_at_b(pair: Pair, *ids: int) -> list[dict[str, Any]]:
    with as_partner(pair) as b:
        answer = b.get("/api/v1/partner/jobs", params=[("job", i) for i in ids])
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items


def events(db_url: str, job_id: int) -> list[str]:
    engine = make_engine(db_url)
    with make_sessions(engine)() as session:
        found = session.scalars(
            select(JobEventRow.to_state).where(JobEventRow.job_id == job_id)
            .order_by(JobEventRow.id)
        ).all()  # fmt: skip
    engine.dispose()
    return list(found)


def test_forged_unsigned_and_misdirected_submissions_are_refused(pair: Pair) -> None:
    body = json.dumps({"project": PARTNER_PROJECT, "command": ["true"]}).encode()
    forger = OKPKey.generate_key("Ed25519")

    def signed(key: OKPKey, for_body: bytes, job: int, audience: str = "factory-b") -> str:
        claims = assertion_for(
            "factory-a", audience, "maria", job, for_body, int(time.time())
        ).claims()
        return jwt.encode({"alg": ASSERTION_ALG}, claims, key, algorithms=[ASSERTION_ALG])

    headers = {"Content-Type": "application/json"}
    with as_partner(pair) as b:
        cases = {
            "unsigned": {},
            "forged": {ASSERTION_HEADER: signed(forger, body, 9001)},
            "another body": {ASSERTION_HEADER: signed(pair.key, b"{}", 9002)},
            "another partner": {ASSERTION_HEADER: signed(pair.key, body, 9003, "factory-c")},
            "garbage": {ASSERTION_HEADER: "not.a.token"},
        }
        for case, extra in cases.items():
            answer = b.post("/api/v1/partner/jobs", content=body, headers={**headers, **extra})
            assert answer.status_code == 403, (case, answer.text)
            problem = answer.json()
            assert problem["status"] == 403 and problem["detail"], case
        # The partner's account cannot go around the assertion through the ordinary route.
        plain = b.post("/api/v1/jobs", json={"project": PARTNER_PROJECT, "command": ["true"]})
        assert plain.status_code == 403 and "signed assertion" in plain.json()["detail"]
    assert partner_jobs_at_b(pair, 9001, 9002, 9003) == []
    # Anyone else is no partner at all.
    with maria(pair.b_url) as c:
        assert c.get("/api/v1/partner/jobs").status_code == 403


def test_a_project_not_allowed_abroad_is_never_placed_there(pair: Pair) -> None:
    with maria(pair.a_url) as a:
        job = submit(a, project="photonic-inspect", command=["true"], gpus=1)
        deadline = time.monotonic() + 30
        while True:
            seen = a.get(f"/api/v1/jobs/{job['id']}").json()
            if seen["reason"] and "PartnerSites" in seen["reason"]:
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        assert seen["state"] == "pending" and seen["site"] is None
        assert "photonic-inspect may not run at partner factory partner-b" in seen["reason"]
        a.post(f"/api/v1/jobs/{job['id']}/cancel")
        # A project that may cross, but a job whose web app only this factory's proxy reaches.
        web = submit(a, project="dutch-llm", command=["sleep", "60"], gpus=1, web_port=8888)
        while True:
            seen = a.get(f"/api/v1/jobs/{web['id']}").json()
            if seen["reason"] and "PartnerSites" in seen["reason"]:
                break
            assert time.monotonic() < deadline + 30, seen
            time.sleep(0.2)
        assert seen["state"] == "pending" and WEB_APP_HOME in seen["reason"]
        a.post(f"/api/v1/jobs/{web['id']}/cancel")
    assert partner_jobs_at_b(pair, job["id"], web["id"]) == []


def test_a_job_runs_at_the_partner_with_its_logs_states_and_usage_back(pair: Pair) -> None:
    with maria(pair.a_url) as a:
        job = submit(
            a, project="dutch-llm", gpus=1, name="abroad",
            command=py("import time; print('hello from factory B'); time.sleep(1.5)"),
        )  # fmt: skip
        done = wait_for(a, job["id"], timeout=90)
        assert done["state"] == "completed" and done["exit_code"] == 0, done
        assert done["site"] == SITE and done["gpu_hours"] > 0
        assert a.get(f"/api/v1/jobs/{job['id']}/logs").text == "hello from factory B\n"
    assert events(pair.a_db, job["id"]) == ["pending", "starting", "running", "completed"]
    # At B: one job of its partner's allocation, run by B's own engine, reported back.
    (there,) = partner_jobs_at_b(pair, job["id"])
    assert there["state"] == "completed" and there["usage"]["gpu_hours"] > 0
    usage = there["usage"]
    assert usage["it_kwh"] > 0 and usage["carbon_g"] > 0 and usage["carbon_complete"]
    assert usage["grid_zones"] == ["NL"]
    # A records what B measured: its energy per hour from B's counters, B's own figures.
    engine = make_engine(pair.a_db)
    with make_sessions(engine)() as session:
        row = session.get(JobRow, job["id"])
        assert row is not None
        kept = [r["partner"] for r in row.energy_readings or [] if "partner" in r]
        assert kept == [usage]
        hours = session.scalars(select(JobEnergyRow).where(JobEnergyRow.job_id == row.id)).all()
        assert hours and sum(h.gpu_kwh for h in hours) > 0
        assert all("measured" in h.source for h in hours)
    engine.dispose()
    # A's usage rollup counts B's carbon figure (A has no intensity for B's zone, DE, so at
    # A's own it would have none).
    with maria(pair.a_url) as a:
        year = str(datetime.now(UTC).year)
        lines = a.get("/api/v1/usage", params={"by": "job", "year": year}).json()
    [line] = [u for u in lines if u["group"] == str(job["id"])]
    assert line["kg_co2e"] == pytest.approx(
        usage["carbon_g"] / 1000, abs=5e-7
    )  # rounded to 6 places
    assert line["kg_co2e"] > 0
    assert line["kwh_without_intensity"] == 0
    # B's audit trail names the person at A who submitted it.
    with httpx.Client(
        base_url=pair.b_url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30
    ) as b:
        entries = b.get("/api/v1/audit", params={"action": "partner-job"}).json()["items"]
    (entry,) = [e for e in entries if e["detail"].get("partner_job") == job["id"]]
    assert entry["actor"] == PARTNER_ACCOUNT and entry["target"] == f"job {there['id']}"
    assert entry["detail"]["person"] == "maria" and entry["detail"]["partner"] == "factory-a"


class StandInLostAnswers(httpx.HTTPTransport):
    """The network between A and B: B's answers to submissions are lost after B took them
    (`lose` of them), as when B is killed while answering or the connection is cut."""

    def __init__(self, lose: int) -> None:
        super().__init__()
        self.lose = lose

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = super().handle_request(request)
        submission = request.method == "POST" and request.url.path == "/api/v1/partner/jobs"
        if submission and self.lose > 0:
            self.lose -= 1
            answer.read()
            raise httpx.ReadError("connection reset by peer", request=request)
        return answer


def partner_engine(pair: Pair, lose: int) -> PartnerEngine:
    return PartnerEngine(
        SITE, pair.b_url, pair.tmp / "a-token", PARTNER_PROJECT, "factory-a", "factory-b",
        AssertionSigner(pair.tmp / "a-signing.pem"), transport=StandInLostAnswers(lose),
    )  # fmt: skip


def test_a_submission_whose_answer_is_lost_is_one_job_at_the_partner(pair: Pair) -> None:
    """Sent again with the same job id, it is the same job there; lost every time, the
    engine says it may have landed (the dispatcher then keeps it for this partner)."""
    owner = JobOwner(1, "maria", 1, "dutch-llm")
    job = EngineJob(777_001, JobSpec(name="lost", command=("true",)), owner=owner)
    handle = partner_engine(pair, lose=2).submit(job)
    assert partner_engine(pair, lose=0).submit(job) == handle
    (there,) = partner_jobs_at_b(pair, 777_001)
    assert str(there["id"]) == handle
    other = EngineJob(777_002, JobSpec(name="lost", command=("true",)), owner=owner)
    with pytest.raises(EngineUnsure):
        partner_engine(pair, lose=3).submit(other)
    assert len(partner_jobs_at_b(pair, 777_002)) == 1


def test_the_partner_killed_and_restarted_mid_run_loses_and_doubles_nothing(pair: Pair) -> None:
    with maria(pair.a_url) as a:
        running = submit(
            a, project="dutch-llm", gpus=1,
            command=["sh", "-c", "echo ran >> ran; sleep 6; echo survived"],
        )  # fmt: skip
        wait_for(a, running["id"], {"running"}, timeout=90)
        pair.b_proc.send_signal(signal.SIGKILL)
        pair.b_proc.wait(10)
        # While B is down: the running job stays running; a new one waits, nowhere else.
        waiting = submit(a, project="dutch-llm", gpus=1, command=["sh", "-c", "echo ran >> ran"])
        deadline = time.monotonic() + 30
        while True:
            seen = a.get(f"/api/v1/jobs/{waiting['id']}").json()
            if seen["state"] == "pending" and seen["reason"] and SITE in seen["reason"]:
                break
            assert seen["state"] in {"pending", "starting"}, seen
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        assert a.get(f"/api/v1/jobs/{running['id']}").json()["state"] == "running"
        pair.b_proc = _start_b(pair.b_env, pair.b_port)
        first = wait_for(a, running["id"], timeout=120)
        second = wait_for(a, waiting["id"], timeout=120)
        assert first["state"] == second["state"] == "completed", (first, second)
        assert a.get(f"/api/v1/jobs/{running['id']}/logs").text == "survived\n"
    for job in (running, waiting):
        assert [s for s in events(pair.a_db, job["id"]) if s == "completed"] == ["completed"]
        (there,) = partner_jobs_at_b(pair, job["id"])
        runs = [
            line
            for ran in pair.b_state.glob(f"engines/*/*/{there['id']}/work/ran")
            for line in ran.read_text().split()
        ]
        assert runs == ["ran"], (job["id"], runs)
