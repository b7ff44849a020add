"""Which control-plane process dispatches: one per state folder, by a lock on a file."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO


def claim_dispatch(state_dir: Path) -> IO[bytes] | None:
    """Try to become this state dir's one dispatcher: an exclusive lock on a file, held until
    the returned file is closed (or the process dies). None: another process dispatches."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / "dispatcher.lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle
