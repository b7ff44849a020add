"""The AI model registry end to end, over real HTTP on SQLite and PostgreSQL: registering
models and versions, bad input, jobs linked with a purpose, the compute ledger reproducing
the Commission's two worked examples from jobs, the threshold warnings firing at the right
job, the documentation export, projections of planned compute, and sandboxes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from fabriek.domain.capacity import SiteShape
from fabriek.domain.job_states import JobState
from fabriek.domain.jobs import JobDraft
from fabriek.domain.roles import Principal, Role
from fabriek.domain.sites import NodeGroup
from fabriek.services import jobs as job_service
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import JobRow, ProjectRow, SiteRow, UserRow
from tests.conftest import Client, problem_of
from tests.jobs_helpers import py, submit, wait_for
from tests.servers import LiveServer
from tests.test_api_budgets import grant, new_project
from tests.test_api_proposals import draft_body, open_call, startup_project

H100_PEAK = 989.5e12  # FLOP/s, dense BF16 (domain/gpus.py)
FAR = (datetime.now(UTC) + timedelta(days=300)).isoformat()  # keeps projection jobs waiting


def register(c: httpx.Client, name: str, project: str, **extra: Any) -> dict[str, Any]:
    body = {"name": name, "project": project, "provider": "TU Delft", **extra}
    made = c.post("/api/v1/models", json=body)
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def version(c: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    made = c.post(f"/api/v1/models/{name}/versions", json=body)
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def ledger(c: httpx.Client, ref: str) -> dict[str, Any]:
    name, v = ref.split(":")
    got = c.get(f"/api/v1/models/{name}/versions/{v}/ledger")
    assert got.status_code == 200, got.text
    result: dict[str, Any] = got.json()
    return result


@pytest.fixture
def sessions(server: LiveServer) -> Iterator[Any]:
    engine = make_engine(server.settings.database_url)
    yield make_sessions(engine)
    engine.dispose()


# --- the registry -----------------------------------------------------------------------------


def test_a_model_is_registered_with_its_versions_and_seen_by_its_project_only(
    client: Client, unique: str
) -> None:
    project = new_project(client, unique)
    pieter = client("pieter")
    made = register(
        pieter, unique, project, title="Dutch LM", licence="apache-2.0", openness="open-source",
        intended_purpose="general Dutch text generation", input_modalities=["text"],
        first_version={"version": "1.0", "parameters": 7_000_000_000,
                       "training_tokens": 2_000_000_000_000},
    )  # fmt: skip
    assert made["versions"] == ["1.0"] and made["open_source_exemption"] is True
    assert made["version_details"][0]["ref"] == f"{unique}:1.0"
    version(pieter, unique, version="1.1", bases=[{"model": f"{unique}:1.0"}])
    shown = pieter.get(f"/api/v1/models/{unique}").json()
    assert shown["versions"] == ["1.0", "1.1"]
    assert shown["version_details"][1]["bases"][0]["model"] == f"{unique}:1.0"
    listed = pieter.get("/api/v1/models", params={"project": project}).json()
    assert [m["name"] for m in listed["items"]] == [unique]
    # Not a member: not visible at all, and may not register for the project.
    problem_of(client("sanne").get(f"/api/v1/models/{unique}"), 404)
    assert client("sanne").get("/api/v1/models", params={"project": project}).json()["total"] == 0
    refused = client("sanne").post(
        "/api/v1/models", json={"name": f"{unique}-x", "project": project, "provider": "X B.V."}
    )
    assert "project" in str(problem_of(refused, 404)["detail"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": "1", "parameters": -5}, "parameters"),
        ({"version": "1", "parameters": 10**16}, "first_version.parameters"),
        ({"version": "1", "training_tokens": 10**18}, "first_version.training_tokens"),
        ({"version": "1", "parameters": 10, "active_parameters": 20}, "first_version"),
        ({"version": "1", "bases": [{"model": "nosuch:1"}]}, "first_version.bases[0]"),
        ({"version": "1", "bases": [{"external": "x", "training_flop": -1}]}, "training_flop"),
    ],
)
def test_bad_versions_are_refused_naming_the_field(
    client: Client, unique: str, body: dict[str, Any], field: str
) -> None:
    project = new_project(client, unique)
    answer = client("pieter").post(
        "/api/v1/models",
        json={"name": unique, "project": project, "provider": "TU Delft", "first_version": body},
    )
    problem = problem_of(answer, 422)
    fields = [e["field"] for e in problem["errors"]]  # type: ignore[attr-defined]
    assert any(field in f for f in fields), fields
    # Nothing partial is left: the model was not registered either.
    problem_of(client("pieter").get(f"/api/v1/models/{unique}"), 404)


def test_a_lineage_cycle_is_refused_with_its_path(client: Client, unique: str) -> None:
    project = new_project(client, unique)
    pieter = client("pieter")
    register(pieter, f"{unique}-a", project, first_version={"version": "1"})
    register(pieter, f"{unique}-b", project,
             first_version={"version": "1", "bases": [{"model": f"{unique}-a:1"}]})  # fmt: skip
    looped = pieter.post(
        f"/api/v1/models/{unique}-a/versions/1/bases", json={"model": f"{unique}-b:1"}
    )
    problem = problem_of(looped, 409)
    assert f"{unique}-a:1 -> {unique}-b:1 -> {unique}-a:1" in str(problem["detail"])
    assert problem["errors"][0]["field"] == "model"  # type: ignore[index]
    # The refused link was not kept.
    assert pieter.get(f"/api/v1/models/{unique}-a").json()["version_details"][0]["bases"] == []
    itself = pieter.post(
        f"/api/v1/models/{unique}-a/versions",
        json={"version": "2", "bases": [{"model": f"{unique}-a:2"}]},
    )
    assert "descend from itself" in str(problem_of(itself, 409)["detail"])
    twice = pieter.post("/api/v1/models", json={"name": f"{unique}-a", "project": project,
                                                "provider": "X B.V."})  # fmt: skip
    problem_of(twice, 409)


def test_a_job_may_only_be_linked_to_its_own_projects_model(client: Client, unique: str) -> None:
    register(client("pieter"), unique, "dutch-llm", first_version={"version": "1"})
    body = {"command": ["true"], "gpus": 1, "model": f"{unique}:1", "purpose": "fine-tuning",
            "earliest_start": FAR}  # fmt: skip
    # Maria is in both projects: she is told whose model it is.
    other = client("maria").post("/api/v1/jobs", json={**body, "project": "photonic-inspect"})
    problem = problem_of(other, 422)
    assert problem["errors"][0]["field"] == "model"  # type: ignore[index]
    assert "belongs to project dutch-llm" in str(problem["detail"])
    # Sanne is not in dutch-llm: the model is simply not there for her project.
    hidden = client("sanne").post("/api/v1/jobs", json={**body, "project": "photonic-inspect"})
    assert "has no model version" in str(problem_of(hidden, 422)["detail"])
    no_purpose = {k: v for k, v in body.items() if k != "purpose"}
    problem_of(
        client("pieter").post("/api/v1/jobs", json={**no_purpose, "project": "dutch-llm"}), 422
    )
    bad_purpose = client("pieter").post(
        "/api/v1/jobs", json={**body, "project": "dutch-llm", "purpose": "vibes"}
    )
    assert problem_of(bad_purpose, 422)["errors"][0]["field"] == "purpose"  # type: ignore[index]


# --- the ledger, from jobs --------------------------------------------------------------------


def record_run(
    sessions: Any,
    who: Principal,
    project: str,
    ref: str,
    gpus: int,
    seconds: int,
    allocation_id: int,
) -> int:
    """Record a job run of `gpus` H100s for `seconds` that ended now, through the service
    layer: submitted with `prepare_job`/`write_jobs` (against a site shape with the GPUs it
    needs, since no test machine has a thousand), then moved through its states with
    `transition`, which writes the charge and the energy records as a real stop does."""
    now = datetime.now(UTC)
    shape = SiteShape("amsterdam", (NodeGroup("big", gpus // 8 + 1, "h100", 8, 64, 512),),
                      seconds + 3600)  # fmt: skip
    draft = JobDraft(
        project=project, command=["train"], gpus=gpus, gpu_type="h100", time_limit=seconds,
        model=ref, purpose="pre-training", earliest_start=now + timedelta(days=300),
    )  # type: ignore[arg-type]  # fmt: skip
    with sessions() as session:
        prepared = job_service.prepare_job(session, who, draft, now, shapes=[shape])
        job_id = job_service.write_jobs(session, [prepared])[0].id
        job = session.get(JobRow, job_id)
        assert job is not None
        began = now - timedelta(seconds=seconds)
        job.site_id = session.scalar(select(SiteRow.id).where(SiteRow.name == "amsterdam"))
        job.placed_gpu_type, job.allocation_id, job.charge_factor = "h100", allocation_id, 1.0
        job.started_at = began
        job_service.transition(session, job, JobState.STARTING, "recorded", began)
        job_service.transition(session, job, JobState.RUNNING, "started", began)
        job.ended_at = now
        job_service.transition(session, job, JobState.COMPLETED, "recorded run", now)
        session.commit()
    return job_id


def principal(sessions: Any, username: str, project: str) -> Principal:
    with sessions() as session:
        user_id = session.scalar(select(UserRow.id).where(UserRow.username == username))
        project_id = session.scalar(select(ProjectRow.id).where(ProjectRow.name == project))
    return Principal(user_id, username, frozenset(), {project_id: Role.PRINCIPAL_INVESTIGATOR})


def test_the_hardware_based_example_through_the_ledger_from_jobs(
    client: Client, unique: str, sessions: Any
) -> None:
    """The Guidelines' example: 370,000 H100-hours × 989 TFLOP/s × 50 % ≈ 6.5e23 FLOP.

    A real job runs on the local engine linked to the model and reports its MFU; its
    GPU-seconds in the ledger are the charged ones. The example's size (1,000 H100s for
    370 hours) cannot run on a test machine, so that run is recorded through the service
    layer (see `record_run`); the ledger then sums both runs from their recorded
    GPU-seconds, as it does for any job."""
    project = new_project(client, unique)
    allocation = grant(client, project, {"h100": 1_000.0})
    pieter = client("pieter")
    register(pieter, unique, project, first_version={"version": "1"})
    ref = f"{unique}:1"
    real = submit(pieter, project=project, command=py("import time; time.sleep(1)"), gpus=2,
                  gpu_type="h100", time_limit="10m", model=ref, purpose="pre-training")  # fmt: skip
    assert real["model"] == ref and real["purpose"] == "pre-training"
    assert real["ai_act_warnings"] == []
    done = wait_for(pieter, real["id"])
    assert done["state"] == "completed" and done["model"] == ref
    reported = pieter.post("/api/v1/models/reports", json={"job_id": real["id"], "mfu": 0.5})
    assert reported.status_code == 200, reported.text
    charged = pieter.get(f"/api/v1/allocations/{allocation['id']}/charges").json()
    real_gpu_s = charged[0]["raw_gpu_hours"] * 3600
    book = ledger(pieter, ref)
    assert book["jobs"][0]["gpu_hours"] * 3600 == pytest.approx(real_gpu_s, rel=1e-9)
    assert book["training"]["flop"] == pytest.approx(real_gpu_s * H100_PEAK * 0.5, rel=1e-9)

    scaled = record_run(sessions, principal(sessions, "pieter", project), project, ref,
                        gpus=1_000, seconds=370 * 3600, allocation_id=allocation["id"])  # fmt: skip
    pieter.post("/api/v1/models/reports", json={"job_id": scaled, "mfu": 0.5})
    book = ledger(pieter, ref)
    expected = (370_000 * 3600 + real_gpu_s) * H100_PEAK * 0.5
    assert book["training"]["flop"] == pytest.approx(expected, rel=1e-9)
    assert book["training"]["flop"] == pytest.approx(6.5e23, rel=0.02)
    assert book["training"]["text"].startswith("6.6e23 FLOP (hardware-based")
    assert book["cumulative"]["flop"] == pytest.approx(book["training"]["flop"])
    assert any("MFU" in a for a in book["training"]["assumptions"])
    assert book["training_time"]["gpu_days"] == pytest.approx(370_000 / 24, rel=1e-4)
    assert book["training_time"]["wall_clock_days"] == pytest.approx(370 / 24, rel=1e-3)
    assert book["hardware"][0]["largest_run_gpus"] == 1_000
    assert book["energy"]["it_mwh"] > 100 and "PUE" in book["energy"]["boundary"]
    gpai = next(line for line in book["lines"] if line["code"] == "gpai-indicative")
    assert gpai["exceeded"] and not book["systemic_risk"]

    doc = pieter.get(f"/api/v1/models/{unique}/versions/1/documentation").json()
    fields = {e["key"]: e for e in doc["entries"]}
    assert fields["training_compute"]["value"].startswith("6.6e23 FLOP (hardware-based")
    assert fields["training_compute"]["audiences"] == ["ai-office", "national-authority"]
    assert "MWh" in fields["energy"]["value"] and fields["energy"]["filled_by"] == "fabriek"
    assert "wall-clock days" in fields["training_time"]["value"]
    assert "amsterdam (nl)" in fields["data_residency"]["note"].lower()
    assert fields["data_residency"]["owed"]
    assert "acceptable_use_policy" in doc["owed"] and "annex-xi-2" not in doc["sections"]
    assert "downstream-provider" in fields["acceptable_use_policy"]["audiences"]
    written = pieter.put(f"/api/v1/models/{unique}/versions/1/documentation",
                         json={"acceptable_use_policy": "No use for weapons."})  # fmt: skip
    assert written.json() == {"acceptable_use_policy": "No use for weapons."}
    unknown = pieter.put(f"/api/v1/models/{unique}/versions/1/documentation", json={"vibe": "x"})
    assert problem_of(unknown, 422)["errors"][0]["field"] == "vibe"  # type: ignore[index]
    markdown = pieter.get(f"/api/v1/models/{unique}/versions/1/documentation",
                          params={"format": "md"})  # fmt: skip
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "## Annex XI, section 1" in markdown.text and "No use for weapons." in markdown.text
    assert "**Owed by the provider**" in markdown.text and "AI Office" in markdown.text
    card = pieter.get(f"/api/v1/models/{unique}/versions/1/documentation",
                      params={"format": "card"}).text  # fmt: skip
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    assert "eu-ai-act" in front["tags"]
    assert front["eu_ai_act"]["training_compute_flop"] == pytest.approx(6.6e23)
    assert front["eu_ai_act"]["training_energy_mwh"] > 100


def test_the_architecture_based_example_through_the_ledger_from_jobs(
    client: Client, unique: str
) -> None:
    """The Guidelines' example: 6 × 3.8e9 parameters × 3.3e12 tokens ≈ 7.5e22 FLOP, the
    tokens as two real training jobs reported them; an evaluation job's tokens do not count."""
    project = new_project(client, unique)
    grant(client, project, {"h100": 10.0})
    pieter = client("pieter")
    register(pieter, unique, project, first_version={"version": "1", "parameters": 3_800_000_000})
    ref = f"{unique}:1"
    ran = []
    for purpose, tokens in (("pre-training", 2_000_000_000_000),
                            ("fine-tuning", 1_300_000_000_000),
                            ("evaluation", 9_000_000_000_000)):  # fmt: skip
        job = submit(pieter, project=project, command=["true"], gpus=1, gpu_type="h100",
                     time_limit="5m", model=ref, purpose=purpose)  # fmt: skip
        assert wait_for(pieter, job["id"])["state"] == "completed"
        answer = pieter.post("/api/v1/models/reports", json={"job_id": job["id"], "tokens": tokens})
        assert answer.json()["tokens"] == tokens
        ran.append(job["id"])
    book = ledger(pieter, ref)
    assert book["architecture"]["flop"] == pytest.approx(6 * 3.8e9 * 3.3e12, rel=1e-12)
    assert book["architecture"]["flop"] == pytest.approx(7.5e22, rel=0.01)
    assert book["architecture"]["text"].startswith("7.5e22 FLOP (architecture-based")
    assert "2 training job(s)" in " ".join(book["architecture"]["assumptions"])
    counted = {j["job_id"]: j["counts_as_cumulative"] for j in book["jobs"]}
    assert counted == {ran[0]: True, ran[1]: True, ran[2]: False}
    assert book["excluded_flop"] > 0
    # A report for a job linked to no model, and one by someone else, are refused.
    plain = submit(pieter, project=project, command=["true"], gpus=0, time_limit="1m")
    unlinked = pieter.post("/api/v1/models/reports", json={"job_id": plain["id"], "mfu": 0.4})
    assert problem_of(unlinked, 422)["errors"][0]["field"] == "job_id"  # type: ignore[index]
    problem_of(
        client("sanne").post("/api/v1/models/reports", json={"job_id": ran[0], "mfu": 0.4}), 404
    )
    problem_of(pieter.post("/api/v1/models/reports", json={"job_id": ran[0], "mfu": 1.5}), 422)


