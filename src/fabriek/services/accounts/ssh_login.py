"""Who is who on the login nodes: a person's POSIX username, the person behind one, and
whether they may log in right now.

Login nodes ask at every login (`AuthorizedKeysCommand`, `AuthorizedPrincipalsCommand`),
so what is decided here takes effect at the next login: a person removed from their last
project can no longer log in, even with a certificate that is still valid.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from fabriek.domain.errors import Conflict
from fabriek.domain.ssh_keys import is_posix_name
from fabriek.store.tables import MembershipRow, PosixAccountRow, UserRow


def posix_username(session: Session, user_id: int) -> str:
    """The person's Unix username at every site.

    Read from their POSIX account (`posix_accounts`); a person without one yet logs in
    under their Fabriek username when that is a valid Unix name. Conflict when it is not:
    the sites know them by no name yet."""
    # TODO(accounts): use fabriek.services.accounts.posix's allocate-or-get here once it
    # exists, so that a person gets their account at their first certificate.
    allocated = session.scalar(
        select(PosixAccountRow.username).where(PosixAccountRow.user_id == user_id)
    )
    if allocated is not None:
        return allocated
    username = session.scalar(select(UserRow.username).where(UserRow.id == user_id))
    if username is not None and is_posix_name(username):
        return username
    raise Conflict(
        "you have no Unix account at the sites yet, and your username is not a valid Unix "
        "name: ask your hub to create your account"
    )


def user_for_login(session: Session, username: str) -> int | None:
    """The person a login node's Unix username belongs to, or None."""
    if not is_posix_name(username):
        return None
    found = session.scalar(
        select(PosixAccountRow.user_id).where(PosixAccountRow.username == username)
    )
    if found is not None:
        return found
    # A Fabriek username stands for the person only while no POSIX account has it or
    # theirs: once allocated, the posix_accounts row alone decides.
    row = session.execute(
        select(UserRow.id).where(
            UserRow.username == username,
            ~exists().where(PosixAccountRow.user_id == UserRow.id),
        )
    ).first()
    return row[0] if row is not None else None


def may_log_in(session: Session, user_id: int) -> bool:
    """Whether the person may log in now: a member of at least one project. (Fabriek has no
    suspension of people or projects of its own yet; removal from the last project, which
    leaving an organisation does, is what locks a person out.)"""
    return session.scalar(select(exists().where(MembershipRow.user_id == user_id))) is True
