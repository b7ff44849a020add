"""Datasets at Slurm sites, the pure part and the folder work: where a job's copy goes in
the staging folder a site declares, with which modes, which sites can hand jobs their data
(a submission with none is refused), the sites-file keys; and, on this machine's disk, the
copy handed to the job's account, removed, and swept after a crash."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.accounts import JobOwner
from fabriek.domain.capacity import SiteShape, why_never_fits
from fabriek.domain.dataset_staging import (
    FOLDER_MODE,
    NOT_STAGED,
    SiteStaging,
    StagingConfigError,
    dataset_sites,
    job_folder_name,
    site_staging,
    staged_mode,
    staging_path,
    without_unstaged,
)
from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.domain.residency import ResidencyVerdict
from fabriek.domain.sites import NodeGroup
from fabriek.services.jobs import datasets as job_datasets
from fabriek.services.jobs import site_staging as staging_io
from fabriek.services.jobs.engine_registry import EngineConfig, EngineRegistry, unstaged_sites

SEGMENTS = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
TAGS = st.from_regex(r"fbk-[0-9a-f]{8}", fullmatch=True)
IDS = st.integers(min_value=1, max_value=10**12)


@given(st.lists(SEGMENTS, min_size=1, max_size=4), st.lists(SEGMENTS, max_size=3), TAGS, IDS)
def test_a_jobs_copy_is_inside_the_installations_folder_as_both_sides_see_it(
    nodes: list[str], here: list[str], tag: str, job_id: int
) -> None:
    root = "/" + "/".join(nodes)
    local = "/" + "/".join(here) if here else None
    staging = site_staging("siteb", root, tag, local)
    seen_by_job, written = staging.job_path(job_id), staging.local_job_path(job_id)
    assert seen_by_job.parent == PurePosixPath(root) / tag
    assert written.parent == staging.folder == PurePosixPath(local or root) / tag
    assert seen_by_job.name == written.name == job_folder_name(job_id)
    # The same name the sweep reads job ids back from (shared with the local staging).
    assert job_datasets.staging_dir(Path("/x"), job_id).name == job_folder_name(job_id)


@given(IDS, IDS)
def test_two_jobs_never_share_a_copy(a: int, b: int) -> None:
    staging = site_staging("s", "/shared/staging", "fbk-0123abcd")
    assert (staging.job_path(a) == staging.job_path(b)) == (a == b)


@pytest.mark.parametrize("text", ["relative/path", "staging", "/shared/../etc", "/", "../x", ""])
def test_a_staging_folder_must_be_a_plain_absolute_path(text: str) -> None:
    with pytest.raises(StagingConfigError):
        staging_path(text)


def test_an_installation_tag_is_one_plain_name() -> None:
    with pytest.raises(StagingConfigError):
        SiteStaging("s", PurePosixPath("/a"), PurePosixPath("/a"), "../other")


@given(st.booleans())
def test_a_copy_is_read_only_to_its_owner_and_closed_to_everyone_else(is_dir: bool) -> None:
    mode = staged_mode(is_dir)
    assert mode & 0o077 == 0  # nothing for the group or anyone else
    assert mode & 0o200 == 0  # not even its owner may write
    assert mode & 0o400  # its owner reads
    assert bool(mode & 0o100) == is_dir  # and enters a folder
    # The installation's folder: passed through by all, listed by none.
    assert FOLDER_MODE & 0o044 == 0 and FOLDER_MODE & 0o011 == 0o011


GROUPS = st.builds(
    NodeGroup,
    name=st.just("g"),
    count=st.integers(1, 4),
    gpu_type=st.sampled_from(["h100", "a100"]),
    gpus_per_node=st.sampled_from([2, 4, 8]),
    cpus_per_node=st.just(64),
    memory_gb_per_node=st.just(512),
)
SITES = st.lists(st.tuples(GROUPS, st.booleans()), min_size=1, max_size=4).map(
    lambda items: [
        SiteShape(f"s{i}", (g,), 3600, stages_datasets=staged)
        for i, (g, staged) in enumerate(items)
    ]
)


@given(SITES, st.integers(0, 40), st.sampled_from([None, "h100", "a100"]))
def test_only_sites_that_stage_datasets_are_offered_and_none_means_a_refusal(
    sites: list[SiteShape], gpus: int, gpu_type: str | None
) -> None:
    spec = JobSpec("j", ("x",), gpus=gpus, gpu_type=gpu_type if gpus else None)
    staging = [s for s in sites if s.stages_datasets]
    try:
        offered = dataset_sites(spec, sites)
    except InvalidInput as refused:
        # Refused only when no site that can hand it its data could ever hold it.
        assert not staging or why_never_fits(spec, staging) is not None
        assert refused.problems and refused.problems[0].field in {"datasets", "gpus", "gpu_type"}
        return
    assert offered == staging and why_never_fits(spec, staging) is None


@given(
    st.frozensets(st.sampled_from("abcdef")),
    st.frozensets(st.sampled_from("abcdef")),
    st.frozensets(st.sampled_from("abcdef")),
)
def test_a_waiting_job_is_kept_from_sites_that_cannot_stage_and_told_why(
    allowed: frozenset[str], other: frozenset[str], unstaged: frozenset[str]
) -> None:
    excluded = {s: "outside the EU" for s in other - allowed}
    narrowed = without_unstaged(ResidencyVerdict(allowed, excluded), unstaged)
    assert narrowed.allowed == allowed - unstaged
    assert not narrowed.allowed & set(narrowed.excluded)
    for site in allowed & unstaged:
        assert narrowed.excluded[site] == NOT_STAGED and site in narrowed.explain()
    assert {s: narrowed.excluded[s] for s in excluded} == excluded  # the data's own reasons


def test_the_refusal_names_the_sites_file_key() -> None:
    site = SiteShape("delft", (NodeGroup("g", 1, "h100", 8, 64, 512),), 3600, stages_datasets=False)
    with pytest.raises(InvalidInput, match="dataset_staging in the sites"):
        dataset_sites(JobSpec("j", ("x",), gpus=1), [site])


def test_the_sites_file_keys() -> None:
    slurm = EngineConfig(engine="slurm", slurm_conf="/x", dataset_staging="/shared/staging")
    bare = EngineConfig(engine="slurm", slurm_conf="/x")
    assert slurm.stages_datasets() and not bare.stages_datasets()
    assert EngineConfig().stages_datasets()  # local: the dispatcher stages itself
    assert unstaged_sites({"a": slurm, "b": bare, "c": EngineConfig()}) == {"b"}
    with pytest.raises(ValueError, match="stages datasets itself"):
        EngineConfig(engine="local", dataset_staging="/shared/staging")
    with pytest.raises(ValueError, match="absolute"):
        EngineConfig(engine="slurm", slurm_conf="/x", dataset_staging="staging")
    with pytest.raises(ValueError, match="needs dataset_staging"):
        EngineConfig(engine="slurm", slurm_conf="/x", dataset_staging_local="/mnt/staging")


def test_the_registry_names_each_sites_staging_with_the_installations_tag(
    tmp_path: Path,
) -> None:
    configs = {
        "siteb": EngineConfig(
            engine="slurm",
            slurm_conf="/x",
            dataset_staging="/shared/st",
            dataset_staging_local="/mnt/st",
        ),
        "sitez": EngineConfig(engine="slurm", slurm_conf="/x"),
    }
    registry = EngineRegistry(tmp_path, configs, tag_prefix="fbk-0123abcd")
    found = registry.dataset_staging("siteb")
    assert found is not None and registry.dataset_stagings() == [found]
    assert found.job_path(7) == PurePosixPath("/shared/st/fbk-0123abcd/job-7")
    assert found.local_job_path(7) == PurePosixPath("/mnt/st/fbk-0123abcd/job-7")
    assert registry.dataset_staging("sitez") is None
    assert registry.dataset_staging("elsewhere") is None


# --- the folder work, on this machine's disk ------------------------------------------------

USER = "fabriek-stager"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="handing files over needs root")


def _account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--no-create-home", "--shell", "/bin/sh", USER],
            check=True, capture_output=True,
        )  # fmt: skip
        return pwd.getpwnam(USER)


def _staging(tmp_path: Path) -> SiteStaging:
    root = tmp_path / "shared"
    root.mkdir()
    return site_staging("siteb", str(root), "fbk-0123abcd")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every account may pass through (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="fabriek-stage-test-", dir="/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@as_root
def test_a_copy_is_handed_to_the_jobs_account_read_only(open_dir: Path) -> None:
    who = _account()
    copy = open_dir / "job-1"
    (copy / "nested").mkdir(parents=True)
    (copy / "corpus").write_bytes(b"data")
    (copy / "nested" / "part").write_bytes(b"more")
    staging_io.hand_over(copy, who.pw_uid, who.pw_gid)
    for path in (copy, copy / "nested", copy / "corpus", copy / "nested" / "part"):
        seen = path.stat()
        assert (seen.st_uid, seen.st_gid) == (who.pw_uid, who.pw_gid)
        assert stat.S_IMODE(seen.st_mode) == staged_mode(path.is_dir())
    # Another account reads nothing of it.
    other = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "cat", str(copy / "corpus")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert other.returncode != 0 and "Permission denied" in other.stderr
    mine = subprocess.run(
        ["setpriv", f"--reuid={who.pw_uid}", f"--regid={who.pw_gid}", "--clear-groups",
         "cat", str(copy / "corpus")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert mine.stdout == "data", mine.stderr


@as_root
def test_a_site_copy_is_removed_and_a_crashs_leftovers_swept(tmp_path: Path) -> None:
    who = _account()
    staging = _staging(tmp_path)
    folder = staging_io._installation_folder(staging)
    assert stat.S_IMODE(folder.stat().st_mode) == FOLDER_MODE
    for job_id in (1, 2, 3):
        copy = Path(staging.local_job_path(job_id))
        copy.mkdir()
        (copy / "corpus").write_bytes(b"secret")
        staging_io.hand_over(copy, who.pw_uid, who.pw_gid)
    (folder / ".job-4.partial").mkdir()  # a copy cut off half-way
    other = Path(staging.local_root) / "fbk-ffffffff" / "job-1"  # another installation's
    other.mkdir(parents=True)
    staging_io.unstage(staging, 1)
    assert not Path(staging.local_job_path(1)).exists()
    assert staging_io.sweep(staging, active={2}) == [3, 4]
    assert sorted(p.name for p in folder.iterdir()) == ["job-2"]
    assert other.is_dir()  # never another control plane's


def test_a_copy_needs_an_owner_an_account_and_the_mounted_folder(tmp_path: Path) -> None:
    staging = _staging(tmp_path)
    stored = [{"dataset_id": 1, "project": "p", "name": "d", "version": 1, "version_id": 1,
               "residency": "eu", "personal": False}]  # fmt: skip
    nobody = JobOwner(1, "no-such-account-here", 1, "p")
    args = (staging, 9, 1, stored)
    with pytest.raises(staging_io.StagingFailed, match="without an owner"):
        staging_io.stage(None, None, *args, None)  # type: ignore[arg-type]
    with pytest.raises(staging_io.StagingFailed, match="unknown"):
        staging_io.stage(None, None, *args, nobody)  # type: ignore[arg-type]
    assert staging_io.stage(None, None, staging, 9, 1, [], nobody) is None  # type: ignore[arg-type]
    unmounted = site_staging("siteb", str(tmp_path / "not-mounted"), "fbk-0123abcd")
    with pytest.raises(staging_io.StagingFailed, match="mounted"):
        staging_io._installation_folder(unmounted)
