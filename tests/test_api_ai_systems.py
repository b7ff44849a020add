"""AI systems and their risk classification, end to end over HTTP on SQLite and PostgreSQL:
who may register, read and classify; the questionnaire walked answer by answer; every
answer kept with its article; contradictions and bad answers refused naming the field,
with nothing recorded; the result with its obligations and dates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Client, problem_of
from tests.test_api_users import org_id

IN_SCOPE: dict[str, Any] = {
    "ai_system": True,
    "eu_nexus": True,
    "role": ["provider"],
    "scope_exclusions": "none",
    "open_source": False,
    "prohibited_practices": [],
}


def new_project(client: Client, name: str) -> str:
    """A project of a Brabant start-up (hub Brainport) with sanne as its PI."""
    org = org_id(client, "Eindhoven Photonics AI B.V.")
    made = client("admin").post(
        "/api/v1/projects",
        json={"name": name, "title": "AI Act test", "organisation_id": org,
              "principal_investigator": "sanne"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return name


def register(c: httpx.Client, project: str, name: str, **extra: Any) -> dict[str, Any]:
    made = c.post(
        "/api/v1/ai-systems",
        json={"project": project, "name": name, "provider": "Eindhoven Photonics AI B.V.",
              "intended_purpose": "Ranks job applicants for interviews", **extra},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def post_answers(c: httpx.Client, system: str | int, answers: dict[str, Any]) -> httpx.Response:
    return c.post(f"/api/v1/ai-systems/{system}/classification/answers", json={"answers": answers})


def answered(c: httpx.Client, system: str | int, answers: dict[str, Any]) -> dict[str, Any]:
    r = post_answers(c, system, answers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_members_register_and_classify_others_see_or_not(client: Client, unique: str) -> None:
    project = new_project(client, unique)
    sanne = client("sanne")
    system = register(sanne, project, f"{unique}-cv")
    assert system["project"] == project and system["role"] == "provider"
    assert system["created_by"] == "sanne" and system["classification"] is None
    # Hub staff of the project's region see it, but may not change it.
    hanna = client("hanna")
    assert hanna.get(f"/api/v1/ai-systems/{system['id']}").status_code == 200
    assert "only members" in str(problem_of(post_answers(hanna, system["id"], {"ai_system": True}), 403)["detail"])  # fmt: skip
    assert problem_of(hanna.post(f"/api/v1/ai-systems/{system['id']}/classifications"), 403)
    refused = hanna.post("/api/v1/ai-systems", json={
        "project": project, "name": f"{unique}-x", "provider": "X B.V.",
        "intended_purpose": "Something hub staff wants"})  # fmt: skip
    assert problem_of(refused, 403)
    # Anyone else does not see that it exists.
    mo = client("mo")
    for path in ("", "/classification", "/classification/result", "/classifications"):
        assert "not visible" in str(problem_of(mo.get(f"/api/v1/ai-systems/{system['id']}{path}"), 404)["detail"])  # fmt: skip
    assert problem_of(post_answers(mo, system["id"], {"ai_system": True}), 404)
    assert system["id"] not in [s["id"] for s in mo.get("/api/v1/ai-systems").json()["items"]]
    assert problem_of(register_raw(mo, project, f"{unique}-y"), 404)
    # An admin may classify any system.
    assert answered(client("admin"), f"{unique}-cv", {"ai_system": True})["id"] is not None
    assert problem_of(register_raw(sanne, project, f"{unique}-cv"), 409)


def register_raw(c: httpx.Client, project: str, name: str) -> httpx.Response:
    return c.post("/api/v1/ai-systems", json={
        "project": project, "name": name, "provider": "Some B.V.",
        "intended_purpose": "A purpose long enough"})  # fmt: skip


def test_a_recruitment_system_walked_answer_by_answer(client: Client, unique: str) -> None:
    project = new_project(client, unique)
    sanne = client("sanne")
    name = f"{unique}-hire"
    register(sanne, project, name)
    before = sanne.get(f"/api/v1/ai-systems/{name}/classification").json()
    assert before["id"] is None and before["next_question"]["id"] == "ai_system"
    assert before["next_question"]["cites"] == "Art. 3(1)"
    assert before["next_question"]["text"]["nl"].startswith("Is het een AI-systeem")
    assert "not finished" in str(problem_of(sanne.get(f"/api/v1/ai-systems/{name}/classification/result"), 409)["detail"])  # fmt: skip

    state = before
    script = {**IN_SCOPE, "annex1_product": "neither", "annex3_areas": ["employment"],
              "annex3_employment": ["recruitment"], "profiling": True,
              "transparency": ["interacts-with-people"], "gpai_provider": False}  # fmt: skip
    steps = 0
    while state["next_question"] is not None:
        question = state["next_question"]["id"]
        state = answered(sanne, name, {question: script[question]})
        steps += 1
    assert steps == len(script)
    assert state["finished"] and state["finished_at"] and state["started_by"] == "sanne"
    answers = {a["question"]: a for a in state["answers"]}
    assert answers["annex3_employment"]["cites"] == ["Annex III, point 4", "Annex III, point 4(a)"]
    assert answers["profiling"]["shown"] == {"en": "yes", "nl": "ja"}
    assert answers["profiling"]["answered_by"] == "sanne"
    result = state["result"]
    assert [t["id"] for t in result["tiers"]] == ["high-risk-annex-iii", "transparency"]
    assert result["tiers"][0]["because"][0]["cites"] == "Art. 6(3), fourth subparagraph"
    duties = {o["id"]: o for o in result["obligations"]}
    assert duties["hr-risk-management"]["applies_from"] == "2027-12-02"
    assert duties["hr-risk-management"]["yours"] and not duties["dep-logs"]["yours"]
    assert duties["art50-1-inform-interaction"]["cites"] == "Art. 50(1)"
    assert sanne.get(f"/api/v1/ai-systems/{name}/classification/result").json() == result
    listed = sanne.get("/api/v1/ai-systems", params={"project": project}).json()["items"]
    assert listed[0]["classification"]["tiers"] == ["high-risk-annex-iii", "transparency"]
    assert listed[0]["classification"]["finished"]


def test_contradictions_and_bad_answers_are_refused_and_nothing_is_kept(
    client: Client, unique: str
) -> None:
    project = new_project(client, unique)
    sanne = client("sanne")
    name = f"{unique}-sort"
    register(sanne, project, name)
    state = answered(sanne, name, {
        **IN_SCOPE, "annex1_product": "neither", "annex3_areas": ["employment"],
        "annex3_employment": ["recruitment"], "profiling": False,
        "derogation_conditions": ["narrow-procedural-task"]})  # fmt: skip
    assert state["next_question"]["id"] == "significant_risk"
    # Profiling contradicts the derogation claimed before: 422 naming profiling.
    contradiction = problem_of(post_answers(sanne, name, {"profiling": True}), 422)
    assert contradiction["errors"] == [{"field": "profiling", "message": contradiction["errors"][0]["message"]}]  # type: ignore[index]  # fmt: skip
    assert "derogation_conditions (narrow-procedural-task)" in str(contradiction["detail"])
    for bad, field in (
        ({"significant_risk": "perhaps"}, "significant_risk"),
        ({"risk_level": "low"}, "risk_level"),
        ({"significant_risk": False, "annex3_areas": ["schools"]}, "annex3_areas"),
        ({"annex1_legislation": ["toys"]}, "annex1_legislation"),
    ):
        problem = problem_of(post_answers(sanne, name, bad), 422)
        assert problem["errors"][0]["field"] == field, problem  # type: ignore[index]
    assert problem_of(sanne.post(f"/api/v1/ai-systems/{name}/classification/answers",
                                 json={"answers": {}}), 422)  # fmt: skip
    # Nothing of the refused requests was recorded.
    after = sanne.get(f"/api/v1/ai-systems/{name}/classification").json()
    assert after["next_question"]["id"] == "significant_risk"
    assert {a["question"]: a["value"] for a in after["answers"]}["profiling"] is False
    # The derogation holds: documented, not high-risk.
    done = answered(sanne, name, {"significant_risk": "no", "transparency": "none",
                                  "gpai_provider": "no"})  # fmt: skip
    assert [t["id"] for t in done["result"]["tiers"]] == ["annex-iii-not-high-risk"]
    # Changing an earlier answer drops the answers it makes moot, and says which.
    changed = answered(sanne, name, {"annex3_areas": "none"})
    assert set(changed["dropped"]) == {
        "annex3_employment", "profiling", "derogation_conditions", "significant_risk"
    }  # fmt: skip
    assert [t["id"] for t in changed["result"]["tiers"]] == ["minimal"]


def test_a_new_classification_starts_afresh_and_the_old_one_is_kept(
    client: Client, unique: str
) -> None:
    project = new_project(client, unique)
    sanne = client("sanne")
    name = f"{unique}-chat"
    register(sanne, project, name)
    first = answered(sanne, name, {"ai_system": False})
    assert [t["id"] for t in first["result"]["tiers"]] == ["out-of-scope"]
    assert first["result"]["obligations"] == []
    started = sanne.post(f"/api/v1/ai-systems/{name}/classifications")
    assert started.status_code == 201, started.text
    assert started.json()["answers"] == [] and started.json()["id"] != first["id"]
    history = sanne.get(f"/api/v1/ai-systems/{name}/classifications").json()
    assert [h["id"] for h in history] == [started.json()["id"], first["id"]]
    assert history[1]["tiers"] == ["out-of-scope"] and not history[0]["finished"]


def test_the_questionnaire_is_published_with_its_version(client: Client) -> None:
    book = client("maria").get("/api/v1/ai-act/questionnaire").json()
    assert book["version"] and "2024/1689" in book["act"]
    assert book["question"][0]["id"] == "ai_system"
    assert all(r["cites"] for r in book["rule"])
    assert problem_of(client().get("/api/v1/ai-act/questionnaire"), 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": "Has Caps"}, "name"), ({"name": "42"}, "name"),
     ({"intended_purpose": "short"}, "intended_purpose"), ({"model": "gpt"}, "model"),
     ({"model": "no-such-model:1.0"}, "model"), ({"role": "importer"}, "role")],
)  # fmt: skip
def test_a_bad_registration_names_the_field(
    client: Client, unique: str, body: dict[str, Any], field: str
) -> None:
    project = new_project(client, unique)
    r = client("sanne").post("/api/v1/ai-systems", json={
        "project": project, "name": f"{unique}-ok", "provider": "Eindhoven Photonics AI B.V.",
        "intended_purpose": "Inspects photonic chips", **body})  # fmt: skip
    problem = problem_of(r, 422)
    assert problem["errors"][0]["field"] == field, problem  # type: ignore[index]
