"""Prometheus' `promtool` for the tests that check the metrics exposition and the alert
rules: Debian's `prometheus` package holds it (no smaller package does), installed with
apt-get when missing.

Plain Python, no pytest. `ensure_promtool()` returns the tool's path, or a loud reason why
it cannot be had, for `pytest.skip`.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from tests.setup_lock import machine_setup

PACKAGE = "prometheus"


def _found() -> str | None:
    return shutil.which("promtool")


def ensure_promtool() -> str:
    """promtool's path; raises `PromtoolMissing` (with apt's last words) if it cannot be
    installed."""
    if (path := _found()) is not None:
        return path
    with machine_setup():
        if (path := _found()) is not None:  # another test process installed it meanwhile
            return path
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise PromtoolMissing("PROMTOOL NOT AVAILABLE: not installed, and no apt-get as root")
        # No services started by the package's scripts: promtool is all the tests need.
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
        last = ""
        for attempt in range(2):
            if attempt:  # the package lists may be missing or stale: refresh them once
                subprocess.run(
                    ["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600
                )
            done = subprocess.run(
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", PACKAGE],
                env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if done.returncode == 0 and (path := _found()) is not None:
                return path
            last = (done.stderr or done.stdout)[-800:]
        raise PromtoolMissing(f"PROMTOOL NOT AVAILABLE: apt-get install {PACKAGE} failed: {last}")


class PromtoolMissing(Exception):
    """promtool is not here and could not be installed."""
