"""SSH trust at the site: the factory's certificate authority's public key in the file
sshd's TrustedUserCAKeys names, and, where the site wants them, each person's registered
keys in a folder sshd's AuthorizedKeysFile names (`/etc/ssh/authorized_keys/%u`).

Files are written atomically, mode 0644 and owned by whoever runs the agent (root): sshd
reads them as root, and a half-written CA file must never lock everyone out.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fabriek.domain.site_state import PosixUser
from fabriek.site_agent.memory import write_atomically
from fabriek.site_agent.reconcile import Tally, Value


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:  # not there, or not readable: writing it says why, as an error
        return None


def _settle_file(tally: Tally, name: str, path: Path, text: str) -> None:
    found = _read(path)
    current: Value | None = None if found is None else {"content": found}

    def make() -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text, 0o644)
        return f"wrote {path}"

    tally.settle("ssh", name, current, {"content": text}, make)


def apply_ca_key(ca_key: str | None, path: Path, tally: Tally) -> None:
    """Put the CA's key in `path`; while the factory has no CA the file is left as it is."""
    if ca_key is not None:
        _settle_file(tally, "TrustedUserCAKeys", path, ca_key.strip() + "\n")


def apply_authorized_keys(users: Iterable[PosixUser], folder: Path, tally: Tally) -> None:
    """Each person's keys in `folder/<username>`; a locked person's file is emptied."""
    for user in users:
        keys = () if user.locked else tuple(sorted(set(user.ssh_keys)))
        text = "".join(f"{k.strip()}\n" for k in keys)
        _settle_file(tally, f"authorized_keys/{user.username}", folder / user.username, text)
