"""One test process at a time installs packages or starts shared daemons on this machine.

With the suite spread over several worker processes (pytest-xdist), two of them could run
apt-get or start munged at the same moment; dpkg's own lock would fail the second. The lock
is a file lock on the machine's temporary folder, held only while setting up.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def machine_setup() -> Iterator[None]:
    """Hold the machine-wide setup lock (blocking until it is free)."""
    path = Path(tempfile.gettempdir()) / "fabriek-test-setup.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
