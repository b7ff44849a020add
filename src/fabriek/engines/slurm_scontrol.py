"""`scontrol show job --oneliner --details` read into `SlurmJob`s: pure functions, no I/O.

The text form exists in every Slurm version (22.05's scontrol has no `--json`), so it is the
engine's fallback when squeue does not show a job. Its times are local times without a
zone: the engine runs Slurm's commands with TZ=UTC, and they are read here as UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fabriek.engines.slurm_parse import (
    SlurmJob,
    gpu_count_from_tres,
    gpu_ids_from_detail,
    split_state,
)

_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")
# --details adds "Nodes=<hostlist> CPU_IDs=.. Mem=.. GRES=gpu:h100:2(IDX:0-1)" per node group.
_DETAIL = re.compile(r"(?<![A-Za-z_])(Nodes|GRES)=(\S+)")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compressed node list, 'gpu[01-02,5],login' -> ['gpu01', 'gpu02', 'gpu5', 'login'].

    One bracket group per name, as Slurm prints for one-dimensional names; zero padding
    is kept. Anything it cannot read is returned as a single name.
    """
    parts: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    names: list[str] = []
    for part in filter(None, parts):
        match = re.fullmatch(r"([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)", part)
        if not match:
            names.append(part)
            continue
        prefix, ranges, suffix = match.groups()
        for piece in ranges.split(","):
            bounds = _RANGE.fullmatch(piece)
            if not bounds:
                return [text]
            lo, hi = bounds.group(1), bounds.group(2) or bounds.group(1)
            names.extend(
                f"{prefix}{str(n).zfill(len(lo))}{suffix}" for n in range(int(lo), int(hi) + 1)
            )
    return names


def _fields(line: str) -> dict[str, str]:
    """`Key=value Key2=value with spaces` -> dict; a value runs up to the next ` Key=`.
    The first occurrence of a key wins (the --details part repeats Nodes= and GRES=)."""
    marks = list(_KEY.finditer(line))
    out: dict[str, str] = {}
    for here, after in zip(marks, [*marks[1:], None], strict=True):
        end = after.start() if after else len(line)
        out.setdefault(here.group(1), line[here.end() : end].strip())
    return out


def _time(text: str) -> int | None:
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())
    except ValueError:
        return None  # Unknown, None, N/A


def _wait_status(text: str) -> int | None:
    """scontrol's ExitCode=EXIT:SIGNAL as a waitpid status."""
    code, _, sig = text.partition(":")
    if not code.isdigit() or not sig.isdigit():
        return None
    return int(sig) & 0x7F if int(sig) else (int(code) & 0xFF) << 8


def _gpu_ids(line: str) -> tuple[str, ...]:
    names: list[str] = []
    details: list[str] = []
    nodes = ""
    for key, value in _DETAIL.findall(line):
        if key == "Nodes":
            nodes = value
        elif "IDX:" in value:
            for name in expand_hostlist(nodes) or [""]:
                names.append(name)
                details.append(value)
    return tuple(gpu_ids_from_detail(details, names))


def _null(value: str | None) -> str:
    return "" if value in (None, "(null)", "None") else str(value)


def _user_id(text: str) -> int | None:
    """scontrol's UserId=name(uid) as the uid."""
    match = re.fullmatch(r"[^(]*\(([0-9]+)\)", text.strip())
    return int(match.group(1)) if match else None


def parse_scontrol_oneliner(text: str) -> list[SlurmJob]:
    """Every job in `scontrol show job --oneliner [--details]` output (times read as UTC)."""
    jobs = []
    for line in text.splitlines():
        f = _fields(line)
        if "JobId" not in f:
            continue  # "No jobs in the system", blank lines
        state, flags = split_state(f.get("JobState", "").upper().split("+"))
        count = f.get("NumNodes", "1").split("-")[0]
        ids = _gpu_ids(line)
        tres = gpu_count_from_tres(
            f.get("TresPerNode", ""), f.get("TresPerJob", ""), int(count) if count.isdigit() else 1
        )
        jobs.append(
            SlurmJob(
                handle=f["JobId"],
                name=f.get("JobName", ""),
                comment=_null(f.get("Comment")),
                state=state,
                flags=flags,
                reason=_null(f.get("Reason")) or None,
                wait_status=_wait_status(f.get("ExitCode", "")),
                start=_time(f.get("StartTime", "")),
                end=_time(f.get("EndTime", "")),
                nodes=_null(f.get("NodeList")),
                gpu_count=len(ids) or tres,
                gpu_ids=ids,
                batch_host=_null(f.get("BatchHost")),
                user_id=_user_id(f.get("UserId", "")),
            )
        )
    return jobs
