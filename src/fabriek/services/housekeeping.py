"""The control plane's periodic chores beside scheduling: notices that are due (budgets,
end dates, turnaround breaches, support tickets' broken service levels), resolved tickets
closed, and the e-mail that carries them. The dispatcher runs them
about once a minute; each is idempotent, so a crash or a second process repeats nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.access.tracks import AccessConfig
from fabriek.services.access.turnaround import flag_turnaround_breaches
from fabriek.services.notifications.inbox import give_budget_notices
from fabriek.services.notifications.mail import send_due_email
from fabriek.services.support.chores import close_resolved, escalate_breaches
from fabriek.services.support.config import SupportOptions
from fabriek.services.support.outbox import send_support_mail
from fabriek.settings import Settings

if TYPE_CHECKING:
    from fabriek.services.federation.sync import FederationLoop

log = logging.getLogger("fabriek.housekeeping")


def housekeeping(
    sessions: sessionmaker[Session], settings: Settings, access: AccessConfig
) -> Callable[[datetime], None]:
    """The chores as one call of `now`, for the dispatcher. One failing chore does not keep
    the others from running."""

    support = SupportOptions.from_settings(settings)
    federation = federation_loop(sessions, settings, access)

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
        if federation is not None:
            federation.tick(now)  # in a thread of its own: the platform may be slow

    return run


def then_round(
    chores: Callable[[datetime], None],
    round_: Callable[[datetime], int],
    logger: logging.Logger,
    done: str,
    failed: str,
) -> Callable[[datetime], None]:
    """`chores`, then one more round (the endpoints', the idle notebooks'): a failure of one
    is logged and does not keep the other from running. `done` (with `%d`, how many the
    round changed) and `failed` are what `logger` says."""

    def run(now: datetime) -> None:
        try:
            chores(now)
        finally:
            try:
                changed = round_(now)
                if changed:
                    logger.info(done, changed)
            except Exception:  # the next round retries
                logger.exception(failed)

    return run


def federation_loop(
    sessions: sessionmaker[Session], settings: Settings, access: AccessConfig
) -> FederationLoop | None:
    """The sync with the federation platform when it is on (FABRIEK_FEDERATION_ENABLED);
    settings that cannot work stop the server now (InvalidInput), not the first sync."""
    if not settings.federation_enabled:
        return None
    # Imported only when on: the platform's client takes seconds to import.
    from fabriek.services.federation import config as federation_config
    from fabriek.services.federation.sync import FederationLoop

    rules = federation_config.order_rules(settings, access)
    federation_config.check_platform(settings)
    return FederationLoop(
        sessions,
        lambda: federation_config.platform(settings),
        rules,
        federation_config.components(settings),
        settings.federation_interval_s,
    )
