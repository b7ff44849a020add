"""The portal's AI Act questionnaire and support centre over HTTP, on SQLite and PostgreSQL:
each refused answer or form shown next to the field it concerns with nothing recorded, the
walk to a result with its obligations and dates, the check for answers before a ticket is
sent, internal notes only for the desk, and the hub desk's open tickets. (The journeys
themselves run in a real browser: tests/browser/test_ai_support_journeys.py.)"""

from __future__ import annotations

import re

import httpx

from tests.conftest import Client
from tests.portal_forms import Browser, field_error


def next_question(html: str) -> str:
    found = re.search(r'name="question" value="([a-z0-9_]+)"', html)
    return found.group(1) if found else ""


SYSTEM = {"project": "photonic-inspect", "provider": "Eindhoven Photonics AI B.V.",
          "intended_purpose": "Finds defects on photonic chips", "role": "provider"}  # fmt: skip


def register(sanne: httpx.Client, name: str) -> str:
    made = sanne.post("/ai-systems", data={**SYSTEM, "name": name})
    assert made.status_code == 303, made.text
    return str(made.headers["location"])


def test_registering_an_ai_system_shows_each_problem_next_to_its_field(
    browser: Browser, client: Client, unique: str
) -> None:
    sanne = browser("sanne")
    bad = sanne.post("/ai-systems", data={**SYSTEM, "name": "Not Lower", "intended_purpose": "x"})
    assert bad.status_code == 422
    assert field_error(bad.text, "name") and field_error(bad.text, "intended_purpose")
    # Another organisation's project is not one she may know of.
    foreign = sanne.post("/ai-systems", data={**SYSTEM, "name": unique, "project": "legal-nl"})
    assert foreign.status_code == 404 and "does not exist" in field_error(foreign.text, "project")
    listed = client("sanne").get("/api/v1/ai-systems", params={"name": unique}).json()
    assert listed["items"] == []


def test_the_questionnaire_refuses_a_contradiction_next_to_the_question_and_walks_to_a_result(
    browser: Browser, client: Client, unique: str
) -> None:
    sanne = browser("sanne")
    where = register(sanne, unique)
    assert re.fullmatch(r"/ai-systems/\d+/classify", where)
    first = sanne.get(where)
    assert first.status_code == 200 and next_question(first.text) == "ai_system"
    assert "Art. 3(1)" in first.text  # the question's article is cited

    nothing = sanne.post(where, data={"question": "ai_system"})
    assert nothing.status_code == 422 and "Choose an answer" in field_error(
        nothing.text, "ai_system"
    )
    for question, value in [("ai_system", "yes"), ("eu_nexus", "yes"), ("role", "provider")]:
        done = sanne.post(where, data={"question": question, question: value})
        assert done.status_code == 303, field_error(done.text, question)

    # A provider cannot claim the personal-use exclusion: said next to the question.
    contradiction = sanne.post(
        where, data={"question": "scope_exclusions", "scope_exclusions": "personal-use"}
    )
    assert contradiction.status_code == 422
    said = field_error(contradiction.text, "scope_exclusions")
    assert "contradicts your answer to role (provider)" in said, said
    # The question's group names its problem for screen readers.
    assert re.search(r'aria-describedby="[^"]*f-scope_exclusions-error', contradiction.text)
    both = sanne.post(
        where, data={"question": "scope_exclusions", "scope_exclusions": ["none", "military"]}
    )
    assert "cannot be combined" in field_error(both.text, "scope_exclusions")
    # Nothing of the refused answers was recorded.
    kept = client("sanne").get(f"/api/v1/ai-systems/{unique}/classification").json()
    assert [a["question"] for a in kept["answers"]] == ["ai_system", "eu_nexus", "role"]

    for question, value in [("scope_exclusions", "none"), ("open_source", "no"),
                            ("prohibited_practices", "social-scoring")]:  # fmt: skip
        done = sanne.post(where, data={"question": question, question: value})
        assert done.status_code == 303, field_error(done.text, question)
    result = sanne.get(where)
    assert next_question(result.text) == ""
    assert 'id="result"' in result.text and "Art. 5" in result.text
    # Each obligation with its date of application.
    assert re.search(r'id="obligations".*\d{4}-\d{2}-\d{2}', result.text, re.S)
    # The answers so far, each with the articles it rests on.
    assert result.text.count('<th scope="row">') >= 6


