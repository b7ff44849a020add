"""Where the CLI finds the server and the caller: environment first, then `fabriek login`'s file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


class NotSignedIn(Exception):
    """No token in the environment or the config file."""


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str | None


def config_dir() -> Path:
    """`$FABRIEK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/fabriek`, else `~/.config/fabriek`."""
    if explicit := os.environ.get("FABRIEK_CONFIG_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fabriek"


def credentials_file() -> Path:
    return config_dir() / "credentials.json"


def load() -> Credentials:
    """`FABRIEK_URL`/`FABRIEK_TOKEN` when set, else what `fabriek login` stored."""
    stored: dict[str, str] = {}
    path = credentials_file()
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
    url = os.environ.get("FABRIEK_URL") or stored.get("url") or DEFAULT_URL
    token = os.environ.get("FABRIEK_TOKEN") or stored.get("token")
    return Credentials(url=url, token=token)


def save(creds: Credentials) -> Path:
    """Store the token readable by its owner only (0600), written atomically."""
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": creds.url, "token": creds.token}, f)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
