"""The control plane's periodic chores beside scheduling: notices that are due (budgets,
end dates, turnaround breaches, support tickets' broken service levels), resolved tickets
closed, and the e-mail that carries them. The dispatcher runs them
about once a minute; each is idempotent, so a crash or a second process repeats nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.access.tracks import AccessConfig
from fabriek.services.access.turnaround import flag_turnaround_breaches
from fabriek.services.notifications.inbox import give_budget_notices
from fabriek.services.notifications.mail import send_due_email
from fabriek.services.support.chores import close_resolved, escalate_breaches
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.outbox import send_support_mail
from fabriek.settings import Settings

log = logging.getLogger("fabriek.housekeeping")


def housekeeping(
    sessions: sessionmaker[Session], settings: Settings, access: AccessConfig
) -> Callable[[datetime], None]:
    """The chores as one call of `now`, for the dispatcher. One failing chore does not keep
    the others from running."""

    support = SupportOptions.from_settings(settings)

    def run(now: datetime) -> None:
        chores: list[tuple[str, Callable[[Session], int]]] = [
            ("budget notices", lambda s: give_budget_notices(s, now, access)),
            ("turnaround breaches", lambda s: flag_turnaround_breaches(s, now, access)),
            ("e-mail", lambda s: send_due_email(s, now, settings)),
            ("support breaches", lambda s: escalate_breaches(s, now, support.config)),
            ("support auto-close", lambda s: close_resolved(s, now, support.config)),
            ("support e-mail", lambda s: send_support_mail(s, now, settings)),
        ]
        for name, chore in chores:
            try:
                with sessions() as session:
                    done = chore(session)
                    session.commit()
                if done:
                    log.info("%s: %d", name, done)
            except Exception:  # the next round retries; the others still run
                log.exception("%s failed", name)

    return run
