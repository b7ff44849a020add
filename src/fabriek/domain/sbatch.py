"""Job input the way Slurm users write it: `#SBATCH` directives, and the job they ask for.

Pure functions: no I/O. Everything a user can get wrong raises `InvalidInput` with a message
that says what is accepted, so a researcher who pastes an existing `sbatch` script learns
exactly which line to fix; the values themselves (`--time`, `--mem`, GPU requests) are read
by `domain.sbatch_values`.

What `parse_sbatch_script` reads, as sbatch itself does: `#SBATCH` lines from the top of the
script up to the first line that is neither blank nor a comment; later `#SBATCH` lines are
plain comments. A script written for a Slurm cluster works as written; each directive is
one of three kinds (the tables are in `domain.sbatch_directives`, docs/workloads.md shows
them):

- honoured, with the meaning sbatch gives it: `--job-name`, `--time`, `--nodes`,
  `--cpus-per-task`, `--cpus-per-gpu`, `--mem`, `--mem-per-cpu`, `--mem-per-gpu`,
  `--gres=gpu[:TYPE][:N]`, `--gpus`, `--gpus-per-node`, `--ntasks`, `--ntasks-per-node`,
  `--account`/`-A` (the job's project), `--chdir` (an absolute path) and Pyxis's
  `--container-image`. A job's CPUs and memory are per node: `--cpus-per-task` counts for
  each of a node's tasks, `--mem-per-cpu` for each of its CPUs;
- set aside, with a note (`line 4: --partition=gpu set aside: Fabriek chooses the site and
  nodes`): what Fabriek decides itself and whose absence does not change what the program
  computes: the site, partition, QOS and nodes' features, where output goes (`fabriek
  logs`), mail, `--exclusive`, `--time-min`, `--signal`, `--requeue`, `--mem=0`, ...;
- refused, naming the line and what to write instead: what would change the run if it
  were ignored: `--gpus-per-task` (Fabriek gives GPUs per node), `--array`, `--dependency`,
  `--nodelist`, `--export` other than ALL, and every option in none of the tables.

When an option is given twice the later one wins, as in sbatch.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fabriek.domain.errors import FieldProblem, InvalidInput
from fabriek.domain.jobs import JobSpec
from fabriek.domain.sbatch_directives import (
    LONG_FLAGS,
    READ,
    REFUSED,
    SET_ASIDE,
    SHORT,
    SHORT_FLAGS,
    SHORT_WITH_VALUE,
    TASKS,
    long_name,
    refusal,
)
from fabriek.domain.sbatch_values import (
    MAX_MEMORY_GB,
    Bad,
    duration_seconds,
    gres_gpus,
    memory_kib,
    parse_duration,
    positive,
    typed_gpus,
    whole_gb,
)

# parse_duration lives with the other values; job input reads it from here too.
__all__ = ["SbatchDirectives", "TaskLayout", "parse_duration", "parse_sbatch_script"]
__all__ += ["spec_from_script", "task_layout"]


@dataclass(frozen=True)
class SbatchDirectives:
    """What a script's `#SBATCH` lines ask for; None where the script says nothing.

    `gpus` is the job's total: `--gres=gpu:N` and `--gpus-per-node=N` count per node, so they
    are multiplied by the script's `--nodes`. `memory_gb` is `--mem`, per node; the
    `*_per_node` methods work out what a node needs from the per-task, per-CPU and per-GPU
    forms. `notes` say which directives were set aside, and why.
    """

    job_name: str | None = None
    gpus: int | None = None
    gpu_type: str | None = None
    time_limit_s: int | None = None
    cpus_per_task: int | None = None
    memory_gb: int | None = None
    nodes: int | None = None
    container_image: str | None = None
    # The project the script names (`--account`); the tasks its srun starts.
    account: str | None = None
    tasks: int | None = None
    tasks_per_node: int | None = None
    cpus_per_gpu: int | None = None
    mem_per_cpu_kib: int | None = None
    mem_per_gpu_kib: int | None = None
    working_dir: str | None = None
    notes: tuple[str, ...] = ()

    def tasks_on_a_node(self) -> int:
        """The tasks sbatch starts on each node: `--ntasks-per-node`, else `--ntasks` spread
        over the nodes (rounded up), else one."""
        if self.tasks_per_node is not None:
            return self.tasks_per_node
        if self.tasks is not None:
            return math.ceil(self.tasks / (self.nodes or 1))
        return 1

    def gpus_per_node(self) -> int:
        """The GPUs of each node (the job's total split over its nodes)."""
        return (self.gpus or 0) // (self.nodes or 1)

    def cpus_per_node(self) -> int | None:
        """The CPUs a node needs: per task times its tasks, or per GPU times its GPUs, or
        one per task when only the tasks are given; None where the script says nothing."""
        if self.cpus_per_task is not None:
            return self.cpus_per_task * self.tasks_on_a_node()
        if self.cpus_per_gpu is not None and self.gpus_per_node():
            return self.cpus_per_gpu * self.gpus_per_node()
        if self.tasks is not None or self.tasks_per_node is not None:
            return self.tasks_on_a_node()
        return None

    def memory_gb_per_node(self, cpus_per_node: int | None = None) -> int | None:
        """Whole gigabytes a node needs: `--mem`, or `--mem-per-cpu` times its CPUs
        (`cpus_per_node`, else the script's), or `--mem-per-gpu` times its GPUs."""
        if self.memory_gb is not None:
            return self.memory_gb
        cpus = cpus_per_node or self.cpus_per_node() or 1
        if self.mem_per_cpu_kib is not None:
            return math.ceil(self.mem_per_cpu_kib * cpus / 1024**2)
        if self.mem_per_gpu_kib is not None and self.gpus_per_node():
            return math.ceil(self.mem_per_gpu_kib * self.gpus_per_node() / 1024**2)
        return None


_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)


