"""The slurmrestd engine against a real Slurm 22.05 site served by its real slurmrestd.

The site trusts JSON Web Tokens signed with its own key (AuthAltTypes=auth/jwt); the engine
holds that key and nothing else of the site: no munge key, no SLURM_CONF, no Slurm command.
Jobs run as their owners (two real Unix accounts, made by the test setup) and are charged to
their projects' Slurm accounts.
"""

from __future__ import annotations

import ast
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.domain.accounts import JobOwner
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import JobSpec
from fabriek.engines import slurmrestd
from fabriek.engines.base import EngineJob, EngineRejected, EngineUnavailable, LogStream
from fabriek.engines.slurmrestd import JwtSigner, SlurmRestEngine
from fabriek.engines.slurmrestd_request import API_VERSION, build_submission
from tests.slurm.conftest import ALICE, BOB, TEST_USERS
from tests.slurm_harness import SlurmCluster, SlurmClusterError
from tests.slurmrestd_install import ensure_slurmrestd_installed

pytestmark = pytest.mark.slurm

DATA = Path(__file__).parent / "data"
USERS = TEST_USERS


@pytest.fixture(scope="module")
def site(slurm_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    if reason := ensure_slurmrestd_installed():
        pytest.skip(reason)
    key = tmp_path_factory.mktemp("jwt") / "jwt_hs256.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    cluster = SlurmCluster("rest", gpu_type="h100", gpus=2, jwt_key=key)
    try:
        cluster.start()
    except SlurmClusterError as error:
        cluster.remove()
        pytest.fail(f"the test site did not start:\n{error}")
    try:
        yield cluster
    finally:
        cluster.stop()
        cluster.remove()


@pytest.fixture(scope="module")
def engine(site: SlurmCluster, shared_logs: Path) -> Iterator[SlurmRestEngine]:
    url = site.start_rest()
    assert site.jwt_key is not None
    made = SlurmRestEngine(
        "rest", url, JwtSigner(site.jwt_key), shared_logs, operator="root", tag_prefix="fbkrest"
    )
    yield made
    made.close()


def ended(engine: SlurmRestEngine, job_id: int, handle: str, timeout: float = 60) -> JobState:
    deadline = time.monotonic() + timeout
    while True:
        seen = engine.poll({job_id: handle})[job_id]
        if seen.state in TERMINAL_STATES:
            return seen.state
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)


def job(job_id: int, command: str, owner: JobOwner = ALICE, **spec: object) -> EngineJob:
    return EngineJob(
        job_id,
        JobSpec(name=f"rest-{job_id}", command=("bash", "-c", command), **spec),  # type: ignore[arg-type]
        owner=owner,
    )


def test_a_job_runs_as_its_owner_charged_to_its_project(engine: SlurmRestEngine) -> None:
    alice = engine.submit(job(1, "id -un; echo $SLURM_JOB_ACCOUNT; echo oops >&2"))
    bob = engine.submit(job(2, "id -un; echo $SLURM_JOB_ACCOUNT", owner=BOB))
    assert ended(engine, 1, alice) is JobState.COMPLETED
    assert ended(engine, 2, bob) is JobState.COMPLETED
    assert engine.read_log(alice, LogStream.STDOUT).split() == [b"fabriek-alice", b"climate"]
    assert engine.read_log(alice, LogStream.STDERR) == b"oops\n"
    assert engine.read_log(bob, LogStream.STDOUT).split() == [b"fabriek-bob", b"rivals"]
    # The output is the owner's own: theirs, and nobody else may read it.
    out = engine.log_dir / f"rest-{alice}.out"
    assert out.stat().st_uid == USERS["fabriek-alice"]
    assert out.stat().st_mode & 0o077 == 0


def test_one_poll_watches_every_job_and_cancel_stops_one(engine: SlurmRestEngine) -> None:
    sleeper = engine.submit(job(3, "sleep 120", gpus=1, gpu_type="h100"))
    deadline = time.monotonic() + 30
    while engine.poll({3: sleeper})[3].state is not JobState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    quick = engine.submit(job(4, "true", owner=BOB))
    seen = engine.poll({3: sleeper, 4: quick, 5: "999999"})
    assert seen[3].state is JobState.RUNNING and seen[3].gpu_seconds
    assert seen[5].state is JobState.LOST
    engine.cancel(sleeper)
    assert ended(engine, 3, sleeper) is JobState.CANCELLED
    engine.cancel(sleeper)  # cancelling an ended job is not an error
    engine.cancel("999999")  # nor one the site never had


