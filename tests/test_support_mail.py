"""The support centre's e-mail round trip, on SQLite and PostgreSQL: replies and
acknowledgements queued in the store and sent to a real SMTP server (aiosmtpd), kept while
the server is down and delivered once it is up; the person's answer piped back in with
`fabriek support inbound` joins the ticket; a stranger, a closed ticket, a forged token get
a bounce by mail and nothing is added; automatic mail gets nothing at all."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from fabriek.services.demo.seed import demo_token
from fabriek.services.support.outbox import send_support_mail
from fabriek.settings import Settings
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import SupportMailRow
from tests.conftest import Client, problem_of
from tests.servers import LiveServer, free_port
from tests.test_api_support import API, Person, ok, person, ticket_body
from tests.test_notifications import smtp_server

BRAINPORT_ORG = "Eindhoven Photonics AI B.V."


@pytest.fixture
def session(server: LiveServer) -> Iterator[Session]:
    engine = make_engine(server.settings.database_url)
    with make_sessions(engine)() as s:
        yield s
    engine.dispose()


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def mail_settings(smtp_port: int) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=smtp_port,
                    smtp_from="fabriek@factory.example")  # fmt: skip


def mails_of(session: Session, ticket_id: int) -> list[SupportMailRow]:
    session.expire_all()
    return list(
        session.scalars(
            select(SupportMailRow)
            .where(SupportMailRow.ticket_id == ticket_id)
            .order_by(SupportMailRow.id)
        )
    )


def later(minutes: int) -> datetime:
    """A moment past every queued message's first try (the queue is the live server's)."""
    return datetime.now(UTC) + timedelta(minutes=minutes)


def answer(sender: str, to: str, subject: str, text: str, **headers: str) -> bytes:
    """An e-mail as a mail client writes a reply: the answer above the quoted message."""
    message = EmailMessage()
    message["From"] = f"Someone <{sender}>"
    message["To"] = to
    message["Subject"] = f"Re: {subject}"
    message["Message-ID"] = make_msgid("reply", "people.example")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(f"{text}\n\nOn Mon, 30 Nov 2026 at 10:02, Fabriek support wrote:\n"
                        "> Is it the learning rate? Try 1e-4.\n> \n")  # fmt: skip
    return bytes(message)


def run_inbound(
    server: LiveServer, raw: bytes, username: str
) -> subprocess.CompletedProcess[bytes]:
    """`fabriek support inbound`, as the mail server runs it, with the message on stdin."""
    env = {"FABRIEK_URL": server.url, "FABRIEK_TOKEN": demo_token(username).token}
    return subprocess.run(
        [sys.executable, "-m", "fabriek.main", "support", "inbound"],
        input=raw, env={**os.environ, **env}, capture_output=True, timeout=60,
    )  # fmt: skip


def pipe(server: LiveServer, raw: bytes) -> str:
    """Pipe a message in as the central desk's mail gateway; what the command said."""
    done = run_inbound(server, raw, "eva")
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def hand_in(client: Client, raw: bytes) -> str:
    """What `pipe` does, straight over HTTP (the same route; no process to start)."""
    found = ok(client("eva").post(f"{API}/inbound", content=raw,
                                  headers={"Content-Type": "message/rfc822"}))  # fmt: skip
    return f"{found['outcome']}: {found['ticket'] or '-'}: {found['reason']}"


