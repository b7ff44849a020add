"""The browser harness: the real server on loopback with the real database (PostgreSQL, or
SQLite where no PostgreSQL answers) holding the demo factory and a year of its usage, driven
by Debian's Chromium through Playwright. One browser for the session, a fresh context (no
cookies) and page per test.

Writing a journey (see test_journeys.py):

    def test_a_journey(portal: Portal, page: Page) -> None:
        portal.sign_in(page, "maria")                  # through the sign-in form
        page.goto(portal.url + "/home")
        expect(page.get_by_role("heading", name="Your home")).to_be_visible()
        portal.check(page, "home")                     # accessibility check + screenshot

- `portal.check(page, name)` injects axe-core into the page and fails on any violation of
  a WCAG 2.1 A or AA rule, naming each rule and the elements it found; then it writes a
  full-page screenshot to test-artifacts/screenshots/NAME.png (kept after the run, git-
  ignored). With FABRIEK_README_SCREENSHOTS=1 the README's pictures (README_SHOTS) are
  also written to docs/img/.
- Every test fails when a page it loaded answered 5xx, when a static file was missing,
  when the page threw a JavaScript error, or when anything asked a host other than the
  server (the browser also runs with every other host name unresolvable and no proxy).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
    sync_playwright,
)
from playwright.sync_api import Response as PageResponse

from fabriek.services.demo import history
from fabriek.services.demo.seed import demo_token
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from tests.browser.install import Unavailable, ensure_axe, ensure_chromium
from tests.servers import live_server, postgres_unavailable, prepare, throwaway_database

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
README_IMAGES = REPO / "docs" / "img"
README_SHOTS = {"home", "dashboard"}
# WCAG 2.1 level A and AA, as axe-core tags its rules.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# Keep Chromium off the network: no proxy, every host name but the loopback address
# unresolvable, and none of its own background traffic (updates, sync, crash reports).
OFFLINE_ARGS = [
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--no-first-run",
    "--no-default-browser-check",
]


@dataclass
class Portal:
    """The server under test and what every journey does with it."""

    url: str
    axe: str
    problems: list[str] = field(default_factory=list)

    def sign_in(self, page: Page, username: str, next_path: str = "/home") -> None:
        """Sign a demo user in through the portal's sign-in form."""
        page.goto(f"{self.url}/signin?next={next_path}")
        page.get_by_label("API token").fill(demo_token(username).token)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{self.url}{next_path}")

    def check(self, page: Page, name: str) -> None:
        """Accessibility check (axe-core, WCAG 2.1 A/AA) and a screenshot named `name`."""
        page.add_script_tag(content=self.axe)
        found = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS
        )
        violations = [
            f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(" ".join(n["target"]) for n in v["nodes"][:8])
            for v in found["violations"]
        ]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        if name in README_SHOTS and os.environ.get("FABRIEK_README_SCREENSHOTS") == "1":
            README_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, README_IMAGES / f"{name}.png")
        assert not violations, f"{page.url}: WCAG 2.1 A/AA violations:\n  " + "\n  ".join(
            violations
        )


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    try:
        return ensure_chromium()
    except Unavailable as why:
        pytest.skip(f"BROWSER TESTS SKIPPED: {why}")


@pytest.fixture(scope="session")
def axe_source() -> str:
    try:
        return ensure_axe()
    except Unavailable as why:
        pytest.skip(f"BROWSER TESTS SKIPPED: {why}")


@pytest.fixture(scope="session")
def portal_url() -> Iterator[str]:
    """The full application on loopback, on a database with the demo and a year of use."""
    kind = "sqlite" if postgres_unavailable() else "postgresql"
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(kind, Path(tmp)) as url:
        prepare(url)
        engine = make_engine(url)
        try:
            with make_sessions(engine)() as session:
                history.load_history(session, datetime.now(UTC))
        finally:
            engine.dispose()
        settings = Settings(
            database_url=url, state_dir=Path(tmp) / "state", dispatch_interval_s=0.2
        )
        with live_server(settings) as live:
            yield live.url


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright, chromium_path: Path) -> Iterator[Browser]:
    # As root Chromium will not start its sandbox; the pages are our own, on loopback.
    args = [*OFFLINE_ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    launched = playwright.chromium.launch(
        executable_path=str(chromium_path), headless=True, args=args
    )
    yield launched
    launched.close()


@pytest.fixture
def portal(portal_url: str, axe_source: str) -> Portal:
    return Portal(portal_url, axe_source)


def _tracked(browser: Browser, portal: Portal, scripts: bool) -> Iterator[Page]:
    context = browser.new_context(locale="en-GB", viewport={"width": 1280, "height": 900})
    problems = portal.problems
    mine = portal.url + "/"

    def guard(route: Route, request: Request) -> None:
        if not scripts and request.resource_type == "script":
            route.abort()
        elif request.url.startswith(mine):
            route.continue_()
        else:
            problems.append(f"asked another host: {request.url}")
            route.abort()

    def answered(response: PageResponse) -> None:
        if response.status >= 500:
            problems.append(f"server error {response.status} at {response.url}")
        elif response.status == 404 and "/static/" in response.url:
            problems.append(f"static file missing: {response.url}")

    def console(message: ConsoleMessage) -> None:
        # A refused page (403, 404) is logged as a failed load; those are checked apart.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console error: {message.text}")

    context.route("**/*", guard)
    opened = context.new_page()
    opened.on("response", answered)
    opened.on("console", console)
    opened.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    yield opened
    context.close()
    assert not problems, "the browser saw:\n  " + "\n  ".join(problems)


@pytest.fixture
def page(browser: Browser, portal: Portal) -> Iterator[Page]:
    """A fresh page (no cookies, English first) that records what must fail the test."""
    yield from _tracked(browser, portal, scripts=True)


@pytest.fixture
def page_without_scripts(browser: Browser, portal: Portal) -> Iterator[Page]:
    """The same, but no script file loads: the page as a browser without JavaScript gets
    it (the portal's own JavaScript is all in files). The browser's JavaScript stays on,
    for the accessibility check."""
    yield from _tracked(browser, portal, scripts=False)
