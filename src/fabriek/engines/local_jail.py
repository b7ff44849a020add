"""The job's jail: the first process of the job's own PID and mount namespaces.

The runner starts it, as root, with util-linux's `unshare --mount --pid --fork --kill-child
--mount-proc --propagation private python -I -S local_jail.py JOB_DIR`. It is then the
init of a PID namespace that holds only this job (no other job's process can be seen or
signalled from inside) and owns a mount namespace of its own, in which it:

1. gives the job its own empty /tmp, /var/tmp and /dev/shm;
2. hides every private path (the control plane's state folder with every job's files and
   staged datasets, the database, the keys) under an empty tmpfs (a file: under /dev/null);
3. binds back only the job's workspace (read-write) and its own staged datasets
   (read-only), at the paths they have outside, from descriptors opened before step 2,
   and the machine's /etc/passwd and /etc/group with the job's user and group added;
4. forks the job in a session of its own, as the person's UID with the project's GID and
   no other group, with no way to gain privileges (no_new_privs), umask 077, entering its
   working directory as that user, so that the user's own permissions apply.

It forwards SIGTERM, SIGINT and SIGHUP to the job's process group, reaps whatever the job
orphans, and exits with the job's exit code; when it exits the kernel kills everything
left in the namespace. How the job ended goes to `jail.json` in JOB_DIR (a signal cannot
be passed on as such: the init of a namespace cannot be killed by its own signal).

Standard library only, like the runner, and for the same reasons.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

JAIL_FILE = "jail.json"

_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_REC = 0x4000
_PR_SET_NO_NEW_PRIVS = 38
_PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")

_LIBC = ctypes.CDLL(None, use_errno=True)


class JailError(Exception):
    """The jail could not be set up; the job does not start."""


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    done = _LIBC.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if done != 0:
        errno = ctypes.get_errno()
        raise JailError(f"could not mount {target}: {os.strerror(errno)}")


def _outermost(paths: list[str]) -> list[str]:
    """The paths not inside another of them (hiding the outer one hides the inner)."""
    ordered = sorted({os.path.normpath(p) for p in paths})
    kept: list[str] = []
    for path in ordered:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def build(jail: dict[str, Any]) -> None:
    """Steps 1-3: the job's view of the file system (see the module's docstring)."""
    # Descriptors first: once the state folder is hidden, the sources are out of reach.
    sources = [(os.open(b["source"], os.O_PATH | os.O_NOFOLLOW), b) for b in jail.get("binds", [])]
    quiet = _MS_NOSUID | _MS_NODEV
    for tmp in _PRIVATE_TMP:
        if os.path.isdir(tmp):
            _mount("tmpfs", tmp, "tmpfs", quiet, "mode=1777")
    hidden_dirs: list[str] = []
    for path in _outermost(jail.get("hide", [])):
        if os.path.isdir(path) and not os.path.islink(path):
            _mount("tmpfs", path, "tmpfs", quiet | _MS_NOEXEC, "mode=0755,size=1m")
            hidden_dirs.append(path)
        elif os.path.lexists(path):
            _mount("/dev/null", path, None, _MS_BIND)
    for fd, bind in sources:
        target = bind["target"]
        if not os.path.exists(target):  # a file is bound only over one that exists
            os.makedirs(target, mode=0o755)
        _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC)
        if not bind.get("writable"):
            _mount(None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | quiet)
        os.close(fd)
    for path in hidden_dirs:  # nothing may be added where others' files were
        _mount(None, path, None, _MS_REMOUNT | _MS_RDONLY | quiet | _MS_NOEXEC, "mode=0755")


def _become(jail: dict[str, Any], cwd: str) -> None:
    """In the forked child: the job's session, user, group and working directory."""
    os.setsid()
    if _LIBC.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise JailError("could not forbid new privileges")
    os.setgroups([])
    os.setgid(int(jail["gid"]))
    os.setuid(int(jail["uid"]))
    os.umask(0o077)
    try:
        os.chdir(cwd)
    except OSError as error:
        raise JailError(
            f"could not enter working directory {cwd!r} as {jail['user']}: {error.strerror}"
        ) from None


def _start(job: dict[str, Any]) -> tuple[int, int]:
    """Fork the job; the pid, and the read end of a pipe that carries the child's error
    (it closes without a word when the job's program starts)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the child: it must never return into the jail's code
        try:
            os.close(read_end)
            for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(number, signal.SIG_DFL)
            _become(job["jail"], job["cwd"])
            argv = job["argv"]
            try:
                os.execvpe(argv[0], argv, job["env"])
            except OSError as error:
                raise JailError(f"could not start {argv[0]!r}: {error.strerror}") from None
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.write(write_end, str(error).encode())
        finally:
            os._exit(127)
    os.close(write_end)
    return pid, read_end


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _report(control: int, outcome: dict[str, Any]) -> None:
    """Write `jail.json` into the job's control directory (hidden from here by now, but
    reached through a descriptor opened before)."""
    temp = f".{JAIL_FILE}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=control)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(outcome))
    os.replace(temp, JAIL_FILE, src_dir_fd=control, dst_dir_fd=control)


def run(job_dir: Path) -> int:
    """Set up the jail for the job in `job_dir`, run the job, return its exit code."""
    control = os.open(job_dir, os.O_DIRECTORY)
    job = json.loads((job_dir / "job.json").read_text())
    forwarded: dict[str, int] = {}

    def forward(number: int, frame: object) -> None:
        forwarded["signal"] = number
        if "pid" in forwarded:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(forwarded["pid"], number)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, forward)
    try:
        build(job["jail"])
    except (JailError, OSError) as error:
        _report(control, {"error": f"could not set up the job's isolation: {error}"})
        return 126
    pid, errors = _start(job)
    forwarded["pid"] = pid
    if "signal" in forwarded:  # cancelled while the jail was being built
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, forwarded["signal"])
    failure = _read_all(errors)
    while True:  # as init, reap every orphan; stop when the job itself has ended
        ended, status = os.waitpid(-1, 0)
        if ended == pid:
            break
    if failure:
        _report(control, {"error": failure})
        return 127
    if os.WIFSIGNALED(status):
        killed_by = os.WTERMSIG(status)
        _report(control, {"signal": killed_by})
        return 128 + killed_by
    code = os.waitstatus_to_exitcode(status)
    _report(control, {"exit_code": code})
    return code


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
