"""Reading Slurm's accounting database with `sacctmgr -P -n` and slurmctld's view of usage
with `scontrol show assoc_mgr`: a thin reader and pure parsers of their output.

Slurm folds account, user and QOS names and descriptions to lower case; names are checked
before they reach a command line (a comma or '=' would be read by sacctmgr as syntax), and
descriptions lose what would break `-P` output (newlines, '|').
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fabriek.site_agent.tools import Tools

_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$")
_USED_GPU = re.compile(r"GrpTRESMins=\S*?gres/gpu=(?:N|\d+)\((\d+)\)")


def valid_name(name: str) -> bool:
    """Whether a name may be handed to sacctmgr as one account, user or QOS name."""
    return bool(_NAME.match(name))


def clean_description(text: str) -> str:
    """A description as Slurm keeps it: one line, lower case, without '|' or quotes."""
    return " ".join(re.sub(r"[|\"'\n\r]", " ", text).split()).lower()


def wall_minutes(text: str) -> int | None:
    """Slurm's `[D-]HH:MM:SS` (or `MM:SS`, or empty for none) as whole minutes."""
    text = text.strip()
    if not text or text in {"UNLIMITED", "INFINITE"}:
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


def tres(text: str) -> dict[str, int]:
    """`gres/gpu=100,cpu=5` as a mapping."""
    found: dict[str, int] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name and value.isdigit():
            found[name] = int(value)
    return found


def used_gpu_minutes(assoc_mgr: str) -> int:
    """The GPU-minutes Slurm has counted for an account, from `scontrol -o show assoc_mgr
    accounts=NAME flags=assoc`: the account's own line (no user) shows GrpTRESMins as
    gres/gpu=LIMIT(USED)."""
    for line in assoc_mgr.splitlines():
        if " UserName= " in line:
            found = _USED_GPU.search(line)
            if found:
                return int(found.group(1))
    raise ValueError("slurmctld shows no GPU usage for the account (is gres/gpu a TRES?)")


@dataclass(frozen=True)
class AssocRow:
    """One association as sacctmgr shows it; `user` empty for the account's own."""

    account: str
    user: str
    limits: dict[str, int]
    qos: tuple[str, ...]
    default_qos: str
    max_submit_jobs: str
    grp_submit_jobs: str


def parse_assocs(text: str) -> list[AssocRow]:
    """`sacctmgr -P -n show assoc format=Account,User,GrpTRESMins,QOS,DefaultQOS,
    MaxSubmitJobs,GrpSubmitJobs`."""
    rows = []
    for line in text.splitlines():
        cells = line.split("|")
        if len(cells) < 7:
            continue
        rows.append(
            AssocRow(
                account=cells[0],
                user=cells[1],
                limits=tres(cells[2]),
                qos=tuple(q for q in cells[3].split(",") if q),
                default_qos=cells[4],
                max_submit_jobs=cells[5],
                grp_submit_jobs=cells[6],
            )
        )
    return rows


class Sacctmgr:
    """sacctmgr and scontrol for one cluster."""

    def __init__(self, tools: Tools, cluster: str) -> None:
        self.tools = tools
        self.cluster = cluster

    def show(self, *what: str) -> str:
        """`sacctmgr -P -n show ...`: parsable, no header."""
        return self.tools.run(["sacctmgr", "-P", "-n", "show", *what]).out

    def change(self, *what: str) -> None:
        """`sacctmgr -i ...`, which answers nothing modified with a non-zero status when
        the value was already so: that is success."""
        done = self.tools.run(["sacctmgr", "-i", *what], check=False)
        if done.code != 0 and "nothing modified" not in done.text.lower():
            self.tools.run(["sacctmgr", "-i", *what])  # again, to raise with its words

    def try_change(self, *what: str) -> tuple[bool, str]:
        """`sacctmgr -i ...`; whether it worked, and what it said."""
        done = self.tools.run(["sacctmgr", "-i", *what], check=False)
        return done.code == 0, done.text

    def qos(self) -> dict[str, dict[str, object]]:
        found: dict[str, dict[str, object]] = {}
        for line in self.show(
            "qos", "format=Name,Priority,MaxWall,Preempt,PreemptMode"
        ).splitlines():
            cells = line.split("|")
            if len(cells) >= 5:
                found[cells[0]] = {
                    "priority": int(cells[1] or 0),
                    "max_wall_minutes": wall_minutes(cells[2]),
                    "preempt": sorted(p for p in cells[3].split(",") if p),
                    "preempt_mode": cells[4],
                }
        return found

    def descriptions(self) -> dict[str, str]:
        found = {}
        for line in self.show("account", "format=Account,Descr").splitlines():
            name, _, descr = line.partition("|")
            found[name] = descr
        return found

    def assocs(self) -> list[AssocRow]:
        return parse_assocs(
            self.show(
                "assoc",
                "where",
                f"cluster={self.cluster}",
                "format=Account,User,GrpTRESMins,QOS,DefaultQOS,MaxSubmitJobs,GrpSubmitJobs",
            )
        )

    def default_accounts(self) -> dict[str, str]:
        found = {}
        for line in self.show("user", "format=User,DefaultAccount").splitlines():
            name, _, account = line.partition("|")
            found[name] = account
        return found

    def used_gpu_minutes(self, account: str) -> int:
        done = self.tools.run(
            ["scontrol", "-o", "show", "assoc_mgr", f"accounts={account}", "flags=assoc"]
        )
        return used_gpu_minutes(done.out)
