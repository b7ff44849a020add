"""The public SSH keys people register for the login nodes: add, list, revoke, each on the
audit trail; and the keys a login node may trust for a Unix username right now."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import Conflict, NotFound
from fabriek.domain.roles import Principal
from fabriek.domain.ssh_access import SshKeyInfo
from fabriek.domain.ssh_keys import parse_public_key
from fabriek.services import audit
from fabriek.services.accounts.ssh_login import may_log_in, posix_username, user_for_login
from fabriek.store.tables import SshKeyRow

# Enough for every laptop and security key a person has; more is a sign of trouble.
MAX_KEYS = 32


def _info(row: SshKeyRow) -> SshKeyInfo:
    # The listing's fields are the row's by name.
    return SshKeyInfo.model_validate(row, from_attributes=True)


def add_key(session: Session, who: Principal, text: str, id_base: int, now: datetime) -> SshKeyInfo:
    """Register a public key for the caller (InvalidInput saying why when it may not be
    trusted; Conflict when it is registered already). The caller's POSIX account is
    allocated too when they have none yet: the login nodes know them by it. Commits."""
    key = parse_public_key(text)
    posix_username(session, who.user_id, id_base)
    rows = list(session.scalars(select(SshKeyRow).where(SshKeyRow.user_id == who.user_id)))
    same = next((r for r in rows if r.fingerprint == key.fingerprint), None)
    if same is not None and same.revoked_at is None:
        raise Conflict(f"this key ({key.fingerprint}) is registered already, as key {same.id}")
    if sum(r.revoked_at is None for r in rows) >= MAX_KEYS:
        raise Conflict(f"you have {MAX_KEYS} keys: remove one first (`fabriek ssh-key list`)")
    if same is not None:
        # A revoked key registered again: the one row (unique per person and fingerprint)
        # lives again, its revocation stays on the audit trail.
        row = same
        row.revoked_at, row.created_at, row.comment = None, now, key.comment
    else:
        row = SshKeyRow(
            user_id=who.user_id, key_type=key.key_type, bits=key.bits,
            fingerprint=key.fingerprint, public_key=key.line, comment=key.comment,
            created_at=now,
        )  # fmt: skip
        session.add(row)
    session.flush()
    audit.record(
        session, action=AuditAction.SSH_KEY_ADD, at=now, actor_id=who.user_id,
        actor=who.username, target=f"ssh key {row.id}",
        detail={"fingerprint": key.fingerprint, "type": key.key_type, "bits": key.bits},
    )  # fmt: skip
    session.commit()
    return _info(row)


def list_keys(session: Session, who: Principal, include_revoked: bool = False) -> list[SshKeyInfo]:
    """The caller's keys, oldest first; revoked ones only when asked."""
    query = select(SshKeyRow).where(SshKeyRow.user_id == who.user_id)
    if not include_revoked:
        query = query.where(SshKeyRow.revoked_at.is_(None))
    return [_info(r) for r in session.scalars(query.order_by(SshKeyRow.id))]


def revoke_key(session: Session, who: Principal, key_id: int, now: datetime) -> SshKeyInfo:
    """Revoke one of the caller's keys: the login nodes stop trusting it at the next login.
    Someone else's key is 'not found'. Commits."""
    row = session.get(SshKeyRow, key_id)
    if row is None or row.user_id != who.user_id:
        raise NotFound("ssh key", key_id)
    if row.revoked_at is None:
        row.revoked_at = now
        audit.record(
            session, action=AuditAction.SSH_KEY_REVOKE, at=now, actor_id=who.user_id,
            actor=who.username, target=f"ssh key {row.id}",
            detail={"fingerprint": row.fingerprint},
        )  # fmt: skip
        session.commit()
    return _info(row)


def authorized_keys(session: Session, username: str) -> list[str]:
    """The keys a login node may accept for Unix user `username` now, one OpenSSH line
    each: none for an unknown person or one who may not log in."""
    user_id = user_for_login(session, username)
    if user_id is None or not may_log_in(session, user_id):
        return []
    rows = session.scalars(
        select(SshKeyRow.public_key)
        .where(SshKeyRow.user_id == user_id, SshKeyRow.revoked_at.is_(None))
        .order_by(SshKeyRow.id)
    )
    return list(rows)


def principals(session: Session, username: str) -> list[str]:
    """The certificate principals a login node may accept for Unix user `username` now:
    the username itself when the person may log in, else none."""
    user_id = user_for_login(session, username)
    if user_id is None or not may_log_in(session, user_id):
        return []
    return [username]
