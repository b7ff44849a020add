"""The agent's memory: what it applied last, in a JSON file in its state folder, so that
the next run can tell a change made by hand (drift) from a change of the wanted state."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fabriek.site_agent.reconcile import Value

FILE_NAME = "applied.json"


@dataclass
class Memory:
    """`items`: each managed thing's value as last applied. `limits`: per Slurm account,
    the GPU-minutes the control plane asked for and the GrpTRESMins limit that made of it
    (the limit moves only when the asked figure does, never with usage alone). `generation`:
    of the desired state last applied."""

    items: dict[str, Value] = field(default_factory=dict)
    limits: dict[str, dict[str, int]] = field(default_factory=dict)
    generation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"generation": self.generation, "items": self.items, "limits": self.limits}


def load(state_dir: Path) -> Memory:
    """The memory in `state_dir`, or an empty one (a first run, or an unreadable file:
    then every difference counts as a change to make, none as drift)."""
    try:
        data = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
        return Memory(
            items=dict(data.get("items", {})),
            limits={k: dict(v) for k, v in data.get("limits", {}).items()},
            generation=data.get("generation"),
        )
    except (OSError, ValueError, AttributeError, TypeError):
        return Memory()


def save(state_dir: Path, memory: Memory) -> None:
    """Write the memory atomically (a crash leaves the old file or the new, never half)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(state_dir / FILE_NAME, json.dumps(memory.to_json(), indent=1), 0o600)


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Replace `path` with `text` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
