"""The public page: the factory at a glance, without sign-in."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from fabriek.services.demo.seed import demo_token
from fabriek.services.notifications.inbox import notify
from fabriek.store.db import make_engine, make_sessions
from fabriek.store.tables import UserRow
from tests.conftest import Client
from tests.servers import LiveServer


def test_front_page_shows_sites_and_regions(client: Client) -> None:
    page = client().get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for expected in [
        "amsterdam",
        "groningen",
        "eindhoven",
        "NVIDIA H200 SXM 141GB",
        "Fryslân",
        "Limburg",
        "AI-hub Noord-Nederland",
        "AI-hub Brainport",
    ]:
        assert expected in html, expected  # fmt: skip
    assert client().get("/static/style.css").status_code == 200


def test_signed_in_people_see_their_notifications(
    client: Client, server: LiveServer, unique: str
) -> None:
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            maria = session.scalar(select(UserRow.id).where(UserRow.username == "maria"))
            sanne = session.scalar(select(UserRow.id).where(UserRow.username == "sanne"))
            assert maria is not None and sanne is not None
            notify(session, [maria], "budget-used", f"{unique}: 80 % used", "body",
                   datetime.now(UTC), link="/projects/dutch-llm")  # fmt: skip
            notify(session, [sanne], "budget-used", f"{unique}: not hers", "x", datetime.now(UTC))
            session.commit()
    finally:
        engine.dispose()
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        away = browser.get("/notifications")
        assert away.status_code == 303 and away.headers["location"].startswith("/signin")
        refused = browser.post("/signin", data={"token": "fbk_nope_nope", "next": "/notifications"})
        assert refused.status_code == 401 and 'role="alert"' in refused.text
        signed = browser.post(
            "/signin", data={"token": demo_token("maria").token, "next": "//evil.example/"}
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = browser.get("/notifications")
        assert page.status_code == 200
        assert f"{unique}: 80 % used" in page.text and "not hers" not in page.text
        row = re.search(r'action="/notifications/(\d+)/read"[^<]*<button[^>]*>Mark read', page.text)
        assert row is not None
        ids = [n["id"] for n in client("maria").get("/api/v1/notifications").json()["items"]
               if n["subject"] == f"{unique}: 80 % used"]  # fmt: skip
        marked = browser.post(f"/notifications/{ids[0]}/read")
        assert marked.status_code == 303
        read = client("maria").get("/api/v1/notifications", params={"unread": "false"}).json()
        assert ids[0] in {n["id"] for n in read["items"]}
        unread_page = browser.get("/notifications", params={"unread": "true"}).text
        assert f"{unique}: 80 % used" not in unread_page


def test_a_form_with_absurdly_many_fields_is_refused_not_a_server_error(client: Client) -> None:
    body = "&".join(f"f{i}=x" for i in range(200))
    answer = client().post(
        "/signin", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 422, answer.text


def test_anonymous_visitors_sign_in_and_come_back_to_the_page_they_were_on(
    client: Client,
) -> None:
    anonymous = client()
    back = {
        ("GET", "/jobs?offset=50"): "/jobs%3Foffset%3D50",
        ("GET", "/home/jobs"): "/home",
        ("GET", "/jobs/5/live"): "/jobs/5",
        ("POST", "/jobs"): "/jobs/new",
        ("POST", "/proposals/7/withdraw"): "/proposals/7",
        ("POST", "/proposals/7/check"): "/proposals/7/decide",
        ("POST", "/ai-systems/x/classify/restart"): "/ai-systems/x/classify",
        ("POST", "/support/3/messages"): "/support/3",
        ("POST", "/tokens/abc/revoke"): "/tokens",
        ("GET", "/notifications?unread=true"): "/notifications",
    }
    for (method, path), target in back.items():
        away = anonymous.request(method, path, data={} if method == "POST" else None)
        assert away.status_code == 303, (method, path, away.status_code)
        assert away.headers["location"] == f"/signin?next={target}", (method, path)
