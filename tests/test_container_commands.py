"""The command lines each container runtime gets (podman, Apptainer, Pyxis), and the Slurm
batch scripts that run a job in its image. Apptainer and Pyxis cannot run on this machine:
their lines are checked as text, and the scripts are run by bash with stand-ins for the
runtimes (named as such) that show what they were asked and then run the command."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.capacity import SiteShape, why_never_fits
from fabriek.domain.containers import (
    ContainerRun,
    ContainerRunError,
    ContainerRuntime,
    ContainerSupport,
    Mount,
    apptainer_argv,
    auth_file_text,
    container_argv,
    gpu_environment,
    image_sites,
    podman_argv,
    pyxis_argv,
    registry_host,
    script_line,
)
from fabriek.domain.errors import InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.domain.sbatch import spec_from_script
from fabriek.domain.sites import NodeGroup
from fabriek.engines.base import ContainerImage, EngineJob
from fabriek.engines.slurm_sbatch import SbatchInputError, build_script
from fabriek.services.jobs.engine_registry import EngineConfig

RUN = ContainerRun(
    reference="registry.example:5000/climate/torch@sha256:" + "a" * 64,
    argv=("python", "train.py", "--lr", "0.1"),
    workdir="/jobs/7/work",
    uid=70007,
    gid=80003,
    mounts=(Mount("/jobs/7/work", "/jobs/7/work", writable=True), Mount("/staged/7", "/data")),
    environment={"A": "1 2", "B": None},
    gpus=(2, 3),
    cdi=True,
    name="fabriek-local-7",
    auth_file="/jobs/7/registry-auth.json",
    global_options=("--runtime", "runc"),
    run_options=("--ulimit", "nofile=1024:1024"),
)


def test_podman_as_root_runs_the_job_as_its_user_with_only_its_mounts() -> None:
    assert podman_argv(RUN) == [
        "podman", "--runtime", "runc", "run", "--rm", "--name", "fabriek-local-7",
        "--user", "70007:80003", "--security-opt", "no-new-privileges", "--cap-drop", "all",
        "--network", "host", "--init",
        "-v", "/jobs/7/work:/jobs/7/work", "-v", "/staged/7:/data:ro",
        "-w", "/jobs/7/work", "--env", "A=1 2", "--env", "B",
        "--device", "nvidia.com/gpu=2", "--device", "nvidia.com/gpu=3",
        "--authfile", "/jobs/7/registry-auth.json", "--ulimit", "nofile=1024:1024",
        RUN.reference, "python", "train.py", "--lr", "0.1",
    ]  # fmt: skip


def test_rootless_runtimes_keep_the_callers_own_user() -> None:
    rootless = ContainerRun("img", ("true",), "/w", mounts=(Mount("/w", "/w", True),))
    assert podman_argv(rootless)[3:8] == ["--userns", "keep-id", "--security-opt",
                                          "no-new-privileges", "--cap-drop"]  # fmt: skip
    assert apptainer_argv(rootless) == [
        "apptainer",
        "exec",
        "--no-home",
        "--bind",
        "/w:/w",
        "--pwd",
        "/w",
        "docker://img",
        "true",
    ]
    assert pyxis_argv(rootless) == [
        "srun", "--ntasks=1", "--container-image=img", "--container-mounts=/w:/w",
        "--container-workdir=/w", "true",
    ]  # fmt: skip
    for build in (apptainer_argv, pyxis_argv):
        with pytest.raises(ContainerRunError, match="calling user"):
            build(RUN)  # they cannot switch to another UID


def test_apptainer_gets_nv_for_gpus_and_local_images_as_they_are() -> None:
    run = ContainerRun("/images/x.sif", ("nvidia-smi",), "/w", gpus=(0,), environment={"A": "1"})
    assert apptainer_argv(run) == [
        "apptainer", "exec", "--no-home", "--nv", "--pwd", "/w", "--env", "A=1",
        "/images/x.sif", "nvidia-smi",
    ]  # fmt: skip


def test_gpus_inside_are_renumbered_only_where_cdi_hands_over_the_devices() -> None:
    assert gpu_environment((2, 5), cdi=True) == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert gpu_environment((2, 5), cdi=False) == {"CUDA_VISIBLE_DEVICES": "2,5"}
    assert gpu_environment((), cdi=False) == {"CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"uid": 0, "gid": 0}, "never runs as root"),
        ({"uid": 5, "gid": 0}, "never runs as root"),
        ({"uid": 5, "gid": None}, "both"),
        ({"reference": "--privileged"}, "not an image reference"),
        ({"argv": ()}, "needs a command"),
        ({"environment": {"A B": "x"}}, "not a valid environment variable"),
        ({"mounts": (Mount("/a,b", "/a"),)}, "no ',' or ':'"),
    ],
)
def test_runs_no_runtime_may_be_asked_for(changes: dict[str, object], says: str) -> None:
    fields = {"reference": "img", "argv": ("true",), "workdir": "/w", **changes}
    with pytest.raises(ContainerRunError, match=says):
        ContainerRun(**fields)  # type: ignore[arg-type]


_PATHS = st.text(st.sampled_from("abz/_-. é"), min_size=1, max_size=12).map(lambda p: "/" + p)
_WORDS = st.lists(st.text(min_size=1, max_size=20).filter(lambda w: "\0" not in w), min_size=1)


@given(
    uid=st.integers(1, 2**31 - 1),
    gid=st.integers(1, 2**31 - 1),
    mounts=st.lists(st.tuples(_PATHS, _PATHS, st.booleans()), max_size=4),
    gpus=st.lists(st.integers(0, 15), unique=True, max_size=8),
    cdi=st.booleans(),
    argv=_WORDS,
)
def test_podman_never_runs_root_and_shows_every_mount_and_gpu(
    uid: int,
    gid: int,
    mounts: list[tuple[str, str, bool]],
    gpus: list[int],
    cdi: bool,
    argv: list[str],
) -> None:
    run = ContainerRun("img", tuple(argv), "/w", uid, gid,
                       tuple(Mount(*m) for m in mounts), {}, tuple(gpus), cdi)  # fmt: skip
    line = podman_argv(run)
    user = line[line.index("--user") + 1]
    assert user == f"{uid}:{gid}" and not user.startswith("0:")
    assert "--privileged" not in line and line[line.index("--cap-drop") + 1] == "all"
    shown = [line[i + 1] for i, word in enumerate(line) if word == "-v"]
    assert shown == [f"{s}:{t}" if w else f"{s}:{t}:ro" for s, t, w in mounts]
    devices = [line[i + 1] for i, word in enumerate(line) if word == "--device"]
    assert devices == ([f"nvidia.com/gpu={g}" for g in gpus] if cdi else [])
    assert line[-len(argv) :] == argv and line[-len(argv) - 1] == "img"


@given(argv=_WORDS, runtime=st.sampled_from(list(ContainerRuntime)))
def test_a_command_line_round_trips_through_the_shell(
    argv: list[str], runtime: ContainerRuntime
) -> None:
    run = ContainerRun("img", tuple(argv), "/w")
    line = container_argv(runtime, run)
    assert shlex.split(script_line(line)) == line


def test_script_variables_are_filled_in_by_the_shell_and_nothing_else_is() -> None:
    line = script_line(
        [
            "sh",
            "-c",
            'printf "%s\\n" "$0" "$@" "$R"',
            "${FABRIEK_WORK_DIR}:${USER}",
            "$HOME",
            "${HOME}",
        ],
        [("R", "/r/${USER}/$HOME")],
    )
    done = subprocess.run(
        ["sh", "-c", line],
        env={"FABRIEK_WORK_DIR": "/a b", "USER": "u", "HOME": "/root", "PATH": os.environ["PATH"]},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines() == ["/a b:u", "$HOME", "${HOME}", "/r/u/$HOME"]


def test_a_pull_credential_names_the_registry_of_the_image() -> None:
    assert registry_host("localhost:5000/p/x:1") == "localhost:5000"
    assert registry_host("registry.example/p/x") == "registry.example"
    assert registry_host("library/busybox") == registry_host("busybox") == "docker.io"
    text = json.loads(auth_file_text("localhost:5000/p/x@sha256:ab", "u", "p:w"))
    assert text == {"auths": {"localhost:5000": {"auth": "dTpwOnc="}}}


# -- Slurm batch scripts, run by bash with stand-in runtimes ------------------------------

STAND_IN = """#!/bin/bash
# A stand-in for {name} (it cannot run here): says what it was asked, then runs the command.
echo "{name} $*" >> "$STAND_IN_LOG"
{skip}
exec "$@"
"""
SKIPS = {
    # Past `exec` and every option (with its value) up to the image, then past the image.
    "apptainer": 'shift; while [ "${1#-}" != "$1" ]; do case "$1" in --nv|--no-home) shift;; '
    "*) shift 2;; esac; done; shift",
    "podman": 'while [ "$1" != run ]; do shift; done; shift; while [ "${1#-}" != "$1" ]; do '
    'case "$1" in --rm|--init) shift;; *) shift 2;; esac; done; shift',
    "srun": 'while [ "${1#-}" != "$1" ]; do shift; done',
}
SUPPORT = {
    "apptainer": ContainerSupport(ContainerRuntime.APPTAINER),
    "podman": ContainerSupport(ContainerRuntime.PODMAN, True, ("--runtime", "runc")),
    "srun": ContainerSupport(ContainerRuntime.PYXIS),
}


def run_script(script: str, tmp_path: Path) -> tuple[str, str]:
    """Run a batch script with bash, the stand-ins first on PATH; (its output, what the
    stand-ins were asked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, skip in SKIPS.items():
        (bin_dir / name).write_text(STAND_IN.format(name=name, skip=skip))
        (bin_dir / name).chmod(0o755)
    path, log = tmp_path / "job.sh", tmp_path / "asked.log"
    path.write_text(script)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "STAND_IN_LOG": str(log)}
    done = subprocess.run(
        ["bash", str(path)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, log.read_text()


def job(**spec: object) -> EngineJob:
    fields = {"name": "j", "command": ("echo", "inside", "${USER}"), **spec}
    return EngineJob(7, JobSpec(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("runtime", sorted(SUPPORT))
def test_a_command_runs_in_its_image_in_the_working_directory(runtime: str, tmp_path: Path) -> None:
    script = build_script(job(container_image="reg.example/p/x:1", gpus=2), SUPPORT[runtime])
    out, asked = run_script(script, tmp_path)
    assert out == "inside ${USER}\n"  # the job's own words reach it as written
    work = str(tmp_path.resolve())
    words = shlex.split(asked)
    assert words[0] == runtime and words[-3:] == ["echo", "inside", "${USER}"]
    assert f"{work}:{work}" in asked  # the working directory, mounted where it is
    assert work in words or f"--container-workdir={work}" in words  # and worked in
    if runtime == "podman":
        assert words[words.index("--userns") + 1] == "keep-id" and "--user" not in words
        assert "nvidia.com/gpu=all" in words and "CUDA_VISIBLE_DEVICES" in words
    if runtime == "apptainer":
        assert "--nv" in words and "docker://reg.example/p/x:1" in words
    if runtime == "srun":
        assert "--container-image=reg.example/p/x:1" in words


@pytest.mark.parametrize("runtime", sorted(SUPPORT))
def test_a_script_runs_whole_inside_with_its_own_interpreter(runtime: str, tmp_path: Path) -> None:
    text = "#!/bin/bash\n#SBATCH -N1\ncat <<'EOF'\nheredoc $x\nEOF\necho \"$A\" | cut -c1-3\n"
    spec = {"command": None, "script": text, "environment": {"A": "abcdef"}}
    script = build_script(job(container_image="x/y", **spec), SUPPORT[runtime])
    # Its header stays, its directive turned off (Fabriek gives sbatch what it honours).
    assert script.splitlines()[:2] == ["#!/bin/bash", "##SBATCH -N1"]
    out, asked = run_script(script, tmp_path)
    assert out == "heredoc $x\nabc\n"
    assert "FABRIEK_EOF" not in asked  # the body ran from its own file


def test_the_resolved_reference_wins_and_a_site_without_a_runtime_refuses() -> None:
    pinned = EngineJob(
        7, JobSpec(name="j", command=("true",), container_image="torch:2"),
        image=ContainerImage("reg.example/p/torch@sha256:" + "b" * 64),
    )  # fmt: skip
    script = build_script(pinned, SUPPORT["srun"])
    assert "--container-image=reg.example/p/torch@sha256:" in script and "torch:2" not in script
    with pytest.raises(SbatchInputError, match="declares no container_runtime"):
        build_script(pinned)


def test_an_sbatch_script_names_its_image_as_pyxis_users_write_it() -> None:
    text = "#!/bin/sh\n#SBATCH --container-image=proj/torch:2\n#SBATCH -N 1\npython t.py\n"
    assert spec_from_script(text).container_image == "proj/torch:2"
    # Given with the submission, the image wins over the script's, as sbatch's options do.
    assert spec_from_script(text, container_image="proj/other:1").container_image == "proj/other:1"
    with pytest.raises(InvalidInput, match="line 2: --container-image=: name the image"):
        spec_from_script("#!/bin/sh\n#SBATCH --container-image=\ntrue\n")
    with pytest.raises(InvalidInput, match="--container-mounts"):
        spec_from_script("#!/bin/sh\n#SBATCH --container-mounts=/a:/b\ntrue\n")


CREDENTIAL_SEEN = {
    # What each stand-in shows of the credential it was handed (never its command line).
    "podman": 'while [ "$1" != --authfile ]; do shift; done; cat "$2"',
    "apptainer": 'echo "$APPTAINER_DOCKER_USERNAME:$APPTAINER_DOCKER_PASSWORD"',
    "srun": 'cat "$ENROOT_CONFIG_PATH/.credentials"',
}


@pytest.mark.parametrize("runtime", sorted(SUPPORT))
def test_a_pull_credential_reaches_the_runtime_but_no_command_line(
    runtime: str, tmp_path: Path
) -> None:
    pinned = ContainerImage(
        "reg.example:5000/p/x@sha256:" + "c" * 64, None, "fabriek-pull", "s3cr3t"
    )
    script = build_script(
        EngineJob(7, JobSpec(name="j", command=("true",)), image=pinned), SUPPORT[runtime]
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / runtime
    stand_in.write_text(
        f'#!/bin/bash\necho "{runtime} $*" >> "$STAND_IN_LOG"\n{CREDENTIAL_SEEN[runtime]}\n'
    )
    stand_in.chmod(0o755)
    log = tmp_path / "asked.log"
    done = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "STAND_IN_LOG": str(log),
             "TMPDIR": str(tmp_path)},
        cwd=tmp_path, capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = done.stdout
    if runtime == "podman":  # base64 of user:password, for the image's registry
        seen = base64.b64decode(json.loads(seen)["auths"]["reg.example:5000"]["auth"]).decode()
    assert "fabriek-pull" in seen and "s3cr3t" in seen
    assert "s3cr3t" not in log.read_text()  # what the runtime's command line held
    if runtime == "srun":
        assert done.stdout.strip() == "machine reg.example:5000 login fabriek-pull password s3cr3t"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tmp.")]  # removed at exit


_SHAPES = st.lists(
    st.tuples(st.integers(0, 8), st.sampled_from([None, "podman", "apptainer", "pyxis"])),
    min_size=1, max_size=5,
)  # fmt: skip


@given(shapes=_SHAPES, gpus=st.integers(0, 10))
def test_only_sites_that_run_images_are_offered_an_image_job(
    shapes: list[tuple[int, str | None]], gpus: int
) -> None:
    sites = [
        SiteShape(
            f"s{i}", (NodeGroup("n", 1, "h100" if n else None, n, 8, 64),), 3600, containers=c
        )
        for i, (n, c) in enumerate(shapes)
    ]
    spec = JobSpec(name="j", command=("true",), container_image="p/x:1", gpus=gpus)
    fitting = [s for s in sites if s.containers and why_never_fits(spec, [s]) is None]
    try:
        offered = image_sites(spec, sites)
    except InvalidInput:
        assert not fitting  # refused only when no site that runs images could take it
        return
    assert all(s.containers for s in offered) and fitting
    assert {s.name for s in offered} == {s.name for s in sites if s.containers}


def test_a_local_site_runs_images_with_podman_only() -> None:
    with pytest.raises(ValueError, match="podman only"):
        EngineConfig(engine="local", container_runtime="apptainer")
    slurm = EngineConfig(engine="slurm", slurm_conf="/x", container_runtime="pyxis")
    assert slurm.containers() == ContainerSupport(ContainerRuntime.PYXIS)
    assert EngineConfig().containers() is None
