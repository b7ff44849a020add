"""Debian's Chromium and axe-core for the browser tests: installed by the test setup when
missing (apt-get for Chromium, npm for axe-core into a cache folder).

Plain Python, no pytest. Each `ensure_*` returns what it found, or raises `Unavailable`
with a loud reason, for `pytest.skip`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.setup_lock import machine_setup

CHROMIUM = Path("/usr/bin/chromium")
# axe-core's version, pinned: a new release may add rules, and a test run should not change
# its verdict because a registry moved on.
AXE_VERSION = "4.14.1"
CACHE = Path(__file__).resolve().parents[2] / ".fabriek" / "test-cache"


class Unavailable(Exception):
    """What the browser tests need cannot be had on this machine; the message says why."""


def _apt_install(package: str) -> str | None:
    """`apt-get install -y package`; None on success, else apt's last words."""
    with machine_setup():
        return _apt_install_now(package)


def _apt_install_now(package: str) -> str | None:
    if shutil.which("apt-get") is None:
        return "apt-get is not on this machine"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    last = ""
    for attempt in range(2):
        if attempt:  # the package lists may be missing or stale: refresh them once
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-q", package],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if done.returncode == 0:
            return None
        last = (done.stderr or done.stdout)[-800:]
    return last


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing."""
    if not CHROMIUM.exists():
        why = _apt_install("chromium")
        if why is not None or not CHROMIUM.exists():
            raise Unavailable(
                f"Chromium is not installed at {CHROMIUM} and `apt-get install -y chromium` "
                f"failed: {why}; the browser tests cannot run"
            )
    return CHROMIUM


def ensure_axe() -> str:
    """The source of axe-core's axe.min.js, installed with npm into the test cache."""
    with machine_setup():
        return _ensure_axe()


def _ensure_axe() -> str:
    where = CACHE / f"axe-core-{AXE_VERSION}"
    script = where / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        if shutil.which("npm") is None:
            why = _apt_install_now("npm")
            if why is not None or shutil.which("npm") is None:
                raise Unavailable(f"npm is missing and could not be installed: {why}")
        where.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--prefix", str(where), "--no-audit", "--no-fund",
             f"axe-core@{AXE_VERSION}"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if done.returncode != 0 or not script.exists():
            raise Unavailable(
                f"`npm install axe-core@{AXE_VERSION}` failed: {(done.stderr or done.stdout)[-800:]}"
            )
    return script.read_text(encoding="utf-8")