# --- threshold warnings -----------------------------------------------------------------------

# 88 H100s (amsterdam's all) for 7 days at the default 40 % utilisation.
BIG = {"gpus": 88, "gpu_type": "h100", "time_limit": "7-00:00:00", "command": ["true"],
       "earliest_start": FAR}  # fmt: skip
BIG_FLOP = 88 * 7 * 86400 * H100_PEAK * 0.4


def post_job(c: httpx.Client, project: str, ref: str, **extra: Any) -> httpx.Response:
    return c.post("/api/v1/jobs", json={**BIG, "project": project, "model": ref,
                                        "purpose": "pre-training", **extra})  # fmt: skip


def test_the_warnings_fire_at_the_job_that_crosses_each_line(client: Client, unique: str) -> None:
    """Jobs that wait (their earliest start is far off) commit their projected compute; the
    job that takes the projection past a line is the one warned, and the project is
    notified. Past 1e25 the submission needs an acknowledgement and says by when."""
    project = new_project(client, unique)
    pieter = client("pieter")
    made: list[int] = []
    try:
        # A new model: the fifth job passes 1e23 (5 × 2.1e22).
        register(pieter, f"{unique}-new", project, first_version={"version": "1"})
        warned = []
        for _ in range(5):
            answer = post_job(pieter, project, f"{unique}-new:1")
            assert answer.status_code == 201, answer.text
            made.append(answer.json()["id"])
            warned.append([w["line"] for w in answer.json()["ai_act_warnings"]])
        assert warned == [[], [], [], [], ["gpai-indicative"]]
        assert 4 * BIG_FLOP < 1e23 < 5 * BIG_FLOP
        notes = pieter.get("/api/v1/notifications", params={"unread": True}).json()["items"]
        mine = [n for n in notes if n["kind"] == "ai-act-threshold" and unique in n["subject"]]
        assert len(mine) == 1 and f"job {made[-1]}" in mine[0]["subject"]

        # A downstream modifier of a base of 3e22 FLOP: the first job passes one third.
        register(pieter, f"{unique}-ft", project, role="downstream-modifier",
                 first_version={"version": "1", "bases": [{"external": "base-x",
                                                          "training_flop": 3e22}]})  # fmt: skip
        first = post_job(pieter, project, f"{unique}-ft:1", purpose="fine-tuning")
        made.append(first.json()["id"])
        assert [w["line"] for w in first.json()["ai_act_warnings"]] == ["modifier-one-third"]
        # Evaluation does not count: no line moves.
        evaluation = post_job(pieter, project, f"{unique}-ft:1", purpose="evaluation")
        made.append(evaluation.json()["id"])
        assert evaluation.json()["ai_act_warnings"] == []

        # A base just under 1e25: the first job needs the acknowledgement.
        register(pieter, f"{unique}-big", project,
                 first_version={"version": "1", "bases": [{"external": "frontier",
                                                          "training_flop": 9.99e24}]})  # fmt: skip
        refused = post_job(pieter, project, f"{unique}-big:1")
        problem = problem_of(refused, 409)
        by = (datetime.now(UTC) + timedelta(days=14)).date()
        assert f"notify the Commission by {by:%Y-%m-%d}" in str(problem["detail"]) or (
            f"{by - timedelta(days=1):%Y-%m-%d}" in str(problem["detail"])
        )
        assert problem["errors"][0]["field"] == "acknowledge_systemic_risk"  # type: ignore[index]
        assert pieter.get(f"/api/v1/models/{unique}-big").json()["version_details"][0]["jobs"] == 0
        acknowledged = post_job(pieter, project, f"{unique}-big:1", acknowledge_systemic_risk=True)
        assert acknowledged.status_code == 201, acknowledged.text
        made.append(acknowledged.json()["id"])
        warning = acknowledged.json()["ai_act_warnings"][0]
        assert warning["line"] == "systemic-risk" and warning["requires_acknowledgement"]
        assert date.fromisoformat(warning["notify_commission_by"]) >= by - timedelta(days=1)
        later = post_job(pieter, project, f"{unique}-big:1")
        assert later.status_code == 201 and later.json()["ai_act_warnings"] == []
        made.append(later.json()["id"])
        events = ledger(pieter, f"{unique}-big:1")["events"]
        assert [(e["line"], e["acknowledged_by"]) for e in events] == [("systemic-risk", "pieter")]

        # A base just under half of 1e25: the first job passes 50 %.
        register(pieter, f"{unique}-half", project,
                 first_version={"version": "1", "bases": [{"external": "mid",
                                                          "training_flop": 4.99e24}]})  # fmt: skip
        half = post_job(pieter, project, f"{unique}-half:1")
        made.append(half.json()["id"])
        assert [w["line"] for w in half.json()["ai_act_warnings"]] == ["systemic-risk-50"]
    finally:
        for job_id in made:
            pieter.post(f"/api/v1/jobs/{job_id}/cancel")


