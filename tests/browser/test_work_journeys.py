"""Journeys through the portal's job pages, access pages and hub desk in a real browser: a
user submits a job (first with a mistake), follows it and sees it finish, and cancels
another; a proposal goes from the application through the administrative check, a
reviewer's declaration and score, a technical review and the access team's decision; hub
staff open their desk. Each page is checked for accessibility and photographed."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal

# A job's page asks for its state every few seconds: a short job ends well within this.
JOB_ENDS_MS = 60_000


def submit_job(page: Page, command: str, gpus: str) -> None:
    page.get_by_label("Project").select_option("photonic-inspect")
    page.get_by_label("Command").fill(command)
    page.get_by_label("GPUs", exact=True).fill(gpus)
    page.get_by_label("GPU type").select_option("h100")
    page.get_by_label("Time limit").fill("10m")
    page.get_by_role("button", name="Submit the job").click()


def test_a_user_submits_a_job_follows_it_and_sees_it_finish(portal: Portal, page: Page) -> None:
    portal.sign_in(page, "sanne", "/jobs/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("Submit a job")
    portal.check(page, "job-form")

    # A mistake: more H100s than any site has. The service's words are next to the field.
    submit_job(page, "sh -c 'echo training; sleep 1; echo finished'", "1000")
    gpus = page.get_by_label("GPUs", exact=True)
    error = page.locator("#f-gpus-error")
    expect(error).to_contain_text("no site can ever run 1000")
    expect(gpus).to_have_attribute("aria-invalid", "true")
    expect(gpus).to_have_attribute("aria-describedby", re.compile(r"\bf-gpus-error\b"))
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    # What was typed is kept.
    expect(page.get_by_label("Command")).to_have_value(
        "sh -c 'echo training; sleep 1; echo finished'"
    )
    portal.check(page, "job-form-problem")

    gpus.fill("1")
    page.get_by_role("button", name="Submit the job").click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Job \d+$"))
    # The page follows the job by itself until it has ended.
    expect(page.locator("#job-state")).to_have_text("completed", timeout=JOB_ENDS_MS)
    expect(page.locator("#log-stdout")).to_have_text("training\nfinished\n")
    # Its energy and carbon hour by hour, drawn, with the numbers beside.
    for chart in ("#job-power", "#job-energy", "#job-carbon"):
        expect(page.locator(f"{chart} canvas")).to_be_visible()
    page.locator("#job-energy").get_by_text("Show the numbers").click()
    expect(page.locator("#job-energy tbody tr")).not_to_have_count(0)
    # Nothing to cancel any more.
    expect(page.get_by_role("button", name="Cancel the job")).to_have_count(0)
    portal.check(page, "job")

    page.goto(portal.url + "/jobs")
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    portal.check(page, "jobs")


def test_a_user_cancels_a_job_after_confirming(portal: Portal, page: Page) -> None:
    portal.sign_in(page, "sanne", "/jobs/new")
    submit_job(page, "sleep 300", "1")
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    page.get_by_label(re.compile(r"^Yes, cancel job \d+")).check()
    page.get_by_role("button", name="Cancel the job").click()
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=JOB_ENDS_MS)


def test_a_proposal_goes_from_application_to_decision(portal: Portal, page: Page) -> None:
    # The applicant: the open calls, then the form (first asking too little for the track).
    portal.sign_in(page, "sanne", "/calls")
    expect(page.get_by_role("heading", level=1)).to_have_text("Access to the factory")
    call = page.get_by_role("article").filter(
        has=page.get_by_role("heading", name="Large Scale: next cut-off")
    )
    expect(call).to_contain_text("Your project photonic-inspect may apply.")
    expect(page.locator("table").first).to_contain_text("start-ups")
    portal.check(page, "calls")
    call.get_by_role("link", name=re.compile("^Apply to")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Apply: Large Scale: next cut-off")
    page.get_by_label("Project").select_option("photonic-inspect")
    page.get_by_label("Title").fill("Photonic defect detection at wafer scale")
    page.get_by_label("Abstract").fill("Train a detector of defects in photonic chips.")
    page.get_by_label("Sector", exact=True).fill("semiconductors")
    page.get_by_label("NVIDIA H100 SXM5 80GB").fill("100")
    page.get_by_role("button", name="Submit the proposal").click()
    expect(page.locator("#f-requested-error")).to_contain_text("starts at")
    portal.check(page, "proposal-form-problem")
    page.get_by_label("NVIDIA H100 SXM5 80GB").fill("60000")
    page.get_by_role("button", name="Submit the proposal").click()
    expect(page).to_have_url(re.compile(r"/proposals/\d+$"))
    proposal = page.url
    expect(page.locator("#proposal-state")).to_have_text("submitted")
    expect(page.get_by_role("heading", name="Turnaround clock")).to_be_visible()
    expect(page.get_by_text(re.compile(r"of 10 working days"))).to_be_visible()
    portal.check(page, "proposal")

    # The access team: the queue, the administrative check, reviewers.
    portal.sign_in(page, "eva", "/decisions")
    expect(page.get_by_role("heading", level=1)).to_have_text("Decisions")
    portal.check(page, "decisions")
    page.get_by_role("link", name=re.compile("Photonic defect detection")).click()
    page.get_by_label("Yes: on to review").check()
    page.get_by_role("button", name="Record the check").click()
    expect(page.locator("#proposal-state")).to_have_text("under review")
    page.get_by_label("Technical reviewer (site staff)").select_option("otto")
    page.get_by_role("button", name="Ask for a technical review").click()
    page.get_by_label("Scientific or business reviewer").select_option("rita")
    page.get_by_role("button", name="Ask for a scientific review").click()
    expect(page.locator("#reviews tbody tr")).to_have_count(2)
    portal.check(page, "decide")

    # The reviewer: her queue, then the declaration (none) and the score.
    portal.sign_in(page, "rita", "/reviews")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your reviews")
    portal.check(page, "reviews")
    page.get_by_role("link", name=re.compile("Photonic defect detection")).click()
    page.get_by_role("button", name="Send the review").click()
    expect(page.locator("#f-coi-error")).to_contain_text("conflict of interest")
    page.get_by_label("I have no conflict of interest with this proposal").check()
    page.get_by_label("4 very good").check()
    page.get_by_label("Comment").fill("A sound plan with a clear use.")
    portal.check(page, "review-form")
    page.get_by_role("button", name="Send the review").click()
    expect(page).to_have_url(re.compile(r"/reviews$"))
    expect(page.get_by_role("table").nth(1)).to_contain_text("score 4 of 5")

    # The site's technical reviewer.
    portal.sign_in(page, "otto", proposal.removeprefix(portal.url))
    page.get_by_label("I have no conflict of interest with this proposal").check()
    page.get_by_role("radio", name="Yes").check()
    page.get_by_role("button", name="Send the review").click()
    expect(page).to_have_url(re.compile(r"/reviews$"))

    # The access team decides.
    portal.sign_in(page, "eva", proposal.removeprefix(portal.url) + "/decide")
    page.get_by_label("Award", exact=True).check()
    page.get_by_role("button", name="Record the decision").click()
    expect(page).to_have_url(proposal)
    expect(page.locator("#proposal-state")).to_have_text("awarded")
    expect(page.get_by_text(re.compile(r"Allocation \d+: 60,000 normalised GPU-h"))).to_be_visible()
    portal.check(page, "proposal-decided")


def test_hub_staff_open_the_hub_desk(portal: Portal, page: Page) -> None:
    portal.sign_in(page, "hanna", "/hub")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hub desk: AI-hub Brainport")
    organisations = page.locator("section").filter(has=page.locator("#orgs-h")).locator("table")
    expect(organisations).to_contain_text("Eindhoven Photonics AI B.V.")
    expect(organisations).not_to_contain_text("Rijksuniversiteit Groningen")
    projects = page.locator("section").filter(has=page.locator("#projects-h")).locator("table")
    expect(projects).to_contain_text("photonic-inspect")
    # A year of the demo's use is in the figures.
    used = [float(c.replace(",", "")) for c in organisations.locator("tbody td:nth-child(5)")
            .all_text_contents()]  # fmt: skip
    assert any(u > 0 for u in used), used
    expect(page.locator("#hub-months canvas")).to_be_visible()
    # The hub's open tickets, each with its service-level state.
    expect(page.locator("#hub-tickets caption")).to_contain_text("open ticket(s) at this hub")
    portal.check(page, "hub-desk")

    # Another hub's staff member may not open Brainport's desk.
    portal.sign_in(page, "henk", "/hub")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hub desk: AI-hub Noord-Nederland")
    answer = page.goto(portal.url + "/hub?hub=brainport")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("AI-hub Brainport")
