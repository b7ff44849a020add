"""Personal API tokens: how they look, how they are hashed, when they are usable.

A token is `fbk_<key>_<secret>`. The key (public, 12 hex digits) finds the row; only the
SHA-256 of the whole token is stored. A plain hash is right here, unlike for passwords:
the secret is 32 random bytes, so there is nothing to guess and no need to slow lookups.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

PREFIX = "fbk"
# The portal keeps the same token in this cookie (the portal sets it; the API's rate
# limits read it to count a signed-in browser as its token).
COOKIE = "fabriek_token"
_TOKEN = re.compile(r"^fbk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    """A token as shown once to its owner, with what is stored of it."""

    key: str
    token: str
    hash: str


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def make_token(key: str | None = None, secret: str | None = None) -> NewToken:
    """A fresh random token; `key`/`secret` only for deterministic demo tokens."""
    key = key if key is not None else secrets.token_hex(6)
    secret = secret if secret is not None else secrets.token_urlsafe(32)
    token = f"{PREFIX}_{key}_{secret}"
    if not _TOKEN.fullmatch(token):
        raise ValueError("a token key is 12 hex digits and a secret 43 URL-safe characters")
    return NewToken(key=key, token=token, hash=hash_token(token))


def token_key(token: str) -> str | None:
    """The public key of a well-formed token, or None for anything else."""
    m = _TOKEN.fullmatch(token)
    return m.group(1) if m else None


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether a presented token is the one whose hash is stored (constant time)."""
    return hmac.compare_digest(hash_token(token), stored_hash)


def is_usable(expires_at: datetime | None, revoked_at: datetime | None, now: datetime) -> bool:
    """A token works until it is revoked or expires, whichever comes first."""
    if revoked_at is not None and revoked_at <= now:
        return False
    return expires_at is None or now < expires_at