# --- projections, rules and sandboxes ---------------------------------------------------------


def test_planned_compute_is_projected_against_the_lines(client: Client, unique: str) -> None:
    eva = client("eva")
    planned = eva.get("/api/v1/models/projection",
                      params={"gpu_hours": 370_000, "gpu_type": "h100", "mfu": 0.5}).json()  # fmt: skip
    assert planned["planned"]["flop"] == pytest.approx(370_000 * 3600 * H100_PEAK * 0.5)
    lines = {line["code"]: line for line in planned["lines"]}
    assert lines["gpai-indicative"]["crossed"] and not lines["systemic-risk"]["crossed"]
    demo = next(a for a in client("pieter").get("/api/v1/allocations").json()["items"]
                if a["project"] == "dutch-llm")  # fmt: skip
    awarded = client("pieter").get("/api/v1/models/projection",
                                   params={"allocation": demo["id"]}).json()  # fmt: skip
    hours = sum(demo["awarded_raw"].values())
    assert awarded["planned"]["flop"] == pytest.approx(hours * 3600 * H100_PEAK * 0.4)
    assert awarded["source"].startswith(f"allocation {demo['id']}")
    problem_of(client("sanne").get("/api/v1/models/projection",
                                   params={"allocation": demo["id"]}), 404)  # fmt: skip
    both = eva.get("/api/v1/models/projection", params={"gpu_hours": 1, "allocation": demo["id"]})
    problem_of(both, 422)
    # A proposal's request, as the access team weighs it: 2,000 H100-hours, far below 1e23.
    project = startup_project(client, unique)
    open_call(client, unique, "start-up")
    asked = client("sanne").post("/api/v1/proposals", json=draft_body(unique, project))
    assert asked.status_code == 201, asked.text
    # The access team weighs it once it is submitted (a draft is the applicants' own).
    sent = client("sanne").post(f"/api/v1/proposals/{asked.json()['id']}/submit")
    assert sent.status_code == 200, sent.text
    weighed = eva.get("/api/v1/models/projection", params={"proposal": asked.json()["id"]}).json()
    assert weighed["gpu_hours"] == {"h100": 2000.0}
    assert weighed["planned"]["flop"] == pytest.approx(2000 * 3600 * H100_PEAK * 0.4)
    assert not any(line["crossed"] for line in weighed["lines"])
    problem_of(client("pieter").get("/api/v1/models/projection",
                                    params={"proposal": asked.json()["id"]}), 404)  # fmt: skip
    rules = eva.get("/api/v1/models/rules").json()
    assert {t["code"] for t in rules["thresholds"]} >= {"gpai-indicative", "systemic-risk"}
    assert all(t["source"] for t in rules["thresholds"])


