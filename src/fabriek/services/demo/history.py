"""A year of the demo factory's use, so the dashboards have something to show: finished
jobs of every demo organisation, spread over the sites and the twelve months before now,
with their hourly energy records, their charges and an hourly grid-carbon series.

Synthetic and seeded: the same calls give the same history on every machine (relative to
`now`). Energy is what the ledger's power model gives for each job (at a utilisation
drawn per job), so the figures add up as real ones would. The carbon series is made up
(a daily solar dip and a weekly wind swing around a Dutch-like mean) and its source says
so; load a real one with `fabriek grid load`.

`fabriek demo load` adds it after the demo factory; the tests' databases leave it out.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from fabriek.domain.energy import Source, cpu_power_model, gpu_power_model, hour_shares
from fabriek.domain.errors import Conflict, InvalidInput
from fabriek.domain.identity.organisations import OrganisationKind as K
from fabriek.domain.job_states import JobState
from fabriek.domain.roles import Role
from fabriek.services.access.config import load_access_config
from fabriek.services.demo import seed
from fabriek.store.tables import (
    AllocationRow,
    Base,
    ChargeRow,
    GridIntensityRow,
    JobEnergyRow,
    JobEventRow,
    JobRow,
    MembershipRow,
    NodeGroupRow,
    OrganisationRow,
    ProjectRow,
    SiteRow,
    UserRow,
)

SEED = "fabriek-demo-history"
DAYS = 365
GRID_SOURCE = "demo: synthetic series, not measured"

# The organisations of the demo without a project of their own get one, with a lead:
# (project, title, organisation, username, full name).
PAST_PROJECTS: list[tuple[str, str, str, str, str]] = [
    ("sea-ice", "Sea-ice forecasting for the Wadden", "Rijksuniversiteit Groningen",
     "lotte", "Lotte de Boer"),
    ("crop-yield", "Crop-yield prediction from drone images", "Drentse Precisielandbouw B.V.",
     "jan", "Jan Hoekstra"),
    ("robot-grasp", "Learning to grasp", "Universiteit Twente", "noor", "Noor Kok"),
    ("composite-qa", "Fault detection in composite layers", "Twentse Composieten B.V.",
     "bram", "Bram Wolters"),
    ("polder-maps", "Land-use maps of the polders", "Polder Vision B.V.", "fleur", "Fleur Peters"),
    ("soil-llm", "A language model for soil science", "Wageningen Data Lab B.V.",
     "daan", "Daan van Leeuwen"),
    ("protein-fold", "Protein structure prediction", "Universiteit Utrecht",
     "sofie", "Sofie Vermeulen"),
    ("care-notes", "Summarising care notes", "Hogeschool Utrecht", "ruben", "Ruben Dekker"),
    ("city-speech", "Dutch speech recognition for city services", "Gemeente Amsterdam",
     "iris", "Iris Brouwer"),
    ("materials-ml", "Machine learning for new materials", "TNO", "thijs", "Thijs de Graaf"),
    ("dike-watch", "Dike inspection from satellite radar", "Zeeuwse Deltawerken Digitaal B.V.",
     "emma", "Emma Willems"),
    ("edu-tutor", "A tutor for vocational education", "Fontys Hogescholen",
     "lucas", "Lucas van Dijk"),
    ("med-imaging", "Medical image segmentation", "Universiteit Maastricht",
     "julia", "Julia Hendriks"),
    ("chem-reactor", "Surrogate models of chemical reactors", "Limburgse Chemie Modellen B.V.",
     "sem", "Sem Janssen"),
    ("gelderland-mobility", "Regional mobility forecasts", "Provincie Gelderland",
     "lisa", "Lisa Smits"),
]  # fmt: skip

# The track a history allocation counts under, by the organisation's kind.
TRACK_OF = {
    K.START_UP: "start-up", K.SCALE_UP: "start-up", K.SME: "fast-lane",
    K.LARGE_INDUSTRY: "large-scale", K.UNIVERSITY: "ai-for-science",
    K.UNIVERSITY_OF_APPLIED_SCIENCES: "ai-for-science", K.TO2_INSTITUTE: "ai-for-science",
    K.GOVERNMENT: "ai-for-science",
}  # fmt: skip
GPU_COUNTS = [1, 2, 4, 8, 16, 32, 64]
GPU_WEIGHTS = [10, 15, 25, 25, 15, 7, 3]
# The demo projects without members get a lead for their history: (project, username, name).
LEADS: list[tuple[str, str, str]] = [
    ("wadden-drones", "pim", "Pim Visser"),
    ("port-forecast", "anna", "Anna Bakker"),
]


@dataclass(frozen=True)
class Account:
    """A project as the history needs it: who submits, where it may run, and which
    allocation its jobs are charged to before and after `switch_at`."""

    project_id: int
    users: list[int]
    sites: list[str]
    activity: float
    history_allocation: int
    current_allocation: int | None
    switch_at: datetime | None


@dataclass(frozen=True)
class Placement:
    site_id: int
    gpu_type: str
    gpus_per_node: int
    cpus_per_node: int
    capacity: int


def _add_people_and_projects(session: Session, now: datetime) -> None:
    orgs = {o.name: o.id for o in session.scalars(select(OrganisationRow))}
    for project, title, org, username, full_name in PAST_PROJECTS:
        user = UserRow(username=username, full_name=full_name, organisation_id=orgs[org],
                       email=f"{username}@demo.fabriek.example")  # fmt: skip
        row = ProjectRow(name=project, title=title, organisation_id=orgs[org])
        session.add_all([user, row])
        session.flush()
        session.add(MembershipRow(project_id=row.id, user_id=user.id,
                                  role=Role.PRINCIPAL_INVESTIGATOR.value))  # fmt: skip
    for project, username, full_name in LEADS:
        found = session.execute(
            select(ProjectRow.id, ProjectRow.organisation_id).where(ProjectRow.name == project)
        ).one()
        user = UserRow(username=username, full_name=full_name, organisation_id=found[1],
                       email=f"{username}@demo.fabriek.example")  # fmt: skip
        session.add(user)
        session.flush()
        session.add(MembershipRow(project_id=found[0], user_id=user.id,
                                  role=Role.PRINCIPAL_INVESTIGATOR.value))  # fmt: skip


def _accounts(session: Session, now: datetime, rng: random.Random) -> list[Account]:
    """Every demo project with its submitters, allowed sites and the allocations it
    charges: a history allocation over the year, and the demo's current one for the
    projects that have one (it started a day ago)."""
    access = load_access_config()
    start = now - timedelta(days=DAYS)
    site_names = [s.name for s in seed.SITES]
    out = []
    rows = session.execute(
        select(ProjectRow.id, OrganisationRow.kind)
        .join(OrganisationRow, OrganisationRow.id == ProjectRow.organisation_id)
        .order_by(ProjectRow.id)
    ).all()
    for project_id, kind in rows:
        users = list(session.scalars(
            select(MembershipRow.user_id).where(MembershipRow.project_id == project_id)
            .order_by(MembershipRow.user_id)
        ))  # fmt: skip
        current = session.execute(
            select(AllocationRow.id, AllocationRow.starts_at, AllocationRow.sites)
            .where(AllocationRow.project_id == project_id).order_by(AllocationRow.id)
        ).first()  # fmt: skip
        track = access.track(TRACK_OF.get(K(kind), "fast-lane"))
        ends = current[1] if current is not None else now + timedelta(days=180)
        history = AllocationRow(
            project_id=project_id, track=track.code, gpu_hours=1.0, awarded={"any": 1.0},
            sites=list(current[2] or []) if current is not None else [],
            preemptible=track.preemptible, tier=track.tier, starts_at=start, ends_at=ends,
            created_at=start,
        )  # fmt: skip
        session.add(history)
        session.flush()
        sites = list(current[2] or []) if current is not None else []
        out.append(
            Account(
                project_id=project_id, users=users, sites=sites or site_names,
                activity=rng.uniform(0.4, 1.8), history_allocation=history.id,
                current_allocation=current[0] if current is not None else None,
                switch_at=current[1] if current is not None else None,
            )
        )  # fmt: skip
    return out


def _placements(session: Session) -> dict[str, list[Placement]]:
    out: dict[str, list[Placement]] = {}
    for site, group in session.execute(
        select(SiteRow, NodeGroupRow).join(NodeGroupRow, NodeGroupRow.site_id == SiteRow.id)
        .order_by(SiteRow.id, NodeGroupRow.id)
    ).all():  # fmt: skip
        if group.gpu_type and group.gpus_per_node:
            out.setdefault(site.name, []).append(
                Placement(site.id, group.gpu_type, group.gpus_per_node, group.cpus_per_node,
                          group.count * group.gpus_per_node)
            )  # fmt: skip
    return out


def _season(moment: datetime) -> float:
    """Less work in the summer holidays and around Christmas."""
    return {7: 0.6, 8: 0.55, 12: 0.75, 1: 0.85}.get(moment.month, 1.0)


def _intensity(hour: datetime, rng: random.Random) -> float:
    """A made-up grid intensity (g CO2e/kWh): a midday solar dip, deeper in summer, and a
    weekly swing of wind, around 330 g/kWh."""
    summer = 0.5 - 0.5 * math.cos(2 * math.pi * (hour.timetuple().tm_yday - 10) / 365)
    solar = max(0.0, math.cos(2 * math.pi * (hour.hour - 12) / 24)) * (60 + 120 * summer)
    wind = 70 * math.sin(2 * math.pi * hour.timestamp() / (7.3 * 86400))
    return max(40.0, 330 - solar + wind + rng.gauss(0, 15))


def load_history(session: Session, now: datetime) -> int:
    """Add a year of use to a freshly loaded demo factory, in one transaction; how many
    jobs. Refuses a factory that is not the demo or already has its history."""
    if not seed.is_loaded(session):
        raise InvalidInput("the demo's history goes with the demo factory: load it first")
    if session.scalar(select(ProjectRow.id).where(ProjectRow.name == PAST_PROJECTS[0][0])):
        raise Conflict("the demo factory already has its year of history")
    rng = random.Random(SEED)
    now = now.replace(microsecond=0)
    access = load_access_config()
    _add_people_and_projects(session, now)
    accounts = _accounts(session, now, rng)
    placements = _placements(session)
    start = now - timedelta(days=DAYS)
    jobs: list[dict[str, Any]] = []
    energy: list[list[dict[str, Any]]] = []
    charges: list[dict[str, Any]] = []
    for account in accounts:
        day = start
        while day < now:
            # Each project works in bursts: on a given day it may start a few jobs.
            if rng.random() < 0.35 * account.activity * _season(day):
                for _ in range(rng.choice([1, 1, 2, 3])):
                    made = _job(rng, account, placements, day, now, access.factor)
                    if made is not None:
                        job, hours, charge = made
                        jobs.append(job)
                        energy.append(hours)
                        charges.append(charge)
            day += timedelta(days=1)
        # The projects with a current allocation have spent some of it already.
        if account.switch_at is not None:
            for _ in range(3):
                made = _job(rng, account, placements, now - timedelta(hours=20), now,
                            access.factor, within_s=14 * 3600, longest_h=5.0)  # fmt: skip
                if made is not None:
                    jobs.append(made[0])
                    energy.append(made[1])
                    charges.append(made[2])
    # Numbered in the order they were submitted, as live jobs are.
    order = sorted(range(len(jobs)), key=lambda i: jobs[i]["submitted_at"])
    jobs = [jobs[i] for i in order]
    energy = [energy[i] for i in order]
    charges = [charges[i] for i in order]
    ids = list(session.scalars(
        insert(JobRow).returning(JobRow.id, sort_by_parameter_order=True), jobs
    ))  # fmt: skip
    events: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for job_id, job, hours, charge in zip(ids, jobs, energy, charges, strict=True):
        for h in hours:
            h["job_id"] = job_id
        records.extend(hours)
        charge["job_id"] = job_id
        events.extend([
            {"job_id": job_id, "at": job["submitted_at"], "from_state": None,
             "to_state": JobState.PENDING.value, "reason": "submitted"},
            {"job_id": job_id, "at": job["started_at"], "from_state": JobState.PENDING.value,
             "to_state": JobState.RUNNING.value, "reason": None},
            {"job_id": job_id, "at": job["ended_at"], "from_state": JobState.RUNNING.value,
             "to_state": job["state"], "reason": f"exit code {job['exit_code']}"},
        ])  # fmt: skip
    session.execute(insert(JobEnergyRow), records)
    session.execute(insert(ChargeRow), charges)
    # Core, not ORM, inserts: one executemany however the rows' None fields fall.
    session.execute(insert(Base.metadata.tables[JobEventRow.__tablename__]), events)
    _award(session, accounts, charges)
    _grid_series(session, start, now, rng)
    session.commit()
    return len(jobs)


def _job(
    rng: random.Random,
    account: Account,
    placements: dict[str, list[Placement]],
    day: datetime,
    now: datetime,
    factor: Any,
    within_s: int = 86400,
    longest_h: float = 72.0,
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]] | None:
    """One finished job started in [day, day + within_s), with its records and charge;
    None when it would not have ended yet."""
    site = rng.choice([s for s in account.sites if s in placements])
    where = rng.choice(placements[site])
    gpus = min(rng.choices(GPU_COUNTS, GPU_WEIGHTS)[0], where.capacity)
    hours = min(longest_h, rng.lognormvariate(1.8, 0.9))
    started = day + timedelta(seconds=rng.randrange(within_s))
    ended = started + timedelta(seconds=int(hours * 3600))
    if ended >= now - timedelta(minutes=5):
        return None
    nodes = max(1, math.ceil(gpus / where.gpus_per_node))
    cpus = min(where.cpus_per_node * nodes, gpus * 8)
    utilisation = rng.uniform(0.35, 0.9)
    gpu_w = gpus * gpu_power_model(where.gpu_type).power_w(utilisation)
    cpu_w = cpu_power_model(cpus).power_w()
    source = f"{Source.MODELLED_POWER_MODEL.value}: {where.gpu_type} (demo history)"
    seconds = (ended - started).total_seconds()
    failed = rng.random() < 0.06
    charged_to = (
        account.current_allocation
        if account.switch_at is not None and started >= account.switch_at
        else account.history_allocation
    )
    rate = factor(where.gpu_type)
    job = {
        "project_id": account.project_id, "user_id": rng.choice(account.users),
        "name": rng.choice(["train", "finetune", "eval", "sweep", "preprocess", "infer"]),
        "command": ["python", "run.py"], "script": None, "container_image": None,
        "gpus": gpus, "gpu_type": where.gpu_type, "nodes": nodes, "cpus": cpus,
        "memory_gb": 64 * nodes, "time_limit_s": int(math.ceil(hours * 1.25 + 1) * 3600),
        "environment": {}, "state": (JobState.FAILED if failed else JobState.COMPLETED).value,
        "reason": None, "site_id": where.site_id, "placed_gpu_type": where.gpu_type,
        "exit_code": 1 if failed else 0, "gpu_seconds": gpus * seconds,
        "allocation_id": charged_to, "charge_factor": rate,
        "submitted_at": started - timedelta(seconds=rng.randrange(60, 3600)),
        "started_at": started, "ended_at": ended,
    }  # fmt: skip
    records = [
        {"site_id": where.site_id, "hour": hour, "gpu_seconds": gpus * s,
         "gpu_kwh": gpu_w * s / 3.6e6, "cpu_kwh": cpu_w * s / 3.6e6, "source": source}
        for hour, s in hour_shares(started, ended)
    ]  # fmt: skip
    raw = gpus * seconds / 3600.0
    charge = {
        "allocation_id": charged_to, "gpus": gpus, "gpu_type": where.gpu_type,
        "started_at": started, "ended_at": ended, "raw_gpu_hours": raw, "factor": rate,
        "gpu_hours": raw * rate,
    }  # fmt: skip
    return job, records, charge


def _award(session: Session, accounts: list[Account], charges: list[dict[str, Any]]) -> None:
    """Size each history allocation to what its jobs spent plus a margin, as a committee
    would have awarded it."""
    spent: dict[int, float] = {}
    for c in charges:
        spent[c["allocation_id"]] = spent.get(c["allocation_id"], 0.0) + c["gpu_hours"]
    for account in accounts:
        row = session.get(AllocationRow, account.history_allocation)
        assert row is not None
        hours = float(max(100, math.ceil(spent.get(row.id, 0.0) * 1.25 / 100) * 100))
        row.gpu_hours, row.awarded = hours, {"any": hours}


def _grid_series(session: Session, start: datetime, end: datetime, rng: random.Random) -> None:
    zones = sorted(set(session.scalars(select(SiteRow.grid_zone))))
    first = start.replace(minute=0, second=0)
    for zone in zones:
        known = set(session.scalars(
            select(GridIntensityRow.hour).where(GridIntensityRow.zone == zone,
                                                GridIntensityRow.hour >= first)
        ))  # fmt: skip
        rows = []
        hour = first
        while hour <= end:
            if hour not in known:
                rows.append({"zone": zone, "hour": hour, "g_per_kwh": _intensity(hour, rng),
                             "source": GRID_SOURCE})  # fmt: skip
            hour += timedelta(hours=1)
        if rows:
            session.execute(insert(GridIntensityRow), rows)
