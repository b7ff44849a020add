"""The public page: the factory at a glance, without sign-in."""

from __future__ import annotations

from tests.conftest import Client


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
