"""Journeys through the portal in a real browser: the public visitor, a signed-in member,
a site operator. Each page is checked for accessibility and photographed."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from fabriek.services.demo.seed import demo_token
from tests.browser.conftest import Portal
from tests.jobs_helpers import submit, wait_for


def test_the_public_visitor_reads_the_dashboard_in_english_and_dutch(
    portal: Portal, page: Page
) -> None:
    page.goto(portal.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("The factory at a glance")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    # Every chart is drawn, and its numbers are there as a table under it.
    charts = page.locator("figure[data-chart]")
    expect(charts).to_have_count(5)
    for i in range(5):
        expect(charts.nth(i).locator("canvas")).to_be_visible()
    province = page.locator("#by-province")
    table = province.locator("table")
    expect(table).to_be_hidden()
    province.get_by_text("Show the numbers").click()
    expect(table).to_be_visible()
    rows = table.locator("tbody tr")
    assert rows.count() >= 2
    # Small groups are merged, and the page says so.
    expect(page.get_by_text("fewer than 3 organisations")).to_be_visible()
    assert "(merged)" in table.inner_text()
    # The year is in use: every month of it has GPU-hours.
    month_cells = page.locator("#per-month-gpu tbody td")
    assert month_cells.count() == 12
    assert all(float(c.replace(",", "")) > 0 for c in month_cells.all_text_contents())
    portal.check(page, "dashboard")

    page.get_by_role("button", name="Nederlands").click()
    expect(page.locator("html")).to_have_attribute("lang", "nl")
    expect(page.get_by_role("heading", level=1)).to_have_text("De fabriek in één oogopslag")
    expect(page.get_by_text("GPU-uren per provincie").first).to_be_visible()
    portal.check(page, "dashboard-nl")

    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("The factory at a glance")


def test_the_dashboard_works_without_javascript(page_without_scripts: Page, portal: Portal) -> None:
    page = page_without_scripts
    page.goto(portal.url + "/")
    # No canvas to look at: the tables are open, with the figures in them.
    table = page.locator("#by-hub table")
    expect(table).to_be_visible()
    expect(table).to_contain_text("AI-hub")
    page.get_by_label("Period", exact=True).select_option(index=1)
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"\?year=\d{4}$"))
    portal.check(page, "dashboard-no-js")


def test_the_skip_link_is_the_first_stop_of_the_keyboard(portal: Portal, page: Page) -> None:
    page.goto(portal.url + "/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_a_member_signs_in_and_sees_projects_budgets_and_jobs(portal: Portal, page: Page) -> None:
    with httpx.Client(
        base_url=portal.url,
        timeout=30,
        headers={"Authorization": f"Bearer {demo_token('maria').token}"},
    ) as api:
        job = submit(api, project="dutch-llm", command=["sleep", "600"], time_limit="20m",
                     gpus=1, name="portal-journey")  # fmt: skip
        try:
            wait_for(api, job["id"], {"running"})
            home_of_maria(portal, page, job["id"])
        finally:
            api.post(f"/api/v1/jobs/{job['id']}/cancel")


def home_of_maria(portal: Portal, page: Page, running: int) -> None:
    page.goto(portal.url + "/home")
    expect(page).to_have_url(re.compile(r"/signin\?next=/home$"))
    portal.sign_in(page, "maria")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your home")
    expect(page.get_by_text("Signed in as maria")).to_be_visible()
    for project in ("dutch-llm", "photonic-inspect"):
        card = page.get_by_role("article").filter(has=page.get_by_role("heading", name=project))
        expect(card).to_be_visible()
        # Each allocation: its bar, and in words what is consumed, committed and left.
        expect(card.locator(".budget").first).to_be_visible()
        expect(card.get_by_text(re.compile(r"^Consumed: [\d,.]+ GPU-h"))).not_to_have_count(0)
        expect(card.get_by_text(re.compile(r"^Remaining: "))).not_to_have_count(0)
        expect(card.get_by_text(re.compile(r"ends \d{4}-\d{2}-\d{2}"))).not_to_have_count(0)
    # Her running job, linked to its page, and what it commits of the budget.
    going = page.locator("#home-jobs table").nth(0)
    expect(going.get_by_role("link", name=str(running))).to_have_attribute(
        "href", f"/jobs/{running}"
    )
    expect(going).to_contain_text("running")
    expect(
        page.get_by_text(re.compile(r"^Committed to running jobs: (?!0\.0 GPU)"))
    ).not_to_have_count(0)
    recent = page.locator("#home-jobs table").nth(1)
    links = recent.locator("tbody a[href^='/jobs/']")
    assert links.count() > 0
    # The operator's page is not for her: she is told so.
    answer = page.goto(portal.url + "/operator")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text("site operators")
    page.goto(portal.url + "/home")
    portal.check(page, "home")


def test_an_operator_sees_the_load_the_efficiency_and_the_eu_report(
    portal: Portal, page: Page
) -> None:
    portal.sign_in(page, "otto", "/operator")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sites you operate")
    # otto runs amsterdam only.
    expect(page.get_by_role("heading", level=2)).to_have_count(1)
    expect(page.get_by_role("heading", level=2)).to_have_text("amsterdam (Amsterdam)")
    power = page.locator("#power-amsterdam")
    expect(power.locator("canvas")).to_be_visible()
    power.get_by_text("Show the numbers").click()
    rows = power.locator("tbody tr")
    expect(rows).to_have_count(48)
    # The grid-connection limit is beside every hour's draw; far above it, it is said so.
    assert all("2,500.0" in r for r in rows.all_inner_texts())
    expect(page.get_by_text(re.compile(r"limit, 2,500 kW, is far above the draw"))).to_be_visible()
    expect(page.get_by_text("PUE (declared)")).to_be_visible()
    expect(page.get_by_text("WUE (declared)")).to_be_visible()
    report = page.get_by_role("heading", name=re.compile(r"EU data-centre report for \d{4}"))
    expect(report).to_be_visible()
    page.get_by_text(re.compile(r"All \d+ indicators")).click()
    flags = page.locator(".flag")
    assert flags.count() > 10
    assert "reported" in flags.all_inner_texts()
    portal.check(page, "operator")
