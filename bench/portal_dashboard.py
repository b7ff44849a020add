"""The public dashboard with a year of demo use: time to first byte and full load.

For each backend (a fresh SQLite file, a fresh PostgreSQL database):

1. `fabriek db upgrade` and `fabriek demo load` (the demo factory and its year of use),
   each timed from spawn to exit;
2. `--runs` times: start `fabriek serve`, then
   - the first GET / (the year's figures summed from the store: a cold dashboard cache),
     time to first byte as an HTTP client sees it (request sent to status line and headers
     received; the page is rendered whole before its first byte is sent);
   - GET / again (figures from the dashboard's cache, rendering only);
   - in Debian's Chromium (headless, through Playwright, a fresh profile each time so
     nothing is cached): navigation to the load event, and the browser's own time to
     first byte, from the Navigation Timing entry;
   then stop the server.

Prints the medians (and min-max) as a markdown table, with the machine.

    .venv/bin/python -m bench.portal_dashboard --backend both --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright
from tests.browser.conftest import OFFLINE_ARGS
from tests.browser.install import ensure_chromium
from tests.servers import free_port, postgres_unavailable, throwaway_database

from bench.api_load import (
    BACKENDS,
    SERVE,
    command_line,
    machine_description,
    server_env,
    stop_server,
    wait_ready,
)

FABRIEK = [sys.executable, "-m", "fabriek.main"]


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def first_byte_ms(client: httpx.Client, path: str) -> float:
    """Request sent to status line and headers in, in ms; the body is read after."""
    started = time.perf_counter()
    with client.stream("GET", path) as answer:
        elapsed = (time.perf_counter() - started) * 1000
        answer.read()
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path} answered {answer.status_code}")
    return elapsed


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def run_backend(backend: str, runs: int, chromium: Path) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(backend, Path(tmp)) as url:
        port = free_port()
        env = server_env(url, port, Path(tmp) / "state")
        upgrade_s = timed([*FABRIEK, "db", "upgrade"], env)
        demo_s = timed([*FABRIEK, "demo", "load"], env)
        cold, warm, browser_ttfb, browser_load = [], [], [], []
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium), headless=True,
                                        args=[*OFFLINE_ARGS, "--no-sandbox"])  # fmt: skip
            for _ in range(runs):
                proc = subprocess.Popen(SERVE, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip
                try:
                    wait_ready(base, proc)
                    with httpx.Client(base_url=base, timeout=60) as client:
                        cold.append(first_byte_ms(client, "/"))
                        warm.append(first_byte_ms(client, "/"))
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(base + "/", wait_until="load")
                    timing = page.evaluate(
                        "() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return [n.responseStart - n.startTime, n.loadEventEnd - n.startTime]; }"
                    )
                    browser_ttfb.append(float(timing[0]))
                    browser_load.append(float(timing[1]))
                    context.close()
                finally:
                    stop_server(proc)
            browser.close()
    return [
        f"| {backend} | {upgrade_s:.1f} | {demo_s:.1f} | {spread(cold)} | {spread(warm)} "
        f"| {spread(browser_ttfb)} | {spread(browser_load)} |"
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    chromium = ensure_chromium()
    print(f"Command: {command_line()}")
    for line in machine_description():
        print(line)
    print()
    print("| backend | db upgrade s | demo load s | first GET / TTFB ms (figures summed) "
          "| GET / again TTFB ms (cached) | Chromium TTFB ms | Chromium load event ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for backend in backends:
        if backend == "postgresql" and (why := postgres_unavailable()):
            print(f"| postgresql | skipped: {why} |")
            continue
        for line in run_backend(backend, args.runs, chromium):
            print(line, flush=True)
    print(f"\nMedians (min-max) of {args.runs} runs; each run starts a fresh server.")


if __name__ == "__main__":
    main()
