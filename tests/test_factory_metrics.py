"""The factory's metrics over real HTTP: a server with jobs in several states on several
sites, one site whose cluster does not answer, scraped at /metrics and checked with
Prometheus' own `promtool`; the values are the store's, and a second server that does not
dispatch reports the same database gauges.

The site that is down is a real slurmrestd site whose REST API is a closed loopback port:
the engine's calls really fail, as they would with the daemon stopped.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fabriek.domain.reason_classes import reason_class
from fabriek.services.demo.seed import demo_token
from fabriek.services.energy.site_power import run_it_kw
from fabriek.settings import Settings
from tests.jobs_helpers import submit, wait_for
from tests.promtool_install import PromtoolMissing, ensure_promtool
from tests.servers import (
    LiveServer,
    free_port,
    live_server,
    postgres_unavailable,
    prepare,
    throwaway_database,
)

DOWN_SITE = "eindhoven"  # mi300x and l40s nodes in the demo factory
LATER = "2099-01-01T00:00:00Z"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(c: httpx.Client) -> tuple[str, Samples]:
    """The exposition text and its samples by (name, labels)."""
    text = c.get("/metrics").text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@dataclass
class Factory:
    leader: LiveServer
    follower: LiveServer
    jobs: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def factory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Factory]:
    """Two servers on one database and state folder: the first dispatches, the second
    serves only. Jobs running at two sites, waiting for a later start, completed,
    cancelled, and one for the site that is down."""
    if request.param == "postgresql" and (reason := postgres_unavailable()):
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("metrics")
    key = tmp / "jwt.key"
    key.write_bytes(b"k" * 32)
    sites = tmp / "sites.toml"
    sites.write_text(
        f'[sites.{DOWN_SITE}]\nengine = "slurmrestd"\n'
        f'url = "http://127.0.0.1:{free_port()}"\n'  # nothing listens there
        f'jwt_key_file = "{key}"\nlog_dir = "{tmp / "out"}"\n'
    )
    with throwaway_database(request.param, tmp) as url:
        prepare(url)
        state = tmp / "state"
        settings = Settings(
            database_url=url, state_dir=state, dispatch_interval_s=0.2, sites_file=sites
        )
        with live_server(settings) as leader:
            maria = httpx.Client(
                base_url=leader.url,
                headers={"Authorization": f"Bearer {demo_token('maria').token}"},
                timeout=30,
            )
            jobs = _jobs_in_every_state(maria)
            twin = Settings(
                database_url=url, state_dir=state, dispatch_interval_s=0.2, sites_file=sites
            )
            with live_server(twin) as follower:
                yield Factory(leader, follower, jobs)
            for job in jobs["running"] + jobs["later"]:
                maria.post(f"/api/v1/jobs/{job['id']}/cancel")
            for job in jobs["running"]:
                wait_for(maria, int(str(job["id"])))
            maria.close()


def _jobs_in_every_state(maria: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    long = ["sleep", "600"]
    running = [
        submit(maria, project="dutch-llm", command=long, gpus=2, gpu_type="h100"),
        submit(maria, project="dutch-llm", command=long, gpus=1, gpu_type="h100"),
        submit(maria, project="dutch-llm", command=long, gpus=4, gpu_type="h200"),
    ]
    later = [
        submit(maria, project="dutch-llm", command=["true"], gpus=1, earliest_start=LATER)
        for _ in range(3)
    ]
    done = submit(maria, project="dutch-llm", command=["true"])
    stopped = submit(maria, project="dutch-llm", command=long)
    down = submit(maria, project="dutch-llm", command=["true"], gpus=1, gpu_type="mi300x")
    running = [wait_for(maria, int(j["id"]), {"running"}) for j in running]
    wait_for(maria, int(done["id"]))
    wait_for(maria, int(stopped["id"]), {"running"})
    maria.post(f"/api/v1/jobs/{stopped['id']}/cancel")
    wait_for(maria, int(stopped["id"]))
    for job in later:
        wait_for(maria, int(job["id"]), {"pending"})
    # The job for the site that is down was handed to its engine, failed, and waits again.
    reason = _wait_reason(maria, int(down["id"]), "SiteUnavailable")
    return {"running": running, "later": later, "down": [{**down, "reason": reason}]}


def _wait_reason(c: httpx.Client, job_id: int, word: str) -> str:
    import time

    deadline = time.monotonic() + 60
    while True:
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        if word in str(job["reason"]) and job["state"] == "pending":
            return str(job["reason"])
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def _client(server: LiveServer) -> httpx.Client:
    token = demo_token("admin").token
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})


def test_promtool_finds_no_problem_in_the_exposition(factory: Factory, tmp_path: Path) -> None:
    try:
        promtool = ensure_promtool()
    except PromtoolMissing as exc:
        pytest.skip(str(exc))
    for server in (factory.leader, factory.follower):
        with _client(server) as admin:
            text, _ = scrape(admin)
        assert "fabriek_jobs{" in text and "fabriek_http_requests_total" in text
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0 and not checked.stdout.strip(), (
            checked.stdout + checked.stderr
        )


def settled(server: LiveServer) -> Samples:
    """A scrape at a moment the job for the site that is down waits in Fabriek's queue:
    the dispatcher tries that site again now and then (backing off), and for the moment of
    each try the job is `starting` there."""
    import time

    deadline = time.monotonic() + 120
    with _client(server) as admin:
        while True:
            _, m = scrape(admin)
            if value(m, "fabriek_jobs", site=DOWN_SITE, state="starting") == 0:
                return m
            assert time.monotonic() < deadline, "the down site's job never waits"
            time.sleep(0.2)


def test_jobs_and_gpus_by_site_and_state_are_the_stores(factory: Factory) -> None:
    m = settled(factory.leader)
    assert value(m, "fabriek_jobs", site="amsterdam", state="running") == 2
    assert value(m, "fabriek_job_gpus", site="amsterdam", state="running") == 3
    assert value(m, "fabriek_jobs", site="groningen", state="running") == 1
    assert value(m, "fabriek_job_gpus", site="groningen", state="running") == 4
    assert value(m, "fabriek_jobs", site="eindhoven", state="running") == 0
    # Waiting in Fabriek's own queue: three for a later start, one for the site that is down.
    assert value(m, "fabriek_jobs", site="unplaced", state="pending") == 4
    assert value(m, "fabriek_job_gpus", site="unplaced", state="pending") == 4
    assert value(m, "fabriek_jobs_waiting", site="unplaced", reason="NotBeforeStartTime") == 3
    down = reason_class(str(factory.jobs["down"][0]["reason"]))
    assert down == "SiteUnavailable"
    assert value(m, "fabriek_jobs_waiting", site="unplaced", reason=down) == 1
    assert value(m, "fabriek_site_gpus", site="groningen") == 128
    assert value(m, "fabriek_site_info", site=DOWN_SITE, engine="slurmrestd") == 1
    assert value(m, "fabriek_site_info", site="amsterdam", engine="local") == 1
    assert value(m, "fabriek_dispatch_lag_seconds") == 0
    assert value(m, "fabriek_factory_scrape_ok") == 1
    assert value(m, "fabriek_endpoint_usage_unwritten") == 0


def test_power_is_the_running_jobs_against_the_grid_limit(factory: Factory) -> None:
    with _client(factory.leader) as admin:
        _, m = scrape(admin)
        sites = {s["name"]: s for s in admin.get("/api/v1/sites").json()["items"]}
    running = [j for j in factory.jobs["running"] if j["site"] == "amsterdam"]
    watts = 1000 * sum(run_it_kw(int(j["gpus"]), "h100", int(j["cpus"])) for j in running)
    assert value(m, "fabriek_site_it_power_watts", site="amsterdam") == pytest.approx(watts)
    pue = sites["amsterdam"]["pue"] or 1.0
    assert value(m, "fabriek_site_grid_power_watts", site="amsterdam") == pytest.approx(watts * pue)
    limit = sites["amsterdam"]["grid_limit_kw"]
    assert value(m, "fabriek_site_grid_limit_watts", site="amsterdam") == limit * 1000


def test_a_site_whose_cluster_does_not_answer_is_down(factory: Factory) -> None:
    with _client(factory.leader) as admin:
        _, m = scrape(admin)
    assert value(m, "fabriek_site_up", site=DOWN_SITE) == 0
    assert value(m, "fabriek_site_up", site="amsterdam") == 1
    assert value(m, "fabriek_site_up", site="groningen") == 1
    failed = value(
        m, "fabriek_engine_call_failures_total",
        site=DOWN_SITE, operation="submit", outcome="unavailable",
    )  # fmt: skip
    assert failed is not None and failed >= 1
    calls = value(
        m, "fabriek_engine_call_duration_seconds_count", site="amsterdam", operation="submit"
    )
    assert calls is not None and calls >= 2
    polls = value(
        m, "fabriek_engine_call_duration_seconds_count", site="amsterdam", operation="poll"
    )
    assert polls is not None and polls >= 1
    cancels = sum(
        v
        for (name, labels), v in m.items()
        if name == "fabriek_engine_call_duration_seconds_count"
        and ("operation", "cancel") in labels
    )
    assert cancels >= 1
    cycles = value(m, "fabriek_dispatch_cycle_duration_seconds_count")
    assert cycles is not None and cycles > 0
    assert (value(m, "fabriek_scheduler_cycle_duration_seconds_count") or 0) > 0
    assert value(m, "fabriek_dispatch_last_cycle_timestamp_seconds") is not None


def test_a_server_that_does_not_dispatch_reports_the_database_gauges(factory: Factory) -> None:
    lead, follow = settled(factory.leader), settled(factory.follower)
    for name, labels in [
        ("fabriek_jobs", {"site": "amsterdam", "state": "running"}),
        ("fabriek_jobs", {"site": "unplaced", "state": "pending"}),
        ("fabriek_jobs_waiting", {"site": "unplaced", "reason": "NotBeforeStartTime"}),
        ("fabriek_site_it_power_watts", {"site": "amsterdam"}),
        ("fabriek_allocations_active", {}),
    ]:
        assert value(follow, name, **labels) == value(lead, name, **labels), name
    # What only the dispatching server knows, it alone says.
    assert value(follow, "fabriek_site_up", site=DOWN_SITE) is None
    assert value(follow, "fabriek_dispatch_last_cycle_timestamp_seconds") is None
