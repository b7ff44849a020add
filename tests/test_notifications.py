"""Notifications: e-mail through a real SMTP server (aiosmtpd) at once or in a daily digest,
opt-outs, an SMTP server that is down, budget notices each given once, and the list, read
marks and settings over the API and the CLI."""

from __future__ import annotations

import email
import email.policy
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fabriek.domain.notifications import NotificationSettingsUpdate
from fabriek.domain.roles import Principal
from fabriek.services.access.config import load_access_config
from fabriek.services.demo.seed import demo_token
from fabriek.services.notifications import inbox as inbox_service
from fabriek.services.notifications.mail import send_due_email
from fabriek.services.paging import PageRequest
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import (
    AllocationRow,
    ChargeRow,
    JobRow,
    MembershipRow,
    NotificationRow,
    OrganisationRow,
    ProjectRow,
    UserRow,
)
from tests.conftest import Client, problem_of
from tests.servers import LiveServer, free_port
from tests.test_cli import fabriek, one_line_error

# Far from the real clock, so a live server's own housekeeping never acts on these rows.
T0 = datetime(2099, 3, 1, 8, 0, tzinfo=UTC)
ACCESS = load_access_config(None)


@dataclass
class Inbox:
    """What the SMTP server accepted."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@contextmanager
def smtp_server(port: int) -> Iterator[Inbox]:
    """A real SMTP server on the loopback port, collecting what it accepts."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, server_hostname="smtp.test")
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    with smtp_server(smtp_port) as box:
        yield box


@pytest.fixture
def mail_settings(smtp_port: int) -> Settings:
    return Settings(
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_from="fabriek@factory.example",
        public_url="https://fabriek.example",
    )


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessions(engine)
    engine.dispose()


def new_user(session: Session, name: str) -> UserRow:
    user = UserRow(username=name, full_name=name.title(), email=f"{name}@people.example")
    session.add(user)
    session.commit()
    return user


def who(user: UserRow) -> Principal:
    return Principal(user.id, user.username)


def unsent(session: Session, user: UserRow) -> list[NotificationRow]:
    session.expire_all()
    return list(
        session.scalars(
            select(NotificationRow).where(
                NotificationRow.user_id == user.id, NotificationRow.emailed_at.is_(None)
            )
        )
    )


# --- e-mail ------------------------------------------------------------------------------------


def test_immediate_delivery_sends_each_once(
    sessions: sessionmaker[Session], inbox: Inbox, mail_settings: Settings, unique: str
) -> None:
    with sessions() as s:
        user = new_user(s, f"{unique}-now")
        inbox_service.update_settings(
            s, who(user), NotificationSettingsUpdate(delivery="immediate")
        )
        inbox_service.notify(s, [user.id], "proposal-decided", "Proposal 7 was awarded",
                             "Well done.", T0, link="/proposals/7")  # fmt: skip
        inbox_service.notify(
            s, [user.id], "review-assigned", "A review for you", "Please review 9.", T0
        )
        s.commit()
        assert send_due_email(s, T0, mail_settings) >= 2
        got = inbox.to(user.email)
        assert sorted(m["Subject"] for m in got) == [
            "[Fabriek] A review for you",
            "[Fabriek] Proposal 7 was awarded",
        ]
        awarded = next(m for m in got if "awarded" in m["Subject"])
        assert awarded["From"] == "fabriek@factory.example"
        text = awarded.get_content()
        assert "Well done." in text and "https://fabriek.example/proposals/7" in text
        assert unsent(s, user) == []
        send_due_email(s, T0 + timedelta(minutes=1), mail_settings)
        assert len(inbox.to(user.email)) == 2


