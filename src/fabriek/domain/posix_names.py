"""POSIX names and numbers for people and projects at the sites: pure rules.

Every person has one Unix account on every site (a username and a UID) and every project
one Unix group (a name, which is also its Slurm account, and a GID). Fabriek allocates
them once and never reuses them, so files on shared storage keep their owner. These rules
choose them from what is already taken; the services store the choice under unique
constraints, so two control-plane processes choosing at once cannot both win.

Numbering. A person's UID is the ID base plus their number, exactly what the `local`
engine runs their jobs as. Each person also has a primary group of their own, with the
same number as their UID, so a project's GID must never equal anyone's UID: project
groups are numbered from `base + PROJECT_GID_OFFSET`, a range no person's number reaches.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from fabriek.domain.accounts import IdentityOutOfRange

POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
MAX_NAME = 32
# People are numbered up to this far above the base; project groups above it.
PROJECT_GID_OFFSET = 100_000_000
ID_CEILING = 2**31 - 2

# Accounts and groups that Debian and the services a site runs (Slurm, munge, sshd,
# databases) have already: a Fabriek name must never be one of them.
RESERVED = frozenset(
    {
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news",
        "uucp", "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody",
        "nogroup", "_apt", "messagebus", "sshd", "slurm", "munge", "mysql", "postgres",
        "systemd-network", "systemd-resolve", "systemd-timesync", "polkitd", "tss",
        "adm", "tty", "disk", "kmem", "dialout", "fax", "voice", "cdrom", "floppy",
        "tape", "sudo", "audio", "dip", "operator", "src", "shadow", "utmp", "video",
        "sasl", "plugdev", "staff", "users", "wheel", "input", "kvm", "render",
        "crontab", "netdev", "ssh", "_ssh", "docker", "lxd", "ntp", "chrony",
    }
)  # fmt: skip


def is_posix_name(name: str) -> bool:
    """Whether `name` may be used as it is: a portable POSIX name no system account has."""
    return bool(POSIX_NAME.fullmatch(name)) and name not in RESERVED


def name_stem(text: str, prefix: str) -> str:
    """The nearest portable POSIX name to `text`: lower case, every other character a
    dash, starting with a letter (`prefix` put in front when it does not), at most 32
    characters; `prefix` alone when nothing of `text` is left."""
    cleaned = re.sub(r"[^a-z0-9_-]", "-", text.lower())
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip("-")
    if cleaned and not re.match(r"[a-z_]", cleaned):
        cleaned = f"{prefix}{cleaned}"
    cleaned = cleaned[:MAX_NAME].rstrip("-")
    return cleaned or prefix


def choose_name(wanted: str, taken: Collection[str], prefix: str) -> str:
    """A valid name not in `taken`: `wanted` itself when it is valid and free, else its
    stem, else the stem with the smallest number (2, 3, ...) that makes it free. The same
    wanted name and taken names always give the same answer."""
    stem = wanted if POSIX_NAME.fullmatch(wanted) else name_stem(wanted, prefix)
    if stem in RESERVED:
        stem = f"{prefix}{stem}"[:MAX_NAME]
    if is_posix_name(stem) and stem not in taken:
        return stem
    number = 2
    while True:
        suffix = str(number)
        candidate = f"{stem[: MAX_NAME - len(suffix)]}{suffix}"
        if is_posix_name(candidate) and candidate not in taken:
            return candidate
        number += 1


def choose_id(preferred: int, taken: Collection[int], ceiling: int = ID_CEILING) -> int:
    """`preferred` when free, else the next free number above it; IdentityOutOfRange past
    `ceiling`."""
    chosen = preferred
    while chosen in taken:
        chosen += 1
    if chosen > ceiling:
        raise IdentityOutOfRange(
            f"no free ID from {preferred} to {ceiling}: choose a lower FABRIEK_LOCAL_ID_BASE"
        )
    return chosen


def person_uid(base: int, user_id: int) -> int:
    """The UID a person gets unless it is taken: the local engine's (base + number)."""
    if user_id < 1 or user_id >= PROJECT_GID_OFFSET:
        raise IdentityOutOfRange(f"person {user_id} does not fit the UID range")
    return base + user_id


def project_gid(base: int, project_id: int) -> int:
    """The GID a project's group gets unless it is taken: above every person's number."""
    if project_id < 1:
        raise IdentityOutOfRange(f"project {project_id} does not fit the GID range")
    return base + PROJECT_GID_OFFSET + project_id


def allocate_names(
    wanted: list[tuple[int, str]], taken: Collection[str], prefix: str
) -> dict[int, str]:
    """Names for many at once (`(number, wanted name)`), in order of number, each free of
    `taken` and of the names chosen before it: no two get the same name."""
    used = set(taken)
    chosen: dict[int, str] = {}
    for number, name in sorted(wanted):
        chosen[number] = choose_name(name, used, prefix)
        used.add(chosen[number])
    return chosen