class _BadDirective(Exception):
    """One directive is wrong: `shown` is how the user wrote it."""

    def __init__(self, shown: str, message: str) -> None:
        super().__init__(shown, message)
        self.shown = shown
        self.message = message


def _tokens(rest: str) -> list[str]:
    """Split a directive's text as sbatch does, with the standard library's POSIX shell
    lexer: blanks separate, quotes group, a backslash escapes one character and an unquoted
    `#` starts a comment. Where sbatch and the shell differ, the shell's rules hold and
    tests/test_sbatch.py pins each case: inside double quotes a backslash escapes only
    `"`, `\\`, `$` and a backquote (sbatch: any character), inside single quotes nothing
    (sbatch: any character), and a backslash that ends the line is refused (sbatch drops
    it)."""
    lexer = shlex.shlex(rest, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:
        # The lexer stops in the state of the quote it is in (not in typeshed's stubs).
        state: str | None = getattr(lexer, "state", None)
        if state in ("'", '"'):
            raise _BadDirective(rest.strip(), f"the quote {state} is never closed") from None
        raise _BadDirective(
            rest.strip(), "the backslash at the end of the line escapes nothing"
        ) from None


@dataclass
class _Collected:
    """The directives read so far; later options overwrite earlier ones, as in sbatch."""

    found: dict[str, Any] = field(default_factory=dict)
    gpus_per_node: bool = False
    notes: list[str] = field(default_factory=list)

    def _memory(self, name: str, kib: int | None = None, gb: int | None = None) -> None:
        # --mem, --mem-per-cpu and --mem-per-gpu exclude each other: the last one counts.
        for other in ("memory_gb", "mem_per_cpu_kib", "mem_per_gpu_kib"):
            self.found.pop(other, None)
        self.found[name] = gb if gb is not None else kib

    def apply(self, option: str, value: str) -> str | None:
        """Read the value of one option this module honours; the reason when the value
        makes it one to set aside (`--mem=0`, `--chdir=.`, `--export=ALL`)."""
        if option == "--account":
            if not _PROJECT.fullmatch(value):
                raise Bad(f"{value!r} is not a project's name")
            self.found["account"] = value
        elif option == "--ntasks":
            self.found["tasks"] = positive(value, "the task count")
        elif option in TASKS:
            self.found["tasks_per_node"] = positive(value, "the task count per node")
        elif option == "--container-image":
            if not value.strip() or value.startswith("-"):
                raise Bad("name the image, e.g. --container-image=project/name:tag")
            self.found["container_image"] = value
        elif option == "--job-name":
            if not value.strip():
                raise Bad("the job name is empty")
            self.found["job_name"] = value
        elif option == "--time":
            self.found["time_limit_s"] = duration_seconds(value)
        elif option == "--cpus-per-task":
            self.found["cpus_per_task"] = positive(value, "the CPU count")
        elif option == "--cpus-per-gpu":
            self.found["cpus_per_gpu"] = positive(value, "the CPU count per GPU")
        elif option == "--nodes":
            if "-" in value:
                raise Bad("a node range (min-max) is not supported; give one number")
            self.found["nodes"] = positive(value, "the node count")
        elif option in ("--mem", "--mem-per-cpu", "--mem-per-gpu"):
            return self._apply_memory(option, value)
        elif option in ("--chdir", "--export"):
            return _apply_place(self.found, option, value)
        else:
            typed = gres_gpus(value) if option == "--gres" else typed_gpus(value)
            if typed is not None:
                self.found["gpu_type"], self.found["gpus"] = typed
                self.gpus_per_node = option != "--gpus"
        return None

    def _apply_memory(self, option: str, value: str) -> str | None:
        if option == "--mem" and value.strip() in ("0", "0G", "0M"):
            # sbatch reads it as "all of each node's memory"; a shared factory gives a job
            # what it asks for, and without --mem the default (or the submission's).
            for other in ("memory_gb", "mem_per_cpu_kib", "mem_per_gpu_kib"):
                self.found.pop(other, None)
            return (
                "all of a node's memory is not given on a shared factory: the job gets the "
                "memory the submission asks for (--mem), else the default"
            )
        kib = memory_kib(value)
        if option == "--mem":
            self._memory("memory_gb", gb=whole_gb(kib))
        else:
            self._memory("mem_per_cpu_kib" if option == "--mem-per-cpu" else "mem_per_gpu_kib", kib)
        return None

    def result(self) -> SbatchDirectives:
        """The directives, with per-node GPU counts turned into the job's total."""
        found = dict(self.found)
        if found.get("gpus") is not None and self.gpus_per_node:
            found["gpus"] *= found.get("nodes") or 1
        return SbatchDirectives(**found, notes=tuple(self.notes))


def _apply_place(found: dict[str, Any], option: str, value: str) -> str | None:
    """`--chdir` (an absolute path is the job's working directory; `.` is where it starts
    anyway) and `--export` (ALL is what every job gets)."""
    if option == "--export":
        if value.strip().upper() != "ALL":
            raise Bad(
                "the job gets your environment and the submission's variables (as ALL): "
                "give variables with --env NAME=VALUE and remove this line"
            )
        return "every job gets the environment it is submitted with, as ALL"
    if value in (".", "./"):
        return "the job starts in its working directory, the one it is submitted from"
    if not value.startswith("/") or "\0" in value:
        raise Bad("write an absolute path, or leave the line out to start where submitted")
    found["working_dir"] = value
    return None


def _takes_value(option: str) -> bool:
    if option in READ or option in REFUSED or option in SET_ASIDE:
        return option not in LONG_FLAGS
    if option.startswith("--"):
        return option not in LONG_FLAGS
    return option[1:] in SHORT_WITH_VALUE


def _option(token: str) -> tuple[str, str | None]:
    """The option a token names (short forms of honoured options made long) and the value
    attached to it, if any (`--time=5`, `-t5`)."""
    name, eq, value = token.partition("=")
    if token.startswith("--") and len(name) > 2:
        return name, (value if eq else None)
    if token.startswith("-") and len(token) >= 2 and token[1] != "-":
        return SHORT.get(token[:2], token[:2]), (token[2:] or None)
    raise _BadDirective(token, "expected an option such as --time=1:00:00")


def _read_line(rest: str, into: _Collected, number: int) -> None:
    """Read one directive line's options into `into`; a set-aside option adds a note."""
    tokens = _tokens(rest)
    if not tokens:
        raise _BadDirective("#SBATCH", "the directive names no option")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        option, attached = _option(token)
        # Options we read take the next token whatever it looks like, as getopt does; for
        # other options, a token that starts with '-' is the next option.
        if (
            attached is None
            and _takes_value(option)
            and i < len(tokens)
            and (option in READ or not tokens[i].startswith("-"))
        ):
            attached = tokens[i]
            token = f"{token} {attached}"
            i += 1
        aside = SET_ASIDE.get(long_name(option)) if option not in READ else None
        if aside is None and option not in READ:
            if not option.startswith("--") and option[1:] not in SHORT_FLAGS | SHORT_WITH_VALUE:
                raise _BadDirective(token, f"{option} is not an sbatch option")
            raise _BadDirective(token, refusal(option))
        if aside is None:
            if attached is None:
                raise _BadDirective(token, f"{option} needs a value")
            try:
                aside = into.apply(option, attached)
            except Bad as bad:
                raise _BadDirective(token, str(bad)) from None
        if aside is not None:
            into.notes.append(f"line {number}: {token} set aside: {aside}")


def parse_sbatch_script(text: str) -> SbatchDirectives:
    """The `#SBATCH` directives at the top of a batch script (see the module's docstring).

    An unreadable or refused directive raises `InvalidInput` whose detail names the line
    and the directive, e.g. `line 3: --gres=gpu:x:abc: GPU count must be a whole number`;
    each directive set aside gives a note, e.g. `line 4: --partition=gpu set aside:
    Fabriek chooses the site and nodes`.
    """
    collected = _Collected()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("#SBATCH"):
            stripped = line.lstrip()
            if stripped and not stripped.startswith("#"):
                break  # the first command ends the directives, as in sbatch
            continue
        try:
            _read_line(line[len("#SBATCH") :], collected, number)
        except _BadDirective as bad:
            detail = f"line {number}: {bad.shown}: {bad.message}"
            raise InvalidInput(detail, [FieldProblem("script", detail)]) from None
    return collected.result()


def _explicit(name: str, value: int | None, least: int) -> int | None:
    if value is not None and value < least:
        raise InvalidInput.on(name, f"must be at least {least}, not {value}")
    return value


def spec_from_script(
    script: str,
    *,
    name: str | None = None,
    gpus: int | None = None,
    gpu_type: str | None = None,
    time_limit_s: int | None = None,
    cpus: int | None = None,
    memory_gb: int | None = None,
    nodes: int | None = None,
    container_image: str | None = None,
    environment: Mapping[str, str] | None = None,
    working_dir: str | None = None,
) -> JobSpec:
    """A `JobSpec` that runs `script`, its resources taken from the explicit values given
    here (from the CLI or the API) and, where those are None, from its `#SBATCH` lines.

    Explicit values win, just as sbatch's command-line options override the script's
    directives. Where neither says anything, `JobSpec`'s defaults apply. Fields this
    function does not take (deadline, preemptible, ...) are set with `dataclasses.replace`.
    """
    if not script.strip():
        raise InvalidInput.on("script", "the script is empty")
    found = parse_sbatch_script(script)
    chosen_name = name if name is not None else found.job_name
    if chosen_name is not None and not chosen_name.strip():
        raise InvalidInput.on("name", "must not be empty")
    defaults = JobSpec(name="script")
    chosen_cpus = _first(_explicit("cpus", cpus, 1), found.cpus_per_node(), defaults.cpus)
    if chosen_cpus < found.tasks_on_a_node():
        raise InvalidInput.on(
            "cpus",
            f"the script starts {found.tasks_on_a_node()} tasks on each node, each with a CPU "
            f"at least: ask for {found.tasks_on_a_node()} CPUs or more, not {chosen_cpus}",
        )
    memory = _first(
        _explicit("memory_gb", memory_gb, 1),
        found.memory_gb_per_node(chosen_cpus),
        defaults.memory_gb,
    )
    if memory > MAX_MEMORY_GB:
        raise InvalidInput.on("script", "the script asks for more memory than any node has")
    return JobSpec(
        name=chosen_name or defaults.name,
        script=script,
        # Given with the submission, it wins over the script's, as sbatch's options do.
        container_image=container_image if container_image is not None else found.container_image,
        gpus=_first(_explicit("gpus", gpus, 0), found.gpus, defaults.gpus),
        gpu_type=gpu_type if gpu_type is not None else found.gpu_type,
        nodes=_first(_explicit("nodes", nodes, 1), found.nodes, defaults.nodes),
        cpus=chosen_cpus,
        memory_gb=memory,
        time_limit_s=_first(
            _explicit("time", time_limit_s, 1), found.time_limit_s, defaults.time_limit_s
        ),
        environment=dict(environment or {}),
        working_dir=working_dir if working_dir is not None else found.working_dir,
    )


@dataclass(frozen=True)
class TaskLayout:
    """How sbatch is to start a script's tasks: `--ntasks-per-node` or `--ntasks` as the
    script asks (None: not given), and the CPUs of each task, so that the tasks of a node
    together have the node's CPUs that Fabriek counted (`JobSpec.cpus`)."""

    tasks_per_node: int | None
    tasks: int | None
    cpus_per_task: int


def task_layout(script: str | None, nodes: int, cpus_per_node: int) -> TaskLayout:
    """The tasks a job's script asks for (see `TaskLayout`); one task with all of a node's
    CPUs for a job without a script, or whose script names no tasks."""
    if script is None:
        return TaskLayout(None, None, cpus_per_node)
    found = replace(parse_sbatch_script(script), nodes=nodes)
    if found.tasks is None and found.tasks_per_node is None:
        return TaskLayout(None, None, cpus_per_node)
    return TaskLayout(
        found.tasks_per_node, found.tasks, max(1, cpus_per_node // found.tasks_on_a_node())
    )


def _first(*values: int | None) -> int:
    """The first value that is not None (the last one given never is)."""
    return next(v for v in values if v is not None)
