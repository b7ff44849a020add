"""The audit trail: what is recorded, and how its entries are chained so that tampering shows.

Every entry carries the SHA-256 of the entry before it and of its own content, in a
canonical serialisation (sorted-key JSON, ASCII, no spaces; times as UTC ISO 8601 with
microseconds). Its sequence number is part of that content, so an entry moved to another
place no longer matches its hash. `verify_chain` walks the entries in sequence order and
names the first one that was altered, removed or reordered. Removing the newest entries
leaves a shorter chain that is still consistent: only a head (sequence number and hash)
kept elsewhere reveals it, so `verify_chain` accepts an expected head.

Pure: no I/O, no clock. Times come in as arguments.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict

# What the first entry is chained to: no entry came before it.
GENESIS_HASH = "0" * 64
# The serialisation's version, part of every hashed content: a future format gets version 2
# and old entries still verify as they were written.
FORMAT_VERSION = 1

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


class AuditAction(StrEnum):
    """What an audit entry records."""

    SIGN_IN = "sign-in"
    # A federated sign-in refused: its assurance is below the minimum of a role held.
    SIGN_IN_REFUSED = "sign-in-refused"
    # A second identity linked to a person's account (after they signed in with both and
    # confirmed), or unlinked from it.
    IDENTITY_LINK = "identity-link"
    IDENTITY_UNLINK = "identity-unlink"
    # A project membership added, changed or removed by a sign-in's entitlements.
    ENTITLEMENT = "entitlement"
    TOKEN_ISSUE = "token-issue"
    TOKEN_REVOKE = "token-revoke"
    # A project is given (or loses) use of a dataset.
    GRANT = "grant"
    REVOKE = "revoke"
    UPLOAD = "upload"
    DOWNLOAD = "download"
    # An engine starts a job (with the datasets it reads).
    JOB_START = "job-start"
    DATASET_DELETE = "dataset-delete"
    KEY_ROTATE = "key-rotate"
    # Terms of use: a version published (factory or site), a person's acceptance of one.
    TERMS_PUBLISH = "terms-publish"
    TERMS_ACCEPT = "terms-accept"
    # SSH access: a public key registered or revoked, a certificate the factory's CA signed.
    SSH_KEY_ADD = "ssh-key-add"
    SSH_KEY_REVOKE = "ssh-key-revoke"
    SSH_CERT_ISSUE = "ssh-cert-issue"
    ENDPOINT_KEY_CREATE = "endpoint-key-create"
    ENDPOINT_KEY_REVOKE = "endpoint-key-revoke"
    # Usage read from a site's Slurm accounting: jobs typed with sbatch there, charged.
    HARVEST = "harvest"
    # Anything an admin or the access team changes: users, organisations, sites, projects,
    # roles, allocations, proposal decisions. `detail["change"]` says which.
    ADMIN = "admin"
    # A site's agent reports changes found made by hand at its site (drift) or what it
    # could not do there.
    SITE_AGENT = "site-agent"
    # A partner factory submitted a job here for a person of its own (its signed assertion
    # names them): the entry names the person, the partner and the partner's job id.
    PARTNER_JOB = "partner-job"


@dataclass(frozen=True)
class AuditEvent:
    """What happened, who did it, and what it touched: an entry before it is chained.

    `action` is kept as text so that entries written by a newer Fabriek (with actions this
    one does not know) still verify.
    """

    action: str
    at: datetime
    actor_id: int | None = None
    actor: str | None = None
    project_id: int | None = None
    dataset: str | None = None
    target: str | None = None
    detail: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    """An event on the chain: its place (`seq`, from 1), its predecessor's hash, its own."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainHead:
    """The newest entry's sequence number and hash: what to write down elsewhere (an
    anchor) so that a later removal of the newest entries can be told."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


EMPTY_HEAD = ChainHead(0, GENESIS_HASH)


class BreakKind(StrEnum):
    """How the chain is broken at the first bad entry."""

    # The entry's content (or its stored hashes) no longer matches its hash, or it was
    # rewritten with a recomputed hash so that its successor's link no longer matches.
    ALTERED = "altered"
    # An entry is missing: the sequence jumps over it (or the newest entries are gone and
    # the expected head says so).
    REMOVED = "removed"
    # The entry is intact but sits at another place than the one it was written at.
    REORDERED = "reordered"


@dataclass(frozen=True)
class ChainBreak:
    """The first bad entry: its sequence number (the place in the chain), how it is bad,
    and a sentence saying so."""

    seq: int
    kind: BreakKind
    message: str


def parse_head(text: str) -> ChainHead:
    """A head as written by `str(ChainHead)`: `SEQ:HASH` (hash as 64 lowercase hex digits)."""
    seq_text, sep, digest = text.strip().partition(":")
    if not sep or not seq_text.isdigit() or not _is_sha256(digest):
        raise ValueError(
            f"an audit head is SEQUENCE:SHA256 (e.g. 42:{'ab' * 32}), not {text.strip()!r}"
        )
    return ChainHead(int(seq_text), digest)


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _json_default(value: Any) -> JsonValue:
    # Values callers naturally have at hand; anything else is a caller's mistake.
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _json_default(value.value) if not isinstance(value.value, str) else value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"audit detail values must be JSON values, not {type(value).__name__}")


def normalise_detail(detail: Mapping[str, object] | None) -> dict[str, JsonValue]:
    """The detail as plain JSON values: exactly what the store will give back, so that the
    hash computed now is the hash computed when the entry is read again."""
    if not detail:
        return {}
    text = json.dumps(dict(detail), default=_json_default, allow_nan=False, sort_keys=True)
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def utc_text(at: datetime) -> str:
    """A time in the one textual form that is hashed: UTC, microseconds, `Z`."""
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware (UTC)")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(seq: int, event: AuditEvent) -> bytes:
    """The bytes that are hashed for an entry: its place and everything it records."""
    content = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "at": utc_text(event.at),
        "action": event.action,
        "actor_id": event.actor_id,
        "actor": event.actor,
        "project_id": event.project_id,
        "dataset": event.dataset,
        "target": event.target,
        "detail": event.detail,
    }
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def entry_hash(prev_hash: str, seq: int, event: AuditEvent) -> str:
    """SHA-256 (hex) of the previous entry's hash followed by this entry's canonical content."""
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical(seq, event))
    return digest.hexdigest()


def link(prev: ChainHead, event: AuditEvent) -> AuditEntry:
    """The event as the next entry after `prev`."""
    seq = prev.seq + 1
    return AuditEntry(seq, event, prev.hash, entry_hash(prev.hash, seq, event))


def link_all(prev: ChainHead, events: Iterable[AuditEvent]) -> list[AuditEntry]:
    """The events as consecutive entries after `prev`, in the order given."""
    entries: list[AuditEntry] = []
    for event in events:
        entry = link(prev, event)
        entries.append(entry)
        prev = ChainHead(entry.seq, entry.hash)
    return entries


def _original_place(entry: AuditEntry, highest_seq: int) -> int | None:
    """The place an intact entry was written at, if it was only moved (its seq changed):
    the one sequence number under which its content matches its hash."""
    for seq in range(1, highest_seq + 1):
        if seq != entry.seq and entry_hash(entry.prev_hash, seq, entry.event) == entry.hash:
            return seq
    return None


def verify_chain(
    entries: Iterable[AuditEntry],
    anchors: Iterable[ChainHead] = (),
    highest_seq: int | None = None,
) -> ChainBreak | None:
    """The first bad entry of a chain, or None when it is whole.

    `entries` must come in ascending `seq` order, as the store keeps them: reordering in the
    store means changing sequence numbers. They are read once, one at a time, so the chain
    may be streamed. `anchors`, heads written down earlier, also reveal the removal of the
    newest entries and a chain rewritten with recomputed hashes up to an anchor: the chain
    must reach each, with the anchored hash. `highest_seq` bounds where a moved entry's
    original place is looked for (by default the last entry's of a sequence, else the place
    where the break is found).
    """
    if highest_seq is None and isinstance(entries, Sequence) and entries:
        highest_seq = entries[-1].seq
    expected = {a.seq: a.hash for a in anchors if a.seq > 0}
    prev = EMPTY_HEAD
    for entry in entries:
        broken = _check(entry, prev, highest_seq)
        if broken is not None:
            return broken
        if entry.seq in expected and entry.hash != expected[entry.seq]:
            return ChainBreak(
                entry.seq,
                BreakKind.ALTERED,
                f"entry {entry.seq} does not match the head anchored for it: the chain was "
                f"rewritten at or before entry {entry.seq}",
            )
        prev = ChainHead(entry.seq, entry.hash)
    furthest = max(expected, default=0)
    if prev.seq < furthest:
        first_gone = prev.seq + 1
        gone = (
            f"entry {first_gone} was removed"
            if first_gone == furthest
            else f"entries {first_gone} to {furthest} were removed"
        )
        return ChainBreak(
            first_gone,
            BreakKind.REMOVED,
            f"the chain ends at entry {prev.seq} but reached entry {furthest} before: {gone}",
        )
    return None


def _check(entry: AuditEntry, prev: ChainHead, highest_seq: int | None) -> ChainBreak | None:
    """What is wrong with `entry` as the successor of `prev`, if anything."""
    expected = prev.seq + 1
    if entry.seq > expected:
        missing = (
            f"entry {expected} is missing"
            if entry.seq == expected + 1
            else f"entries {expected} to {entry.seq - 1} are missing"
        )
        return ChainBreak(
            expected, BreakKind.REMOVED, f"{missing}: entry {entry.seq} follows entry {prev.seq}"
        )
    if entry.seq < expected:
        return ChainBreak(
            entry.seq,
            BreakKind.REORDERED,
            f"entry {entry.seq} appears again after entry {prev.seq}",
        )
    if entry_hash(entry.prev_hash, entry.seq, entry.event) != entry.hash:
        moved_from = _original_place(entry, max(highest_seq or 0, entry.seq))
        if moved_from is not None:
            return ChainBreak(
                entry.seq,
                BreakKind.REORDERED,
                f"entry {entry.seq} is entry {moved_from} moved out of its place",
            )
        return ChainBreak(
            entry.seq,
            BreakKind.ALTERED,
            f"entry {entry.seq} was altered: its content does not match its hash",
        )
    if entry.prev_hash != prev.hash:
        if prev.seq == 0:
            return ChainBreak(
                entry.seq,
                BreakKind.ALTERED,
                f"entry {entry.seq} was altered: the first entry must follow no other",
            )
        return ChainBreak(
            prev.seq,
            BreakKind.ALTERED,
            f"entry {prev.seq} was altered (its hash recomputed): entry {entry.seq} was "
            "chained to a different entry before it",
        )
    return None


def beyond_head(last: ChainHead, head: ChainHead) -> ChainBreak | None:
    """Whether a whole chain ending at `last` goes past the store's head row. Every append
    moves the head in its own transaction, so an entry past it was added some other way."""
    if last.seq > head.seq:
        return ChainBreak(
            head.seq + 1,
            BreakKind.ALTERED,
            f"entry {head.seq + 1} was added by hand: the head names entry {head.seq} as the "
            "newest",
        )
    if last.seq == head.seq and last.hash != head.hash:
        return ChainBreak(
            last.seq,
            BreakKind.ALTERED,
            f"entry {last.seq} does not match the head: it was rewritten",
        )
    return None


# -- what the API exchanges ----------------------------------------------------------------------


class AuditEntryView(BaseModel):
    """One audit entry as the API shows it."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: datetime
    action: str
    actor_id: int | None
    actor: str | None
    project_id: int | None
    dataset: str | None
    target: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyReport(BaseModel):
    """The answer of a verification: whole or not, how far it reached, the first break."""

    ok: bool
    entries: int
    head: str
    broken_seq: int | None = None
    broken_kind: BreakKind | None = None
    message: str