def test_submit_is_idempotent_and_a_new_engine_finds_the_jobs(
    engine: SlurmRestEngine, site: SlurmCluster
) -> None:
    first = engine.submit(job(6, "true"))
    assert engine.submit(job(6, "echo again")) == first
    assert site.jwt_key is not None
    fresh = SlurmRestEngine(
        "rest", engine.url, JwtSigner(site.jwt_key), engine.log_dir,
        operator="root", tag_prefix="fbkrest",
    )  # fmt: skip
    assert fresh.known_jobs()[6] == first
    assert fresh.submit(job(6, "echo a third time")) == first
    fresh.close()


def test_a_job_without_an_owner_or_with_an_impossible_request_is_refused(
    engine: SlurmRestEngine,
) -> None:
    with pytest.raises(EngineRejected, match="no owner"):
        engine.submit(EngineJob(7, JobSpec(name="x", command=("true",))))
    with pytest.raises(EngineRejected, match="Slurm refused the job"):
        engine.submit(job(8, "true", gpus=1, gpu_type="mi300x"))


def test_a_wrong_key_is_a_clear_error_that_shows_no_secret(
    engine: SlurmRestEngine, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(secrets.token_bytes(32))
    signer = JwtSigner(wrong)
    impostor = SlurmRestEngine("rest", engine.url, signer, engine.log_dir, operator="root")
    with pytest.raises(EngineUnavailable, match="JWT key") as refused:
        impostor.poll({1: "1"})
    token = signer.token_for("root")
    assert token not in str(refused.value) and wrong.read_bytes().hex() not in str(refused.value)
    missing = SlurmRestEngine("rest", engine.url, JwtSigner(tmp_path / "none"), engine.log_dir)
    with pytest.raises(EngineUnavailable, match="cannot read the site's JWT key file"):
        missing.poll({1: "1"})
    impostor.close()
    missing.close()


def test_the_engine_holds_no_munge_key_and_runs_no_slurm_command() -> None:
    source = Path(slurmrestd.__file__).read_text()
    imported = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not imported & {"subprocess", "os"}, imported
    tree = ast.parse(source)
    words = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    assert not any("SLURM_CONF" in w or "munge" in w for w in words[1:])  # past the docstring


def test_the_body_uses_only_properties_the_pinned_api_declares() -> None:
    """Checked against the OpenAPI description slurmrestd 22.05 itself served (captured)."""
    spec = json.loads((DATA / "slurmrestd-22.05-openapi-v0.0.38.json").read_text())
    assert spec["info"]["version"] == API_VERSION.removeprefix("v")
    declared = spec["components"]["schemas"][f"{API_VERSION}_job_properties"]["properties"]
    body = build_submission(
        job(9, "true", gpus=3, gpu_type="h100", nodes=2, working_dir="/scratch"),
        engine="rest",
        log_dir=Path("/logs"),
        account="climate",
        partition="gpu",
    )
    assert set(body) == {"script", "job"}
    assert set(body["job"]) <= set(declared), set(body["job"]) - set(declared)
    for name, value in body["job"].items():
        kind = declared[name]["type"]
        assert isinstance(
            value, {"string": str, "integer": int, "array": list, "object": dict}[kind]
        )
    assert body["job"]["gpus"] == "h100:3"  # three GPUs over two nodes: Slurm spreads them
    assert f"/slurm/{API_VERSION}/job/submit" in spec["paths"]


def test_a_site_offering_another_api_version_is_named(
    engine: SlurmRestEngine, site: SlurmCluster
) -> None:
    """Last in the module: it serves the site's API in an older version only."""
    site.stop_rest()
    url = site.start_rest(plugins=("openapi/v0.0.37",))
    assert site.jwt_key is not None
    old = SlurmRestEngine("rest", url, JwtSigner(site.jwt_key), engine.log_dir, operator="root")
    with pytest.raises(EngineUnavailable) as refused:
        old.submit(job(10, "true"))
    assert "offers the REST API v0.0.37; Fabriek speaks v0.0.38" in str(refused.value)
    old.close()
    assert os.environ.get("SLURM_CONF") is None  # this process never pointed at the site
