"""The site's own commands (getent, useradd, sacctmgr, scontrol), run with an argument list,
never through a shell, so that no name from the control plane is ever read as syntax."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ToolFailed(RuntimeError):
    """A site command exited with an error; the message is its first line of complaint."""

    def __init__(self, argv: Sequence[str], code: int, output: str) -> None:
        words = " ".join(output.split())[:300] or f"exit status {code}"
        super().__init__(f"{' '.join(argv[:3])}: {words}")
        self.argv = tuple(argv)
        self.code = code
        self.output = output


@dataclass(frozen=True)
class Done:
    """What a command printed and how it exited."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return (self.out + self.err).strip()


class Tools:
    """Runs the site's commands with the agent's environment plus `env` (SLURM_CONF for
    a cluster that is not the machine's default)."""

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = 120.0) -> None:
        self.env = {**os.environ, **(env or {})}
        self.timeout_s = timeout_s

    def run(self, argv: Sequence[str], *, check: bool = True) -> Done:
        """Run `argv`; with `check`, raise ToolFailed unless it exits 0."""
        try:
            proc = subprocess.run(
                list(argv),
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
            )
        except FileNotFoundError:
            raise ToolFailed(argv, 127, f"{argv[0]} is not installed at this site") from None
        except subprocess.TimeoutExpired:
            raise ToolFailed(argv, 124, f"no answer in {self.timeout_s:.0f} s") from None
        done = Done(proc.returncode, proc.stdout, proc.stderr)
        if check and done.code != 0:
            raise ToolFailed(argv, done.code, done.text)
        return done
