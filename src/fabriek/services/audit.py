"""The audit trail in the store: appending entries with the change they record, listing
them for those who may see them, and verifying the chain.

`record` queues an entry on the caller's session; it is chained and written when that
session commits, in the same transaction, after the caller's own writes are flushed. So an
entry exists exactly when its change does, and the chain head (one row, `audit_head`) is
locked only for the last moments of a transaction: appends from any number of processes
are serialised by that row's lock (`UPDATE ... RETURNING`, a row lock on PostgreSQL; SQLite
writes one transaction at a time anyway), and a transaction that holds it takes no other
lock after it, so it cannot deadlock with another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, event, func, insert, or_, select, true, update
from sqlalchemy.orm import Session, SessionTransaction

from fabriek.domain.audit import (
    EMPTY_HEAD,
    AuditAction,
    AuditEntry,
    AuditEntryView,
    AuditEvent,
    ChainBreak,
    ChainHead,
    VerifyReport,
    beyond_head,
    link_all,
    normalise_detail,
    parse_head,
    utc_text,
    verify_chain,
)
from fabriek.domain.errors import InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.residency import JobDataset
from fabriek.domain.roles import Principal
from fabriek.services.identity.permissions import require_admin
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.store.tables import (
    AuditHeadRow,
    AuditRow,
    JobRow,
    MembershipRow,
    ProjectRow,
    UserRow,
)

# Where a session keeps the events it will append when it commits.
_PENDING = "fabriek.audit.pending"
HEAD_ID = 1
# Entries read at a time while verifying: the chain is streamed, never held whole.
_VERIFY_BATCH = 2000


def record(
    session: Session,
    *,
    action: AuditAction,
    at: datetime,
    actor_id: int | None,
    actor: str | None,
    project_id: int | None = None,
    dataset: str | None = None,
    target: str | None = None,
    detail: Mapping[str, object] | None = None,
) -> None:
    """Append one entry in the caller's transaction (it commits with the caller's change).

    The entry is written when `session` commits and dropped if it rolls back. `detail` holds
    JSON values (times, enums, tuples and sets are turned into JSON); anything else is a
    TypeError here, at the caller, not at commit.
    """
    utc_text(at)  # a naive time is the caller's mistake: refuse it here, not at commit
    event_ = AuditEvent(
        action=AuditAction(action).value,
        at=at,
        actor_id=actor_id,
        # Clipped to the columns' sizes: an over-long name must not fail the change itself.
        actor=actor[:63] if actor is not None else None,
        project_id=project_id,
        dataset=dataset[:200] if dataset is not None else None,
        target=target[:300] if target is not None else None,
        detail=normalise_detail(detail),
    )
    # Begin the transaction now if the caller has not yet, so that a rollback before the
    # commit is seen and drops the entry with the rest.
    session.connection()
    session.info.setdefault(_PENDING, []).append(event_)


def record_as(
    session: Session,
    who: Principal,
    action: AuditAction,
    at: datetime,
    **fields: Any,
) -> None:
    """`record` with the caller as actor."""
    record(session, action=action, at=at, actor_id=who.user_id, actor=who.username, **fields)


def record_admin(
    session: Session,
    who: Principal,
    at: datetime,
    change: str,
    *,
    target: str | None = None,
    project_id: int | None = None,
    **detail: object,
) -> None:
    """An admin action (or the access team's, a hub's, a principal investigator's on their
    project): `change` names it (`user-add`, `allocation-grant`, ...)."""
    record_as(
        session, who, AuditAction.ADMIN, at, target=target, project_id=project_id,
        detail={"change": change, **detail},
    )  # fmt: skip


def record_sign_in(session: Session, who: Principal, at: datetime, method: str) -> None:
    """A person signed in (to the portal: `method` says how); the entry is the change."""
    record_as(session, who, AuditAction.SIGN_IN, at, detail={"method": method})
    session.commit()


def record_job_starts(session: Session, started: list[tuple[JobRow, str]], at: datetime) -> None:
    """Jobs an engine accepted (each with its site): one entry per job in its project, and
    one per dataset it reads in the project that holds the dataset, so the dataset's owners
    see every job that read it. The actor is the person who submitted the job."""
    if not started:
        return
    read = {job.id: [JobDataset.from_json(d) for d in job.datasets or []] for job, _ in started}
    user_ids = {job.user_id for job, _ in started}
    holders = {d.project for datasets in read.values() for d in datasets}
    users: dict[int, str] = {
        user_id: name
        for user_id, name in session.execute(
            select(UserRow.id, UserRow.username).where(UserRow.id.in_(user_ids))
        )
    }
    projects: dict[str, int] = {
        name: project_id
        for name, project_id in session.execute(
            select(ProjectRow.name, ProjectRow.id).where(ProjectRow.name.in_(holders))
        )
    } if holders else {}  # fmt: skip
    for job, site in started:
        actor, target = users.get(job.user_id), f"job {job.id}"
        detail: dict[str, object] = {"site": site, "handle": job.handle, "gpus": job.gpus}
        if read[job.id]:
            detail["datasets"] = [d.label for d in read[job.id]]
        record(
            session, action=AuditAction.JOB_START, at=at, actor_id=job.user_id, actor=actor,
            project_id=job.project_id, target=target, detail=detail,
        )  # fmt: skip
        for dataset in read[job.id]:
            record(
                session, action=AuditAction.JOB_START, at=at, actor_id=job.user_id, actor=actor,
                project_id=projects.get(dataset.project, job.project_id), dataset=dataset.name,
                target=target,
                detail={**detail, "job_project_id": job.project_id, "version": dataset.version},
            )  # fmt: skip


@event.listens_for(Session, "before_commit")
def _append_pending(session: Session) -> None:
    events: list[AuditEvent] = session.info.pop(_PENDING, [])
    if events:
        append(session, events)


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    # Whatever is still queued when the outermost transaction ends (rolled back, or the
    # session closed) belonged to it and goes with it.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


def append(session: Session, events: list[AuditEvent]) -> list[AuditEntry]:
    """Chain `events` after the head and write them, in the session's open transaction.

    The caller's pending writes are flushed first, so that once the head is locked this
    transaction asks for no other lock (two appenders can then never wait on each other).
    """
    session.flush()
    claimed = session.execute(
        update(AuditHeadRow)
        .where(AuditHeadRow.id == HEAD_ID)
        .values(seq=AuditHeadRow.seq + len(events))
        .returning(AuditHeadRow.seq, AuditHeadRow.hash)
    ).first()
    if claimed is None:
        # The head row is gone (deleted by hand): start it again from the newest entry.
        # `verify` still checks the chain itself.
        last = session.execute(
            select(AuditRow.seq, AuditRow.hash).order_by(AuditRow.seq.desc()).limit(1)
        ).first()
        prev = ChainHead(last.seq, last.hash) if last is not None else EMPTY_HEAD
        session.execute(insert(AuditHeadRow).values(id=HEAD_ID, seq=prev.seq, hash=prev.hash))
    else:
        prev = ChainHead(claimed.seq - len(events), claimed.hash)
    entries = link_all(prev, events)
    session.execute(insert(AuditRow), [_row_values(entry) for entry in entries])
    newest = entries[-1]
    session.execute(
        update(AuditHeadRow)
        .where(AuditHeadRow.id == HEAD_ID)
        .values(seq=newest.seq, hash=newest.hash)
    )
    return entries


def _row_values(entry: AuditEntry) -> dict[str, Any]:
    e = entry.event
    return {
        "seq": entry.seq,
        "at": e.at,
        "action": e.action,
        "actor_id": e.actor_id,
        "actor": e.actor,
        "project_id": e.project_id,
        "dataset": e.dataset,
        "target": e.target,
        "detail": dict(e.detail),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _entry(row: AuditRow | Row[Any]) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        event=AuditEvent(
            action=row.action,
            at=row.at,
            actor_id=row.actor_id,
            actor=row.actor,
            project_id=row.project_id,
            dataset=row.dataset,
            target=row.target,
            detail=row.detail if row.detail is not None else {},
        ),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _view(row: AuditRow) -> AuditEntryView:
    return AuditEntryView(
        seq=row.seq,
        at=row.at,
        action=row.action,
        actor_id=row.actor_id,
        actor=row.actor,
        project_id=row.project_id,
        dataset=row.dataset,
        target=row.target,
        detail=dict(row.detail or {}),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


# -- listing -------------------------------------------------------------------------------------


def _visible(who: Principal) -> ColumnElement[bool]:
    """Admins see every entry; anyone else the entries of the projects they are a member of
    (a dataset's entries carry the project that holds it) and their own actions."""
    if who.is_admin:
        return true()
    mine = select(MembershipRow.project_id).where(MembershipRow.user_id == who.user_id)
    return or_(AuditRow.project_id.in_(mine), AuditRow.actor_id == who.user_id)


def list_entries(
    session: Session,
    who: Principal,
    page: PageRequest,
    *,
    dataset: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    project: str | None = None,
    since: datetime | None = None,
) -> Page[AuditEntryView]:
    """The entries the caller may see, newest first, narrowed by the filters given.

    A project or dataset the caller may not see is answered as if it did not exist."""
    query = select(AuditRow).where(_visible(who))
    if action is not None:
        try:
            query = query.where(AuditRow.action == AuditAction(action).value)
        except ValueError:
            known = ", ".join(a.value for a in AuditAction)
            raise InvalidInput.on("action", f"no action {action!r}; known: {known}") from None
    if project is not None:
        query = query.where(AuditRow.project_id == _visible_project_id(session, who, project))
    if dataset is not None:
        query = query.where(AuditRow.dataset == dataset)
        if not who.is_admin and session.scalar(query.limit(1)) is None:
            raise NotFound("dataset", dataset)
    if actor is not None:
        query = query.where(AuditRow.actor == actor)
    if since is not None:
        if since.tzinfo is None:
            raise InvalidInput.on("since", "give a time with its zone, e.g. 2026-01-31T00:00Z")
        query = query.where(AuditRow.at >= since)
    total = count_all(session, query)
    rows = session.scalars(
        query.order_by(AuditRow.seq.desc()).limit(page.limit).offset(page.offset)
    )
    return Page([_view(r) for r in rows], total, page.limit, page.offset)


def _visible_project_id(session: Session, who: Principal, ref: str) -> int:
    """The id of a project named (or numbered) `ref` whose entries the caller may list."""
    project_id = session.scalar(
        select(ProjectRow.id).where(
            ProjectRow.id == int(ref) if is_id(ref) else ProjectRow.name == ref
        )
    )
    if project_id is None and is_id(ref) and who.is_admin:
        # A deleted project's entries stay in the trail; admins may still ask for them.
        return int(ref)
    if project_id is None or not (who.is_admin or who.in_project(project_id)):
        raise NotFound("project", ref)
    return project_id


# -- verifying -----------------------------------------------------------------------------------


def head(session: Session) -> ChainHead:
    """The newest entry's sequence number and hash, as the head row has them."""
    # A query, not `session.get`: the row must be read afresh, never from the session's map.
    row = session.execute(
        select(AuditHeadRow.seq, AuditHeadRow.hash).where(AuditHeadRow.id == HEAD_ID)
    ).first()
    return ChainHead(row.seq, row.hash) if row is not None else EMPTY_HEAD


def _stream(session: Session) -> Iterator[AuditEntry]:
    # Keyset pages of plain rows (no ORM identity map): each query is short, and no entry
    # is held longer than its batch.
    after = 0
    while True:
        rows = session.execute(
            select(AuditRow.__table__)
            .where(AuditRow.seq > after)
            .order_by(AuditRow.seq)
            .limit(_VERIFY_BATCH)
        ).all()
        for row in rows:
            yield _entry(row)
        if len(rows) < _VERIFY_BATCH:
            return
        after = rows[-1].seq


def check(
    session: Session, expected_head: ChainHead | None = None
) -> tuple[int, ChainBreak | None]:
    """How many entries the chain has, and its first break (None: whole).

    Besides the chain itself, the head row is checked: the chain must reach the entry it
    named when the check began (so removing the newest entries without also rewriting the
    row shows), and no entry may lie past it when the check ends (appends during the check
    move it; an entry added past Fabriek does not). `expected_head`, written down elsewhere
    earlier, catches a rewritten head row too."""
    started = head(session)  # first: every entry up to it is committed, so will be read
    highest = session.scalar(select(func.max(AuditRow.seq))) or 0
    count = 0
    last = EMPTY_HEAD

    def counted() -> Iterator[AuditEntry]:
        nonlocal count, last
        for entry in _stream(session):
            count += 1
            last = ChainHead(entry.seq, entry.hash)
            yield entry

    anchors = [started] if expected_head is None else [started, expected_head]
    broken = verify_chain(counted(), anchors, highest_seq=highest)
    if broken is None:
        broken = beyond_head(last, head(session))
    return count, broken


def anchor_head(session: Session, who: Principal) -> ChainHead:
    """The head to write down elsewhere (admins): see `verify`'s `expected_head`."""
    require_admin(who, "read the audit trail's head")
    return head(session)


def verify(session: Session, who: Principal, expected_head: str | None = None) -> VerifyReport:
    """Check the whole chain (admins): whole, or the first entry altered, removed or
    reordered. `expected_head` (`SEQ:HASH`, from an earlier `head`) also catches the
    removal of the newest entries."""
    require_admin(who, "verify the audit trail")
    anchor: ChainHead | None = None
    if expected_head is not None:
        try:
            anchor = parse_head(expected_head)
        except ValueError as exc:
            raise InvalidInput.on("expected_head", str(exc)) from None
    count, broken = check(session, anchor)
    now_head = head(session)
    if broken is None:
        return VerifyReport(
            ok=True,
            entries=count,
            head=str(now_head),
            message=f"the audit trail is whole: {count} entries, head {now_head}",
        )
    return VerifyReport(
        ok=False,
        entries=count,
        head=str(now_head),
        broken_seq=broken.seq,
        broken_kind=broken.kind,
        message=broken.message,
    )
