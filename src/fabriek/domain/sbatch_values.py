"""The values of `#SBATCH` options and of our own job input: time limits, memory, counts and
GPU requests, as sbatch writes them. Pure: no I/O; a wrong value raises `Bad` (or, from
`parse_duration`, `InvalidInput`) with a message that says what is accepted.
"""

from __future__ import annotations

import math
import re

from fabriek.domain.errors import InvalidInput
from fabriek.domain.gpus import GPU_TYPES

# At most nine digits per number: enough for any real request, and it keeps int() away from
# Python's limit on huge digit strings (which raises ValueError, not InvalidInput).
_N = "([0-9]{1,9})"
_MAX_TIME_S = 365 * 86400
MAX_MEMORY_GB = 1 << 20  # 1 PiB: beyond any node, and well inside a 32-bit column

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


class Bad(ValueError):
    """A value is wrong; the public wrappers turn the message into `InvalidInput`."""


def _slurm_fields_to_seconds(groups: tuple[str, ...], weights: tuple[int, ...]) -> int:
    # The weights list holds one slot per possible field (d, h, m, s); zeros mark the slots
    # that this format does not have, so the groups fill the non-zero slots in order.
    values = iter(int(g) for g in groups)
    return sum(w * next(values) for w in weights if w)


def duration_seconds(text: str) -> int:
    value = text.strip()
    if value.upper() in {"UNLIMITED", "INFINITE", "-1"}:
        raise Bad(f"a job needs a time limit; {value!r} is not accepted: {_TIME_FORMATS}")
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
        raise Bad(f"{value!r} is not a duration: {_TIME_FORMATS}")
    if seconds <= 0:
        raise Bad(f"{value!r} is no time at all; a time limit must be more than zero")
    if seconds > _MAX_TIME_S:
        raise Bad(f"{value!r} is more than a year; ask for at most 365 days")
    return seconds


def parse_duration(text: str) -> int:
    """Seconds in a time limit written as sbatch's `--time` or as our CLI's `1h30m`.

    Slurm forms: `minutes`, `minutes:seconds`, `hours:minutes:seconds`, `days-hours`,
    `days-hours:minutes`, `days-hours:minutes:seconds` (fields may exceed 59, as in Slurm).
    Friendly forms: any of `Nd`, `Nh`, `Nm`, `Ns` in that order (`90s`, `1h30m`, `2d`).
    Zero, negative, unlimited and anything else raise `InvalidInput` on field `time`.
    """
    try:
        return duration_seconds(text)
    except Bad as bad:
        raise InvalidInput.on("time", str(bad)) from None


def memory_kib(text: str) -> int:
    value = text.strip()
    match = _MEMORY.fullmatch(value)
    if not match:
        raise Bad(f"{value!r} is not an amount of memory: {_MEMORY_FORMATS}")
    number, unit = int(match.group(1)), (match.group(2) or "").upper()
    kib = number * {"K": 1, "": 1024, "M": 1024, "G": 1024**2, "T": 1024**3}[unit]
    if kib <= 0:
        raise Bad(f"{value!r} is no memory at all; ask for more than zero")
    if kib > MAX_MEMORY_GB * 1024**2:
        raise Bad(f"{value!r} is more memory than any node has")
    return kib


def whole_gb(kib: int) -> int:
    gb = math.ceil(kib / 1024**2)
    if gb > MAX_MEMORY_GB:
        raise Bad("that is more memory than any node has")
    return gb


def count(text: str, message: str = "GPU count must be a whole number") -> int:
    if not _COUNT.fullmatch(text):
        raise Bad(message)
    return int(text)


def positive(text: str, what: str) -> int:
    number = count(text, f"{what} must be a whole number")
    if number < 1:
        raise Bad(f"{what} must be at least 1")
    return number


def typed_gpus(value: str) -> tuple[str | None, int]:
    """`[TYPE:]N`, as --gpus and --gpus-per-node take it."""
    kind, _, number = value.rpartition(":")
    if kind and not _GPU_TYPE.fullmatch(kind):
        raise Bad(f"{kind!r} is not a GPU type; write [TYPE:]N, e.g. h100:4")
    return (kind.lower() or None), count(number)


def gres_gpus(value: str) -> tuple[str | None, int] | None:
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
            found.append((None, count(parts[1], _GRES_COUNT)))
        elif len(parts) == 3:
            found.append(typed_gpus(f"{parts[1]}:{parts[2]}"))
        else:
            raise Bad("write gpu:N or gpu:TYPE:N")
    if len(found) > 1:
        raise Bad("name the GPUs once")
    return found[0] if found else None


_GRES_COUNT = "GPU count must be a whole number; write gpu:N or gpu:TYPE:N"