def test_an_allocation_in_a_sandbox_keeps_its_plan_and_exit_report(
    client: Client, unique: str
) -> None:
    project = new_project(client, unique)
    allocation = grant(client, project, {"h100": 10.0})
    base = f"/api/v1/allocations/{allocation['id']}/sandbox"
    body = {"authority": "Autoriteit Persoonsgegevens", "member_state": "nl", "reference": "SB-1"}
    problem_of(client("pieter").put(base, json=body), 403)
    problem_of(client("eva").put(base, json={**body, "member_state": "US"}), 422)
    marked = client("eva").put(base, json=body)
    assert marked.status_code == 200 and marked.json()["member_state"] == "NL"
    pieter = client("pieter")
    early = pieter.put(
        f"{base}/exit-report", content=b"# Exit", headers={"Content-Type": "text/markdown"}
    )
    assert "plan" in str(problem_of(early, 409)["detail"])
    wrong = pieter.put(f"{base}/plan", content=b"%PDF", headers={"Content-Type": "application/pdf"})
    problem_of(wrong, 422)
    plan = "# Sandbox plan\n\nTest a Dutch triage model under supervision.\n"
    filed = pieter.put(
        f"{base}/plan", content=plan.encode(), headers={"Content-Type": "text/markdown"}
    )
    assert filed.status_code == 200, filed.text
    pieter.put(f"{base}/exit-report", content=b"Done.", headers={"Content-Type": "text/plain"})
    shown = pieter.get(base).json()
    assert shown["exited"] and {d["kind"] for d in shown["documents"]} == {"plan", "exit-report"}
    got = pieter.get(f"{base}/plan")
    assert got.text == plan and got.headers["content-type"].startswith("text/markdown")
    problem_of(client("sanne").get(base), 404)
