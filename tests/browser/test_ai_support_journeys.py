"""Journeys through the portal's AI Act questionnaire and support centre in a real browser:
a provider registers an AI system, walks the questionnaire (meeting a contradiction on the
way) to its result, and opens a ticket after the check for answers suggested an article.
Each page is checked for accessibility and photographed."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.browser.conftest import Portal


def answer(page: Page, label: str) -> None:
    page.get_by_label(label, exact=True).check()
    page.get_by_role("button", name="Answer and continue").click()


def test_a_provider_classifies_an_ai_system_under_the_ai_act(portal: Portal, page: Page) -> None:
    portal.sign_in(page, "sanne", "/ai-systems")
    expect(page.get_by_role("heading", level=1)).to_have_text("AI systems")
    portal.check(page, "ai-systems")

    name = f"wafer-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Project").select_option("photonic-inspect")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Intended purpose").fill("Finds defects on photonic chips")
    page.get_by_label("Provider", exact=True).fill("Eindhoven Photonics AI B.V.")
    page.get_by_role("button", name="Register and classify").click()
    expect(page).to_have_url(re.compile(r"/ai-systems/\d+/classify$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"AI Act classification: {name}")
    expect(page.locator("#question-h")).to_have_text("Question 1")
    portal.check(page, "ai-question")

    answer(page, "Yes")
    answer(page, "Yes")
    page.locator("#f-role-provider").check()
    page.get_by_role("button", name="Answer and continue").click()
    expect(page.locator("#answers tbody tr")).to_have_count(3)

    # A provider claims the personal-use exclusion: the contradiction is said at the question.
    page.locator("#f-scope_exclusions-personal-use").check()
    page.get_by_role("button", name="Answer and continue").click()
    expect(page.locator("#f-scope_exclusions-error")).to_contain_text("contradicts your answer")
    expect(page.get_by_role("alert")).to_contain_text("There is a problem")
    portal.check(page, "ai-question-problem")

    page.locator("#f-scope_exclusions-personal-use").uncheck()
    answer(page, "None of these")
    answer(page, "No")
    page.locator("#f-prohibited_practices-social-scoring").check()
    page.get_by_role("button", name="Answer and continue").click()

    result = page.locator("#result")
    expect(result).to_contain_text("Art. 5")
    expect(page.locator("#obligations tbody tr").first).to_contain_text(
        re.compile(r"\d{4}-\d{2}-\d{2}")
    )
    expect(page.locator("#answers tbody tr")).to_have_count(6)
    portal.check(page, "ai-result")


def test_a_user_opens_a_ticket_after_seeing_a_suggestion(portal: Portal, page: Page) -> None:
    portal.sign_in(page, "sanne", "/support/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ask the support desk")
    portal.check(page, "support-form")

    subject = f"GPU-hour budget question {uuid.uuid4().hex[:6]}"
    page.get_by_label("Category").select_option("jobs-and-software")
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Your question").fill("How is my budget of GPU-hours counted?")
    # Only the check for answers is offered first.
    expect(page.get_by_role("button", name="Send the ticket")).to_have_count(0)
    page.get_by_role("button", name="Check for answers").click()
    suggestions = page.locator("#suggestions")
    expect(suggestions).to_contain_text("GPU-hour budgets")
    # What was typed is kept.
    expect(page.get_by_label("Subject")).to_have_value(subject)
    portal.check(page, "support-suggestions")

    page.get_by_role("button", name="Send the ticket").click()
    expect(page).to_have_url(re.compile(r"/support/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Ticket T\d+$"))
    expect(page.locator("#ticket-status")).to_have_text("new")
    page.get_by_label("Message").fill("It is for the photonic-inspect project.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#messages")).to_contain_text("It is for the photonic-inspect project.")
    portal.check(page, "support-ticket")

    page.goto(portal.url + "/support")
    expect(page.get_by_role("table")).to_contain_text(subject)
    portal.check(page, "support")
