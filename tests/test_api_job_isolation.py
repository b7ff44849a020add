"""A job must never touch another tenant, through the HTTP API: the attacker's job runs the
commands of `tests/test_job_isolation.py` against another organisation's running job."""

from __future__ import annotations

from fabriek.domain.accounts import DEFAULT_ID_BASE
from tests.conftest import Client
from tests.jobs_helpers import submit, wait_for
from tests.servers import LiveServer
from tests.test_api_budgets import grant, new_project
from tests.test_job_datasets import push
from tests.test_job_isolation import attack, ca_private_body, needs_root


@needs_root
def test_through_the_api_a_job_sees_nothing_of_another_projects_job(
    client: Client, server: LiveServer, unique: str
) -> None:
    project = new_project(client, unique)
    grant(client, project, {"h200": 10.0, "h100": 10.0, "mi300x": 10.0, "a100": 10.0, "l40s": 10.0})
    pieter, mo = client("pieter"), client("mo")
    push(pieter, project, "patients")
    state = server.settings.state_dir.resolve()
    ca_secret = ca_private_body(state)
    victim = submit(
        pieter, project=project, gpus=1, time_limit="5m", datasets=["patients"],
        command=["bash", "-c", 'echo victim-secret; sleep 6'],
    )  # fmt: skip
    wait_for(pieter, victim["id"], {"running"})
    victim_dir = next(state.glob(f"engines/*/*/{victim['id']}"))
    staged = state / "staging" / f"job-{victim['id']}"
    assert (staged / "patients").exists()
    attacker = submit(
        mo, project="legal-nl", gpus=1, time_limit="5m",
        command=["bash", "-c", attack(victim_dir, state, staged)],
    )  # fmt: skip
    done = wait_for(mo, attacker["id"])
    out = mo.get(f"/api/v1/jobs/{attacker['id']}/logs").text
    key = (state / "master.key").read_text()
    assert "attack-over" in out, done
    assert "victim-secret" not in out and "patient,age" not in out and key.strip() not in out
    assert ca_secret not in out and "OPENSSH PRIVATE KEY" not in out
    assert int(out.split()[0]) >= DEFAULT_ID_BASE
    finished = wait_for(pieter, victim["id"])
    assert (finished["state"], finished["exit_code"]) == ("completed", 0)
    assert "victim-secret" in pieter.get(f"/api/v1/jobs/{victim['id']}/logs").text
    # And through the API, as ever, the other project's job is not theirs to read.
    assert mo.get(f"/api/v1/jobs/{victim['id']}/logs").status_code == 404
