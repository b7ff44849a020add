"""A job must never touch another tenant: tried as an attacker would, from inside a job.

The commands are the ones that worked against the local engine when jobs ran under the
server's own user (issue: "a job can read and kill everything on the local engine"):
`cat ../N/stdout` of another project's job, `cat $STATE_DIR/master.key`, another job's
decrypted dataset under the staging folder, and `kill -9` of another project's job. Each
is run here inside a real job, on the engine and through the HTTP API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.accounts import (
    DEFAULT_ID_BASE,
    IdentityOutOfRange,
    JobOwner,
    local_identity,
)
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import JobSpec
from fabriek.engines import local_runner
from fabriek.engines.base import EngineJob, EngineRejected, LogStream, Observation
from fabriek.engines.local import LocalEngine
from fabriek.engines.local_isolation import Isolation
from fabriek.services.accounts import ssh_ca

# What the victim's dataset holds (as in the datasets tests).
DATA = b"patient,age\n1,54\n2,61\n" * 1000

ALICE = JobOwner(user_id=7, user="alice", project_id=3, project="climate")
MALLORY = JobOwner(user_id=8, user="mallory", project_id=4, project="rival")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="running jobs as their own users needs a root control plane"
)


def engine_at(state: Path, **options: object) -> LocalEngine:
    return LocalEngine(
        "local", state / "engines" / "site", 2, "h100", detect_gpus=False, kill_grace_s=0.5,
        private_paths=[state], **options,  # type: ignore[arg-type]
    )  # fmt: skip


def ended(engine: LocalEngine, handle: str, timeout: float = 20) -> Observation:
    deadline = time.monotonic() + timeout
    while True:
        seen = engine.poll({int(handle): handle})[int(handle)]
        if seen.state in TERMINAL_STATES:
            return seen
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)


def running(engine: LocalEngine, handle: str, marker: Path) -> None:
    """Wait until the job has started and written its first line."""
    deadline = time.monotonic() + 20
    while not (marker.exists() and marker.read_bytes()):
        assert engine.poll({int(handle): handle})[int(handle)].state not in TERMINAL_STATES
        assert time.monotonic() < deadline, "the victim never started"
        time.sleep(0.05)


def ca_private_body(state: Path) -> str:
    """Make the factory's SSH CA key in `state`; a line of its private key, which no job
    may ever print."""
    ssh_ca.ensure(state)
    return ssh_ca.ca_key_file(state).read_text().splitlines()[1]


def attack(victim_dir: Path, state: Path, staged: Path) -> str:
    """Everything the tester did from inside a job, and a little more."""
    runner = local_runner.read_json(victim_dir / local_runner.RUNNER_FILE) or {}
    started = local_runner.read_json(victim_dir / local_runner.STARTED_FILE) or {}
    victim = victim_dir.name
    return "; ".join(
        [
            "id -u",
            f"cat ../{victim}/stdout",  # the tester's command, from the old job folder
            f"cat ../../{victim}/stdout",  # the same from the workspace
            f"cat {victim_dir}/stdout",
            f"ls {victim_dir}/work",
            f"cat {state}/master.key",
            f"cat {state}/ssh_ca",  # the factory's SSH certificate authority
            f"cat {staged}/patients",
            f"ls {state}",
            f"kill -9 {runner.get('pid')} {started.get('pid')}",
            # Every process it may signal; never as root, should a regression run it so.
            '[ "$(id -u)" -ne 0 ] && kill -9 -1',
            'echo \'{"exit_code": 0, "forged": 1}\' > ../status.json',  # forge its end
            "echo attack-over",
        ]
    )


@needs_root
def test_a_job_cannot_read_or_kill_another_tenants_job_on_the_engine(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    key = os.urandom(32).hex()
    (state / "master.key").write_text(key)
    ca_secret = ca_private_body(state)
    staged = state / "staging" / "job-1"
    staged.mkdir(parents=True)
    (staged / "patients").write_bytes(DATA)
    engine = engine_at(state)

    victim = engine.submit(
        EngineJob(
            1,
            JobSpec(
                name="victim",
                command=("bash", "-c", 'echo victim-secret; sha256sum "$FABRIEK_DATASETS/patients"; sleep 4'),
                environment={"FABRIEK_DATASETS": str(staged)},
            ),
            owner=ALICE,
            datasets_dir=staged,
        )
    )  # fmt: skip
    victim_dir = engine.state_dir / victim
    running(engine, victim, victim_dir / "stdout")
    command = attack(victim_dir, state, staged)
    mallory = engine.submit(
        EngineJob(2, JobSpec(name="x", command=("bash", "-c", command)), owner=MALLORY)
    )
    attacked = ended(engine, mallory)
    out = engine.read_log(mallory, LogStream.STDOUT).decode()
    err = engine.read_log(mallory, LogStream.STDERR).decode()

    # The attacker runs as its own unprivileged user and learns nothing.
    assert attacked.state is JobState.COMPLETED  # it ran to its end, every step refused
    assert out.splitlines()[0] == str(DEFAULT_ID_BASE + MALLORY.user_id)
    assert "attack-over" in out
    assert "victim-secret" not in out and key not in out and "patient,age" not in out
    assert ca_secret not in out and "OPENSSH PRIVATE KEY" not in out
    assert err.count("No such file or directory") >= 6
    assert "victim" not in out.split("attack-over")[0].replace(victim_dir.name, "")
    # The victim ran on, untouched, and ended by itself.
    seen = ended(engine, victim)
    assert (seen.state, seen.exit_code) == (JobState.COMPLETED, 0)
    assert engine.read_log(victim, LogStream.STDOUT).decode().split()[:2] == [
        "victim-secret",
        hashlib.sha256(DATA).hexdigest(),
    ]
    # The attacker's forged end went nowhere: the runner's records are the root's.
    assert re.search(r"\.\./status\.json: (Permission denied|Read-only file system)", err)
    assert "forged" not in json.loads((engine.state_dir / mallory / "status.json").read_text())


@needs_root
def test_a_job_runs_as_its_owner_with_its_own_workspace_tmp_and_processes(
    tmp_path: Path,
) -> None:
    engine = engine_at(tmp_path)
    probe = f"fabriek-probe-{os.getpid()}"
    script = f"id -u; id -g; id -G; whoami; echo $HOME; pwd; touch made /tmp/{probe}; ls /tmp/{probe}; ps -e -o pid= | wc -l; umask; cat /proc/self/status | grep NoNewPrivs"
    handle = engine.submit(EngineJob(5, JobSpec(name="who", command=("bash", "-c", script)), owner=ALICE))  # fmt: skip
    seen = ended(engine, handle)
    assert seen.state is JobState.COMPLETED, engine.read_log(handle, LogStream.STDERR)
    work = engine.state_dir / handle / "work"
    uid, gid = DEFAULT_ID_BASE + ALICE.user_id, DEFAULT_ID_BASE + ALICE.project_id
    lines = engine.read_log(handle, LogStream.STDOUT).decode().splitlines()
    assert lines[:6] == [str(uid), str(gid), str(gid), "alice", str(work), str(work)]
    assert lines[6] == f"/tmp/{probe}"  # written to a /tmp of its own ...
    assert not Path("/tmp", probe).exists()  # ... not the machine's
    assert int(lines[7]) <= 4  # bash, ps, wc and the jail: no other process in sight
    assert lines[8] == "0077"
    assert lines[9].split() == ["NoNewPrivs:", "1"]
    # What it made is its own, in a workspace only it may enter.
    assert (work / "made").stat().st_uid == uid and (work / "made").stat().st_gid == gid
    assert work.stat().st_uid == uid and work.stat().st_mode & 0o777 == 0o700
    # The runner's records are the root's and out of its reach.
    assert (engine.state_dir / handle / "status.json").stat().st_uid == 0
    assert engine.state_dir.stat().st_mode & 0o777 == 0o700


@needs_root
def test_a_job_without_an_owner_never_runs(tmp_path: Path) -> None:
    with pytest.raises(EngineRejected, match="names no owner"):
        engine_at(tmp_path).submit(EngineJob(1, JobSpec(name="x", command=("true",))))


def test_single_user_mode_says_so_and_runs_one_project_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        engine = engine_at(tmp_path, isolation=Isolation.SINGLE_USER)
    assert "single-user mode" in caplog.text
    first = engine.submit(EngineJob(1, JobSpec(name="a", command=("true",)), owner=ALICE))
    assert ended(engine, first).state is JobState.COMPLETED
    with pytest.raises(EngineRejected, match=r"single-user mode .* project 'climate' only"):
        engine.submit(EngineJob(2, JobSpec(name="b", command=("true",)), owner=MALLORY))
    # The claim outlives a restart of the control plane.
    again = engine_at(tmp_path, isolation=Isolation.SINGLE_USER)
    with pytest.raises(EngineRejected, match="single-user mode"):
        again.submit(EngineJob(3, JobSpec(name="c", command=("true",)), owner=MALLORY))
    colleague = JobOwner(user_id=9, user="bob", project_id=3, project="climate")
    assert ended(again, again.submit(EngineJob(4, JobSpec(name="d", command=("true",)), owner=colleague))).state is JobState.COMPLETED  # fmt: skip


owners = st.builds(
    JobOwner,
    user_id=st.integers(1, 10**6),
    user=st.just("u"),
    project_id=st.integers(1, 10**6),
    project=st.just("p"),
)


@given(owners, owners)
def test_people_and_projects_never_share_an_id(a: JobOwner, b: JobOwner) -> None:
    one, two = local_identity(a), local_identity(b)
    assert min(one.uid, one.gid) > DEFAULT_ID_BASE  # never root, never the machine's own
    assert (one.uid == two.uid) == (a.user_id == b.user_id)
    assert (one.gid == two.gid) == (a.project_id == b.project_id)


def test_ids_beyond_the_range_are_refused() -> None:
    with pytest.raises(IdentityOutOfRange, match="FABRIEK_LOCAL_ID_BASE"):
        local_identity(JobOwner(2**31, "u", 1, "p"))
    with pytest.raises(IdentityOutOfRange, match="machine's own accounts"):
        local_identity(ALICE, base=0)
