"""The site agent against a real Slurm 22.05 site with slurmdbd on MariaDB: its appliers
called as a library make POSIX accounts, QOS, accounts, GrpTRESMins limits and user
associations; Slurm itself then enforces the budgets.

Unix accounts and groups of these tests are named `fab-...` with IDs from 1900200000, so
that they collide with no other test's; the module removes those it made.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from fabriek.domain.site_state import (
    AgentReport,
    DesiredState,
    PosixGroup,
    PosixUser,
    SlurmAccount,
    SlurmAssociation,
    SlurmQos,
)
from fabriek.engines.slurmrestd import JwtSigner
from fabriek.site_agent.apply import AgentConfig, apply_state
from tests.slurm_harness import SlurmCluster, SlurmClusterError, ensure_accounting_installed
from tests.slurmrestd_install import ensure_slurmrestd_installed

pytestmark = pytest.mark.slurm

CLUSTER = "agenta"
BASE = 1_900_200_000
# name -> uid (= gid of the person's own group)
PEOPLE = {"fab-ann": BASE + 1, "fab-bea": BASE + 2, "fab-cas": BASE + 3}
PROJECTS = {"fab-p-climate": BASE + 501, "fab-p-dry": BASE + 502}
# A system account made by hand at the site, whose name Fabriek would also give out.
SQUATTER = ("fab-sys", BASE + 90)


@pytest.fixture(scope="module")
def site(slurm_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    if reason := ensure_accounting_installed():
        pytest.skip(reason)
    forget_people()  # what a killed earlier run left
    key = tmp_path_factory.mktemp("jwt") / "jwt_hs256.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    cluster = SlurmCluster(CLUSTER, gpu_type="h100", gpus=2, accounting=True, jwt_key=key)
    try:
        cluster.start()
    except SlurmClusterError as error:
        cluster.remove()
        pytest.fail(f"the accounting test site did not start:\n{error}")
    try:
        yield cluster
    finally:
        cluster.stop()
        cluster.remove()
        forget_people()


def forget_people() -> None:
    """Remove this module's own Unix accounts and groups (their homes are in a temporary
    folder)."""
    for name in [*PEOPLE, SQUATTER[0], "fab-new"]:
        subprocess.run(["userdel", name], capture_output=True)
    for name in [*PEOPLE, *PROJECTS, SQUATTER[0]]:
        subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture(scope="module")
def config(site: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> AgentConfig:
    root = tmp_path_factory.mktemp("agent")
    homes = root / "home"
    homes.mkdir()
    return AgentConfig(
        state_dir=root / "state",
        home_base=homes,
        ssh_ca_file=root / "ssh" / "fabriek_user_ca.pub",
        slurm_env=site.env,
    )


def person(name: str, *projects: str, locked: bool = False) -> PosixUser:
    return PosixUser(name, PEOPLE[name], PEOPLE[name], groups=projects, locked=locked)


def desired(**changes: object) -> DesiredState:
    """The site as the control plane wants it: climate (ann, bea) with 600 GPU-minutes
    left, dry (cas) with none."""
    state = DesiredState(
        site="site-a",
        cluster=CLUSTER,
        groups=tuple(PosixGroup(n, g) for n, g in {**PEOPLE, **PROJECTS}.items()),
        users=(
            person("fab-ann", "fab-p-climate"),
            person("fab-bea", "fab-p-climate"),
            person("fab-cas", "fab-p-dry"),
        ),
        qos=(SlurmQos("fab-standard", 100, 120), SlurmQos("fab-scavenger", 1, None, True)),
        accounts=(
            SlurmAccount("fab-climate", 600, ("fab-standard", "fab-scavenger"), "Climate"),
            SlurmAccount("fab-dry", 0, ("fab-standard",), "Ran out"),
        ),
        associations=(
            SlurmAssociation("fab-ann", "fab-climate"),
            SlurmAssociation("fab-bea", "fab-climate"),
            SlurmAssociation("fab-cas", "fab-dry"),
        ),
        ssh_ca_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFabriekTestCA fabriek-ca",
    )
    return replace(state, **changes)  # type: ignore[arg-type]


def sh(cluster: SlurmCluster, *argv: str) -> str:
    done = subprocess.run(argv, env=cluster.client_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assocs(cluster: SlurmCluster) -> dict[tuple[str, str], list[str]]:
    out = sh(
        cluster,
        *("sacctmgr", "-P", "-n", "show", "assoc", f"cluster={CLUSTER}"),
        "format=Account,User,GrpTRESMins,QOS,DefaultQOS,MaxSubmitJobs",
    )
    return {(r[0], r[1]): r[2:] for r in (line.split("|") for line in out.splitlines())}


def names(changes: object) -> list[tuple[str, str]]:
    return [(c.kind, c.name) for c in changes]  # type: ignore[attr-defined]


def sbatch_as(
    cluster: SlurmCluster, user: str, account: str, seconds: int
) -> subprocess.CompletedProcess[str]:
    """`sbatch` typed by the person at the site (as they would after logging in)."""
    return subprocess.run(
        ["runuser", "-u", user, "--", "env", f"SLURM_CONF={cluster.conf}", "sbatch", "--parsable",
         "-A", account, "-G", "1", "-t", "5", "-o", "/dev/null", "--chdir", "/tmp",
         "--wrap", f"sleep {seconds}"],
        capture_output=True,
        text=True,
    )  # fmt: skip


def job_state(cluster: SlurmCluster, job_id: str) -> tuple[str, str]:
    out = sh(cluster, "squeue", "-h", "-j", job_id, "-o", "%T|%r").strip()
    if out:
        state, reason = out.split("|")
        return state, reason
    done = sh(cluster, "sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State").split()
    return (done[0] if done else "GONE"), ""


def wait_for(cluster: SlurmCluster, job_id: str, states: set[str], timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state, reason = job_state(cluster, job_id)
        if state in states:
            return state
        assert time.monotonic() < deadline, (state, reason)
        time.sleep(0.5)


def test_first_run_makes_the_site_and_a_second_changes_nothing(
    site: SlurmCluster, config: AgentConfig
) -> None:
    report = apply_state(desired(), config)
    assert report.errors == ()
    assert report.drift == ()
    assert ("account", "fab-climate") in names(report.applied)
    assert ("association", "fab-cas in fab-dry") in names(report.applied)
    # POSIX: the person's own group as primary, the project's as supplementary, a home.
    ann = subprocess.run(["id", "fab-ann"], capture_output=True, text=True).stdout
    assert f"uid={PEOPLE['fab-ann']}(fab-ann)" in ann and "fab-p-climate" in ann
    assert (config.home_base / "fab-ann").is_dir()  # type: ignore[operator]
    assert config.ssh_ca_file is not None
    assert config.ssh_ca_file.read_text().startswith("ssh-ed25519 ")
    assert config.ssh_ca_file.stat().st_mode & 0o777 == 0o644
    # Slurm: accounts with their limit and QOS, members' associations.
    found = assocs(site)
    assert found[("fab-climate", "")] == [
        "gres/gpu=600",
        "fab-scavenger,fab-standard",
        "fab-standard",
        "",
    ]
    assert found[("fab-dry", "")][0] == "gres/gpu=0"
    assert {("fab-climate", "fab-ann"), ("fab-climate", "fab-bea"), ("fab-dry", "fab-cas")} <= set(
        found
    )
    qos = sh(
        site,
        "sacctmgr",
        "-P",
        "-n",
        "show",
        "qos",
        "format=Name,Priority,MaxWall,Preempt,PreemptMode",
    )
    assert "fab-standard|100|02:00:00|fab-scavenger|cluster" in qos.splitlines()
    assert "fab-scavenger|1|||requeue" in qos.splitlines()

    again = apply_state(desired(), config)
    assert (again.applied, again.drift, again.errors) == ((), (), ())
    assert again.generation == report.generation


def test_a_limit_raised_by_hand_is_drift_and_put_back(
    site: SlurmCluster, config: AgentConfig
) -> None:
    apply_state(desired(), config)
    site.sacctmgr("modify", "account", "where", "name=fab-climate", f"cluster={CLUSTER}",
                  "set", "grptresmins=gres/gpu=999999")  # fmt: skip
    site.sacctmgr("delete", "user", "name=fab-bea", "account=fab-climate", f"cluster={CLUSTER}")

    report = apply_state(desired(), config)

    drift = {c.name: c.detail for c in report.drift}
    assert "gpu_minutes_limit 999999 -> 600" in drift["fab-climate"]
    assert drift["fab-bea in fab-climate"] == "removed by hand; made again"
    assert report.applied == () and report.errors == ()
    found = assocs(site)
    assert found[("fab-climate", "")][0] == "gres/gpu=600"
    assert ("fab-climate", "fab-bea") in found


def test_no_gpu_minutes_left_stops_new_jobs_in_slurm_and_an_award_starts_them(
    site: SlurmCluster, config: AgentConfig
) -> None:
    apply_state(desired(), config)
    done = sbatch_as(site, "fab-cas", "fab-dry", 1)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().split(";")[0]
    time.sleep(3)  # a few scheduling passes: it must still wait
    assert job_state(site, job_id) == ("PENDING", "AssocGrpGRESMinutes")

    # The project is awarded 60 GPU-minutes: the agent raises the limit, Slurm starts it.
    awarded = desired(
        accounts=(
            SlurmAccount("fab-climate", 600, ("fab-standard", "fab-scavenger"), "Climate"),
            SlurmAccount("fab-dry", 60, ("fab-standard",), "Ran out"),
        )
    )
    report = apply_state(awarded, config)
    assert [c.name for c in report.applied] == ["fab-dry"]
    assert "GrpTRESMins gres/gpu=60" in report.applied[0].detail
    assert wait_for(site, job_id, {"RUNNING", "COMPLETED"}) in {"RUNNING", "COMPLETED"}
    # Back to nothing left, as the other tests expect.
    apply_state(desired(), config)


def test_a_member_removed_while_their_job_runs(site: SlurmCluster, config: AgentConfig) -> None:
    apply_state(desired(), config)
    done = sbatch_as(site, "fab-ann", "fab-climate", 6)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().split(";")[0]
    wait_for(site, job_id, {"RUNNING"})
    without_ann = desired(
        associations=(
            SlurmAssociation("fab-bea", "fab-climate"),
            SlurmAssociation("fab-cas", "fab-dry"),
        ),
    )

    report = apply_state(without_ann, config)

    (change,) = [c for c in report.applied if c.kind == "association"]
    assert change.name == "fab-ann in fab-climate"
    assert "no new jobs (MaxSubmitJobs=0)" in change.detail
    refused = sbatch_as(site, "fab-ann", "fab-climate", 1)
    assert refused.returncode != 0
    assert "AssocMaxSubmitJobLimit" in refused.stderr
    assert wait_for(site, job_id, {"COMPLETED"}) == "COMPLETED"  # their job finishes

    later = apply_state(without_ann, config)
    assert [(c.name, c.detail) for c in later.applied] == [
        ("fab-ann in fab-climate", "no longer a member: association removed")
    ]
    assert later.drift == ()
    assert ("fab-climate", "fab-ann") not in assocs(site)
    apply_state(desired(), config)  # ann back in, for the other tests


def test_names_and_ids_taken_at_the_site_are_errors_not_changes(
    site: SlurmCluster, config: AgentConfig
) -> None:
    name, uid = SQUATTER
    subprocess.run(["useradd", "-M", "-u", str(uid), name], check=True, capture_output=True)
    before = subprocess.run(["getent", "passwd", name], capture_output=True, text=True).stdout
    state = desired(
        users=(
            *desired().users,
            # Fabriek gives fab-sys another UID, and fab-sys's UID to a newcomer.
            PosixUser(name, BASE + 91, PEOPLE["fab-ann"]),
            PosixUser("fab-new", uid, PEOPLE["fab-ann"]),
        )
    )

    report = apply_state(state, config)

    errors = {c.name: c.detail for c in report.errors}
    assert errors[name] == (
        f"username 'fab-sys' already belongs to UID {uid} at this site, Fabriek gives it "
        f"UID {BASE + 91}: not touched"
    )
    assert errors["fab-new"] == (
        f"UID {uid} already belongs to 'fab-sys' at this site, Fabriek gives it to "
        "'fab-new': not touched"
    )
    assert name not in {c.name for c in report.applied}
    assert (
        subprocess.run(["getent", "passwd", name], capture_output=True, text=True).stdout == before
    )
    assert subprocess.run(["getent", "passwd", "fab-new"], capture_output=True).returncode == 2


def test_a_locked_person_is_kept_with_their_files_and_cannot_log_in(
    site: SlurmCluster, config: AgentConfig
) -> None:
    apply_state(desired(), config)
    users = desired().users
    locked = desired(users=(person("fab-ann", "fab-p-climate", locked=True), *users[1:]))

    report = apply_state(locked, config)

    assert [(c.kind, c.name, c.detail) for c in report.applied] == [
        ("user", "fab-ann", "locked False -> True")
    ]
    shadow = subprocess.run(["getent", "shadow", "fab-ann"], capture_output=True, text=True)
    # Expired and password locked: no login by password, key or certificate.
    assert shadow.stdout.split(":")[7] == "1" and shadow.stdout.split(":")[1] == "!*"
    assert (config.home_base / "fab-ann").is_dir()  # type: ignore[operator]
    # Gone from the desired state altogether: still locked, never deleted.
    gone = apply_state(desired(users=users[1:]), config)
    assert "fab-ann" not in {c.name for c in gone.applied if c.kind == "user"}
    assert subprocess.run(["id", "fab-ann"], capture_output=True).returncode == 0
    unlocked = apply_state(desired(), config)
    assert ("user", "fab-ann") in names(unlocked.applied)
    shadow = subprocess.run(["getent", "shadow", "fab-ann"], capture_output=True, text=True)
    # No password ('*', not '!': sshd without PAM takes '!' for locked) and not expired.
    assert shadow.stdout.split(":")[7] == "" and shadow.stdout.split(":")[1] == "*"


def test_a_report_travels_as_json(site: SlurmCluster, config: AgentConfig) -> None:
    report = apply_state(desired(), config)
    assert AgentReport.from_json(report.to_json()) == report
    limits = report.details["gpu_minutes_limits"]
    assert set(limits) == {"fab-climate", "fab-dry"} and limits["fab-climate"] == 600


def test_the_sites_accounting_api_shows_what_the_agent_made(
    site: SlurmCluster, config: AgentConfig
) -> None:
    if reason := ensure_slurmrestd_installed():
        pytest.skip(reason)
    apply_state(desired(), config)
    url = site.start_rest(("openapi/v0.0.38", "openapi/dbv0.0.38"))
    assert site.jwt_key is not None
    token = JwtSigner(site.jwt_key).token_for("root")
    headers = {"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": token}
    try:
        answer = httpx.get(f"{url}/slurmdb/v0.0.38/associations", headers=headers, timeout=30)
    finally:
        site.stop_rest()
    assert answer.status_code == 200, answer.text
    found = {(a["account"], a.get("user")) for a in answer.json()["associations"]}
    assert {("fab-climate", "fab-ann"), ("fab-dry", "fab-cas")} <= found
