"""A notebook in a real browser: a user starts one from the portal, opens it through
Fabriek, runs a cell that prints CUDA_VISIBLE_DEVICES and sees the job's GPUs; another user
is refused; left alone, the notebook is stopped for idleness and its page says so.

This journey has a server of its own: every demo site on the local engine (virtual GPUs)
with the test's real JupyterLab named in the sites file (tests/jupyter_install.py), and a
short idle time. The harness still fails the test on any request to another host: the
notebook must need nothing from outside the factory.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from fabriek.engines import local_runner as files
from fabriek.settings import Settings
from tests.browser.conftest import Portal
from tests.jupyter_install import Unavailable, ensure_jupyter
from tests.servers import live_server, prepare, throwaway_database
from tests.test_notebooks import sites_file

IDLE_MINUTES = 0.5
# JupyterLab is a large application: its first load on a busy two-core machine is slow.
LAB_LOADS_MS = 90_000
STOPPED_MS = int((IDLE_MINUTES * 60 + 90) * 1000)


@pytest.fixture(scope="module")
def notebook_state() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def portal_url(notebook_state: Path) -> Iterator[str]:
    """This module's server: the demo factory, notebooks with the test's JupyterLab."""
    try:
        jupyter = ensure_jupyter()
    except Unavailable as why:
        pytest.skip(f"NOTEBOOK BROWSER TEST SKIPPED: {why}")
    with throwaway_database("sqlite", notebook_state) as url:
        prepare(url)
        settings = Settings(
            database_url=url,
            state_dir=notebook_state / "state",
            sites_file=sites_file(notebook_state, jupyter),
            dispatch_interval_s=0.2,
            housekeeping_interval_s=1.0,
            notebook_idle_minutes=IDLE_MINUTES,
        )
        with live_server(settings) as live:
            yield live.url


def job_gpus(state: Path, job_id: int) -> str:
    """The GPUs the local engine gave the job (its job file's environment)."""
    for found in (state / "state").rglob(files.JOB_FILE):
        meta = files.read_json(found)
        if meta is not None and meta.get("job_id") == job_id:
            return str(meta["env"]["CUDA_VISIBLE_DEVICES"])
    raise AssertionError(f"no job file for job {job_id}")


def run_cell(page: Page, code: str) -> None:
    """Type `code` into the notebook's first cell and run it (Shift+Enter)."""
    # Once the kernel is ready (its state in the status bar), into the cell's editor.
    kernel = page.get_by_role("button", name=re.compile(r"Python 3 \(ipykernel\) \| Idle"))
    expect(kernel).to_be_visible(timeout=LAB_LOADS_MS)
    editor = page.locator(".jp-Notebook .jp-Cell").first.locator(".cm-content")
    editor.click()
    expect(editor).to_be_focused()
    editor.fill(code)
    expect(editor).to_have_text(code)
    editor.press("Shift+Enter")


def test_a_user_starts_a_notebook_runs_a_cell_and_it_stops_when_idle(
    portal: Portal, page: Page, browser: Browser, notebook_state: Path
) -> None:
    portal.sign_in(page, "maria", "/jobs")
    page.get_by_role("link", name="Start a notebook").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Start a notebook")
    expect(page.get_by_text("nobody uses for 0.5 minutes")).to_be_visible()
    portal.check(page, "notebook-form")
    page.get_by_label("GPUs", exact=True).fill("2")
    page.get_by_label("Time limit").fill("30m")
    page.get_by_role("button", name="Start the notebook").click()
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])

    # The page shows the way in once the job runs (its live part refreshes by itself).
    open_link = page.get_by_role("link", name="Open the notebook")
    expect(open_link).to_be_visible(timeout=60_000)
    portal.check(page, "notebook-job")
    open_link.click()
    page.wait_for_url(re.compile(rf"/apps/{job_id}/lab"))

    # JupyterLab, through Fabriek: a new Python notebook from the launcher, and a cell.
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click(timeout=LAB_LOADS_MS)
    run_cell(page, "import os; print('gpus=' + os.environ['CUDA_VISIBLE_DEVICES'])")
    output = page.locator(".jp-OutputArea-output").first
    expect(output).to_have_text(f"gpus={job_gpus(notebook_state, job_id)}", timeout=60_000)
    assert len(job_gpus(notebook_state, job_id).split(",")) == 2

    # Another user is refused, however they come.
    other = browser.new_context(locale="en-GB")
    try:
        intruder = other.new_page()
        portal.sign_in(intruder, "mo", "/home")
        refused = intruder.goto(f"{portal.url}/apps/{job_id}/lab")
        assert refused is not None and refused.status == 403
        expect(intruder.locator("body")).to_contain_text("only to the person who started it")
    finally:
        other.close()

    # Left alone, the notebook is stopped, and its page says why.
    page.goto(f"{portal.url}/jobs/{job_id}")
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=STOPPED_MS)
    expect(page.locator("#job-reason")).to_contain_text("IdleStopped: stopped after 1 min idle")
    expect(page.get_by_role("link", name="Open the notebook")).to_have_count(0)
