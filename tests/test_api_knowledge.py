"""The knowledge base end to end over HTTP, on SQLite (FTS5 and Fabriek's Dutch stemmer)
and PostgreSQL (tsvector, 'dutch' and 'english'): one search finds Dutch articles by word
forms they do not contain, English ones by theirs, and edits are found at once."""

from __future__ import annotations

from typing import Any

from tests.conftest import Client, problem_of

API = "/api/v1/kb"


def search(client: Client, q: str, **params: Any) -> list[dict[str, Any]]:
    found = client("maria").get(f"{API}/search", params={"q": q, **params})
    assert found.status_code == 200, found.text
    hits: list[dict[str, Any]] = found.json()
    return hits


def test_a_search_finds_an_article_by_a_dutch_word_form(client: Client) -> None:
    article = client("maria").get(f"{API}/articles/rekentaak-indienen").json()
    assert "rekentaak" in article["body"] and "rekentaken" not in article["body"]
    hits = search(client, "rekentaken", lang="nl")
    assert "rekentaak-indienen" in [h["slug"] for h in hits]
    hit = next(h for h in hits if h["slug"] == "rekentaak-indienen")
    assert "**rekentaak**" in hit["snippet"] and hit["language"] == "nl"
    # "aanvragen" finds the article that says "aanvraag" (and never "aanvragen").
    body = client("maria").get(f"{API}/articles/aanvraag-indienen").json()["body"]
    assert "aanvraag" in body and "aanvragen" not in body
    assert search(client, "aanvragen")[0]["slug"] == "aanvraag-indienen"


def test_a_new_article_is_found_by_its_word_forms_and_edits_at_once(
    client: Client, unique: str
) -> None:
    hanna = client("hanna")
    body = {
        "slug": f"{unique}-zeewier", "language": "nl", "title": "Rekenen voor zeewierkwekers",
        "body": "Elke zeewierkweker in de gemeente kan een aanvraag doen; het budget volgt.",
        "links": ["docs/access.md#tracks"],
    }  # fmt: skip
    made = hanna.post(f"{API}/articles", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["updated_by"] == "hanna"
    # Every word must be found, each in another form than the article's.
    slugs = [h["slug"] for h in search(client, "zeewierkwekers gemeenten budgetten")]
    assert slugs == [f"{unique}-zeewier"]
    assert search(client, "zeewierkwekers walvissen") == []
    changed = hanna.patch(
        f"{API}/articles/{unique}-zeewier",
        json={"body": "Elke mosselkweker in de provincie kan een aanvraag doen."},
    )
    assert changed.status_code == 200, changed.text
    assert search(client, "zeewierkweker gemeente") == []  # the title keeps one of them
    assert [h["slug"] for h in search(client, "mosselkwekers")] == [f"{unique}-zeewier"]


def test_english_articles_are_found_by_english_forms_and_languages_stay_apart(
    client: Client,
) -> None:
    hits = search(client, "budgets consumed", lang="en")
    assert hits[0]["slug"] == "gpu-hour-budgets" and "**" in hits[0]["snippet"]
    assert {h["language"] for h in search(client, "budget")} == {"nl", "en"}
    assert all(h["language"] == "nl" for h in search(client, "budget", lang="nl"))
    assert search(client, "rekentaken", lang="en") == []
    assert search(client, "de het een") == []  # nothing but stop words


def test_a_ticket_text_gets_the_articles_that_answer_it(client: Client) -> None:
    text = (
        "Mijn rekentaken blijven wachten met AllocationExhausted. Is het budget aan "
        "GPU-uren van ons project op?"
    )
    found = client("sanne").post(f"{API}/suggestions", json={"text": text, "limit": 3})
    assert found.status_code == 200, found.text
    assert "gpu-uren-budget" in [s["slug"] for s in found.json()]
    english = client("sanne").post(
        f"{API}/suggestions",
        json={"text": "How do I apply for GPU-hours in a call?", "language": "en"},
    )
    assert english.json()[0]["slug"] == "apply-to-a-call"
    assert client("sanne").post(f"{API}/suggestions", json={"text": ""}).json() == []


def test_bad_input_and_who_may_write(client: Client, unique: str) -> None:
    problem_of(client("maria").get(f"{API}/search", params={"q": "  "}), 422)
    assert "known: nl, en" in str(
        problem_of(client("maria").get(f"{API}/search", params={"q": "x", "lang": "fr"}), 422)[
            "detail"
        ]
    )
    article = {"slug": f"{unique}-new", "language": "en", "title": "New", "body": "Text."}
    problem_of(client("maria").post(f"{API}/articles", json=article), 403)
    admin = client("admin")
    problem_of(admin.post(f"{API}/articles", json={**article, "slug": "submit-a-job"}), 422)
    problem_of(
        admin.post(f"{API}/articles", json={**article, "links": ["file:///etc/passwd"]}), 422
    )
    problem_of(
        admin.post(f"{API}/articles", json={**article, "translation": "gpu-hour-budgets"}), 422
    )
    problem_of(admin.post(f"{API}/articles", json={**article, "slug": "Not A Slug"}), 422)
    problem_of(client("maria").get(f"{API}/articles/{unique}-missing"), 404)
    # A translation is linked both ways when the other names none yet.
    english = admin.post(f"{API}/articles", json=article)
    assert english.status_code == 201, english.text
    dutch = {**article, "slug": f"{unique}-nieuw", "language": "nl", "translation": f"{unique}-new"}
    assert admin.post(f"{API}/articles", json=dutch).status_code == 201
    assert admin.get(f"{API}/articles/{unique}-new").json()["translation"] == f"{unique}-nieuw"
    listed = admin.get(f"{API}/articles", params={"lang": "nl", "limit": 1000}).json()["items"]
    assert f"{unique}-nieuw" in {a["slug"] for a in listed}
    assert all(a["language"] == "nl" for a in listed)
