"""Who is who on the login nodes: a person's POSIX username, the person behind one, and
whether they may log in right now.

Login nodes ask at every login (`AuthorizedKeysCommand`, `AuthorizedPrincipalsCommand`),
so what is decided here takes effect at the next login: a person removed from their last
project can no longer log in, even with a certificate that is still valid.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from fabriek.domain.ssh_keys import is_posix_name
from fabriek.services.accounts.posix import posix_account
from fabriek.store.tables import MembershipRow, PosixAccountRow


def posix_username(session: Session, user_id: int, id_base: int) -> str:
    """The person's Unix username at every site: their POSIX account, allocated now when
    they have none yet (flushed; the caller commits)."""
    return posix_account(session, user_id, id_base).username


def user_for_login(session: Session, username: str) -> int | None:
    """The person a login node's Unix username belongs to (by their POSIX account), or
    None."""
    if not is_posix_name(username):
        return None
    return session.scalar(
        select(PosixAccountRow.user_id).where(PosixAccountRow.username == username)
    )


def may_log_in(session: Session, user_id: int) -> bool:
    """Whether the person may log in now: a member of at least one project. (Fabriek has no
    suspension of people or projects of its own yet; removal from the last project, which
    leaving an organisation does, is what locks a person out.)"""
    return session.scalar(select(exists().where(MembershipRow.user_id == user_id))) is True
