"""Which `#SBATCH` options Fabriek honours, which it sets aside with a note, and which it
refuses; the reasons it gives for each. Pure data, read by `domain.sbatch`.

The rule (docs/workloads.md, "Batch scripts"): a directive whose meaning Fabriek can keep is
honoured; one about what Fabriek decides itself (the site, the nodes, where output goes, who
is mailed), whose absence does not change what the program computes, is set aside and the
user is told so; one whose absence would change what the run does (GPUs per task, job
arrays, dependencies, named nodes) is refused, naming what to write instead. An option in
none of these tables is refused too: a script means what it says or is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

# Long names of the options Fabriek reads (honours), by their short forms where they have one.
SHORT = {"-J": "--job-name", "-t": "--time", "-c": "--cpus-per-task", "-N": "--nodes"}
SHORT |= {"-G": "--gpus", "-A": "--account", "-n": "--ntasks", "-D": "--chdir"}
TASKS = frozenset({"--ntasks-per-node", "--tasks-per-node"})
READ = frozenset(SHORT.values()) | TASKS
READ |= {"--mem", "--mem-per-cpu", "--mem-per-gpu", "--cpus-per-gpu"}
READ |= {"--gres", "--gpus-per-node", "--container-image", "--export"}
HONOURED = (
    "--job-name (-J), --time (-t), --nodes (-N), --cpus-per-task (-c), --cpus-per-gpu, --mem, "
    "--mem-per-cpu, --mem-per-gpu, --gres=gpu[:TYPE][:N], --gpus (-G), --gpus-per-node, "
    "--ntasks (-n), --ntasks-per-node, --account (-A, the project), --chdir (-D), "
    "--container-image"
)

_LOGS = "Fabriek keeps the job's output and errors itself: read them with `fabriek logs JOB`"
_DECIDED = "Fabriek chooses the site and nodes"
_MAIL = "Fabriek tells you itself when a job ends: see `fabriek notifications`"
_PLACEMENT = "Fabriek leaves how tasks sit on a node's cores to the site"
_SBATCH_OUTPUT = "it is about what the sbatch command prints, and Fabriek runs sbatch itself"
# Set aside with a note: what Fabriek decides itself, and whose absence does not change what
# the program computes (only where, on what and when it runs, or who hears of it).
SET_ASIDE: Mapping[str, str] = {
    "--partition": _DECIDED,
    "--qos": _DECIDED,
    "--clusters": _DECIDED,
    "--exclude": _DECIDED,
    "--reservation": _DECIDED,
    "--switches": _DECIDED,
    "--nice": _DECIDED,
    "--priority": _DECIDED,
    "--constraint": f"{_DECIDED}; ask for a GPU type with --gres=gpu:TYPE:N",
    "--exclusive": (
        "Fabriek places a job by the GPUs, CPUs and memory it asks for; ask for a node's "
        "worth to have the node to itself"
    ),
    "--oversubscribe": _DECIDED,
    "--output": _LOGS,
    "--error": _LOGS,
    "--open-mode": _LOGS,
    "--mail-type": _MAIL,
    "--mail-user": _MAIL,
    "--signal": "Fabriek decides how a job is told to stop at its time limit",
    "--requeue": "Fabriek decides whether a job is requeued (a preemptible job is)",
    "--no-requeue": "Fabriek decides whether a job is requeued (a preemptible job is)",
    "--time-min": "Fabriek gives the job the whole of its --time",
    "--comment": "Fabriek keeps its own comment on the job, to find it again",
    "--wait-all-nodes": "Fabriek starts a job on several nodes when all of them are up",
    "--get-user-env": "the job starts with your environment and the job's own variables",
    "--hint": _PLACEMENT,
    "--distribution": _PLACEMENT,
    "--ntasks-per-core": _PLACEMENT,
    "--threads-per-core": _PLACEMENT,
    "--cores-per-socket": _PLACEMENT,
    "--sockets-per-node": _PLACEMENT,
    "--mem-bind": _PLACEMENT,
    "--spread-job": _PLACEMENT,
    "--use-min-nodes": _PLACEMENT,
    "--contiguous": _DECIDED,
    "--acctg-freq": "Fabriek meters every job itself (GPU-hours, energy)",
    "--profile": "Fabriek meters every job itself (GPU-hours, energy)",
    "--parsable": _SBATCH_OUTPUT,
    "--quiet": _SBATCH_OUTPUT,
    "--verbose": _SBATCH_OUTPUT,
}

_GPUS_PER = "not supported; ask with --gpus=N or --gres=gpu:N"
GPUS_PER_TASK = (
    "not supported: Fabriek gives GPUs per node, not per task; write --gpus-per-node=N "
    "(or --gres=gpu:N) with --ntasks-per-node=N instead of --gpus-per-task with --ntasks, "
    "and let your launcher (torchrun, accelerate, srun) start one process per GPU"
)
# Refused: ignoring them would change what the run does. Each says what to write instead.
REFUSED: Mapping[str, str] = {
    "--gpus-per-task": GPUS_PER_TASK,
    "--gpus-per-socket": _GPUS_PER,
    "--array": (
        "Fabriek runs one job per submission, not job arrays: submit each task as its own "
        "job, e.g. a loop of `fabriek submit --env SLURM_ARRAY_TASK_ID=N script.sh`"
    ),
    "--dependency": (
        "Fabriek starts a job when its resources are free, not after another job: submit "
        "this one once the job it depends on has ended"
    ),
    "--nodelist": (
        "Fabriek chooses the nodes, and a script tied to named nodes runs nowhere else: "
        "remove the line (ask for a GPU type with --gres=gpu:TYPE:N)"
    ),
    "--nodefile": "Fabriek chooses the nodes: remove the line",
    "--hold": "Fabriek queues every job it accepts: submit the job when it is to run",
    "--test-only": "Fabriek checks a job when it is submitted and refuses what cannot run",
}

SHORT_NAMES = {"-o": "--output", "-e": "--error", "-p": "--partition", "-q": "--qos"}
SHORT_NAMES |= {"-C": "--constraint", "-w": "--nodelist", "-x": "--exclude", "-M": "--clusters"}
SHORT_NAMES |= {"-a": "--array", "-d": "--dependency", "-F": "--nodefile", "-H": "--hold"}
SHORT_NAMES |= {"-m": "--distribution", "-s": "--oversubscribe", "-Q": "--quiet"}
SHORT_NAMES |= {"-v": "--verbose"}
# sbatch options that take no value, so the token after them is the next option.
_LONG_FLAG_WORDS = (
    "--exclusive --hold --ignore-pbs --no-kill --no-requeue --requeue --overcommit "
    "--oversubscribe --parsable --quiet --verbose --wait --test-only --contiguous "
    "--spread-job --use-min-nodes --reboot --immediate --get-user-env --help --usage --version"
)
LONG_FLAGS = frozenset(_LONG_FLAG_WORDS.split())
SHORT_FLAGS = frozenset("hHIkOQsvVW")
SHORT_WITH_VALUE = frozenset("aAbBCdDeFiLmMnopqSwx")


def long_name(option: str) -> str:
    """The long name of an option Fabriek sets aside or refuses (`-p` is `--partition`)."""
    return SHORT_NAMES.get(option, option)


def refusal(option: str) -> str:
    """Why an sbatch option is refused rather than ignored, and what to write instead."""
    reason = REFUSED.get(long_name(option))
    if reason is not None:
        return reason
    return f"Fabriek does not honour {option}, so it refuses it; it honours {HONOURED}"