def test_the_questionnaire_of_a_system_one_may_not_see_is_not_found(
    browser: Browser, unique: str
) -> None:
    where = register(browser("sanne"), unique)
    assert browser("mo").get(where).status_code == 404
    assert (
        browser("mo").post(where, data={"question": "ai_system", "ai_system": "no"}).status_code
        == 404
    )
    # Hub staff see it, but may not answer for the project.
    assert browser("hanna").get(where).status_code == 200
    refused = browser("hanna").post(where, data={"question": "ai_system", "ai_system": "no"})
    assert refused.status_code == 403


TICKET = {"category": "jobs-and-software", "subject": "My GPU-hour budget",
          "body": "How is the budget of GPU-hours counted when a job waits?"}  # fmt: skip


def test_a_ticket_is_sent_only_after_the_check_for_answers(
    browser: Browser, client: Client, unique: str
) -> None:
    sanne = browser("sanne")
    short = sanne.post("/support/new", data={**TICKET, "subject": "x", "action": "check"})
    assert short.status_code == 422 and field_error(short.text, "subject")
    no_category = sanne.post("/support/new", data={**TICKET, "category": "", "action": "submit"})
    assert no_category.status_code == 422 and "no category" in field_error(
        no_category.text, "category"
    )
    subject = f"{TICKET['subject']} {unique}"
    checked = sanne.post("/support/new", data={**TICKET, "subject": subject, "action": "check"})
    assert checked.status_code == 200
    assert 'id="suggestions"' in checked.text and "GPU-hour budgets" in checked.text
    assert 'value="submit"' in checked.text
    mine = client("sanne").get("/api/v1/support/tickets", params={"mine": True, "limit": 200})
    assert subject not in {t["subject"] for t in mine.json()["items"]}

    sent = sanne.post("/support/new", data={**TICKET, "subject": subject, "action": "submit"})
    assert sent.status_code == 303, sent.text
    page = sanne.get(sent.headers["location"])
    assert page.status_code == 200 and subject in page.text
    assert "First answer within" in page.text
    assert subject in sanne.get("/support").text


def test_a_ticket_about_someone_elses_job_is_refused_next_to_the_job(
    browser: Browser, client: Client
) -> None:
    made = client("pieter").post(
        "/api/v1/jobs", json={"project": "dutch-llm", "command": ["true"], "time_limit": "1m"}
    )
    assert made.status_code == 201, made.text
    job = made.json()["id"]
    answer = browser("sanne").post(
        "/support/new", data={**TICKET, "job": str(job), "action": "submit"}
    )
    assert answer.status_code in {403, 404, 422}
    assert field_error(answer.text, "job")


def test_internal_notes_are_for_the_desk_only(browser: Browser, unique: str) -> None:
    sanne, hanna = browser("sanne"), browser("hanna")
    sent = sanne.post("/support/new", data={**TICKET, "subject": unique, "action": "submit"})
    where = sent.headers["location"]
    ticket_id = where.rsplit("/", 1)[1]
    # Sanne's organisation is in Noord-Brabant: Brainport's desk lists her open ticket.
    assert unique in hanna.get("/hub").text
    assert 'name="internal"' not in sanne.get(where).text
    assert 'name="internal"' in hanna.get(where).text

    empty = sanne.post(f"{where}/messages", data={"body": "  "})
    assert empty.status_code == 422 and field_error(empty.text, "body")
    note = hanna.post(f"{where}/messages", data={"body": f"note {unique}", "internal": "yes"})
    assert note.status_code == 303
    reply = hanna.post(f"{where}/messages", data={"body": f"answer {unique}"})
    assert reply.status_code == 303
    seen = sanne.get(where).text
    assert f"answer {unique}" in seen and f"note {unique}" not in seen
    assert f"note {unique}" in hanna.get(where).text
    # Sanne may not leave an internal note, and another user may not see the ticket.
    refused = sanne.post(f"{where}/messages", data={"body": "x", "internal": "yes"})
    assert refused.status_code == 403
    assert browser("mo").get(f"/support/{ticket_id}").status_code == 404
