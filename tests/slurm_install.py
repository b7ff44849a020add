"""Slurm and munge on this machine: installed with apt when missing, munged started.

Plain Python, no pytest. `ensure_slurm_installed()` returns None when Slurm's commands and a
working munged are there, or a loud reason why not, for `pytest.skip`.

munged is the machine's authentication service, shared by every Slurm cluster and every test
run on the machine (two pytest runs may overlap): once started it is left running, like the
system service it is. `stop_munged()` ends one that this process started, for a caller that
knows it is alone.

Facts (Debian 12, root, no systemd): the munge package makes /etc/munge/munge.key but nobody
makes /run/munge, without which munged will not start.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.setup_lock import machine_setup

SLURM_COMMANDS = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "munged")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN_DIR = Path("/run/munge")
_started_munged: list[int] = []  # pids of munged processes this module started


def _missing_commands() -> list[str]:
    return [
        c for c in SLURM_COMMANDS if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()
    ]


def _apt_install(*packages: str) -> str | None:
    """Install Debian packages with apt (slurm-wlm and munge unless named); None on
    success, else apt's last words."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", *(packages or ("slurm-wlm", "munge"))]
    last = ""
    for attempt in range(2):
        if attempt:  # the package lists may be missing or stale: refresh them once
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode == 0:
            return None
        last = (done.stderr or done.stdout)[-800:]
    return last


def _munge_works() -> bool:
    try:
        made = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        if made.returncode != 0:
            return False
        back = subprocess.run(["unmunge"], input=made.stdout, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return back.returncode == 0


def _ensure_munge_key(munge_uid: int, munge_gid: int) -> None:
    if not MUNGE_KEY.exists():
        MUNGE_KEY.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(MUNGE_KEY.parent, munge_uid, munge_gid)
        if shutil.which("mungekey") or Path("/usr/sbin/mungekey").exists():
            subprocess.run(
                ["mungekey", "--create", f"--keyfile={MUNGE_KEY}"], check=True, timeout=30
            )
        else:
            MUNGE_KEY.write_bytes(os.urandom(1024))
    os.chown(MUNGE_KEY, munge_uid, munge_gid)
    os.chmod(MUNGE_KEY, 0o400)


def _start_munged() -> str | None:
    """Start munged as user munge unless it already answers; None when it works."""
    if _munge_works():
        return None
    try:
        munge = pwd.getpwnam("munge")
    except KeyError:
        return "user 'munge' does not exist although the munge package is installed"
    _ensure_munge_key(munge.pw_uid, munge.pw_gid)
    # Without systemd nobody makes the socket directory; munged refuses to start without it.
    for directory, mode in ((MUNGE_RUN_DIR, 0o755), (Path("/var/log/munge"), 0o700)):
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
        os.chown(directory, munge.pw_uid, munge.pw_gid)
    # Foreground (-F) as our child so that stop_munged() can end exactly what we started.
    # Its output goes to a file: a pipe nobody reads could fill up and stall it.
    err_file = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        ["runuser", "-u", "munge", "--", "/usr/sbin/munged", "-F", "--force"],
        stdout=err_file,
        stderr=err_file,
        start_new_session=True,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if _munge_works():
            _started_munged.append(proc.pid)
            return None
        if proc.poll() is not None:
            err_file.seek(0)
            err = err_file.read().decode(errors="replace")
            return f"munged exited with {proc.returncode}: {err.strip()[-500:]}"
        time.sleep(0.1)
    proc.kill()
    return "munged started but did not answer `munge -n` within 15 s"


def stop_munged() -> None:
    """Stop the munged this module started, if any (a munged found running is left alone)."""
    while _started_munged:
        pid = _started_munged.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)


def ensure_slurm_installed() -> str | None:
    """Make Slurm's daemons and clients and a working munged available.

    Returns None when ready, or a loud, human-readable reason why not, for `pytest.skip`.
    """
    with machine_setup():
        return _ensure_slurm_installed()


def _ensure_slurm_installed() -> str | None:
    missing = _missing_commands()
    if missing:
        if os.geteuid() != 0:
            return f"SLURM NOT AVAILABLE: {missing} missing and not root, cannot apt-get install"
        if shutil.which("apt-get") is None:
            return f"SLURM NOT AVAILABLE: {missing} missing and no apt-get on this machine"
        try:
            failure = _apt_install()
        except (OSError, subprocess.TimeoutExpired) as exc:
            failure = repr(exc)
        if failure is not None:
            return f"SLURM NOT AVAILABLE: apt-get install slurm-wlm munge failed: {failure}"
        missing = _missing_commands()
        if missing:
            return f"SLURM NOT AVAILABLE: still missing after install: {missing}"
    if os.geteuid() != 0:
        return "SLURM NOT AVAILABLE: the test clusters run their daemons as root; run as root"
    failure = _start_munged()
    if failure is not None:
        return f"SLURM NOT AVAILABLE: munge does not work: {failure}"
    return None


# Slurm's accounting: slurmdbd and sacctmgr, and a MariaDB client to make and drop each
# test cluster's database on the machine's MariaDB server.
ACCOUNTING_COMMANDS = {
    "slurmdbd": "slurmdbd",
    "sacctmgr": "slurm-client",
    "mariadb": "mariadb-client",
}


def ensure_accounting_installed() -> str | None:
    """Slurm as `ensure_slurm_installed` makes it ready, plus slurmdbd and a MariaDB server
    that answers at 127.0.0.1:3306 as root without a password. None when ready, else why
    not (for `pytest.skip`)."""
    reason = ensure_slurm_installed()
    if reason is not None:
        return reason
    with machine_setup():
        missing = [
            package
            for command, package in ACCOUNTING_COMMANDS.items()
            if shutil.which(command) is None and not Path(f"/usr/sbin/{command}").exists()
        ]
        if missing:
            try:
                failure = _apt_install(*missing)
            except (OSError, subprocess.TimeoutExpired) as exc:
                failure = repr(exc)
            if failure is not None:
                return (
                    f"SLURM ACCOUNTING NOT AVAILABLE: apt-get install {missing} failed: {failure}"
                )
    try:
        done = subprocess.run(
            ["mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "-e", "SELECT 1"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"SLURM ACCOUNTING NOT AVAILABLE: MariaDB at 127.0.0.1:3306: {exc!r}"
    if done.returncode != 0:
        return f"SLURM ACCOUNTING NOT AVAILABLE: MariaDB at 127.0.0.1:3306: {done.stderr.strip()}"
    return None
