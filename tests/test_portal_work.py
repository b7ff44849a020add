"""The portal's job pages, access pages and hub desk over HTTP, on SQLite and PostgreSQL:
each form's problems next to the fields they concern and nothing queued or written, the
'may wait' flexibility, the tail of a long output, refusals said in words with the API's
status, and the hub desk's boundaries. (The journeys themselves run in a real browser:
tests/browser/test_work_journeys.py.)"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import Client
from tests.jobs_helpers import py, wait_for
from tests.portal_forms import Browser, field_error
from tests.servers import LiveServer


def jobs_of(client: Client, name: str) -> list[dict[str, object]]:
    found = client("sanne").get("/api/v1/jobs", params={"user": "sanne", "limit": 1000})
    return [j for j in found.json()["items"] if j["name"] == name]


GOOD_JOB = {"project": "photonic-inspect", "command": "true", "gpus": "1", "gpu_type": "h100",
            "time_limit": "5m"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"script": "#!/bin/sh\necho hi"}, "script", "not both"),
        ({"command": ""}, "command", "Give the command"),
        ({"command": "echo 'unclosed"}, "command", "quote is not closed"),
        ({"gpus": "two"}, "gpus", "whole number"),
        ({"gpus": "-1"}, "gpus", "greater than or equal to 0"),
        ({"gpus": "1000"}, "gpus", "no site can ever run 1000"),
        ({"gpu_type": "tpu"}, "gpu_type", "no GPU type 'tpu'"),
        ({"time_limit": "forever"}, "time_limit", "forever"),
        ({"deadline": "2099-01-01T10:00", "wait_hours": "4"}, "wait_hours", "not both"),
        ({"deadline": "next week"}, "deadline", "date and time"),
        ({"project": "legal-nl"}, "project", "does not exist"),
    ],
)
def test_the_job_form_puts_each_problem_next_to_its_field_and_queues_nothing(
    browser: Browser, client: Client, unique: str, change: dict[str, str], field: str, words: str
) -> None:
    sent = {**GOOD_JOB, "name": unique, **change}
    answer = browser("sanne").post("/jobs", data=sent)
    assert answer.status_code in {404, 422}, answer.text
    assert words in field_error(answer.text, field), answer.text
    assert 'role="alert"' in answer.text
    # What was typed is shown again.
    assert f'value="{unique}"' in answer.text
    assert jobs_of(client, unique) == []


def test_a_job_that_may_wait_gets_its_deadline_and_may_be_shifted(
    browser: Browser, client: Client, unique: str
) -> None:
    before = datetime.now(UTC)
    sent = {**GOOD_JOB, "name": unique, "time_limit": "1h", "wait_hours": "6",
            "command": "sleep 600"}  # fmt: skip
    answer = browser("sanne").post("/jobs", data=sent)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/jobs/")
    [job] = jobs_of(client, unique)
    assert job["shiftable"] is True
    deadline = datetime.fromisoformat(str(job["deadline"]))
    # Latest start six hours from now, so done seven hours from now.
    assert before + timedelta(hours=7) <= deadline <= datetime.now(UTC) + timedelta(hours=7)
    client("sanne").post(f"/api/v1/jobs/{job['id']}/cancel")


def test_a_job_page_shows_the_end_of_a_long_output(browser: Browser, client: Client) -> None:
    sanne = client("sanne")
    # About 96 KB of output (written by the job: a command this long would be refused).
    program = "print('\\n'.join(f'line {i:06d}' for i in range(8000)))"
    made = sanne.post("/api/v1/jobs", json={"project": "photonic-inspect", "command": py(
        program)})  # fmt: skip
    job = wait_for(sanne, made.json()["id"])
    page = browser("sanne").get(f"/jobs/{job['id']}")
    assert page.status_code == 200
    log = re.search(r'<pre class="log" id="log-stdout"[^>]*>(.*?)</pre>', page.text, re.S)
    assert log is not None
    shown = log.group(1).split("\n")
    # The last line is there, whole lines only, and the page says it shows the end.
    assert shown[0].startswith("line ") and len(shown[0]) == len("line 000000")
    assert "line 007999" in shown and "line 000000" not in shown
    assert "the end only" in page.text
    # The live part alone answers the same, without the layout.
    live = browser("sanne").get(f"/jobs/{job['id']}/live")
    assert live.status_code == 200 and "line 007999" in live.text and "<html" not in live.text
    assert "hx-trigger" not in live.text  # the job has ended: nothing more to ask for


def test_a_job_page_says_an_ended_job_wrote_nothing_and_shows_its_errors(
    browser: Browser, client: Client
) -> None:
    sanne = client("sanne")
    quiet = sanne.post("/api/v1/jobs", json={"project": "photonic-inspect", "command": ["true"]})
    page = browser("sanne").get(f"/jobs/{wait_for(sanne, quiet.json()['id'])['id']}").text
    assert "No output: the job ended without writing any." in page
    assert "No output yet." not in page
    failed = sanne.post("/api/v1/jobs", json={"project": "photonic-inspect", "command": [
        "sh", "-c", "echo oops >&2; exit 1"]})  # fmt: skip
    page = browser("sanne").get(f"/jobs/{wait_for(sanne, failed.json()['id'])['id']}").text
    assert "Standard output" in page and "Standard error" in page
    assert re.search(r'<pre class="log" id="log-stderr"[^>]*>oops', page)


def test_cancelling_asks_for_a_confirmation(browser: Browser, client: Client) -> None:
    sanne = client("sanne")
    made = sanne.post("/api/v1/jobs", json={"project": "photonic-inspect",
                                            "command": ["sleep", "300"]}).json()  # fmt: skip
    portal = browser("sanne")
    unconfirmed = portal.post(f"/jobs/{made['id']}/cancel", data={})
    assert unconfirmed.status_code == 422
    assert "Tick the box" in field_error(unconfirmed.text, "confirm")
    assert sanne.get(f"/api/v1/jobs/{made['id']}").json()["state"] != "cancelled"
    done = portal.post(f"/jobs/{made['id']}/cancel", data={"confirm": "yes"})
    assert done.status_code == 303
    assert wait_for(sanne, made["id"])["state"] == "cancelled"


def test_pages_of_what_one_may_not_see_or_do_say_so(
    browser: Browser, client: Client, server: LiveServer
) -> None:
    mo_job = client("mo").post("/api/v1/jobs", json={"project": "legal-nl", "command": ["true"]})
    hidden = browser("sanne").get(f"/jobs/{mo_job.json()['id']}")
    assert hidden.status_code == 404 and "does not exist or is not visible" in hidden.text
    assert browser("sanne").get("/decisions").status_code == 403
    assert browser("sanne").get("/hub").status_code == 403
    # Anonymous visitors are sent to sign in, and back afterwards.
    away = httpx.get(f"{server.url}/jobs/new", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/signin?next=/jobs/new"


def test_the_proposal_form_says_why_a_project_may_not_apply(
    browser: Browser, client: Client, unique: str
) -> None:
    form = {"project": "photonic-inspect", "title": unique, "abstract": "x", "sector": "health",
            "gpu_h100": "1000", "ai_risk": "minimal", "residency": "any", "action": "submit"}  # fmt: skip
    # A start-up may not apply to the track for science and the public sector.
    refused = browser("sanne").post("/calls/ai-for-science-next/apply", data=form)
    assert refused.status_code == 422
    assert "may not apply" in field_error(refused.text, "project")
    # Nor ask for GPU-hours that are not a number; nor leave out the title.
    bad = {**form, "gpu_h100": "lots", "title": ""}
    answer = browser("sanne").post("/calls/fast-lane-open/apply", data=bad)
    assert "give a number of GPU-hours" in field_error(answer.text, "requested")
    answer = browser("sanne").post("/calls/fast-lane-open/apply", data={**form, "title": ""})
    assert "at least 1 character" in field_error(answer.text, "title")
    mine = client("sanne").get("/api/v1/proposals", params={"limit": 1000}).json()["items"]
    assert not [p for p in mine if p["title"] == unique]
    # A call that does not exist is a page that says so.
    assert browser("sanne").get("/calls/no-such-call/apply").status_code == 404


def test_a_reviewer_must_declare_before_scoring(
    browser: Browser, client: Client, unique: str
) -> None:
    body = {"call": "fast-lane-open", "project": "photonic-inspect", "title": unique,
            "abstract": "x", "sector": "health", "requested": {"h100": 1000},
            "ai_act": {"risk": "minimal"}}  # fmt: skip
    sanne, eva = client("sanne"), client("eva")
    pid = sanne.post("/api/v1/proposals", json=body).json()["id"]
    assert sanne.post(f"/api/v1/proposals/{pid}/submit").status_code == 200
    assert eva.post(f"/api/v1/proposals/{pid}/admin-check", json={"passed": True}).is_success
    assign = {"reviewer": "rita", "kind": "scientific"}
    assert eva.post(f"/api/v1/proposals/{pid}/reviewers", json=assign).status_code == 201
    rita = browser("rita")
    page = rita.get(f"/proposals/{pid}")
    assert "I have no conflict of interest" in page.text
    undeclared = rita.post(f"/proposals/{pid}/review", data={"kind": "scientific", "score": "4"})
    assert undeclared.status_code == 422
    assert "conflict of interest" in field_error(undeclared.text, "coi")
    unscored = rita.post(f"/proposals/{pid}/review", data={"kind": "scientific", "coi": "none"})
    assert "score of 1-5" in field_error(unscored.text, "score")
    declared = rita.post(f"/proposals/{pid}/review",
                         data={"kind": "scientific", "coi": "declared",
                               "conflict": "I advise the applicant"})  # fmt: skip
    assert declared.status_code == 303
    [review] = [r for r in eva.get(f"/api/v1/proposals/{pid}").json()["reviews"]
                if r["reviewer"] == "rita"]  # fmt: skip
    assert review["conflict"] == "I advise the applicant" and review["score"] is None
    # The decision page is the access team's; the applicant is told so.
    assert browser("sanne").get(f"/proposals/{pid}/decide").status_code == 403
    assert browser("eva").get(f"/proposals/{pid}/decide").status_code == 200


def test_the_hub_desk_shows_ones_own_hub_only(browser: Browser) -> None:
    henk = browser("henk")
    own = henk.get("/hub")
    assert own.status_code == 200 and "AI-hub Noord-Nederland" in own.text
    assert "Rijksuniversiteit Groningen" in own.text
    assert "Eindhoven Photonics" not in own.text
    # The hub's open support tickets take the place the placeholder held.
    assert 'id="hub-tickets"' in own.text
    refused = henk.get("/hub", params={"hub": "brainport"})
    assert refused.status_code == 403 and "AI-hub Brainport" in refused.text
    assert henk.get("/hub", params={"hub": "atlantis"}).status_code == 422
    not_a_year = henk.get("/hub", params={"year": "last"})
    assert not_a_year.status_code == 422 and "not a year" in not_a_year.text
    admin = browser("admin")
    assert "Eindhoven Photonics" in admin.get("/hub", params={"hub": "brainport"}).text


def test_every_page_speaks_dutch_too(browser: Browser, client: Client, unique: str) -> None:
    sanne = client("sanne")
    job = sanne.post("/api/v1/jobs", json={"project": "photonic-inspect", "command": ["true"]})
    wait_for(sanne, job.json()["id"])
    body = {"call": "fast-lane-open", "project": "photonic-inspect", "title": unique,
            "abstract": "x", "sector": "health", "requested": {"h100": 1000},
            "ai_act": {"risk": "minimal"}}  # fmt: skip
    pid = sanne.post("/api/v1/proposals", json=body).json()["id"]
    assert sanne.post(f"/api/v1/proposals/{pid}/submit").status_code == 200
    pages = {
        "sanne": ["/jobs", "/jobs/new", f"/jobs/{job.json()['id']}", "/calls",
                  "/calls/fast-lane-open/apply", "/proposals", f"/proposals/{pid}", "/reviews"],
        "eva": ["/decisions", f"/proposals/{pid}/decide"],
        "hanna": ["/hub"],
    }  # fmt: skip
    for username, paths in pages.items():
        portal = browser(username)
        for path in paths:
            answer = portal.get(path, headers={"Accept-Language": "nl"})
            assert answer.status_code == 200, (path, answer.text[-500:])
            assert '<html lang="nl">' in answer.text, path
