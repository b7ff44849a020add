"""A multi-node job on the local engine: its nodes simulated as process groups on one machine.

The engine makes it the job's program (`python3 -I -S -c <this file> CONFIG COMMAND...`),
so it runs where the job runs: inside the job's jail, as the job's user. CONFIG is a JSON
object: `nodes`, a list with each node's environment variables (added to the job's own),
and `grace_s`, the wait between SIGTERM and SIGKILL. It

1. starts COMMAND once per node, each in a process group of its own, with its variables;
2. copies each node's output to its own stdout and stderr, every line prefixed `[node i] `;
3. when a node ends with a failure (non-zero, or killed by a signal) stops the others
   (SIGTERM to their process groups, SIGKILL after `grace_s`) and exits with that node's
   code (128 + the signal for a signal), as Slurm's `srun --kill-on-bad-exit` does;
4. on SIGTERM, SIGINT or SIGHUP (a cancel, a time limit) stops every node the same way.

It exits 0 only when every node exited 0. Passed as source text, not a path, because the
job's user may not read the directory Fabriek is installed in. Standard library only, like
the runner and the jail, and for the same reasons.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def _die_with(gang: int) -> None:
    # In each node's first process, before exec: a gang killed outright takes it along.
    if _LIBC is not None:
        with contextlib.suppress(AttributeError):
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != gang:
        os._exit(137)


def _copy(source: IO[bytes], sink: IO[bytes], prefix: bytes, lock: threading.Lock) -> None:
    """Copy `source` to `sink` line by line, each line prefixed; a last line without an
    end of line gets one, so that nodes' lines never run together."""
    for line in iter(source.readline, b""):
        with lock:
            sink.write(prefix + (line if line.endswith(b"\n") else line + b"\n"))
            sink.flush()
    source.close()


class Gang:
    """The nodes of one job, started together and stopped together."""

    def __init__(self, nodes: list[dict[str, str]], grace_s: float) -> None:
        self.node_envs = nodes
        self.grace_s = grace_s
        self.children: dict[int, int] = {}  # pid -> node rank, while it runs
        # Kept for the gang's life: a Popen dropped while its process runs is polled by
        # subprocess when collected, which would reap a node behind `wait`'s back.
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.stopping = False
        # Re-entrant: a signal's handler may run while the main thread is inside `stop`.
        self.lock = threading.RLock()
        self.copiers: list[threading.Thread] = []

    def start(self, argv: list[str]) -> None:
        """Start every node (step 1), then the threads that copy their output (step 2):
        threads only after the last fork, which is not safe beside running threads."""
        me = os.getpid()
        started: list[tuple[int, subprocess.Popen[bytes]]] = []
        for rank, extra in enumerate(self.node_envs):
            with self.lock:
                if self.stopping:
                    break  # cancelled while starting: start no more
                child = subprocess.Popen(
                    argv,
                    env={**os.environ, **extra},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    process_group=0,  # its own group: a node is stopped whole
                    preexec_fn=lambda: _die_with(me),
                )
                self.children[child.pid] = rank
                self.processes[child.pid] = child
            started.append((rank, child))
        out_lock = threading.Lock()
        for rank, child in started:
            prefix = f"[node {rank}] ".encode()
            pipes = ((child.stdout, sys.stdout.buffer), (child.stderr, sys.stderr.buffer))
            for source, sink in pipes:
                assert source is not None
                copier = threading.Thread(target=_copy, args=(source, sink, prefix, out_lock))
                copier.start()
                self.copiers.append(copier)

    def stop(self, why: str) -> None:
        """Step 3: SIGTERM to every node still running, SIGKILL after the grace period."""
        with self.lock:
            if self.stopping:
                return
            self.stopping = True
            running = list(self.children)
        if running:
            print(f"[fabriek] {why}: stopping the other nodes", file=sys.stderr, flush=True)
        self._signal(running, signal.SIGTERM)
        killer = threading.Timer(self.grace_s, self._signal, (running, signal.SIGKILL))
        killer.daemon = True
        killer.start()

    def _signal(self, pids: list[int], number: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, number)

    def wait(self) -> int:
        """Reap every node; the exit code of the first that failed, else 0."""
        failed: int | None = None
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            rank = self.children.pop(pid, None)
            if rank is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            self.processes[pid].returncode = code  # reaped here: subprocess must not wait
            code = 128 - code if code < 0 else code  # a signal, as the shell writes it
            if code != 0 and failed is None:
                failed = code
                if not self.stopping:
                    self.stop(f"node {rank} exited with code {code}")
        for copier in self.copiers:
            copier.join()
        return failed or 0


def main(args: list[str]) -> int:
    """Run the gang described by `args` (CONFIG COMMAND...) to its end."""
    if len(args) < 2:
        print("usage: local_gang CONFIG COMMAND...", file=sys.stderr)
        return 2
    config: dict[str, Any] = json.loads(args[0])
    gang = Gang(list(config["nodes"]), float(config.get("grace_s", 5.0)))

    def on_signal(number: int, frame: object) -> None:
        gang.stop(f"{signal.Signals(number).name} received")

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)
    try:
        gang.start(args[1:])
    except OSError as error:
        print(f"[fabriek] could not start {args[1]!r}: {error.strerror}", file=sys.stderr)
        gang.stop("a node could not start")
        gang.wait()
        return 127
    return gang.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
