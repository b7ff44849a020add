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
from fabriek.store.tables import MembershipRow, PosixAccountRow, ProjectRow, UserRow


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


def login_refusal(session: Session, user_id: int) -> str | None:
    """Why the person may not log in to the login nodes now, in words for them; None when
    they may: not suspended, and a member of at least one project that is not suspended
    (removal from the last project, which leaving an organisation brings, locks a person
    out too)."""
    person = session.get(UserRow, user_id)
    if person is None:
        return "no such person"
    if person.suspended_at is not None:
        return f"your account is suspended ({person.suspended_reason or 'by the factory'})"
    member = exists().where(
        MembershipRow.user_id == user_id,
        MembershipRow.project_id == ProjectRow.id,
        ProjectRow.suspended_at.is_(None),
    )
    if session.scalar(select(member)) is not True:
        return "you are a member of no active project: ask a project's lead to add you"
    return None


def may_log_in(session: Session, user_id: int) -> bool:
    """Whether the person may log in now (see `login_refusal`)."""
    return login_refusal(session, user_id) is None
