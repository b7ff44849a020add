"""The support centre's pure rules: routing to the hubs, the service-level clocks over working
days and Dutch holidays, the ticket's steps, what a ticket is about, reply tokens, quoted
mail, attachment checks and the monthly counts. Known dates, then properties."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fabriek.domain.calendar import AMSTERDAM, working_days_between
from fabriek.domain.geography import HUBS, Hub, Province
from fabriek.domain.support.attachments import (
    check_attachment_start,
    check_attachment_type,
    safe_filename,
)
from fabriek.domain.support.mail import (
    ReplyToken,
    find_tokens,
    html_to_text,
    is_automatic,
    reply_address,
    strip_quoted,
)
from fabriek.domain.support.report import TicketFacts, month_bounds, summarise
from fabriek.domain.support.routing import (
    CENTRAL,
    ServiceLevel,
    SupportConfig,
    parse_queue,
    parse_support_config,
    route,
)
from fabriek.domain.support.service_levels import Wait, service_clock
from fabriek.domain.support.tickets import (
    OPEN_STATUSES,
    TRANSITIONS,
    About,
    AboutKind,
    Category,
    Status,
    after_staff_reply,
    after_user_reply,
    parse_about,
    parse_category,
    parse_ticket_reference,
)
from fabriek.services.support.config import load_support_config

CONFIG = load_support_config()
ONE_DAY = ServiceLevel(1, 5)
ONE_US = timedelta(microseconds=1)


def ams(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=AMSTERDAM)


moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
levels = st.builds(
    lambda first, extra: ServiceLevel(first, first + extra), st.integers(0, 10), st.integers(0, 20)
)


# --- the shipped configuration and routing --------------------------------------------------


def test_the_shipped_file_routes_access_and_the_ai_act_centrally_and_promises_a_day() -> None:
    assert CONFIG.central == {Category.ACCESS, Category.AI_ACT}
    assert all(level.first_answer_working_days == 1 for level in CONFIG.levels.values())
    assert route(Category.JOBS, Province.LIMBURG, CONFIG) == Hub.BRIGHTLANDS.value
    assert route(Category.ACCESS, Province.LIMBURG, CONFIG) == CENTRAL
    assert route(Category.JOBS, None, CONFIG) == CENTRAL


@given(
    st.sampled_from(Category), st.sampled_from(Province), st.frozensets(st.sampled_from(Category))
)
def test_routing_sends_central_categories_to_the_centre_and_the_rest_to_the_provinces_hub(
    category: Category, province: Province, central: frozenset[Category]
) -> None:
    config = SupportConfig("t", central, CONFIG.levels, 5)
    queue = route(category, province, config)
    if category in central:
        assert queue == CENTRAL
    else:
        assert province in HUBS[Hub(queue)].provinces
    assert route(category, None, config) == CENTRAL
    assert parse_queue(queue) == queue


def test_a_broken_support_file_names_what_is_wrong() -> None:
    good = {"version": "x", "routing": {"central": ["ai-act"]},
            "service_levels": {c.value: {"first_answer_working_days": 1,
                                         "resolution_working_days": 5} for c in Category}}  # fmt: skip
    assert parse_support_config(good).central == {Category.AI_ACT}
    with pytest.raises(ValueError, match="no category 'helpdesk'"):
        parse_support_config({**good, "routing": {"central": ["helpdesk"]}})
    missing = {**good, "service_levels": {k: v for k, v in good["service_levels"].items()
                                          if k != "onboarding"}}  # fmt: skip
    with pytest.raises(ValueError, match="no entry for onboarding"):
        parse_support_config(missing)
    backwards = {**good["service_levels"], "other": {"first_answer_working_days": 3,
                                                     "resolution_working_days": 2}}  # fmt: skip
    with pytest.raises(ValueError, match=r"service_levels.other: resolution_working_days \(2\)"):
        parse_support_config({**good, "service_levels": backwards})
    with pytest.raises(ValueError, match="whole number of working days"):
        parse_support_config({**good, "close_resolved_after_working_days": -1})


# --- the service-level clocks: known dates ---------------------------------------------------


def test_koningsdag_moves_a_friday_tickets_first_answer_to_tuesday() -> None:
    # Friday 24 April 2026, late afternoon; Monday 27 April is Koningsdag.
    opened = ams(2026, 4, 24, 16)
    clock = service_clock(ONE_DAY, opened, None, None, [], ams(2026, 4, 28, 23, 59))
    assert clock.first_answer_due == ams(2026, 4, 29)
    assert not clock.first_answer_breached
    late = service_clock(ONE_DAY, opened, None, None, [], ams(2026, 4, 29))
    assert late.first_answer_breached and not late.resolution_breached


def test_easter_holidays_do_not_count() -> None:
    # Thursday 2 April 2026; Goede Vrijdag 3 April, the weekend and Tweede Paasdag 6 April.
    clock = service_clock(ONE_DAY, ams(2026, 4, 2, 10), None, None, [], ams(2026, 4, 2, 11))
    assert clock.first_answer_due == ams(2026, 4, 8)
    # Five working days: 7, 8, 9, 10 and 13 April.
    assert clock.resolution_due == ams(2026, 4, 14)


def test_waiting_for_the_user_moves_the_resolution_not_the_first_answer() -> None:
    opened = ams(2026, 3, 2, 9)  # a Monday
    waits = [Wait(ams(2026, 3, 3, 10), ams(2026, 3, 6, 15))]  # Tuesday to Friday: 3 days
    clock = service_clock(ONE_DAY, opened, ams(2026, 3, 3, 10), None, waits, ams(2026, 3, 9, 12))
    assert clock.paused_working_days == 3
    assert clock.first_answer_due == ams(2026, 3, 4)
    # 5 + 3 working days after Monday 2 March: through Thursday 12 March.
    assert clock.resolution_due == ams(2026, 3, 13)
    still = service_clock(ONE_DAY, opened, ams(2026, 3, 3), None, [Wait(ams(2026, 3, 3), None)],
                          ams(2026, 3, 5, 12))  # fmt: skip
    assert still.paused_working_days == 2


def test_an_unanswered_ticket_closed_in_time_broke_no_promise() -> None:
    opened = ams(2026, 3, 2, 9)
    clock = service_clock(ONE_DAY, opened, None, ams(2026, 3, 2, 17), [], ams(2026, 6, 1))
    assert not clock.first_answer_breached and not clock.resolution_breached


# --- the service-level clocks: properties ----------------------------------------------------


@given(levels, moments, st.integers(0, 60 * 24 * 60))
def test_first_answer_is_due_at_midnight_after_the_promised_working_days(
    level: ServiceLevel, opened: datetime, minutes: int
) -> None:
    clock = service_clock(level, opened, None, None, [], opened + timedelta(minutes=minutes))
    due = clock.first_answer_due
    days = level.first_answer_working_days
    if days == 0:
        assert due == opened
        return
    assert due.astimezone(AMSTERDAM).time() == time(0, 0)
    assert working_days_between(opened, due - ONE_US) == days
    assert clock.resolution_due >= due


@given(levels, moments, st.integers(0, 60 * 24 * 60), st.integers(0, 60 * 24 * 60))
def test_a_breach_once_there_stays(
    level: ServiceLevel, opened: datetime, first: int, later: int
) -> None:
    at = opened + timedelta(minutes=first)
    after = at + timedelta(minutes=later)
    before = service_clock(level, opened, None, None, [], at)
    then = service_clock(level, opened, None, None, [], after)
    assert before.first_answer_breached <= then.first_answer_breached
    assert before.resolution_breached <= then.resolution_breached
    assert before.first_answer_breached == (at >= before.first_answer_due)


@given(levels, moments, st.integers(0, 60 * 24 * 30), st.integers(0, 10**7))
def test_an_answer_in_time_is_never_a_breach_whatever_the_clock_says(
    level: ServiceLevel, opened: datetime, answer_after: int, now_after: int
) -> None:
    answered = opened + timedelta(minutes=answer_after)
    clock = service_clock(
        level, opened, answered, None, [], answered + timedelta(minutes=now_after)
    )
    assert clock.first_answer_breached == (answered >= clock.first_answer_due)


@given(levels, moments, st.lists(st.tuples(st.integers(0, 60 * 24 * 20), st.integers(0, 60 * 24 * 10)),
       max_size=4), st.integers(0, 60 * 24 * 90))  # fmt: skip
def test_waiting_never_brings_a_resolution_forward(
    level: ServiceLevel, opened: datetime, spans: list[tuple[int, int]], now_after: int
) -> None:
    waits, start = [], opened
    for gap, length in spans:
        start = start + timedelta(minutes=gap)
        waits.append(Wait(start, start + timedelta(minutes=length)))
        start = start + timedelta(minutes=length)
    now = opened + timedelta(minutes=now_after)
    plain = service_clock(level, opened, None, None, [], now)
    paused = service_clock(level, opened, None, None, waits, now)
    assert paused.paused_working_days >= 0
    assert paused.resolution_due >= plain.resolution_due
    assert paused.first_answer_due == plain.first_answer_due
    assert paused.resolution_breached <= plain.resolution_breached


@given(moments, st.integers(0, 23 * 60))
def test_a_wait_within_one_day_pauses_nothing(opened: datetime, minutes: int) -> None:
    local = opened.astimezone(AMSTERDAM)
    start = datetime.combine(local.date(), time(0, 0), tzinfo=AMSTERDAM)
    wait = Wait(start, start + timedelta(minutes=minutes))
    clock = service_clock(ONE_DAY, opened, None, None, [wait], opened + timedelta(days=40))
    assert clock.paused_working_days == 0


# --- the ticket's steps ------------------------------------------------------------------------


def test_a_closed_ticket_goes_nowhere_and_every_status_is_reachable() -> None:
    assert TRANSITIONS[Status.CLOSED] == frozenset()
    reached, frontier = {Status.NEW}, [Status.NEW]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(Status)
    assert all(Status.CLOSED in TRANSITIONS[s] for s in Status if s is not Status.CLOSED)


@given(st.sampled_from(Status))
def test_replies_hand_the_turn_over_within_the_allowed_steps(status: Status) -> None:
    for after in (after_user_reply(status), after_staff_reply(status)):
        assert after is status or after in TRANSITIONS[status]
    if status in {Status.WAITING, Status.RESOLVED}:
        assert after_user_reply(status) is Status.TRIAGED
    assert after_staff_reply(status) is not Status.NEW
    assert (status in OPEN_STATUSES) == (status not in {Status.RESOLVED, Status.CLOSED})


# --- what a ticket is about; references ----------------------------------------------------------


def test_what_a_ticket_is_about_is_read_strictly() -> None:
    assert parse_about("job:42") == About(AboutKind.JOB, "42")
    assert parse_about(" proposal:007 ") == About(AboutKind.PROPOSAL, "7")
    assert str(parse_about("dataset:my-project/scans")) == "dataset:my-project/scans"
    for bad, says in [("job:x", "by its number"), ("job:0", "by its number"),
                      ("dataset:scans", "PROJECT/NAME"), ("model:3", "expected job:ID")]:  # fmt: skip
        with pytest.raises(ValueError, match=says):
            parse_about(bad)
    assert parse_ticket_reference("T42") == parse_ticket_reference("42") == 42
    with pytest.raises(ValueError, match=r"e\.g\. T42"):
        parse_ticket_reference("T-1")
    assert parse_category("jobs") is Category.JOBS
    assert parse_category("ai-act") is Category.AI_ACT
    with pytest.raises(ValueError, match="known: access, jobs, data, ai-act"):
        parse_category("billing")


# --- e-mail: reply addresses, quoted text, automatic mail ------------------------------------


@given(st.integers(1, 10**9), st.text("0123456789abcdef", min_size=16, max_size=16),
       st.from_regex(r"[a-z][a-z0-9.]{0,20}", fullmatch=True),
       st.from_regex(r"[a-z][a-z0-9-]{0,20}\.[a-z]{2,6}", fullmatch=True))  # fmt: skip
def test_the_reply_address_carries_its_token_back(
    ticket_id: int, key: str, local: str, domain: str
) -> None:
    token = ReplyToken(ticket_id, key)
    address = reply_address(f"{local}@{domain}", token)
    assert address == f"{local}+T{ticket_id}-{key}@{domain}"
    assert find_tokens([f"Support <{address}>"], "") == [token]
    assert find_tokens(["someone@else.example"], f"Re: [{token}] my job") == [token]
    assert find_tokens(["someone@else.example"], f"Re: T{ticket_id} my job") == []


safe_line = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40
).filter(
    lambda s: (
        not s.lstrip().startswith((">", "On ", "Op ", "From:", "Van:", "-", "_"))
        and s.strip() != ""
    )
)


@given(st.lists(safe_line, min_size=1, max_size=6), st.lists(st.text(max_size=40), max_size=6))
def test_quoted_mail_below_the_answer_is_dropped(answer: list[str], quoted: list[str]) -> None:
    text = "\n".join(answer)
    assume(all("wrote:" not in line and "schreef" not in line for line in answer))
    reply = f"{text}\n\nOn Mon, 2 Mar 2026 at 10:00, Fabriek support wrote:\n" + "\n".join(
        "> " + q for q in quoted
    )
    assert strip_quoted(reply) == strip_quoted(text)
    dutch = f"{text}\n\nOp ma 2 mrt 2026 om 10:00 schreef Fabriek support <s@f.example>:\n> x"
    assert strip_quoted(dutch) == strip_quoted(text)
    assert strip_quoted(f"{text}\n-- \nMaria Visser\nTU Delft") == strip_quoted(text)


def test_html_mail_and_automatic_mail() -> None:
    assert html_to_text("<p>Thanks, <b>it works</b> now.</p><style>p{}</style>") == (
        "Thanks, it works now."
    )
    assert is_automatic({"auto-submitted": "auto-replied"}, "maria@x.example")
    assert is_automatic({"precedence": "bulk"}, "maria@x.example")
    assert is_automatic({"return-path": "<>"}, "maria@x.example")
    assert is_automatic({}, "MAILER-DAEMON@mx.example")
    assert is_automatic({"auto-submitted": "no"}, "maria@x.example") is None


# --- attachments -------------------------------------------------------------------------------

ALLOWED = frozenset({"text/plain", "image/png", "application/pdf"})


@given(st.from_regex(r"[a-z]+/[a-z0-9.+-]+", fullmatch=True))
def test_only_allowed_types_are_accepted(media_type: str) -> None:
    refusal = check_attachment_type(media_type, ALLOWED)
    assert (refusal is None) == (media_type in ALLOWED)
    if refusal:
        assert "allowed: application/pdf, image/png, text/plain" in refusal


def test_a_file_must_be_what_its_type_says() -> None:
    assert check_attachment_start("image/png", b"\x89PNG\r\n\x1a\n....") is None
    assert "does not look like image/png" in str(check_attachment_start("image/png", b"MZ\x90"))
    assert "binary data" in str(check_attachment_start("text/plain", b"ELF\x00\x01"))
    assert check_attachment_start("text/plain", b"loss: nan") is None
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename('C:\\logs\\"run".log') == "run.log"
    assert safe_filename("...") == "attachment"


# --- the monthly counts --------------------------------------------------------------------------


def test_months_are_amsterdam_months() -> None:
    start, end = month_bounds("2026-11")
    assert start == ams(2026, 11, 1) and end == ams(2026, 12, 1)
    assert month_bounds("2026-12")[1] == ams(2027, 1, 1)
    for bad in ("2026-13", "26-11", "november"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            month_bounds(bad)


facts = st.builds(
    lambda category, sector, opened, answer, resolve: TicketFacts(
        category,
        sector,
        opened,
        service_clock(
            CONFIG.levels[category],
            opened,
            opened + timedelta(hours=answer) if answer is not None else None,
            opened + timedelta(hours=resolve) if resolve is not None else None,
            [],
            opened + timedelta(days=30),
        ),
    ),
    st.sampled_from(Category),
    st.sampled_from(["start-up", "sme", "university", "government"]),
    moments,
    st.none() | st.integers(0, 200),
    st.none() | st.integers(0, 400),
)


@given(st.lists(facts, max_size=30), st.dictionaries(st.sampled_from(["sme", "start-up"]),
       st.floats(0, 100)))  # fmt: skip
def test_the_counts_add_up(tickets: list[TicketFacts], hours: dict[str, float]) -> None:
    report = summarise("brightlands", "AI-hub Brightlands", "2026-11", tickets, hours)
    assert report.tickets == len(tickets)
    assert sum(report.by_category.values()) == sum(report.by_sector.values()) == len(tickets)
    assert sum(sum(s.values()) for s in report.by_category_and_sector.values()) == len(tickets)
    assert report.first_answer.count == sum(1 for t in tickets if t.clock.first_answer_at)
    assert report.first_answer.within_service_level <= report.first_answer.count
    assert report.breaches.first_answer <= len(tickets)
    assert report.still_open == sum(1 for t in tickets if t.clock.resolved_at is None)
    assert report.expert_hours == pytest.approx(sum(round(v, 2) for v in hours.values() if v))
