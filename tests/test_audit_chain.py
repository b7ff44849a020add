"""The audit chain's pure rules: a whole chain verifies; any single alteration, removal or
reordering of an entry is caught and the first bad entry is named."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fabriek.domain.audit import (
    EMPTY_HEAD,
    AuditAction,
    AuditEntry,
    AuditEvent,
    BreakKind,
    ChainHead,
    JsonValue,
    beyond_head,
    canonical,
    entry_hash,
    link_all,
    normalise_detail,
    parse_head,
    verify_chain,
)

json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)

events = st.builds(
    AuditEvent,
    action=st.sampled_from([a.value for a in AuditAction]),
    at=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    actor_id=st.none() | st.integers(1, 10_000),
    actor=st.none() | st.text(min_size=1, max_size=20),
    project_id=st.none() | st.integers(1, 10_000),
    dataset=st.none() | st.text(min_size=1, max_size=20),
    target=st.none() | st.text(min_size=1, max_size=30),
    detail=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
)
chains = st.lists(events, min_size=1, max_size=12).map(lambda evs: link_all(EMPTY_HEAD, evs))


def head_of(entries: list[AuditEntry]) -> ChainHead:
    return ChainHead(entries[-1].seq, entries[-1].hash) if entries else EMPTY_HEAD


def changed_event(event: AuditEvent, field: str) -> AuditEvent:
    """The event with one field given a different value."""
    if field == "at":
        return replace(event, at=event.at + timedelta(microseconds=1))
    if field == "detail":
        return replace(event, detail={**event.detail, "tampered": True})
    changed: dict[str, Any] = {}
    if field in {"actor_id", "project_id"}:
        changed[field] = (getattr(event, field) or 0) + 1
        return replace(event, **changed)
    if field == "action":
        other = next(a.value for a in AuditAction if a.value != event.action)
        return replace(event, action=other)
    changed[field] = (getattr(event, field) or "") + "x"
    return replace(event, **changed)


EVENT_FIELDS = ["at", "action", "actor_id", "actor", "project_id", "dataset", "target", "detail"]


@given(chains)
def test_a_whole_chain_verifies_with_and_without_its_head(entries: list[AuditEntry]) -> None:
    assert verify_chain(entries) is None
    assert verify_chain(entries, [head_of(entries)]) is None
    assert verify_chain(iter(entries), [head_of(entries)]) is None  # streamed, read once
    assert beyond_head(head_of(entries), head_of(entries)) is None
    # An older anchor: the chain has grown since, and still passes through it.
    assert verify_chain(entries, [ChainHead(entries[0].seq, entries[0].hash)]) is None


@given(chains, st.data())
def test_any_altered_field_names_that_entry(entries: list[AuditEntry], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(entries) - 1))
    field = data.draw(st.sampled_from([*EVENT_FIELDS, "prev_hash", "hash"]))
    victim = entries[i]
    if field == "prev_hash":
        bad = replace(victim, prev_hash="f" * 64 if victim.prev_hash != "f" * 64 else "e" * 64)
    elif field == "hash":
        bad = replace(victim, hash="0" * 63 + "1")
    else:
        bad = replace(victim, event=changed_event(victim.event, field))
    tampered = [*entries[:i], bad, *entries[i + 1 :]]
    broken = verify_chain(tampered)
    assert broken is not None
    assert (broken.seq, broken.kind) == (victim.seq, BreakKind.ALTERED), broken.message


@given(chains, st.data())
def test_an_entry_rewritten_with_its_hash_recomputed_is_named(
    entries: list[AuditEntry], data: st.DataObject
) -> None:
    """A forger who recomputes the altered entry's own hash breaks the next entry's link;
    when the altered entry is the newest, only the head written down earlier shows it."""
    i = data.draw(st.integers(0, len(entries) - 1))
    field = data.draw(st.sampled_from(EVENT_FIELDS))
    victim = entries[i]
    event = changed_event(victim.event, field)
    forged = AuditEntry(
        victim.seq, event, victim.prev_hash, entry_hash(victim.prev_hash, victim.seq, event)
    )
    tampered = [*entries[:i], forged, *entries[i + 1 :]]
    broken = verify_chain(tampered, [head_of(entries)])
    assert broken is not None
    assert (broken.seq, broken.kind) == (victim.seq, BreakKind.ALTERED), broken.message
    if i < len(entries) - 1:
        assert verify_chain(tampered) == broken  # the next entry's link suffices


@given(chains, st.data())
def test_a_removed_entry_is_named(entries: list[AuditEntry], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(entries) - 1))
    gone = entries[i]
    tampered = [*entries[:i], *entries[i + 1 :]]
    broken = verify_chain(tampered, [head_of(entries)])
    assert broken is not None
    assert (broken.seq, broken.kind) == (gone.seq, BreakKind.REMOVED), broken.message
    if i < len(entries) - 1:
        assert verify_chain(tampered) == broken
    else:
        # The newest entry removed leaves a shorter, consistent chain: only a head kept
        # elsewhere (or the store's head row) reveals it.
        assert verify_chain(tampered) is None


@given(chains, st.integers(1, 5))
def test_removing_the_newest_entries_is_caught_by_the_head(
    entries: list[AuditEntry], cut: int
) -> None:
    assume(cut <= len(entries))
    kept = entries[:-cut]
    broken = verify_chain(kept, [head_of(entries)])
    assert broken is not None
    assert (broken.seq, broken.kind) == (len(kept) + 1, BreakKind.REMOVED), broken.message


@given(chains, st.data())
def test_two_entries_swapped_in_the_store_name_the_first(
    entries: list[AuditEntry], data: st.DataObject
) -> None:
    """Swapping two entries in the store means swapping their sequence numbers: each now
    sits at the other's place."""
    assume(len(entries) >= 2)
    i = data.draw(st.integers(0, len(entries) - 2))
    j = data.draw(st.integers(i + 1, len(entries) - 1))
    tampered = list(entries)
    tampered[i] = replace(entries[j], seq=entries[i].seq)
    tampered[j] = replace(entries[i], seq=entries[j].seq)
    broken = verify_chain(tampered)
    assert broken is not None
    assert (broken.seq, broken.kind) == (entries[i].seq, BreakKind.REORDERED), broken.message
    assert f"entry {entries[j].seq}" in broken.message


