"""The #SBATCH directives of multi-node scripts: tasks, GPUs per node, the account."""

from __future__ import annotations

import pytest

from fabriek.domain.errors import InvalidInput
from fabriek.domain.sbatch import parse_sbatch_script, spec_from_script


def header(*lines: str) -> str:
    return "#!/bin/bash\n" + "".join(f"#SBATCH {line}\n" for line in lines) + "srun true\n"


def test_tasks_gpus_per_node_and_the_account_are_read() -> None:
    found = parse_sbatch_script(
        header("-A climate", "-N 4", "--ntasks=32", "--ntasks-per-node=8", "--gpus-per-node=h100:8")
    )
    assert (found.account, found.nodes, found.tasks, found.tasks_per_node) == ("climate", 4, 32, 8)
    assert (found.gpus, found.gpu_type) == (32, "h100")  # per node x nodes


@pytest.mark.parametrize("gpus", ["--gres=gpu:4", "--gpus-per-node=4", "--gpus=8"])
def test_gpus_per_node_count_per_node_wherever_the_nodes_line_is(gpus: str) -> None:
    assert parse_sbatch_script(header(gpus, "--nodes=2")).gpus == 8
    assert parse_sbatch_script(header("--nodes=2", gpus)).gpus == 8


def test_tasks_per_node_has_its_short_spelling_too() -> None:
    assert parse_sbatch_script(header("--tasks-per-node=4")).tasks_per_node == 4
    assert parse_sbatch_script(header("-n 2")).tasks == 2


def test_the_spec_takes_nodes_gpus_and_time_as_written() -> None:
    spec = spec_from_script(header("--nodes=2", "--gres=gpu:a100:4", "--time=2-00:00:00"))
    assert (spec.nodes, spec.gpus, spec.gpu_type, spec.time_limit_s) == (2, 8, "a100", 172800)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("--gpus-per-task=1", "line 2: --gpus-per-task=1: not supported: Fabriek gives GPUs per"),
        ("--account=", "line 2: --account=: '' is not a project's name"),
        ("-A 'two words'", "is not a project's name"),
        ("--ntasks=0", "the task count must be at least 1"),
        ("--ntasks-per-node=x", "the task count per node must be a whole number"),
    ],
)
def test_what_is_wrong_is_refused_with_its_line(line: str, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_sbatch_script(header(line))
    assert says in refused.value.problems[0].message
