"""Partner factories, the partner's side: jobs another Fabriek installation places here.

A partner's operator grants this factory's partner an allocation as for any project: a
project with its GPU-hours and an account whose API token the partner holds. The partners
file (`FABRIEK_PARTNERS_FILE`) names this factory as partners address it and, per partner,
that account and the partner's Ed25519 public key:

```toml
factory = "juelich"                     # this factory's name: the assertions' audience

[partners.nl-factory]
account = "nl-factory"                  # the account of the allocation granted to it
public_key = \"\"\"
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA...
-----END PUBLIC KEY-----
\"\"\"
```

Every submission of that account comes with a signed assertion of who submitted it there
(`domain.partners`); one without, or badly signed, is refused. The job runs as the
account's own, charged to its allocation, and the audit trail names the person. The
partner's job id is the idempotency key: one job here per job there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from pydantic import Field
from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.capacity import SiteShape
from fabriek.domain.config_files import FileTable, read_table
from fabriek.domain.errors import Forbidden
from fabriek.domain.job_states import TERMINAL_STATES, JobState
from fabriek.domain.jobs import Job, JobDraft
from fabriek.domain.partners import (
    ASSERTION_ALG,
    ASSERTION_HEADER,
    Assertion,
    AssertionRefused,
    EnergyHourFigures,
    assertion_refusal,
    partner_usage,
)
from fabriek.domain.roles import Principal
from fabriek.services import audit
from fabriek.services.config_files import load_config_file
from fabriek.services.images import ImageService
from fabriek.services.jobs import prepare_job, write_jobs
from fabriek.services.jobs.queries import get_job
from fabriek.services.jobs.shapes import ProjectRefCache
from fabriek.store.tables import (
    GridIntensityRow,
    JobEnergyRow,
    JobRow,
    PartnerJobRow,
    SiteRow,
)


class TrustedPartner(FileTable):
    """A partner factory this one runs jobs for: its account here and its public key."""

    account: str = Field(min_length=1)
    public_key: str = Field(min_length=1, description="Ed25519 public key, PEM")


class PartnersFile(FileTable):
    """The partners file: this factory's own name, and the partners it trusts."""

    factory: str = Field(min_length=1)
    partners: dict[str, TrustedPartner] = Field(default_factory=dict)


@dataclass(frozen=True)
class Partners:
    """The trusted partners, their keys read: what a submission is checked against."""

    factory: str
    keys: dict[str, OKPKey]
    accounts: dict[str, str]  # username here -> partner

    def partner_of(self, username: str) -> str | None:
        """The partner whose account `username` is, or None for anyone else."""
        return self.accounts.get(username)


def load_partners(path: Path) -> Partners:
    """Read the partners file; a bad file or key is a clear one-line error."""

    def parse(data: dict[str, Any]) -> Partners:
        file = read_table(PartnersFile, data)
        keys: dict[str, OKPKey] = {}
        for name, partner in file.partners.items():
            try:
                key = OKPKey.import_key(partner.public_key.encode())
            except (JoseError, ValueError, TypeError):
                raise ValueError(f"partners.{name}.public_key: not an Ed25519 PEM key") from None
            if key.is_private:
                raise ValueError(
                    f"partners.{name}.public_key: a private key; give the public one only"
                )
            keys[name] = key
        accounts = {p.account: name for name, p in file.partners.items()}
        if len(accounts) != len(file.partners):
            raise ValueError("each partner needs an account of its own")
        return Partners(file.factory, keys, accounts)

    return load_config_file(path, "", "partners", parse)


def verified_assertion(
    partners: Partners, who: Principal, token: str | None, body: bytes, now_s: int
) -> tuple[str, Assertion]:
    """The partner submitting and its verified assertion for `body`; Forbidden, saying why,
    for anyone but a partner's account, and for a missing or badly signed assertion."""
    partner = partners.partner_of(who.username)
    if partner is None:
        raise Forbidden(f"{who.username} is not the account of a partner factory of this one")
    if not token:
        raise Forbidden(
            f"a partner factory's submission needs a signed assertion of who submitted it "
            f"(the {ASSERTION_HEADER} header)"
        )
    try:
        claims = jwt.decode(token, partners.keys[partner], algorithms=[ASSERTION_ALG]).claims
        assertion = Assertion.from_claims(claims)
    except (JoseError, ValueError) as exc:
        raise Forbidden(
            f"the assertion does not verify with partner {partner}'s key ({type(exc).__name__})"
        ) from None
    except AssertionRefused as exc:
        raise Forbidden(str(exc)) from None
    why = assertion_refusal(
        assertion, issuer=partner, audience=partners.factory, body=body, now_s=now_s
    )
    if why is not None:
        raise Forbidden(why)
    return partner, assertion