def test_the_email_round_trip(
    server: LiveServer,
    client: Client,
    session: Session,
    smtp_port: int,
    mail_settings: Settings,
    unique: str,
) -> None:
    user: Person = person(server, client, f"{unique}-ria", BRAINPORT_ORG)
    ria, hanna = client(token=user.token), client("hanna")
    ticket = ok(ria.post(f"{API}/tickets", json=ticket_body(subject=f"{unique} NaN loss")), 201)
    tid, reference = ticket["id"], ticket["reference"]
    ok(hanna.post(f"{API}/tickets/{tid}/messages", json={
        "body": "Is it the learning rate? Try 1e-4.", "status": "waiting-for-user"}), 201)  # fmt: skip
    assert [m.kind for m in mails_of(session, tid)] == ["ack", "reply"]

    # The mail server is down: nothing is lost, nothing is marked sent.
    assert send_support_mail(session, later(1), mail_settings) == 0
    queued = mails_of(session, tid)
    assert all(m.sent_at is None for m in queued)
    first_failed = [m for m in queued if m.attempts]
    assert not first_failed or first_failed[0].last_error

    with smtp_server(smtp_port) as inbox:
        send_support_mail(session, later(30), mail_settings)
        send_support_mail(session, later(90), mail_settings)
        got = inbox.to(user.email)
    assert all(m.sent_at is not None for m in mails_of(session, tid))
    ack = next(m for m in got if "Re:" not in m["Subject"])
    reply = next(m for m in got if "Re:" in m["Subject"])
    assert len(got) == 2
    address = ticket["reply_address"]
    assert ack["Reply-To"] == reply["Reply-To"] == address
    assert f"[{address.split('+')[1].split('@')[0]}]" in reply["Subject"]
    assert ack["Auto-Submitted"] == "auto-generated" and reply["Auto-Submitted"] is None
    assert reply["In-Reply-To"] == ack["Message-ID"]
    assert "Is it the learning rate? Try 1e-4." in reply.get_content()
    assert f"Your ticket {reference} reached AI-hub Brainport" in ack.get_content()

    # Her answer comes back through the mail server's pipe.
    raw = answer(user.email, address, reply["Subject"], "Thanks, with 1e-4 it trains now.")
    assert pipe(server, raw) == f"added: {reference}: added to {reference}"
    shown = ok(ria.get(f"{API}/tickets/{tid}"))
    last = shown["messages"][-1]
    assert last["body"] == "Thanks, with 1e-4 it trains now."
    assert last["via"] == "email" and last["author"] == user.username
    assert shown["status"] == "triaged"  # her turn is over
    assert hand_in(client, raw).startswith(f"duplicate: {reference}")
    assert len(ok(ria.get(f"{API}/tickets/{tid}"))["messages"]) == 2

    # A file she attaches comes along; a program does not.
    with_files = EmailMessage()
    with_files["From"], with_files["To"] = user.email, address
    with_files["Subject"], with_files["Message-ID"] = "Re: logs", make_msgid("files")
    with_files.set_content("The log of the last run.")
    with_files.add_attachment(b"epoch 1: loss nan\n", maintype="text", subtype="plain",
                              filename="run.log")  # fmt: skip
    with_files.add_attachment(b"MZ\x90\x00", maintype="application", subtype="x-msdownload",
                              filename="fix.exe")  # fmt: skip
    assert hand_in(client, bytes(with_files)).startswith("added")
    shown = ok(ria.get(f"{API}/tickets/{tid}"))
    assert [a["name"] for a in shown["attachments"]] == ["run.log"]
    assert (
        "[not kept: fix.exe: files of type application/x-msdownload"
        in shown["messages"][-1]["body"]
    )

    # A stranger, and a forged token: bounced by mail, nothing added, nothing told.
    stranger = answer(f"{unique}@elsewhere.example", address, "Can I join?", "Me too!")
    assert hand_in(client, stranger).startswith("bounced: ")
    forged_address = address.split("-")[0] + "-0000000000000000@" + address.split("@")[1]
    forged = answer(user.email, forged_address, "Help", "Let me in")
    assert hand_in(client, forged) == "bounced: -: it names no ticket we know"
    # Automatic mail is dropped without a bounce.
    robot = answer(user.email, address, reply["Subject"], "I am out of office",
                   Auto_Submitted="auto-replied")  # fmt: skip
    assert hand_in(client, robot).startswith("ignored: ")
    # Closed: her late reply bounces.
    ok(ria.post(f"{API}/tickets/{tid}/status", json={"status": "closed"}))
    late = answer(user.email, address, reply["Subject"], "One more question")
    assert (
        pipe(server, late)
        == f"bounced: {reference}: {reference} is closed and takes no more replies"
    )
    assert len(ok(ria.get(f"{API}/tickets/{tid}"))["messages"]) == 3

    with smtp_server(smtp_port) as inbox:
        send_support_mail(session, later(120), mail_settings)
        bounces = inbox.messages
    to_stranger = [m for m in bounces if m["To"] == f"{unique}@elsewhere.example"]
    assert len(to_stranger) == 1 and to_stranger[0]["Auto-Submitted"] == "auto-replied"
    text = to_stranger[0].get_content()
    assert "is not one of the people on the ticket" in text
    assert "NaN loss" not in text and "Brainport" not in text  # nothing about the ticket
    to_her = [m.get_content() for m in bounces if m["To"] == user.email]
    assert any("names no ticket we know" in t for t in to_her)
    assert any(f"{reference} is closed" in t and "fabriek support new" in t for t in to_her)
    assert not any("out of office" in t for t in to_her)


def test_only_the_central_desk_pipes_mail_in_and_garbage_is_refused(
    server: LiveServer, client: Client
) -> None:
    raw = answer("maria@demo.fabriek.example", "support+T1-0123456789abcdef@localhost", "x", "hi")
    problem = problem_of(
        client("hanna").post(
            f"{API}/inbound", content=raw, headers={"Content-Type": "message/rfc822"}
        ),
        403,
    )
    assert "give the mail server an API token" in str(problem["detail"])
    for garbage in (b"", b"just some words\n"):
        problem = problem_of(client("eva").post(f"{API}/inbound", content=garbage), 422)
        assert "pipe in one e-mail" in str(problem["detail"])
    refused = run_inbound(server, raw, "hanna")
    assert refused.returncode == 1 and b"Traceback" not in refused.stderr
    assert len(refused.stderr.decode().strip().splitlines()) == 1