def test_daily_digest_gathers_and_sends_at_most_once_a_day(
    sessions: sessionmaker[Session], inbox: Inbox, mail_settings: Settings, unique: str
) -> None:
    with sessions() as s:
        user = new_user(s, f"{unique}-dig")  # no settings: a daily digest
        for i in range(3):
            inbox_service.notify(
                s, [user.id], "proposal-submitted", f"Job {i} ended", f"Job {i} body", T0
            )
        s.commit()
        send_due_email(s, T0, mail_settings)
        [first] = inbox.to(user.email)
        assert first["Subject"] == "[Fabriek] Daily digest: 3 notifications"
        assert all(f"Job {i} body" in first.get_content() for i in range(3))
        assert inbox_service.get_settings(s, who(user)).last_digest_at == T0

        for i in (3, 4):
            inbox_service.notify(s, [user.id], "proposal-submitted", f"Job {i} ended",
                                 f"Job {i} body", T0 + timedelta(hours=i))  # fmt: skip
        s.commit()
        for later in (timedelta(hours=5), timedelta(hours=23, minutes=59)):
            send_due_email(s, T0 + later, mail_settings)
        assert len(inbox.to(user.email)) == 1  # not twice in a day
        assert len(unsent(s, user)) == 2

        send_due_email(s, T0 + timedelta(hours=24), mail_settings)
        second = inbox.to(user.email)[1]
        assert second["Subject"] == "[Fabriek] Daily digest: 2 notifications"
        assert "Job 3 body" in second.get_content() and "Job 0 body" not in second.get_content()
        assert unsent(s, user) == []


def test_muted_kinds_and_delivery_none_send_nothing(
    sessions: sessionmaker[Session], inbox: Inbox, mail_settings: Settings, unique: str
) -> None:
    with sessions() as s:
        picky = new_user(s, f"{unique}-picky")
        quiet = new_user(s, f"{unique}-quiet")
        inbox_service.update_settings(
            s, who(picky), NotificationSettingsUpdate(delivery="immediate", muted=["budget-used"])
        )
        inbox_service.update_settings(s, who(quiet), NotificationSettingsUpdate(delivery="none"))
        for user in (picky, quiet):
            inbox_service.notify(s, [user.id], "budget-used", "80 % used", "budget body", T0)
            inbox_service.notify(s, [user.id], "proposal-submitted", "Job ended", "job body", T0)
        s.commit()
        send_due_email(s, T0, mail_settings)
        assert [m["Subject"] for m in inbox.to(picky.email)] == ["[Fabriek] Job ended"]
        assert inbox.to(quiet.email) == []
        # Handled, not lost: they stay in the person's list.
        assert unsent(s, picky) == [] and unsent(s, quiet) == []
        listed = inbox_service.list_notifications(s, who(quiet), PageRequest(), unread=True)
        assert listed.total == 2


