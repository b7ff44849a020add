"""Where a job's web app listens: what an engine reports, and the local engine's ports."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# The variable a job reads its web app's port from.
PORT_VARIABLE = "FABRIEK_WEB_PORT"


@dataclass(frozen=True)
class WebAddress:
    """A job's web app: a host the control plane reaches (never the public) and a port."""

    host: str
    port: int

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


@runtime_checkable
class ServesWebApps(Protocol):
    """An engine that knows where its jobs' web apps listen (an optional feature)."""

    def web_address(self, handle: str) -> WebAddress | None:
        """Where job `handle`'s web app listens; None if it has none or is not running."""
        ...


def free_loopback_port() -> int:
    """A port free on the loopback interface now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def loopback_address(env: Mapping[str, str]) -> WebAddress | None:
    """A local job's web app, from the environment it was started with."""
    port = env.get(PORT_VARIABLE)
    return WebAddress("127.0.0.1", int(port)) if port and port.isdigit() else None
