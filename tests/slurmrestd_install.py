"""Debian's slurmrestd (Slurm's REST API daemon) for the tests and benchmarks that serve a
test cluster's REST API: installed with apt-get when missing.

Plain Python, no pytest. `ensure_slurmrestd_installed()` returns None when the daemon is
there, or a loud reason why not, for `pytest.skip` or a benchmark's exit message. Slurm
itself and munged are `tests.slurm_install`'s part; this is only the extra package (with
the JWT plugin slurmrestd and slurmctld need for `AuthAltTypes=auth/jwt`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.setup_lock import machine_setup

PACKAGES = ("slurmrestd", "slurm-wlm-jwt-plugin")


def _installed() -> bool:
    return shutil.which("slurmrestd") is not None or Path("/usr/sbin/slurmrestd").exists()


def ensure_slurmrestd_installed() -> str | None:
    """slurmrestd on this machine: None when ready, else why not."""
    if _installed():
        return None
    with machine_setup():
        if _installed():  # another test process installed it while we waited
            return None
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return "SLURMRESTD NOT AVAILABLE: not installed, and no apt-get as root to install it"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        last = ""
        for attempt in range(2):
            if attempt:  # the package lists may be missing or stale: refresh them once
                subprocess.run(
                    ["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600
                )
            done = subprocess.run(
                ["apt-get", "install", "-y", "-q", *PACKAGES],
                env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if done.returncode == 0 and _installed():
                return None
            last = (done.stderr or done.stdout)[-800:]
        return f"SLURMRESTD NOT AVAILABLE: apt-get install {' '.join(PACKAGES)} failed: {last}"
