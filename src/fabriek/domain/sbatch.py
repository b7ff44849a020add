"""Job input the way Slurm users write it: `--time` and `--mem` values, `#SBATCH` directives.

Pure functions: no I/O. Everything a user can get wrong raises `InvalidInput` with a message
that says what is accepted, so a researcher who pastes an existing `sbatch` script learns
exactly which line to fix.

What `parse_sbatch_script` reads, as sbatch itself does: `#SBATCH` lines from the top of the
script up to the first line that is neither blank nor a comment; later `#SBATCH` lines are
plain comments. No directive is ignored: a script means what it says or is refused. Honoured
(`HONOURED`): `--job-name`/`-J`, `--time`/`-t`, `--nodes`/`-N`, `--cpus-per-task`/`-c`,
`--mem`, `--gres=gpu[:TYPE][:N]`, `--gpus`/`-G [TYPE:]N` and `--gpus-per-node [TYPE:]N`.
Every other sbatch option is refused with the line, the directive and what to do instead:
`--output`/`--error` because Fabriek keeps a job's output itself (`fabriek logs`), the
project, placement and mail options because Fabriek decides them (`--project` chooses the
project), the rest because Fabriek does not honour them. When an option is given twice the
later one wins, as in sbatch.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from fabriek.domain.errors import FieldProblem, InvalidInput
from fabriek.domain.gpus import GPU_TYPES
from fabriek.domain.jobs import JobSpec

# At most nine digits per number: enough for any real request, and it keeps int() away from
# Python's limit on huge digit strings (which raises ValueError, not InvalidInput).
_N = "([0-9]{1,9})"
_MAX_TIME_S = 365 * 86400
_MAX_MEMORY_GB = 1 << 20  # 1 PiB: beyond any node, and well inside a 32-bit column

_SLURM_TIME = [
    (re.compile(rf"{_N}", re.ASCII), (0, 0, 60, 0)),  # minutes
    (re.compile(rf"{_N}:{_N}", re.ASCII), (0, 0, 60, 1)),  # minutes:seconds
    (re.compile(rf"{_N}:{_N}:{_N}", re.ASCII), (0, 3600, 60, 1)),  # hours:minutes:seconds
    (re.compile(rf"{_N}-{_N}", re.ASCII), (86400, 3600, 0, 0)),  # days-hours
    (re.compile(rf"{_N}-{_N}:{_N}", re.ASCII), (86400, 3600, 60, 0)),
    (re.compile(rf"{_N}-{_N}:{_N}:{_N}", re.ASCII), (86400, 3600, 60, 1)),
]
_FRIENDLY_TIME = re.compile(rf"(?:{_N}d)?(?:{_N}h)?(?:{_N}m)?(?:{_N}s)?", re.ASCII | re.IGNORECASE)
_TIME_FORMATS = (
    "write minutes (90), MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS as sbatch --time "
    "takes them, or 90s, 30m, 1h, 1h30m, 2d"
)
_MEMORY = re.compile(r"([0-9]{1,12})(?:([KMGT])B?)?", re.ASCII | re.IGNORECASE)
_MEMORY_FORMATS = "write a whole number of megabytes (4096) or use a suffix: 512K, 500M, 16G, 1T"
_GPU_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}", re.ASCII)
_COUNT = re.compile(r"[0-9]{1,6}", re.ASCII)


class _Bad(ValueError):
    """A value is wrong; the public wrappers turn the message into `InvalidInput`."""


def _slurm_fields_to_seconds(groups: tuple[str, ...], weights: tuple[int, ...]) -> int:
    # The weights list holds one slot per possible field (d, h, m, s); zeros mark the slots
    # that this format does not have, so the groups fill the non-zero slots in order.
    values = iter(int(g) for g in groups)
    return sum(w * next(values) for w in weights if w)


def _duration_seconds(text: str) -> int:
    value = text.strip()
    if value.upper() in {"UNLIMITED", "INFINITE", "-1"}:
        raise _Bad(f"a job needs a time limit; {value!r} is not accepted: {_TIME_FORMATS}")
    seconds: int | None = None
    for pattern, weights in _SLURM_TIME:
        match = pattern.fullmatch(value)
        if match:
            seconds = _slurm_fields_to_seconds(match.groups(), weights)
            break
    else:
        match = _FRIENDLY_TIME.fullmatch(value)
        if match and any(match.groups()):
            d, h, m, s = (int(g) if g else 0 for g in match.groups())
            seconds = ((d * 24 + h) * 60 + m) * 60 + s
    if seconds is None:
        raise _Bad(f"{value!r} is not a duration: {_TIME_FORMATS}")
    if seconds <= 0:
        raise _Bad(f"{value!r} is no time at all; a time limit must be more than zero")
    if seconds > _MAX_TIME_S:
        raise _Bad(f"{value!r} is more than a year; ask for at most 365 days")
    return seconds


def parse_duration(text: str) -> int:
    """Seconds in a time limit written as sbatch's `--time` or as our CLI's `1h30m`.

    Slurm forms: `minutes`, `minutes:seconds`, `hours:minutes:seconds`, `days-hours`,
    `days-hours:minutes`, `days-hours:minutes:seconds` (fields may exceed 59, as in Slurm).
    Friendly forms: any of `Nd`, `Nh`, `Nm`, `Ns` in that order (`90s`, `1h30m`, `2d`).
    Zero, negative, unlimited and anything else raise `InvalidInput` on field `time`.
    """
    try:
        return _duration_seconds(text)
    except _Bad as bad:
        raise InvalidInput.on("time", str(bad)) from None


def _memory_gb(text: str) -> int:
    value = text.strip()
    match = _MEMORY.fullmatch(value)
    if not match:
        raise _Bad(f"{value!r} is not an amount of memory: {_MEMORY_FORMATS}")
    number, unit = int(match.group(1)), (match.group(2) or "").upper()
    kib = number * {"K": 1, "": 1024, "M": 1024, "G": 1024**2, "T": 1024**3}[unit]
    if kib <= 0:
        # sbatch reads --mem=0 as "all memory of the node"; a shared factory does not.
        raise _Bad(f"{value!r} is no memory at all; ask for more than zero")
    gb = math.ceil(kib / 1024**2)
    if gb > _MAX_MEMORY_GB:
        raise _Bad(f"{value!r} is more memory than any node has")
    return gb


@dataclass(frozen=True)
class SbatchDirectives:
    """What a script's `#SBATCH` lines ask for; None where the script says nothing.

    `gpus` is the job's total: `--gres=gpu:N` and `--gpus-per-node=N` count per node, so they
    are multiplied by the script's `--nodes`.
    """

    job_name: str | None = None
    gpus: int | None = None
    gpu_type: str | None = None
    time_limit_s: int | None = None
    cpus_per_task: int | None = None
    memory_gb: int | None = None
    nodes: int | None = None


_SHORT = {"-J": "--job-name", "-t": "--time", "-c": "--cpus-per-task", "-N": "--nodes"}
_SHORT |= {"-G": "--gpus"}
_READ = frozenset(_SHORT.values()) | {"--mem", "--gres", "--gpus-per-node"}
HONOURED = (
    "--job-name (-J), --time (-t), --nodes (-N), --cpus-per-task (-c), --mem, "
    "--gres=gpu[:TYPE][:N], --gpus (-G) and --gpus-per-node"
)
_LOGS = (
    "Fabriek keeps every job's output and standard error itself: read them with "
    "`fabriek logs JOB`; remove this line"
)
_DECIDED = "Fabriek chooses the site and nodes; ask for a GPU type with --gres=gpu:TYPE:N"
_GPUS_PER = "not supported; ask with --gpus=N or --gres=gpu:N"
# Why the options users often paste are refused, and what to do instead.
_REFUSED: Mapping[str, str] = {
    "--output": _LOGS,
    "--error": _LOGS,
    "--open-mode": _LOGS,
    "--account": "choose the project with `fabriek submit --project` (-A), not in the script",
    "--partition": _DECIDED,
    "--qos": _DECIDED,
    "--constraint": _DECIDED,
    "--nodelist": _DECIDED,
    "--exclude": _DECIDED,
    "--clusters": _DECIDED,
    "--mail-type": "Fabriek tells you itself when a job ends: see `fabriek notifications`",
    "--mail-user": "Fabriek tells you itself when a job ends: see `fabriek notifications`",
    "--gpus-per-task": _GPUS_PER,
    "--gpus-per-socket": _GPUS_PER,
}
_SHORT_NAMES = {"-o": "--output", "-e": "--error", "-A": "--account", "-p": "--partition"}
_SHORT_NAMES |= {"-q": "--qos", "-C": "--constraint", "-w": "--nodelist", "-x": "--exclude"}
_SHORT_NAMES |= {"-M": "--clusters"}
# sbatch options that take no value, so the token after them is the next option.
_LONG_FLAG_WORDS = (
    "--exclusive --hold --ignore-pbs --no-kill --no-requeue --requeue --overcommit "
    "--oversubscribe --parsable --quiet --verbose --wait --test-only --contiguous "
    "--spread-job --use-min-nodes --reboot --immediate --get-user-env --help --usage --version"
)
_LONG_FLAGS = frozenset(_LONG_FLAG_WORDS.split())
_SHORT_FLAGS = frozenset("hHIkOQsvVW")
_SHORT_WITH_VALUE = frozenset("aAbBCdDeFiLmMnopqSwx")


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


def _count(text: str, message: str = "GPU count must be a whole number") -> int:
    if not _COUNT.fullmatch(text):
        raise _Bad(message)
    return int(text)


def _positive(text: str, what: str) -> int:
    number = _count(text, f"{what} must be a whole number")
    if number < 1:
        raise _Bad(f"{what} must be at least 1")
    return number


def _typed_gpus(value: str) -> tuple[str | None, int]:
    """`[TYPE:]N`, as --gpus and --gpus-per-node take it."""
    kind, _, number = value.rpartition(":")
    if kind and not _GPU_TYPE.fullmatch(kind):
        raise _Bad(f"{kind!r} is not a GPU type; write [TYPE:]N, e.g. h100:4")
    return (kind.lower() or None), _count(number)


def _gres_gpus(value: str) -> tuple[str | None, int] | None:
    """The GPUs in a --gres list such as `gpu:h100:4,nvme:1`; None if it names none."""
    found: list[tuple[str | None, int]] = []
    for entry in value.split(","):
        parts = entry.split(":")
        if parts[0] != "gpu":
            continue  # other generic resources (nvme, shard, ...) are the site's business
        if len(parts) == 1:
            found.append((None, 1))  # sbatch reads a bare `gpu` as one GPU
        elif len(parts) == 2 and parts[1].lower() in GPU_TYPES:
            found.append((parts[1].lower(), 1))  # `gpu:h100`, one of that type
        elif len(parts) == 2:
            found.append((None, _count(parts[1], _GRES_COUNT)))
        elif len(parts) == 3:
            found.append(_typed_gpus(f"{parts[1]}:{parts[2]}"))
        else:
            raise _Bad("write gpu:N or gpu:TYPE:N")
    if len(found) > 1:
        raise _Bad("name the GPUs once")
    return found[0] if found else None


_GRES_COUNT = "GPU count must be a whole number; write gpu:N or gpu:TYPE:N"


@dataclass
class _Collected:
    """The directives read so far; later options overwrite earlier ones, as in sbatch."""

    job_name: str | None = None
    gpus: int | None = None
    gpu_type: str | None = None
    gpus_per_node: bool = False
    time_limit_s: int | None = None
    cpus_per_task: int | None = None
    memory_gb: int | None = None
    nodes: int | None = None

    def apply(self, option: str, value: str) -> None:
        """Read the value of one option this module understands."""
        if option == "--job-name":
            if not value.strip():
                raise _Bad("the job name is empty")
            self.job_name = value
        elif option == "--time":
            self.time_limit_s = _duration_seconds(value)
        elif option == "--mem":
            self.memory_gb = _memory_gb(value)
        elif option == "--cpus-per-task":
            self.cpus_per_task = _positive(value, "the CPU count")
        elif option == "--nodes":
            if "-" in value:
                raise _Bad("a node range (min-max) is not supported; give one number")
            self.nodes = _positive(value, "the node count")
        else:
            typed = _gres_gpus(value) if option == "--gres" else _typed_gpus(value)
            if typed is not None:
                self.gpu_type, self.gpus = typed
                self.gpus_per_node = option != "--gpus"

    def result(self) -> SbatchDirectives:
        """The directives, with per-node GPU counts turned into the job's total."""
        gpus = self.gpus
        if gpus is not None and self.gpus_per_node:
            gpus *= self.nodes or 1
        return SbatchDirectives(
            job_name=self.job_name,
            gpus=gpus,
            gpu_type=self.gpu_type,
            time_limit_s=self.time_limit_s,
            cpus_per_task=self.cpus_per_task,
            memory_gb=self.memory_gb,
            nodes=self.nodes,
        )


