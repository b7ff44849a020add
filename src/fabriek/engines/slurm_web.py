"""Web apps of jobs on Slurm sites: the port a job's app listens on, and where the control
plane reaches it.

Choices, and why:

- **The job picks its port, on its node, when it starts.** Only the node knows which ports
  are free there, and only once the job runs (another job, Fabriek's or not, may hold the
  port a fixed rule would give). The batch script reads the node's listening sockets from
  /proc/net/tcp and tcp6 (plain bash: no Python or other program needed on the node) and
  takes the first port not listened on in the site's range, starting at a place set by the
  Slurm job id, so that two jobs starting at the same moment on one node start their search
  apart. The range should lie outside the nodes' ephemeral ports
  (`net.ipv4.ip_local_port_range`, 32768-60999 by default), so no outgoing connection holds
  a port a web app is about to take.
- **It writes the port down in the engine's output folder**, `<engine>-<slurm id>.web`,
  next to its output files: storage the nodes and the control plane share already (see
  `slurm_tagged`). A Slurm job's comment is Fabriek's tag, and users may not change their
  jobs' other fields that the control plane could read.
- **The control plane trusts that file only if the job's own user owns it and nobody else
  may write it.** The folder is shared and sticky, like /tmp: another user could put a file
  of that name there first, to have the proxy (and the job's secret) sent to their own
  port. Such a file is ignored, and the job's app cannot be opened (503), rather than opened
  somewhere else. The port must lie in the site's range, too.
- **The host is the job's batch host** (where its script, and so its app, runs), **at the
  address Slurm itself reaches it**: the node's `NodeAddr`, which slurmctld uses for slurmd.
  A site whose control plane reaches nodes by other addresses names them in its sites-file
  table (`node_addresses`).
- **The app listens on `FABRIEK_WEB_HOST`** (the site's `web_listen`, all of the node's
  addresses by default, since the control plane connects from another machine) and trusts
  only requests carrying the job's secret: nothing is exposed to users, who reach the app
  only through Fabriek's proxy; the operator lets the control plane reach the nodes' ports.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from fabriek.engines.web_apps import PORT_VARIABLE

# The variable a job's web app reads the address to listen on from.
HOST_VARIABLE = "FABRIEK_WEB_HOST"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+", re.ASCII)
_LISTEN = re.compile(r"[0-9A-Fa-f.:]+|[A-Za-z0-9.-]+", re.ASCII)


@dataclass(frozen=True)
class WebPorts:
    """Where a Slurm site's jobs' web apps listen: a port range and the address to bind."""

    low: int = 20000
    high: int = 29999
    listen: str = "0.0.0.0"

    def __post_init__(self) -> None:
        if not 1024 <= self.low <= self.high <= 65535:
            raise ValueError("a web port range is LOW-HIGH within 1024-65535")
        if not _LISTEN.fullmatch(self.listen):
            raise ValueError(f"{self.listen!r} is not an address to listen on")

    def holds(self, port: int) -> bool:
        """Whether `port` is in the range."""
        return self.low <= port <= self.high


def web_file_name(engine: str, handle: str) -> str:
    """The file in the engine's output folder where a job records its web app's port
    (`handle` may be `$SLURM_JOB_ID`, for the script)."""
    return f"{_UNSAFE.sub('_', engine)}-{handle}.web"


def web_port_lines(engine: str, log_dir: PurePath | str, ports: WebPorts) -> list[str]:
    """Batch-script lines that pick a port free on the node, export it (and the address
    to listen on) to the job, and record it for the control plane; the job fails at once,
    saying why, when the whole range is taken."""
    # The folder quoted as written (an operator's path), the name with the job id expanded.
    record = f'{shlex.quote(str(log_dir))}"/{web_file_name(engine, "$SLURM_JOB_ID")}"'
    span = ports.high - ports.low + 1
    return [
        "# Fabriek: a port for this job's web app, free on this node (see docs/workloads.md)",
        "__fabriek_web_port() {",
        '  local used=" " sl addr rem st port i table',
        "  for table in /proc/net/tcp /proc/net/tcp6; do",
        '    [ -r "$table" ] || continue',
        '    while read -r sl addr rem st _; do',
        '      [ "$st" = 0A ] && used+="$((16#${addr##*:})) "',
        '    done < "$table"',
        "  done",
        f"  for ((i = 0; i < {span}; i++)); do",
        f"    port=$(( {ports.low} + (${{SLURM_JOB_ID:-0}} * 97 + i) % {span} ))",
        '    case "$used" in *" $port "*) continue ;; esac',
        '    echo "$port"; return 0',
        "  done",
        "  return 1",
        "}",
        f"if ! {PORT_VARIABLE}=$(__fabriek_web_port); then",
        f'  echo "fabriek: no port free for the web app in {ports.low}-{ports.high} on '
        '$(hostname)" >&2',
        "  exit 1",
        "fi",
        f"export {PORT_VARIABLE} {HOST_VARIABLE}={ports.listen}",
        # World-readable: the port is no secret (the app wants the job's secret), and a
        # control plane that is not root must read it too.
        f'( umask 022; echo "${PORT_VARIABLE}" > {record} ) || '
        'echo "fabriek: cannot record the web app\'s port; it cannot be opened" >&2',
    ]  # fmt: skip


def parse_port(text: str, ports: WebPorts) -> int | None:
    """The port a job recorded, if it is one number in the site's range."""
    value = text.strip()
    if not value.isdigit() or len(value) > 5:
        return None
    port = int(value)
    return port if ports.holds(port) else None


def recorded_port(path: Path, user_id: int | None, ports: WebPorts) -> int | None:
    """The port job's app listens on, from the file it wrote: None while it has written
    none, and for a file that is not the job user's alone to write (see the module)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o022:
            return None
        if user_id is None or info.st_uid != user_id:
            return None
        return parse_port(os.read(fd, 16).decode("ascii", "replace"), ports)
    finally:
        os.close(fd)


def node_address_from_scontrol(text: str) -> str | None:
    """`NodeAddr` in `scontrol show node NAME --oneliner` output."""
    match = re.search(r"(?:^|\s)NodeAddr=(\S+)", text)
    return match.group(1) if match and match.group(1) not in ("(null)", "None") else None


def node_address_from_rest(data: dict[str, Any]) -> str | None:
    """A node's `address` in slurmrestd's `GET /node/NAME` answer (v0.0.38's shape)."""
    nodes = data.get("nodes")
    if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict):
        address = nodes[0].get("address")
        return address if isinstance(address, str) and address else None
    return None