@given(chains)
def test_a_forged_entry_added_at_the_end_is_caught_by_the_head_row(
    entries: list[AuditEntry],
) -> None:
    extra = link_all(head_of(entries), [AuditEvent("admin", datetime(2030, 1, 1, tzinfo=UTC))])
    grown = [*entries, *extra]
    assert verify_chain(grown) is None  # consistent by itself ...
    broken = beyond_head(head_of(grown), head_of(entries))  # ... but not Fabriek's
    assert broken is not None and broken.seq == extra[0].seq


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_detail_hashes_the_same_after_a_trip_through_the_store(
    detail: dict[str, JsonValue],
) -> None:
    """The store keeps detail as JSON text: what comes back must hash the same."""
    kept = normalise_detail(detail)
    stored = json.loads(json.dumps(kept))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert canonical(1, AuditEvent("admin", at, detail=kept)) == canonical(
        1, AuditEvent("admin", at, detail=stored)
    )


def test_detail_takes_times_enums_and_sets_and_refuses_the_rest() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert normalise_detail({"at": at, "action": AuditAction.GRANT, "ids": {3, 1}}) == {
        "at": "2026-03-01T12:00:00.000000Z",
        "action": "grant",
        "ids": [1, 3],
    }
    with pytest.raises(TypeError, match="JSON values"):
        normalise_detail({"what": object()})
    with pytest.raises(ValueError):
        normalise_detail({"x": float("nan")})


def test_times_are_hashed_in_utc_whatever_their_zone() -> None:
    from zoneinfo import ZoneInfo

    utc = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    amsterdam = utc.astimezone(ZoneInfo("Europe/Amsterdam"))
    assert canonical(1, AuditEvent("admin", utc)) == canonical(1, AuditEvent("admin", amsterdam))
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical(1, AuditEvent("admin", datetime(2026, 6, 1)))


def test_a_head_is_read_back_as_written_and_nonsense_is_refused() -> None:
    head = ChainHead(42, "ab" * 32)
    assert parse_head(str(head)) == head
    for bad in ["", "42", "x:" + "ab" * 32, "42:" + "AB" * 32, "42:abc", "-1:" + "ab" * 32]:
        with pytest.raises(ValueError, match="SEQUENCE:SHA256"):
            parse_head(bad)
