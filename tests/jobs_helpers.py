"""Helpers for job tests: submit through the API and wait for states."""

from __future__ import annotations

import shutil
import time
from typing import Any

import httpx

from fabriek.domain.job_states import TERMINAL_STATES


def submit(c: httpx.Client, **body: Any) -> dict[str, Any]:
    response = c.post("/api/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for(
    c: httpx.Client, job_id: int, states: set[str] | None = None, timeout: float = 60
) -> dict[str, Any]:
    """Poll the job until it is in one of `states` (default: any final state)."""
    wanted = states or {s.value for s in TERMINAL_STATES}
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = c.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in wanted:
            return job
        assert job["state"] not in {s.value for s in TERMINAL_STATES}, job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job['reason']}"
        time.sleep(0.1)


def py(code: str) -> list[str]:
    """A command that runs Python code with a Python every job's user may run: jobs run as
    their own unprivileged users, who cannot reach a virtual environment in root's home."""
    return [shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3", "-c", code]