def _refusal(option: str) -> str:
    """Why an sbatch option Fabriek does not honour is refused rather than ignored."""
    reason = _REFUSED.get(_SHORT_NAMES.get(option, option))
    if reason is not None:
        return reason
    return f"Fabriek does not honour {option}, so it refuses it; it honours {HONOURED}"


def _takes_value(option: str) -> bool:
    if option in _READ or option in _REFUSED:
        return True
    if option.startswith("--"):
        return option not in _LONG_FLAGS
    return option[1:] in _SHORT_WITH_VALUE


def _read_line(rest: str, into: _Collected) -> None:
    """Read one directive line's options into `into`."""
    tokens = _tokens(rest)
    if not tokens:
        raise _BadDirective("#SBATCH", "the directive names no option")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        name, eq, value = token.partition("=")
        attached: str | None
        if token.startswith("--") and len(name) > 2:
            option, attached = name, (value if eq else None)
        elif token.startswith("-") and len(token) >= 2 and token[1] != "-":
            option = _SHORT.get(token[:2], token[:2])
            attached = token[2:] or None
        else:
            raise _BadDirective(token, "expected an option such as --time=1:00:00")
        # Options we read take the next token whatever it looks like, as getopt does; for
        # options we ignore, a token that starts with '-' is the next option.
        if (
            attached is None
            and _takes_value(option)
            and i < len(tokens)
            and (option in _READ or not tokens[i].startswith("-"))
        ):
            attached = tokens[i]
            token = f"{token} {attached}"
            i += 1
        if option not in _READ:
            if not option.startswith("--") and option[1:] not in _SHORT_FLAGS | _SHORT_WITH_VALUE:
                raise _BadDirective(token, f"{option} is not an sbatch option")
            raise _BadDirective(token, _refusal(option))
        if attached is None:
            raise _BadDirective(token, f"{option} needs a value")
        try:
            into.apply(option, attached)
        except _Bad as bad:
            raise _BadDirective(token, str(bad)) from None


