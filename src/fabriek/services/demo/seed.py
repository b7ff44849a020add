"""The demo factory: three sites, organisations of every kind in every province, projects and
people in every role, with known tokens. Deterministic, so docs and scripts can rely on it.

The demo tokens are public: never load the demo into a factory that serves real users.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fabriek.domain.access.proposals import add_months
from fabriek.domain.errors import Conflict
from fabriek.domain.geography import Hub, Province, hub_for_province
from fabriek.domain.identity import tokens
from fabriek.domain.identity.organisations import OrganisationKind as K
from fabriek.domain.roles import Role
from fabriek.domain.sites import NodeGroupDraft, SiteDraft
from fabriek.services.access.config import load_access_config
from fabriek.services.sites import site_row
from fabriek.services.support.demo import load_expertise_demo
from fabriek.store.tables import (
    AllocationRow,
    ApiTokenRow,
    CallRow,
    MembershipRow,
    OrganisationRow,
    ProjectRow,
    SiteRow,
    StaffRoleRow,
    TermsAcceptanceRow,
    TermsRow,
    UserRow,
)

P = Province

SITES = [
    SiteDraft(
        name="amsterdam",
        city="Amsterdam",
        province=P.NOORD_HOLLAND,
        pue=1.25,
        wue_l_per_kwh=0.4,
        grid_limit_kw=2500,
        renewable_share=0.5,
        gdpr_ready=True,
        node_groups=[
            NodeGroupDraft(name="gcn-h100", count=22, gpu_type="h100", gpus_per_node=4,
                           cpus_per_node=64, memory_gb_per_node=768),
            NodeGroupDraft(name="gcn-a100", count=18, gpu_type="a100", gpus_per_node=4,
                           cpus_per_node=72, memory_gb_per_node=512),
        ],
    ),
    SiteDraft(
        name="groningen",
        city="Groningen",
        province=P.GRONINGEN,
        pue=1.15,
        wue_l_per_kwh=0.2,
        grid_limit_kw=4000,
        heat_reuse_share=0.4,
        renewable_share=0.8,
        gdpr_ready=True,
        node_groups=[
            NodeGroupDraft(name="hgx-h200", count=16, gpu_type="h200", gpus_per_node=8,
                           cpus_per_node=112, memory_gb_per_node=2048),
        ],
    ),
    SiteDraft(
        name="eindhoven",
        city="Eindhoven",
        province=P.NOORD_BRABANT,
        pue=1.3,
        wue_l_per_kwh=0.5,
        grid_limit_kw=1500,
        node_groups=[
            NodeGroupDraft(name="mi300x", count=8, gpu_type="mi300x", gpus_per_node=8,
                           cpus_per_node=96, memory_gb_per_node=1536),
            NodeGroupDraft(name="l40s", count=12, gpu_type="l40s", gpus_per_node=4,
                           cpus_per_node=48, memory_gb_per_node=384),
        ],
    ),
]  # fmt: skip

# (name, kind, province, KvK number): every kind, every province, every hub.
ORGANISATIONS: list[tuple[str, K, Province, str | None]] = [
    ("Rijksuniversiteit Groningen", K.UNIVERSITY, P.GRONINGEN, None),
    ("Wadden Robotics B.V.", K.START_UP, P.FRYSLAN, "71234501"),
    ("Drentse Precisielandbouw B.V.", K.SME, P.DRENTHE, "71234502"),
    ("Universiteit Twente", K.UNIVERSITY, P.OVERIJSSEL, None),
    ("Twentse Composieten B.V.", K.LARGE_INDUSTRY, P.OVERIJSSEL, "71234503"),
    ("Polder Vision B.V.", K.START_UP, P.FLEVOLAND, "71234504"),
    ("Wageningen Data Lab B.V.", K.SCALE_UP, P.GELDERLAND, "71234505"),
    ("Universiteit Utrecht", K.UNIVERSITY, P.UTRECHT, None),
    ("Hogeschool Utrecht", K.UNIVERSITY_OF_APPLIED_SCIENCES, P.UTRECHT, None),
    ("Amsterdam Language Models B.V.", K.SCALE_UP, P.NOORD_HOLLAND, "71234506"),
    ("Gemeente Amsterdam", K.GOVERNMENT, P.NOORD_HOLLAND, None),
    ("TNO", K.TO2_INSTITUTE, P.ZUID_HOLLAND, None),
    ("Technische Universiteit Delft", K.UNIVERSITY, P.ZUID_HOLLAND, None),
    ("Rotterdam Port Analytics B.V.", K.SME, P.ZUID_HOLLAND, "71234507"),
    ("Zeeuwse Deltawerken Digitaal B.V.", K.START_UP, P.ZEELAND, "71234508"),
    ("Brabantse Machinefabriek B.V.", K.LARGE_INDUSTRY, P.NOORD_BRABANT, "71234509"),
    ("Eindhoven Photonics AI B.V.", K.START_UP, P.NOORD_BRABANT, "71234510"),
    ("Fontys Hogescholen", K.UNIVERSITY_OF_APPLIED_SCIENCES, P.NOORD_BRABANT, None),
    ("Universiteit Maastricht", K.UNIVERSITY, P.LIMBURG, None),
    ("Limburgse Chemie Modellen B.V.", K.SCALE_UP, P.LIMBURG, "71234511"),
    ("Provincie Gelderland", K.GOVERNMENT, P.GELDERLAND, None),
]

# Internet domains of the research organisations, as SURFconext names them in the
# schac_home_organization claim: a federated sign-in from one of them joins it.
DOMAINS = {
    "Rijksuniversiteit Groningen": "rug.nl",
    "Universiteit Twente": "utwente.nl",
    "Universiteit Utrecht": "uu.nl",
    "Hogeschool Utrecht": "hu.nl",
    "TNO": "tno.nl",
    "Technische Universiteit Delft": "tudelft.nl",
    "Fontys Hogescholen": "fontys.nl",
    "Universiteit Maastricht": "maastrichtuniversity.nl",
}

# (username, full name, organisation, staff roles)
USERS: list[tuple[str, str, str, list[tuple[Role, str | None]]]] = [
    ("admin", "Anouk de Vries", "TNO", [(Role.ADMIN, None)]),
    ("pieter", "Pieter Bakker", "Technische Universiteit Delft", []),
    ("sanne", "Sanne Jansen", "Eindhoven Photonics AI B.V.", []),
    ("maria", "Maria Visser", "Technische Universiteit Delft", []),
    ("mo", "Mohammed El Amrani", "Amsterdam Language Models B.V.", []),
    ("rita", "Rita Smit", "Universiteit Utrecht", [(Role.REVIEWER, None)]),
    ("hanna", "Hanna Mulder", "Fontys Hogescholen", [(Role.HUB_STAFF, Hub.BRAINPORT.value)]),
    ("henk", "Henk Bos", "Rijksuniversiteit Groningen",
     [(Role.HUB_STAFF, Hub.NOORD_NEDERLAND.value)]),
    ("otto", "Otto Meijer", "Gemeente Amsterdam", [(Role.SITE_OPERATOR, "amsterdam")]),
    ("eva", "Eva de Jong", "TNO", [(Role.ACCESS_TEAM, None)]),
]  # fmt: skip

# (name, title, organisation, [(username, role)])
PROJECTS: list[tuple[str, str, str, list[tuple[str, Role]]]] = [
    ("dutch-llm", "A Dutch open language model", "Technische Universiteit Delft",
     [("pieter", Role.PRINCIPAL_INVESTIGATOR), ("maria", Role.MEMBER)]),
    ("photonic-inspect", "Defect detection for photonic chips", "Eindhoven Photonics AI B.V.",
     [("sanne", Role.PRINCIPAL_INVESTIGATOR), ("maria", Role.MEMBER)]),
    ("legal-nl", "Legal-domain fine-tuning in Dutch", "Amsterdam Language Models B.V.",
     [("mo", Role.PRINCIPAL_INVESTIGATOR)]),
    ("machine-twin", "Digital twin of a production line", "Brabantse Machinefabriek B.V.",
     [("sanne", Role.MEMBER)]),
    ("wadden-drones", "Drone imagery of the Wadden Sea", "Wadden Robotics B.V.", []),
    ("port-forecast", "Container flow forecasting", "Rotterdam Port Analytics B.V.", []),
]  # fmt: skip


# (project, track, raw GPU-hours per type, sites): every demo project can run jobs at once.
ALLOCATIONS: list[tuple[str, str, dict[str, float], list[str]]] = [
    ("dutch-llm", "ai-for-science", {"h200": 50_000.0, "h100": 20_000.0}, []),
    ("photonic-inspect", "start-up", {"h100": 5_000.0}, []),
    ("legal-nl", "fast-lane", {"h100": 30_000.0}, []),
    ("machine-twin", "large-scale", {"h100": 80_000.0}, []),
    ("wadden-drones", "playground", {"a100": 2_000.0}, ["amsterdam"]),
    ("port-forecast", "fast-lane", {"l40s": 10_000.0}, ["eindhoven"]),
]
# Calls open now: the continuously open tracks have no cut-off; the others close in 14 days.
CALLS: list[tuple[str, str, str]] = [
    ("playground-open", "Playground: try AI at scale", "playground"),
    ("fast-lane-open", "Fast Lane access", "fast-lane"),
    ("large-scale-next", "Large Scale: next cut-off", "large-scale"),
    ("ai-for-science-next", "AI for Science and public sector: next cut-off", "ai-for-science"),
    ("start-up-regional", "Regional start-up access through your AI hub", "start-up"),
]


DEMO_TERMS = (
    "Acceptable use of the demo factory",
    "Use the factory's GPUs for the work of your project only. Keep credentials to yourself. "
    "Personal data only in datasets classified as such, at the sites their residency allows. "
    "No attempts to reach other people's jobs, data or accounts.",
)


def demo_token(username: str) -> tokens.NewToken:
    """A user's demo token, derived from the username so it is the same on every machine."""
    digest = hashlib.sha256(f"fabriek-demo:{username}".encode()).digest()
    secret = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return tokens.make_token(key=hashlib.sha256(username.encode()).hexdigest()[:12], secret=secret)


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    roles: list[str]
    projects: dict[str, str]
    token: str


