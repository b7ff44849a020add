"""The per-job secret a web app trusts the proxy by.

It is derived (HMAC-SHA256) from a key kept in the state folder, so every server process
and every restart computes the same secret for a job without storing it anywhere a job or
another user could read it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_VARIABLE = "FABRIEK_WEB_SECRET"
_KEY_FILE = "web-apps.key"


def _key(state_dir: Path) -> bytes:
    path = Path(state_dir) / _KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and linked into place: of two processes creating it at once, one wins,
    # and nobody ever reads a half-written key.
    aside = path.with_name(f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secrets.token_bytes(32))
    try:
        os.link(aside, path)
    except FileExistsError:
        pass
    finally:
        aside.unlink()
    return path.read_bytes()


def web_app_secret(state_dir: Path, job_id: int) -> str:
    """Job `job_id`'s web app secret (hex)."""
    return hmac.new(_key(state_dir), f"web-app:{job_id}".encode(), hashlib.sha256).hexdigest()