def test_smtp_down_marks_nothing_then_delivers_once_up(
    sessions: sessionmaker[Session],
    smtp_port: int,
    mail_settings: Settings,
    unique: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with sessions() as s:
        user = new_user(s, f"{unique}-down")
        inbox_service.update_settings(
            s, who(user), NotificationSettingsUpdate(delivery="immediate")
        )
        inbox_service.notify(s, [user.id], "proposal-submitted", "Job 1 ended", "one", T0)
        inbox_service.notify(s, [user.id], "proposal-submitted", "Job 2 ended", "two", T0)
        s.commit()
        with caplog.at_level(logging.WARNING, logger="fabriek.mail"):
            assert send_due_email(s, T0, mail_settings) == 0
        warnings = [r for r in caplog.records if r.name == "fabriek.mail"]
        assert len(warnings) == 1 and str(smtp_port) in warnings[0].getMessage()
        assert len(unsent(s, user)) == 2

        with smtp_server(smtp_port) as box:
            send_due_email(s, T0 + timedelta(minutes=5), mail_settings)
            send_due_email(s, T0 + timedelta(minutes=6), mail_settings)
        assert sorted(m["Subject"] for m in box.to(user.email)) == [
            "[Fabriek] Job 1 ended",
            "[Fabriek] Job 2 ended",
        ]
        assert unsent(s, user) == []


def test_a_refused_address_waits_and_the_others_still_go(
    sessions: sessionmaker[Session], inbox: Inbox, mail_settings: Settings, unique: str
) -> None:
    with sessions() as s:
        gone, fine = new_user(s, f"{unique}-gone"), new_user(s, f"{unique}-fine")
        inbox.refuse.add(gone.email)
        inbox_service.notify(s, [gone.id, fine.id], "review-assigned", "Review 3", "body", T0)
        s.commit()
        send_due_email(s, T0, mail_settings)
        assert len(inbox.to(fine.email)) == 1 and unsent(s, fine) == []
        assert len(unsent(s, gone)) == 1  # kept for the next round
        inbox.refuse.clear()
        send_due_email(s, T0 + timedelta(minutes=1), mail_settings)
        assert len(inbox.to(gone.email)) == 1 and unsent(s, gone) == []


def test_email_off_leaves_notifications_for_later(
    sessions: sessionmaker[Session], unique: str
) -> None:
    with sessions() as s:
        user = new_user(s, f"{unique}-off")
        inbox_service.notify(s, [user.id], "proposal-submitted", "Job ended", "body", T0)
        s.commit()
        assert send_due_email(s, T0, Settings(smtp_host=None)) == 0
        assert len(unsent(s, user)) == 1


# --- budget notices ----------------------------------------------------------------------------


@dataclass
class Fixture:
    allocation: AllocationRow
    members: list[UserRow]
    project: ProjectRow
    job: JobRow


def _allocation(s: Session, unique: str, tag: str, hours: float, days: int) -> Fixture:
    org = s.scalars(select(OrganisationRow).order_by(OrganisationRow.id)).first()
    assert org is not None
    project = ProjectRow(name=f"{unique}-{tag}", title="Budget test", organisation_id=org.id)
    s.add(project)
    s.flush()
    members = [new_user(s, f"{unique}-{tag}-{n}") for n in ("pi", "member")]
    for user, role in zip(members, ("principal-investigator", "member"), strict=True):
        s.add(MembershipRow(project_id=project.id, user_id=user.id, role=role))
    allocation = AllocationRow(project_id=project.id, track="fast-lane", gpu_hours=hours,
                               awarded={"h100": hours}, starts_at=T0,
                               ends_at=T0 + timedelta(days=days))  # fmt: skip
    s.add(allocation)
    s.flush()
    job = JobRow(project_id=project.id, user_id=members[0].id, name="train", gpus=8, nodes=1,
                 cpus=8, memory_gb=64, time_limit_s=3600, state="completed",
                 allocation_id=allocation.id, submitted_at=T0)  # fmt: skip
    s.add(job)
    s.commit()
    return Fixture(allocation, members, project, job)


def _charge(s: Session, f: Fixture, hours: float) -> None:
    s.add(ChargeRow(allocation_id=f.allocation.id, job_id=f.job.id, gpus=8, gpu_type="h100",
                    started_at=T0, ended_at=T0 + timedelta(hours=1), raw_gpu_hours=hours,
                    factor=1.0, gpu_hours=hours))  # fmt: skip
    s.commit()


def _budget_subjects(s: Session, user: UserRow) -> list[str]:
    s.expire_all()
    return list(
        s.scalars(
            select(NotificationRow.subject)
            .where(
                NotificationRow.user_id == user.id,
                NotificationRow.kind.in_(["budget-used", "allocation-ending"]),
            )
            .order_by(NotificationRow.id)
        )
    )


def test_budget_notices_at_each_threshold_once(
    sessions: sessionmaker[Session], unique: str
) -> None:
    with sessions() as s:
        f = _allocation(s, unique, "steady", hours=200.0, days=90)
        name = f.project.name
        give = inbox_service.give_budget_notices
        assert give(s, T0 + timedelta(days=1), ACCESS) == 0
        steps = [
            (100.0, timedelta(days=2), f"{name}: 50 % of the GPU-hour budget used"),
            (60.0, timedelta(days=3), f"{name}: 80 % of the GPU-hour budget used"),
            (40.0, timedelta(days=4), f"{name}: 100 % of the GPU-hour budget used"),
        ]
        for hours, when, subject in steps:
            _charge(s, f, hours)
            assert give(s, T0 + when, ACCESS) == 1
            assert give(s, T0 + when + timedelta(hours=1), ACCESS) == 0  # once
            assert _budget_subjects(s, f.members[0])[-1].startswith(subject)
        end = f.allocation.ends_at
        for days in (30, 14, 7):
            assert give(s, end - timedelta(days=days, minutes=1), ACCESS) == 0
            assert give(s, end - timedelta(days=days) + timedelta(minutes=1), ACCESS) == 1
            assert give(s, end - timedelta(days=days) + timedelta(hours=5), ACCESS) == 0
            assert _budget_subjects(s, f.members[1])[-1] == (
                f"{name}: the allocation ends in {days} days, on {end:%Y-%m-%d}"
            )
        assert give(s, end - timedelta(days=1), ACCESS) == 0
        for member in f.members:  # every member got each of the six, once
            assert len(_budget_subjects(s, member)) == 6
        body = s.scalars(
            select(NotificationRow.body)
            .where(NotificationRow.user_id == f.members[0].id)
            .order_by(NotificationRow.id)
        ).first()
        assert body is not None and "100.0 of 200.0 GPU-h" in body
        assert f"{end:%Y-%m-%d %H:%M} UTC" in body


def test_a_jump_gives_the_most_urgent_notice_and_never_the_milder_ones_later(
    sessions: sessionmaker[Session], unique: str
) -> None:
    with sessions() as s:
        f = _allocation(s, unique, "jump", hours=100.0, days=20)
        _charge(s, f, 90.0)
        give = inbox_service.give_budget_notices
        # 90 % used and 19 days left: the 80 % and the 30-day notice, not 50 %.
        assert give(s, T0 + timedelta(days=1), ACCESS) == 2
        subjects = _budget_subjects(s, f.members[0])
        assert any("80 %" in x for x in subjects) and not any("50 %" in x for x in subjects)
        # Straight to 3 days left: the 7-day notice; the 14-day one it skipped never comes.
        assert give(s, T0 + timedelta(days=17), ACCESS) == 1
        assert give(s, T0 + timedelta(days=17, hours=1), ACCESS) == 0
        subjects = _budget_subjects(s, f.members[0])
        assert len(subjects) == 3 and "ends in 3 days" in subjects[-1]


# --- API and CLI -------------------------------------------------------------------------------


def _user_id(s: Session, username: str) -> int:
    found = s.scalar(select(UserRow.id).where(UserRow.username == username))
    assert found is not None
    return found


def test_api_lists_marks_read_and_hides_others(
    server: LiveServer, client: Client, unique: str
) -> None:
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as s:
        maria, pieter = _user_id(s, "maria"), _user_id(s, "pieter")
        now = datetime.now(UTC)
        for i in range(3):
            inbox_service.notify(
                s, [maria], "proposal-submitted", f"{unique} {i}", "body", now, link="/jobs/1"
            )
        inbox_service.notify(s, [pieter], "proposal-submitted", f"{unique} pieter's", "body", now)
        s.commit()
        theirs = s.scalar(
            select(NotificationRow.id).where(NotificationRow.subject == f"{unique} pieter's")
        )
    engine.dispose()
    api = client("maria")
    listed = api.get("/api/v1/notifications", params={"unread": "true", "limit": 1000}).json()
    mine = [n for n in listed["items"] if n["subject"].startswith(unique)]
    assert [n["subject"] for n in mine] == [f"{unique} {i}" for i in (2, 1, 0)]  # newest first
    assert all(n["read_at"] is None and n["link"] == "/jobs/1" for n in mine)
    assert not any("pieter" in n["subject"] for n in listed["items"])

    read = api.post(f"/api/v1/notifications/{mine[0]['id']}/read")
    assert read.status_code == 200 and read.json()["read_at"] is not None
    again = api.post(f"/api/v1/notifications/{mine[0]['id']}/read").json()
    assert again["read_at"] == read.json()["read_at"]  # the first time is kept
    problem_of(api.post(f"/api/v1/notifications/{theirs}/read"), 404)
    problem_of(api.post("/api/v1/notifications/999999999/read"), 404)

    marked = api.post("/api/v1/notifications/read-all").json()["marked"]
    assert marked >= 2
    assert api.get("/api/v1/notifications", params={"unread": "true"}).json()["total"] == 0
    read_ones = api.get("/api/v1/notifications", params={"unread": "false", "limit": 1000}).json()
    assert {n["id"] for n in mine} <= {n["id"] for n in read_ones["items"]}
    problem_of(client().get("/api/v1/notifications"), 401)


def test_api_settings_and_bad_values(client: Client) -> None:
    api = client("sanne")
    start = api.get("/api/v1/notifications/settings").json()
    assert start["delivery"] in {"digest", "immediate", "none"}
    assert "budget-used" in start["kinds"] and start["email"] == "sanne@demo.fabriek.example"

    bad = problem_of(api.put("/api/v1/notifications/settings", json={"delivery": "weekly"}), 422)
    assert "digest, immediate, none" in str(bad["detail"])
    bad = problem_of(api.put("/api/v1/notifications/settings", json={"muted": ["gossip"]}), 422)
    assert "'gossip'" in str(bad["detail"]) and "budget" in str(bad["detail"])
    problem_of(api.put("/api/v1/notifications/settings", json={"colour": "red"}), 422)

    changed = api.put(
        "/api/v1/notifications/settings",
        json={"delivery": "immediate", "muted": ["proposal-submitted"]},
    ).json()
    assert changed["delivery"] == "immediate" and changed["muted"] == ["proposal-submitted"]
    kept = api.put("/api/v1/notifications/settings", json={"delivery": "digest"}).json()
    assert kept["delivery"] == "digest" and kept["muted"] == [
        "proposal-submitted"
    ]  # left out: kept
    assert api.put("/api/v1/notifications/settings", json={"muted": []}).json()["muted"] == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_lists_reads_and_changes_settings(
    server: LiveServer, tmp_path: Path, unique: str
) -> None:
    env = {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token("mo").token,
           "FABRIEK_CONFIG_DIR": str(tmp_path)}  # fmt: skip
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as s:
        inbox_service.notify(s, [_user_id(s, "mo")], "proposal-decided", f"{unique} awarded", "yes",
                             datetime.now(UTC))  # fmt: skip
        s.commit()
    engine.dispose()

    table = fabriek("notifications", "--unread", env=env).stdout
    assert f"{unique} awarded" in table and "SUBJECT" in table
    listed = json.loads(fabriek("notifications", "--json", env=env).stdout)
    ours = next(n for n in listed if n["subject"] == f"{unique} awarded")
    assert "Notification" in fabriek("notifications", "read", str(ours["id"]), env=env).stdout
    unread = json.loads(fabriek("notifications", "--json", "--unread", env=env).stdout)
    assert ours["id"] not in [n["id"] for n in unread]
    assert "Marked" in fabriek("notifications", "read", "--all", env=env).stdout
    one_line_error(fabriek("notifications", "read", env=env, check=False), 2)

    out = json.loads(fabriek("notifications", "settings", "--delivery", "immediate",
                             "--mute", "proposal-submitted", "--mute", "review-assigned",
                             "--json", env=env).stdout)  # fmt: skip
    assert out["delivery"] == "immediate"
    assert out["muted"] == ["proposal-submitted", "review-assigned"]
    out = json.loads(
        fabriek(
            "notifications", "settings", "--unmute", "proposal-submitted", "--json", env=env
        ).stdout
    )
    assert out["delivery"] == "immediate" and out["muted"] == ["review-assigned"]
    assert "review-assigned" in fabriek("notifications", "settings", env=env).stdout
    line = one_line_error(
        fabriek("notifications", "settings", "--delivery", "weekly", env=env, check=False), 2
    )
    assert "digest, immediate, none" in line
    one_line_error(
        fabriek("notifications", "settings", "--mute", "gossip", env=env, check=False), 2
    )