def demo_users() -> list[DemoUser]:
    """The demo's people with their roles, projects and tokens."""
    out = []
    for username, full_name, _org, staff in USERS:
        projects = {p: r.value for p, _t, _o, ms in PROJECTS for u, r in ms if u == username}
        roles = [f"{r.value}:{s}" if s else r.value for r, s in staff] or ["member"]
        out.append(DemoUser(username, full_name, roles, projects, demo_token(username).token))
    return out


def is_loaded(session: Session) -> bool:
    """Whether the demo factory is already in the store."""
    return session.get(ApiTokenRow, demo_token("admin").key) is not None


def is_empty(session: Session) -> bool:
    return not any(session.scalar(select(func.count()).select_from(t)) for t in (SiteRow, UserRow))


def load_demo(session: Session, now: datetime, token_days: int = 3650) -> None:
    """Fill an empty store with the demo factory, in one transaction."""
    if not is_empty(session):
        raise Conflict(
            "the database already holds a factory; the demo loads only into an empty one"
        )
    for s in SITES:
        session.add(site_row(s))
    orgs = _organisations(session)
    users = _users(session, orgs, now, token_days)
    _projects_and_allocations(session, orgs, users, now)
    _terms(session, users, now)
    load_expertise_demo(session, users["admin"].id, now)
    session.commit()


