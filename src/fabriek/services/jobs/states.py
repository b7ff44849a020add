"""Every change of a job's state goes through `transition`, which records the event in the same
transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.job_states import TERMINAL_STATES, JobState, check_transition
from fabriek.services.access.allocations import record_charge
from fabriek.services.energy.metering import record_energy
from fabriek.store.tables import (
    JobEventRow,
    JobRow,
)


def transition(
    session: Session, job: JobRow, new: JobState, reason: str | None, now: datetime
) -> None:
    """Change a job's state by the rules, and record the event in the same transaction."""
    old = JobState(job.state)
    check_transition(old, new)
    if new in TERMINAL_STATES or new == JobState.PREEMPTED:
        # The run stopped: charge its GPU time to the allocation and meter its energy, in
        # this same transaction, so neither is lost nor written twice.
        record_charge(session, job, now)
        record_energy(session, job, now)
    job.state = new.value
    job.reason = reason
    session.add(
        JobEventRow(job_id=job.id, at=now, from_state=old.value, to_state=new.value, reason=reason)
    )