def parse_sbatch_script(text: str) -> SbatchDirectives:
    """The `#SBATCH` directives at the top of a batch script (see the module's docstring).

    An unreadable directive raises `InvalidInput` whose detail names the line and the
    directive, e.g. `line 3: --gres=gpu:x:abc: GPU count must be a whole number`.
    """
    collected = _Collected()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("#SBATCH"):
            stripped = line.lstrip()
            if stripped and not stripped.startswith("#"):
                break  # the first command ends the directives, as in sbatch
            continue
        try:
            _read_line(line[len("#SBATCH") :], collected)
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
    return JobSpec(
        name=chosen_name or defaults.name,
        script=script,
        container_image=container_image,
        gpus=_first(_explicit("gpus", gpus, 0), found.gpus, defaults.gpus),
        gpu_type=gpu_type if gpu_type is not None else found.gpu_type,
        nodes=_first(_explicit("nodes", nodes, 1), found.nodes, defaults.nodes),
        cpus=_first(_explicit("cpus", cpus, 1), found.cpus_per_task, defaults.cpus),
        memory_gb=_first(_explicit("memory_gb", memory_gb, 1), found.memory_gb, defaults.memory_gb),
        time_limit_s=_first(
            _explicit("time", time_limit_s, 1), found.time_limit_s, defaults.time_limit_s
        ),
        environment=dict(environment or {}),
        working_dir=working_dir,
    )


def _first(*values: int | None) -> int:
    """The first value that is not None (the last one given never is)."""
    return next(v for v in values if v is not None)