def _organisations(session: Session) -> dict[str, OrganisationRow]:
    orgs: dict[str, OrganisationRow] = {}
    for name, kind, province, kvk in ORGANISATIONS:
        orgs[name] = OrganisationRow(
            name=name,
            kind=kind.value,
            province=province.value,
            hub=hub_for_province(province).value,
            kvk_number=kvk,
            domain=DOMAINS.get(name),
        )
    session.add_all(orgs.values())
    session.flush()
    return orgs


def _users(
    session: Session, orgs: dict[str, OrganisationRow], now: datetime, token_days: int
) -> dict[str, UserRow]:
    """The demo users with their staff roles and their demo API tokens."""
    users: dict[str, UserRow] = {}
    for username, full_name, org, staff in USERS:
        user = UserRow(
            username=username,
            full_name=full_name,
            email=f"{username}@demo.fabriek.example",
            organisation_id=orgs[org].id,
        )
        session.add(user)
        session.flush()
        users[username] = user
        session.add_all(StaffRoleRow(user_id=user.id, role=r.value, scope=s) for r, s in staff)
        t = demo_token(username)
        session.add(
            ApiTokenRow(key=t.key, user_id=user.id, name="demo", token_hash=t.hash,
                        created_at=now, expires_at=now.replace(year=now.year + token_days // 365))
        )  # fmt: skip
    return users


def _projects_and_allocations(
    session: Session,
    orgs: dict[str, OrganisationRow],
    users: dict[str, UserRow],
    now: datetime,
) -> None:
    """The demo projects with their members, their allocations and the open calls."""
    projects: dict[str, ProjectRow] = {}
    for name, title, org, members in PROJECTS:
        project = ProjectRow(name=name, title=title, organisation_id=orgs[org].id)
        session.add(project)
        session.flush()
        session.add_all(
            MembershipRow(project_id=project.id, user_id=users[u].id, role=r.value)
            for u, r in members
        )
        projects[name] = project
    access = load_access_config()
    for name, track_code, hours, sites in ALLOCATIONS:
        track = access.track(track_code)
        session.add(
            AllocationRow(
                project_id=projects[name].id, track=track_code,
                gpu_hours=access.normalised(hours).value, awarded=hours, sites=sites,
                preemptible=track.preemptible, tier=track.tier,
                starts_at=now - timedelta(days=1),
                ends_at=add_months(now, max(track.durations_months)), created_at=now,
            )
        )  # fmt: skip
    for code, title, track_code in CALLS:
        cutoff = access.track(track_code).clock_from_cutoff
        session.add(
            CallRow(
                code=code, title=title, track=track_code, opens_at=now - timedelta(days=30),
                closes_at=now + timedelta(days=14) if cutoff else None, created_at=now,
            )
        )  # fmt: skip


def _terms(session: Session, users: dict[str, UserRow], now: datetime) -> None:
    # The factory's terms, version 1, accepted by every demo user: work needs no extra step,
    # and `fabriek terms` has something to show.
    terms = TermsRow(
        scope="factory", version=1, title=DEMO_TERMS[0], body=DEMO_TERMS[1],
        requires_acceptance=True, published_by=users["admin"].id,
        published_at=now - timedelta(days=400),
    )  # fmt: skip
    session.add(terms)
    session.flush()
    session.add_all(
        TermsAcceptanceRow(user_id=u.id, terms_id=terms.id, accepted_at=now - timedelta(days=1))
        for u in users.values()
    )