def submit(
    session: Session,
    who: Principal,
    partner: str,
    assertion: Assertion,
    draft: JobDraft,
    now: datetime,
    shapes: Sequence[SiteShape] | None = None,
    refs: ProjectRefCache | None = None,
    images: ImageService | None = None,
) -> tuple[Job, bool]:
    """Queue the partner's job, once: the job and whether it is new. A job the partner sent
    before (by its id) is answered with the one already here."""
    existing = _existing(session, partner, assertion.job_id)
    if existing is not None:
        return get_job(session, who, existing), False
    prepared = prepare_job(session, who, draft, now, shapes, refs, images)
    try:
        job = write_jobs(session, [prepared], commit=False)[0]
        session.add(
            PartnerJobRow(
                partner=partner, foreign_job_id=assertion.job_id, job_id=job.id,
                person=assertion.person, person_name=assertion.person_name, submitted_at=now,
            )
        )  # fmt: skip
        audit.record(
            session, action=AuditAction.PARTNER_JOB, at=now, actor_id=who.user_id,
            actor=who.username, project_id=prepared.values["project_id"], target=f"job {job.id}",
            detail={"partner": partner, "person": assertion.person,
                    "person_name": assertion.person_name, "partner_job": assertion.job_id},
        )  # fmt: skip
        session.commit()
    except IntegrityError:  # the same job, sent twice at once: the other one won
        session.rollback()
        again = _existing(session, partner, assertion.job_id)
        if again is None:
            raise
        return get_job(session, who, again), False
    return job, True


def _existing(session: Session, partner: str, foreign_job_id: int) -> int | None:
    return session.scalar(
        select(PartnerJobRow.job_id).where(
            PartnerJobRow.partner == partner, PartnerJobRow.foreign_job_id == foreign_job_id
        )
    )


def partner_jobs(
    session: Session, partner: str, foreign_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """The partner's jobs here (all, or those of `foreign_ids`), each with its state,
    GPU-seconds, energy readings and, once ended, this factory's figures for it."""
    query = (
        select(PartnerJobRow.foreign_job_id, JobRow)
        .join(JobRow, JobRow.id == PartnerJobRow.job_id)
        .where(PartnerJobRow.partner == partner)
        .order_by(PartnerJobRow.foreign_job_id)
    )
    if foreign_ids is not None:
        query = query.where(PartnerJobRow.foreign_job_id.in_(list(foreign_ids)))
    found = session.execute(query).all()
    ended = [job.id for _, job in found if JobState(job.state) in TERMINAL_STATES]
    figures = _energy_hours(session, ended)
    return [_item(foreign, job, figures.get(job.id, [])) for foreign, job in found]


def _energy_hours(session: Session, job_ids: list[int]) -> dict[int, list[EnergyHourFigures]]:
    """Each ended job's hourly energy here, with its site's PUE and grid's intensity."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(
            JobEnergyRow.job_id, JobEnergyRow.gpu_kwh + JobEnergyRow.cpu_kwh, SiteRow.pue,
            SiteRow.grid_zone, GridIntensityRow.g_per_kwh,
        )
        .join(SiteRow, SiteRow.id == JobEnergyRow.site_id)
        .outerjoin(
            GridIntensityRow,
            and_(GridIntensityRow.zone == SiteRow.grid_zone,
                 GridIntensityRow.hour == JobEnergyRow.hour),
        )
        .where(JobEnergyRow.job_id.in_(job_ids))
    ).all()  # fmt: skip
    out: dict[int, list[EnergyHourFigures]] = defaultdict(list)
    for job_id, it_kwh, pue, zone, g_per_kwh in rows:
        out[job_id].append(EnergyHourFigures(float(it_kwh), pue or 1.0, zone, g_per_kwh))
    return out


def _item(foreign: int, job: JobRow, hours: list[EnergyHourFigures]) -> dict[str, Any]:
    state = JobState(job.state)
    readings = [r for r in job.energy_readings or [] if r.get("mj") or r.get("rapl_uj")]
    return {
        "job": foreign,
        "id": job.id,
        "state": state.value,
        "reason": job.reason,
        "exit_code": job.exit_code,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "ended_at": job.ended_at.isoformat() if job.ended_at else None,
        "gpu_seconds": job.gpu_seconds,
        "energy_readings": readings,
        "usage": partner_usage(job.gpu_seconds, hours) if state in TERMINAL_STATES else None,
    }
