"""The site's usage, pushed to the control plane: every job run in the site's Slurm
accounting since the last push, including those typed with `sbatch` over SSH.

`push_usage` runs `sacct` (in UTC, allocations only, every run of a requeued job) from the
last push's time less a day, sends the lines, and only then remembers the time sacct ran.
The control plane takes each run once however often it is sent, so the day of overlap
costs nothing and catches accounting that reached slurmdbd late; a push that fails (sacct
or slurmdbd down, the control plane unreachable) is simply made again next time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from fabriek.domain.slurm_accounting import SACCT_FIELDS, sacct_argv
from fabriek.site_agent.memory import write_atomically
from fabriek.site_agent.tools import Tools

CURSOR = "usage_cursor.json"
LOOK_BACK = timedelta(days=1)
# How far back the very first push reads.
FIRST_LOOK_BACK = timedelta(days=30)
# Lines per request: a large site's first push goes in several.
BATCH_LINES = 20_000


class AccountingSink(Protocol):
    """What the agent asks of the control plane (`SiteAgentClient.push_accounting`)."""

    def push_accounting(self, sacct: str, through: datetime | None = None) -> dict[str, Any]: ...


def push_usage(
    control_plane: AccountingSink,
    state_dir: Path,
    slurm_env: dict[str, str] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, int]:
    """Push the accounting since the last push; what the control plane did, summed over the
    batches. Raises ToolFailed when sacct fails, or what the client raises: the time of
    the last push stays, and the next call sends the same runs again."""
    cursor = state_dir / CURSOR
    asked_at = clock()
    since = _last_push(cursor)
    since = since - LOOK_BACK if since is not None else asked_at - FIRST_LOOK_BACK
    # sacct prints local times without a zone: UTC, so they read as what they are.
    done = Tools({**(slurm_env or {}), "TZ": "UTC"}).run(sacct_argv(since))
    totals: dict[str, int] = {}
    batches = list(_batches(done.out))
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        answer = control_plane.push_accounting(batch, through=asked_at if last else None)
        for key, value in answer.items():
            if isinstance(value, int):
                totals[key] = totals.get(key, 0) + value
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(cursor, json.dumps({"through": asked_at.isoformat()}), 0o600)
    return totals


def _last_push(cursor: Path) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads(cursor.read_text())["through"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _batches(text: str) -> Iterator[str]:
    """The output in batches of about BATCH_LINES records, cut only where a record starts
    (a comment with a newline in it continues on the next line)."""
    fields = len(SACCT_FIELDS)
    lines: list[str] = []
    records = 0
    for line in text.splitlines():
        starts = line.count("|") >= fields - 1
        if starts and records >= BATCH_LINES:
            yield "\n".join(lines) + "\n"
            lines, records = [], 0
        lines.append(line)
        records += int(starts)
    yield "\n".join(lines) + "\n" if lines else ""
