"""The expertise network end to end over HTTP, on SQLite and PostgreSQL: a request for
expertise is matched and explained, experts are assigned within their availability, the
hours they deliver reach the hubs' report, and bad input is refused whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from fabriek.services.support.expertise import hours_by_hub_and_sector, today
from fabriek.store.db import make_engine, make_sessions
from tests.conftest import Client, problem_of
from tests.servers import LiveServer
from tests.test_api_users import org_id

API = "/api/v1"
LIMBURG_ORG = "Limburgse Chemie Modellen B.V."  # a scale-up: sector start-ups


def add_expert(client: Client, name: str, hub: str, skills: list[str], hours: float) -> int:
    body = {"name": name, "organisation": "Universiteit Maastricht", "hub": hub,
            "skills": skills, "languages": ["nl", "en"], "hours_per_month": hours,
            "email": "expert@example.org"}  # fmt: skip
    made = client("admin").post(f"{API}/experts", json=body)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def ask(client: Client, who: str = "admin", **body: Any) -> dict[str, Any]:
    made = client(who).post(f"{API}/expertise-requests", json=body)
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()
    return found


def test_an_expertise_request_is_matched_and_explained(
    client: Client, unique: str, server: LiveServer
) -> None:
    skills = ["mlops", "time-series-forecasting"]
    ids = {
        "own": add_expert(client, f"{unique} Own", "brightlands", skills, 10),
        "next": add_expert(client, f"{unique} Next", "brainport", skills, 10),
        "far": add_expert(client, f"{unique} Far", "amsterdam", skills, 10),
        "half": add_expert(client, f"{unique} Half", "brightlands", ["mlops"], 10),
        "other": add_expert(client, f"{unique} Other", "brightlands", ["robotics"], 10),
        "busy": add_expert(client, f"{unique} Busy", "brightlands", skills, 1),
    }
    limburg = org_id(client, LIMBURG_ORG)
    request = ask(client, skills=skills, hours=4, organisation_id=limburg, ticket_id=9001,
                  description="Forecasting demand at a chemical plant")  # fmt: skip
    assert (request["hub"], request["province"], request["sector"]) == (
        "brightlands", "Limburg", "start-ups"
    )  # fmt: skip
    assert request["ticket_id"] == 9001 and request["organisation"] == LIMBURG_ORG

    found = client("admin").get(f"{API}/expertise-requests/{request['id']}/matches").json()
    month = found["month"][:7]
    ranks = {c["expert_id"]: c for c in found["candidates"]}
    mine = [ranks[ids[k]]["rank"] for k in ("own", "next", "far", "half")]
    assert mine == sorted(mine), "own hub, then neighbour, then elsewhere, then fewer skills"
    own = ranks[ids["own"]]
    assert own["why"] == [
        "skills: has MLOps, Time-series forecasting (2 of 2 asked)",
        "region: works at AI-hub Brightlands, the hub serving Limburg",
        f"availability: 10 h left of 10 h in {month}; 4 h asked",
    ]
    assert ranks[ids["next"]]["region"] == "neighbouring-hub"
    assert "a neighbour of AI-hub Brightlands" in ranks[ids["next"]]["why"][1]
    assert ranks[ids["far"]]["region"] == "other-hub"
    assert ranks[ids["half"]]["missing_skills"] == ["time-series-forecasting"]
    passed = {p["expert_id"]: p["reason"] for p in found["passed_over"]}
    assert passed[ids["other"]] == "has none of the skills asked"
    assert passed[ids["busy"]] == f"only 1 h left of 1 h in {month}; 4 h asked"

    # Assigned: the hours are reserved, and the expert leaves the request's matches.
    assign = {"expert_id": ids["own"]}
    done = client("admin").post(
        f"{API}/expertise-requests/{request['id']}/assignments", json=assign
    )
    assert done.status_code == 201, done.text
    assert done.json()["assignments"][0]["hours_reserved"] == 4
    assert client("admin").get(f"{API}/experts/{ids['own']}").json()["hours_left"] == 6
    again = client("admin").get(f"{API}/expertise-requests/{request['id']}/matches").json()
    assert ids["own"] not in {c["expert_id"] for c in again["candidates"]}

    # Delivered hours are logged, and reach the hub's report by the requester's sector.
    log = {"hours": 2.5, "note": "first session"}
    logged = client("admin").post(
        f"{API}/expertise-requests/{request['id']}/consultations", json=log
    )
    assert logged.status_code == 201, logged.text
    assert logged.json()["hours_delivered"] == 2.5
    assert logged.json()["consultations"][0]["expert"] == f"{unique} Own"
    engine = make_engine(server.settings.database_url)
    try:
        with make_sessions(engine)() as session:
            report = hours_by_hub_and_sector(session, "brightlands", today(datetime.now(UTC)))
    finally:
        engine.dispose()
    assert report.get("start-ups", 0) >= 2.5


def test_an_expert_is_never_assigned_beyond_their_availability(client: Client, unique: str) -> None:
    expert = add_expert(client, f"{unique} Scarce", "brainport", ["mlops"], 6)
    first = ask(client, "hanna", skills=["mlops"], hours=4, ticket_id=9002,
                organisation_id=org_id(client, "Fontys Hogescholen"))  # fmt: skip
    second = ask(client, "hanna", skills=["mlops"], hours=4, ticket_id=9003,
                 organisation_id=org_id(client, "Fontys Hogescholen"))  # fmt: skip
    hanna = client("hanna")
    ok = hanna.post(
        f"{API}/expertise-requests/{first['id']}/assignments", json={"expert_id": expert}
    )
    assert ok.status_code == 201, ok.text
    refused = hanna.post(
        f"{API}/expertise-requests/{second['id']}/assignments", json={"expert_id": expert}
    )
    problem = problem_of(refused, 409)
    assert "has 2 h left of 6 h" in str(problem["detail"]) and "4 h were asked" in str(
        problem["detail"]
    )
    # Nothing partial: the refused assignment left no trace; fewer hours fit.
    assert hanna.get(f"{API}/expertise-requests/{second['id']}").json()["assignments"] == []
    fits = hanna.post(
        f"{API}/expertise-requests/{second['id']}/assignments",
        json={"expert_id": expert, "hours": 2},
    )
    assert fits.status_code == 201, fits.text
    # A later month has its own hours; a past one cannot be booked.
    next_month = (today(datetime.now(UTC)).replace(day=1) + timedelta(days=32)).strftime("%Y-%m")
    third = ask(client, "hanna", skills=["mlops"], hours=6, ticket_id=9004,
                organisation_id=org_id(client, "Fontys Hogescholen"))  # fmt: skip
    later = hanna.post(
        f"{API}/expertise-requests/{third['id']}/assignments",
        json={"expert_id": expert, "month": next_month},
    )
    assert later.status_code == 201, later.text
    past = hanna.post(
        f"{API}/expertise-requests/{third['id']}/assignments",
        json={"expert_id": add_expert(client, f"{unique} Spare", "brainport", ["mlops"], 9),
              "month": "2020-01"},
    )  # fmt: skip
    assert "has passed" in str(problem_of(past, 422)["detail"])


def test_bad_input_is_refused_with_what_to_change(client: Client, unique: str) -> None:
    admin = client("admin")
    unknown = admin.post(
        f"{API}/expertise-requests", json={"skills": ["mlops", "knitting"], "ticket_id": 1}
    )
    detail = str(problem_of(unknown, 422)["detail"])
    assert "unknown skill 'knitting'" in detail and "mlops" in detail
    bad_expert = admin.post(
        f"{API}/experts",
        json={"name": f"{unique} X", "organisation": "TNO", "hub": "brainport",
              "skills": ["knitting"], "hours_per_month": 4},
    )  # fmt: skip
    assert "unknown skill" in str(problem_of(bad_expert, 422)["detail"])
    no_hub = admin.post(
        f"{API}/experts",
        json={"name": f"{unique} X", "organisation": "TNO", "hub": "utopia",
              "skills": ["mlops"], "hours_per_month": 4},
    )  # fmt: skip
    problem_of(no_hub, 422)

    robot = add_expert(client, f"{unique} Robot", "brainport", ["robotics"], 8)
    request = ask(client, skills=["ai-act"], ticket_id=9005,
                  organisation_id=org_id(client, "Fontys Hogescholen"))  # fmt: skip
    wrong = admin.post(
        f"{API}/expertise-requests/{request['id']}/assignments", json={"expert_id": robot}
    )
    assert "none of the skills asked" in str(problem_of(wrong, 422)["detail"])
    unassigned = admin.post(
        f"{API}/expertise-requests/{request['id']}/consultations", json={"hours": 1}
    )
    assert "assign one first" in str(problem_of(unassigned, 409)["detail"])
    lawyer = add_expert(client, f"{unique} Lawyer", "brainport", ["ai-act"], 8)
    assert (
        admin.post(
            f"{API}/expertise-requests/{request['id']}/assignments", json={"expert_id": lawyer}
        ).status_code
        == 201
    )
    tomorrow = (today(datetime.now(UTC)) + timedelta(days=1)).isoformat()
    future = admin.post(
        f"{API}/expertise-requests/{request['id']}/consultations",
        json={"hours": 1, "day": tomorrow},
    )
    assert "in the future" in str(problem_of(future, 422)["detail"])
    assert admin.get(f"{API}/expertise-requests/{request['id']}").json()["consultations"] == []
    # Hub staff add experts to their own hub's network only.
    elsewhere = client("hanna").post(
        f"{API}/experts",
        json={"name": f"{unique} Y", "organisation": "UM", "hub": "brightlands",
              "skills": ["mlops"], "hours_per_month": 4},
    )  # fmt: skip
    assert "brightlands" in str(problem_of(elsewhere, 403)["detail"])


def test_users_ask_for_their_own_organisation_and_see_only_their_requests(
    client: Client,
) -> None:
    # sanne works at Eindhoven Photonics AI B.V., a start-up in Noord-Brabant.
    mine = ask(client, "sanne", skills=["computer-vision-manufacturing"], language="nl")
    assert (mine["hub"], mine["sector"], mine["created_by"]) == ("brainport", "start-ups", "sanne")
    assert client("hanna").get(f"{API}/expertise-requests/{mine['id']}").status_code == 200
    for outsider in ("mo", "henk"):
        problem_of(client(outsider).get(f"{API}/expertise-requests/{mine['id']}"), 404)
    listed = client("mo").get(f"{API}/expertise-requests").json()["items"]
    assert mine["id"] not in {r["id"] for r in listed}
    # A user may not speak for a ticket or for another organisation.
    ticket = client("sanne").post(
        f"{API}/expertise-requests", json={"skills": ["mlops"], "ticket_id": 5}
    )
    problem_of(ticket, 403)
    other = client("sanne").post(
        f"{API}/expertise-requests",
        json={"skills": ["mlops"], "organisation_id": org_id(client, LIMBURG_ORG)},
    )
    problem_of(other, 403)
    # Nor ask about a proposal of a project they cannot see.
    theirs = client("sanne").post(
        f"{API}/expertise-requests", json={"skills": ["mlops"], "proposal_id": 999_999}
    )
    problem_of(theirs, 404)
    # The member sees the hours left, the directory hides the e-mail addresses from them.
    listed_experts = client("sanne").get(f"{API}/experts", params={"skill": "mlops"}).json()
    assert listed_experts["items"] and all(e["email"] is None for e in listed_experts["items"])
    assert all("mlops" in e["skills"] for e in listed_experts["items"])
    staff_view = client("hanna").get(f"{API}/experts", params={"hub": "brainport"}).json()
    assert any(e["email"] for e in staff_view["items"])
    problem_of(client("sanne").get(f"{API}/experts", params={"skill": "knitting"}), 422)


def test_every_hub_has_a_demo_expert_and_the_skills_are_listed(client: Client) -> None:
    c = client("maria")
    experts = c.get(f"{API}/experts", params={"limit": 1000}).json()["items"]
    hubs = {e["hub"] for e in experts}
    assert {"zuid-holland", "noord-nederland", "oost-nederland", "brainport",
            "midden-nederland", "amsterdam", "brightlands"} <= hubs  # fmt: skip
    skills = {s["code"]: s for s in c.get(f"{API}/skills").json()}
    assert skills["ai-act"]["nl"] == "Naleving van de AI-verordening"


def test_concurrent_assignments_never_overbook_an_expert(client: Client, unique: str) -> None:
    expert = add_expert(client, f"{unique} Sought", "brainport", ["mlops"], 6)
    fontys = org_id(client, "Fontys Hogescholen")
    requests = [
        ask(client, "hanna", skills=["mlops"], hours=1, ticket_id=9100 + n, organisation_id=fontys)
        for n in range(8)
    ]

    def assign(request: dict[str, Any]) -> int:
        with client("hanna") as c:
            url = f"{API}/expertise-requests/{request['id']}/assignments"
            return c.post(url, json={"expert_id": expert}).status_code

    with ThreadPoolExecutor(8) as pool:
        answers = sorted(pool.map(assign, requests))
    assert answers == [201] * 6 + [409] * 2
    assert client("hanna").get(f"{API}/experts/{expert}").json()["hours_left"] == 0


def test_an_expert_changed_or_retired_is_matched_accordingly(client: Client, unique: str) -> None:
    expert = add_expert(client, f"{unique} Changing", "midden-nederland", ["robotics"], 4)
    request = ask(client, skills=["synthetic-data"], hours=3,
                  organisation_id=org_id(client, "Universiteit Utrecht"))  # fmt: skip
    url = f"{API}/expertise-requests/{request['id']}/matches"

    def proposed() -> set[int]:
        return {c["expert_id"] for c in client("admin").get(url).json()["candidates"]}

    assert expert not in proposed()
    changed = client("admin").patch(
        f"{API}/experts/{expert}", json={"skills": ["synthetic-data"], "hours_per_month": 8}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["skills"] == ["synthetic-data"] and changed.json()["hours_left"] == 8
    assert expert in proposed()
    retired = client("admin").patch(f"{API}/experts/{expert}", json={"active": False})
    assert retired.json()["active"] is False
    assert expert not in proposed()
    directory = client("admin").get(f"{API}/experts", params={"hub": "midden-nederland"})
    assert expert not in {e["id"] for e in directory.json()["items"]}
    everyone = client("admin").get(
        f"{API}/experts", params={"hub": "midden-nederland", "include_inactive": True}
    )
    assert expert in {e["id"] for e in everyone.json()["items"]}
    problem_of(client("admin").patch(f"{API}/experts/{expert}", json={"skills": ["x"]}), 422)
    problem_of(client("hanna").patch(f"{API}/experts/{expert}", json={"active": True}), 403)
    # Adding and changing experts is on the audit trail.
    trail = client("admin").get(f"{API}/audit", params={"action": "admin", "limit": 1000})
    changes = [
        e["detail"]["change"] for e in trail.json()["items"] if e["target"] == f"expert {expert}"
    ]
    assert sorted(changes) == ["expert-add", "expert-change", "expert-change"], changes
