"""Eight real multi-node batch scripts from public repositories (tests/data/sbatch_multinode,
each file as its authors wrote it): Fabriek accepts seven as written, each for the resources
it asks, setting aside (with a note) what Fabriek decides itself; and refuses the eighth for
`--gpus-per-task`. Through the API and the CLI, the notes reach the user and the job's
history. (Two of them run on a real Slurm cluster: tests/slurm/test_slurm_sbatch_corpus.py.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.errors import InvalidInput
from fabriek.domain.sbatch import parse_sbatch_script, spec_from_script
from fabriek.domain.sbatch_directives import REFUSED, SET_ASIDE
from fabriek.services.demo.seed import demo_token
from tests.conftest import Client, problem_of
from tests.servers import LiveServer
from tests.test_cli import fabriek

CORPUS = Path(__file__).parent / "data" / "sbatch_multinode"
LATER = "2099-01-01T00:00:00Z"  # queued, never started: only what was accepted is checked


def corpus(name: str) -> str:
    return (CORPUS / name).read_text()


@dataclass(frozen=True)
class Asks:
    """What a script asks for, as Fabriek reads it: the job's nodes, GPUs (its total) of
    type, CPUs and memory per node (None: the default), its tasks, project and time."""

    nodes: int
    gpus_per_node: int
    gpu_type: str | None
    tasks_per_node: int | None
    account: str | None
    cpus: int
    memory_gb: int
    time_limit_s: int
    set_aside: tuple[str, ...]  # the directives set aside, by line, as written


ACCEPTED = {
    "csc_run-gpu8-dist-mahti.sh": Asks(
        nodes=2, gpus_per_node=4, gpu_type="a100", tasks_per_node=1, account="project_2001659",
        cpus=40, memory_gb=4, time_limit_s=900,
        set_aside=("line 3: --partition=gpumedium", "line 7: --mem=0"),
    ),
    "csc_run-deepspeed-gpu8.sh": Asks(
        nodes=2, gpus_per_node=4, gpu_type="v100", tasks_per_node=4, account="project_2001659",
        cpus=40, memory_gb=4, time_limit_s=900,
        set_aside=("line 3: --partition=gputest", "line 7: --mem=0"),
    ),
    "stas00_torchrun-launcher.slurm": Asks(
        nodes=2, gpus_per_node=8, gpu_type=None, tasks_per_node=1, account=None,
        cpus=96, memory_gb=4, time_limit_s=600,
        set_aside=("line 12: --exclusive", "line 13: --partition=xyz-cluster",
                   "line 14: --output=%x-%j.out"),
    ),
    "stas00_accelerate-launcher.slurm": Asks(
        nodes=2, gpus_per_node=8, gpu_type=None, tasks_per_node=1, account=None,
        cpus=96, memory_gb=4, time_limit_s=600,
        set_aside=("line 12: --exclusive", "line 13: --partition=xyz-cluster",
                   "line 14: --output=%x-%j.out"),
    ),
    "accelerate_submit_multinode.sh": Asks(
        nodes=4, gpus_per_node=4, gpu_type=None, tasks_per_node=1, account=None,
        cpus=160, memory_gb=4, time_limit_s=7140,
        set_aside=("line 4: -D .", "line 5: --output=O-%x.%j", "line 6: --error=E-%x.%j"),
    ),
    "itwinai_deepspeed_slurm.sh": Asks(
        nodes=2, gpus_per_node=4, gpu_type=None, tasks_per_node=4, account="intertwin",
        cpus=16, memory_gb=4, time_limit_s=900,
        set_aside=("line 6: --mail-user=", "line 7: --mail-type=ALL",
                   "line 8: --output=job-ds.out", "line 9: --error=job-ds.err",
                   "line 13: --partition=batch"),
    ),
    "olmo_lumi_demo.sh": Asks(
        nodes=128, gpus_per_node=8, gpu_type=None, tasks_per_node=8,
        account="project_462000229", cpus=48, memory_gb=4, time_limit_s=48 * 3600,
        set_aside=("line 8: --output=/scratch/project_462000229/logs/%j.log",
                   "line 14: --time-min=12:00:00", "line 15: --mem=0",
                   "line 16: --partition=standard-g"),
    ),
}  # fmt: skip
REFUSED_SCRIPT = "pytorch_examples_sbatch_run.sh"


def test_the_corpus_is_eight_scripts_one_of_them_with_gpus_per_task() -> None:
    names = sorted(p.name for p in CORPUS.iterdir() if p.name != "README.md")
    assert names == sorted([*ACCEPTED, REFUSED_SCRIPT])
    readme = (CORPUS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names)  # each with its source and licence
    with_it = [n for n in names if "--gpus-per-task" in corpus(n)]
    assert with_it == [REFUSED_SCRIPT] and "--ntasks=" in corpus(REFUSED_SCRIPT)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_each_accepted_script_asks_for_what_its_authors_wrote(name: str) -> None:
    asks = ACCEPTED[name]
    text = corpus(name)
    found = parse_sbatch_script(text)
    assert (found.nodes, found.gpus, found.gpu_type) == (
        asks.nodes,
        asks.nodes * asks.gpus_per_node,
        asks.gpu_type,
    )
    assert (found.tasks_per_node, found.account) == (asks.tasks_per_node, asks.account)
    assert tuple(note.split(" set aside: ")[0] for note in found.notes) == asks.set_aside
    spec = spec_from_script(text)
    assert (spec.nodes, spec.gpus, spec.cpus, spec.memory_gb, spec.time_limit_s) == (
        asks.nodes,
        asks.nodes * asks.gpus_per_node,
        asks.cpus,
        asks.memory_gb,
        asks.time_limit_s,
    )
    assert spec.script == text  # the script runs as written


def test_the_eighth_is_refused_for_gpus_per_task_saying_what_to_write() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_sbatch_script(corpus(REFUSED_SCRIPT))
    detail = refused.value.detail
    assert detail.startswith("line 6: --gpus-per-task=1: not supported: Fabriek gives GPUs per")
    assert "--gpus-per-node=N" in detail and "--ntasks-per-node=N" in detail


# Property: a set-aside directive never changes what a script asks for, only adds its note;
# a refused one is never ignored. Directives are drawn with values sbatch would accept.
_ASIDE = sorted(o for o in SET_ASIDE if o not in ("--exclusive", "--requeue", "--no-requeue"))
_FLAGS = ["--exclusive", "--requeue", "--no-requeue", "--parsable", "--verbose"]
_VALUE = st.from_regex(r"[A-Za-z0-9_%.:/-]{1,12}", fullmatch=True).filter(
    lambda v: not v.startswith("-")
)
_LINE = st.one_of(
    st.builds(lambda o, v: f"{o}={v}", st.sampled_from(_ASIDE), _VALUE),
    st.builds(lambda o, v: f"{o} {v}", st.sampled_from(["-p", "-q", "-o", "-e", "-C"]), _VALUE),
    st.sampled_from(_FLAGS),
)


@given(
    name=st.sampled_from(sorted(ACCEPTED)),
    extra=st.lists(_LINE, min_size=1, max_size=4),
    at=st.integers(0, 20),
)
def test_set_aside_directives_change_nothing_but_the_notes(
    name: str, extra: list[str], at: int
) -> None:
    lines = corpus(name).splitlines()
    directives = [i for i, line in enumerate(lines) if line.startswith("#SBATCH")]
    cut = directives[at % len(directives)] + 1  # among the script's own directives
    text = "\n".join([*lines[:cut], *(f"#SBATCH {e}" for e in extra), *lines[cut:]])
    before, after = parse_sbatch_script(corpus(name)), parse_sbatch_script(text)
    assert replace(after, notes=()) == replace(before, notes=())
    assert len(after.notes) == len(before.notes) + len(extra), after.notes
    for offset, line in enumerate(extra):
        number = cut + 1 + offset
        assert any(n.startswith(f"line {number}: {line} set aside: ") for n in after.notes)


@given(
    option=st.sampled_from(sorted(REFUSED)),
    value=_VALUE,
    name=st.sampled_from(sorted(ACCEPTED)),
)
def test_a_refused_directive_is_never_ignored(option: str, value: str, name: str) -> None:
    lines = corpus(name).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("#SBATCH")) + 1
    flag = option in ("--hold", "--test-only")
    line = option if flag else f"{option}={value}"
    text = "\n".join([*lines[:at], f"#SBATCH {line}", *lines[at:]])
    with pytest.raises(InvalidInput) as refused:
        parse_sbatch_script(text)
    assert refused.value.detail.startswith(f"line {at + 1}: {line}: {REFUSED[option][:20]}")


def _queued(c: httpx.Client, **body: object) -> dict[str, object]:
    response = c.post("/api/v1/jobs", json={"earliest_start": LATER, **body})
    assert response.status_code == 201, response.text
    job: dict[str, object] = response.json()
    assert c.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 200
    return job


def test_the_api_returns_the_notes_and_keeps_them_in_the_jobs_history(client: Client) -> None:
    maria = client("maria")
    text = corpus("itwinai_deepspeed_slurm.sh")
    # The script names its own project (intertwin), which is not this factory's: the
    # submission names maria's, as sbatch's -A on the command line would.
    response = maria.post("/api/v1/jobs", json={"script": text, "earliest_start": LATER})
    assert "intertwin" in str(problem_of(response, 404)["detail"])
    script = text.replace("#SBATCH --account=intertwin\n", "#SBATCH --account=dutch-llm\n")
    job = _queued(maria, script=script, gpu_type="h100")
    assert (job["project"], job["nodes"], job["gpus"], job["cpus"]) == ("dutch-llm", 2, 8, 16)
    notes = job["notes"]
    assert isinstance(notes, list) and len(notes) == 5
    assert notes[-1] == ("line 13: --partition=batch set aside: Fabriek chooses the site and nodes")
    events = maria.get(f"/api/v1/jobs/{job['id']}/events").json()
    reasons = [e["reason"] for e in events]
    assert [r for r in reasons if r.startswith("note: ")] == [f"note: {n}" for n in notes]
    # A script Fabriek reads without setting anything aside has no notes.
    plain = _queued(maria, script="#!/bin/bash\n#SBATCH -N 2\nsrun true\n")
    assert plain["notes"] == []


def test_the_api_refuses_the_eighth_naming_gpus_per_task(client: Client) -> None:
    response = client("maria").post("/api/v1/jobs", json={"script": corpus(REFUSED_SCRIPT)})
    assert str(problem_of(response, 422)["detail"]).startswith("line 6: --gpus-per-task=1:")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fabriek_submit_prints_the_notes(server: LiveServer, tmp_path: Path) -> None:
    script = tmp_path / "run-gpu8-dist-mahti.sh"
    script.write_text(corpus("csc_run-gpu8-dist-mahti.sh").replace("project_2001659", "dutch-llm"))
    env = {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token("maria").token,
           "FABRIEK_CONFIG_DIR": str(tmp_path)}  # fmt: skip
    done = fabriek("submit", str(script), "--gpu-type", "h100", env=env)
    job_id = int(done.stdout.removeprefix("Submitted job ").strip())
    assert done.stderr.splitlines() == [
        "note: line 3: --partition=gpumedium set aside: Fabriek chooses the site and nodes",
        "note: line 7: --mem=0 set aside: all of a node's memory is not given on a shared "
        "factory: the job gets the memory the submission asks for (--mem), else the default",
    ]
    shown = json.loads(fabriek("job", str(job_id), "--json", env=env).stdout)
    assert (shown["project"], shown["nodes"], shown["gpus"]) == ("dutch-llm", 2, 8)
