"""AI systems and their EU AI Act risk classification: registering a system, walking the
questionnaire answer by answer, and the result with its obligations.

Members of a system's project and admins register and classify; whoever may see the
project (its hub's staff too) may read; to anyone else a system does not exist. Every
answer is stored with who gave it, when and the articles it rests on, and the walk is
recomputed from the stored answers with the rule book in force, so a newer version of the
rules shows at once (answers it can no longer read are dropped, and say so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy import ColumnElement, Row, Select, select
from sqlalchemy.orm import Session, aliased

from fabriek.domain.ai_act.models import split_ref
from fabriek.domain.ai_act.risk import AnswerValue, Walk, answer, walk, well_formed
from fabriek.domain.ai_act.rule_book import RuleBook, parse_rule_book
from fabriek.domain.ai_act.systems import (
    AiSystem,
    AiSystemDraft,
    Classification,
    ClassificationSummary,
    ResultOut,
    Who,
    walk_parts,
)
from fabriek.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from fabriek.domain.inputs import is_id
from fabriek.domain.roles import Principal
from fabriek.services.config_files import load_config_file
from fabriek.services.identity.projects import visible_projects
from fabriek.services.paging import Page, PageRequest, count_all
from fabriek.services.transactions import clash_is_conflict, commit
from fabriek.store.tables import (
    AiClassificationRow,
    AiModelRow,
    AiModelVersionRow,
    AiRiskAnswerRow,
    AiSystemRow,
    ProjectRow,
    UserRow,
)

RULES_FILE = "ai_act_rules.toml"

# --- the rule book ----------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _rule_book(path: Path | None) -> RuleBook:
    return load_config_file(path, RULES_FILE, "AI Act rules", parse_rule_book)


def load_rule_book(path: Path | None = None) -> RuleBook:
    """The AI Act risk-classification rules: the shipped file, or an operator's newer one
    (`FABRIEK_AI_ACT_RULES_FILE`). Read once per path; InvalidInput says in one line what is
    wrong with a malformed file."""
    return _rule_book(path)


# --- systems ----------------------------------------------------------------------------------

_Model = aliased(AiModelRow)
_Version = aliased(AiModelVersionRow)


def _visible(who: Principal) -> ColumnElement[bool]:
    return visible_projects(who, AiSystemRow.project_id)


def _require_member(who: Principal, project_id: int, project: str, action: str) -> None:
    if not (who.is_admin or who.in_project(project_id)):
        raise Forbidden(f"only members of project {project} or an admin may {action}")


def _system_query() -> Select[AiSystemRow, str, str, str, str]:
    return (
        select(AiSystemRow, ProjectRow.name, UserRow.username, _Model.name, _Version.version)
        .join(ProjectRow, ProjectRow.id == AiSystemRow.project_id)
        .join(UserRow, UserRow.id == AiSystemRow.created_by)
        .outerjoin(_Version, _Version.id == AiSystemRow.model_version_id)
        .outerjoin(_Model, _Model.id == _Version.model_id)
    )


def _latest(session: Session, system_ids: Sequence[int]) -> dict[int, AiClassificationRow]:
    """Each system's latest classification."""
    if not system_ids:
        return {}
    rows = session.scalars(
        select(AiClassificationRow)
        .where(AiClassificationRow.system_id.in_(list(system_ids)))
        .order_by(AiClassificationRow.id)
    )
    return {r.system_id: r for r in rows}


def _summary(row: AiClassificationRow) -> ClassificationSummary:
    return ClassificationSummary(
        id=row.id,
        finished=row.finished_at is not None,
        tiers=list(row.tiers or []),
        rules_version=row.rules_version,
        updated_at=row.updated_at,
    )


@dataclass(frozen=True)
class _Found:
    """A system with its project's name, its creator's and its model version's NAME:VERSION."""

    row: AiSystemRow
    project: str
    creator: str
    model: str | None

    @classmethod
    def of(cls, found: Row[AiSystemRow, str, str, str, str]) -> _Found:
        row, project, creator, model, version = found
        return cls(row, project, creator, f"{model}:{version}" if model and version else None)


def _system_out(found: _Found, latest: AiClassificationRow | None) -> AiSystem:
    row = found.row
    return AiSystem(
        id=row.id,
        project=found.project,
        name=row.name,
        intended_purpose=row.intended_purpose,
        provider=row.provider,
        role=row.role,
        model=found.model,
        created_by=found.creator,
        created_at=row.created_at,
        classification=_summary(latest) if latest else None,
    )


def _where_ref(ref: str) -> ColumnElement[bool]:
    return AiSystemRow.id == int(ref) if is_id(ref) else AiSystemRow.name == ref


def _found(session: Session, who: Principal, ref: str) -> _Found:
    found = session.execute(_system_query().where(_where_ref(ref), _visible(who))).first()
    if found is None:
        raise NotFound("AI system", ref)
    return _Found.of(found)


def _project_row(session: Session, who: Principal, ref: str) -> ProjectRow:
    query = select(ProjectRow).where(visible_projects(who, ProjectRow.id))
    query = query.where(ProjectRow.id == int(ref) if is_id(ref) else ProjectRow.name == ref)
    row = session.scalars(query).first()
    if row is None:
        raise NotFound("project", ref)
    return row


def _model_version(session: Session, who: Principal, ref: str) -> int:
    try:
        name, version = split_ref(ref)
    except ValueError as bad:
        raise InvalidInput.on("model", str(bad).removeprefix("model: ")) from None
    found = session.scalar(
        select(AiModelVersionRow.id)
        .join(AiModelRow, AiModelRow.id == AiModelVersionRow.model_id)
        .where(
            AiModelRow.name == name,
            AiModelVersionRow.version == version,
            visible_projects(who, AiModelRow.project_id),
        )
    )
    if found is None:
        raise InvalidInput.on(
            "model", f"no model version {ref} that you can see; `fabriek models` lists them"
        )
    return found


def register(session: Session, who: Principal, now: datetime, draft: AiSystemDraft) -> AiSystem:
    """Register an AI system for a project (its members, admins)."""
    if not any(c.isalpha() for c in draft.name):
        raise InvalidInput.on("name", "a name needs a letter (a number alone means an id)")
    project = _project_row(session, who, draft.project)
    _require_member(who, project.id, project.name, "register its AI systems")
    version_id = _model_version(session, who, draft.model) if draft.model else None
    row = AiSystemRow(
        project_id=project.id,
        name=draft.name,
        role=draft.role.value,
        intended_purpose=draft.intended_purpose,
        provider=draft.provider,
        model_version_id=version_id,
        created_by=who.user_id,
        created_at=now,
    )
    with clash_is_conflict(session, f"an AI system named {draft.name!r} already exists"):
        session.add(row)
        session.commit()
    return _system_out(_found(session, who, str(row.id)), None)


def list_systems(
    session: Session,
    who: Principal,
    page: PageRequest,
    project: str | None = None,
    name: str | None = None,
) -> Page[AiSystem]:
    """The AI systems of the projects the caller may see, newest first."""
    query = _system_query().where(_visible(who))
    if project is not None:
        query = query.where(
            ProjectRow.id == int(project) if is_id(project) else ProjectRow.name == project
        )
    if name:
        query = query.where(AiSystemRow.name.contains(name, autoescape=True))
    total = count_all(session, query)
    rows = session.execute(
        query.order_by(AiSystemRow.id.desc()).limit(page.limit).offset(page.offset)
    ).all()
    found = [_Found.of(r) for r in rows]
    latest = _latest(session, [f.row.id for f in found])
    items = [_system_out(f, latest.get(f.row.id)) for f in found]
    return Page(items, total, page.limit, page.offset)


def get_system(session: Session, who: Principal, ref: str) -> AiSystem:
    found = _found(session, who, ref)
    return _system_out(found, _latest(session, [found.row.id]).get(found.row.id))


# --- classification -----------------------------------------------------------------------------


def _answers_of(session: Session, cls: AiClassificationRow | None) -> list[AiRiskAnswerRow]:
    if cls is None:
        return []
    return list(
        session.scalars(select(AiRiskAnswerRow).where(AiRiskAnswerRow.classification_id == cls.id))
    )


def _names(session: Session, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(UserRow.id, UserRow.username).where(UserRow.id.in_(user_ids)))
    return {i: u for i, u in rows}


def _view(
    session: Session,
    book: RuleBook,
    system: AiSystemRow,
    project: str,
    cls: AiClassificationRow | None,
    answers: list[AiRiskAnswerRow],
    w: Walk,
    dropped: Sequence[str] = (),
) -> Classification:
    names = _names(session, {a.answered_by for a in answers} | ({cls.started_by} if cls else set()))
    who = {a.question: Who(by=names.get(a.answered_by), at=a.answered_at) for a in answers}
    listed, next_question, result = walk_parts(w, who)
    return Classification(
        id=cls.id if cls else None,
        system_id=system.id,
        system=system.name,
        project=project,
        rules_version=book.version,
        act=book.act,
        started_by=names.get(cls.started_by) if cls else None,
        started_at=cls.started_at if cls else None,
        updated_at=cls.updated_at if cls else None,
        finished_at=cls.finished_at if cls else None,
        finished=w.finished,
        answers=listed,
        pending=list(w.pending),
        dropped=list(dropped),
        next_question=next_question,
        result=result,
    )


def _stored(answers: list[AiRiskAnswerRow]) -> dict[str, object]:
    return {a.question: a.value for a in answers}


def classification(
    session: Session, who: Principal, now: datetime, book: RuleBook, ref: str
) -> Classification:
    """A system's current classification: the answers so far and the next question, or the
    result. Before the first answer, the first question of a classification not yet kept."""
    found = _found(session, who, ref)
    system, project = found.row, found.project
    cls = _latest(session, [system.id]).get(system.id)
    answers = _answers_of(session, cls)
    readable, _ = well_formed(book, _stored(answers))
    return _view(session, book, system, project, cls, answers, walk(book, readable, now.date()))


def history(session: Session, who: Principal, ref: str) -> list[ClassificationSummary]:
    """Every classification of a system, newest first."""
    system = _found(session, who, ref).row
    rows = session.scalars(
        select(AiClassificationRow)
        .where(AiClassificationRow.system_id == system.id)
        .order_by(AiClassificationRow.id.desc())
    )
    return [_summary(r) for r in rows]


def _new_classification(
    session: Session, who: Principal, now: datetime, book: RuleBook, system: AiSystemRow
) -> AiClassificationRow:
    cls = AiClassificationRow(
        system_id=system.id,
        rules_version=book.version,
        started_by=who.user_id,
        started_at=now,
        updated_at=now,
        tiers=[],
    )
    session.add(cls)
    session.flush()
    # The registry's link to the system's current risk assessment.
    system.risk_assessment_id = cls.id
    return cls


def start_classification(
    session: Session, who: Principal, now: datetime, book: RuleBook, ref: str
) -> Classification:
    """Start a new classification of a system (members, admins); earlier ones are kept."""
    found = _found(session, who, ref)
    system, project = found.row, found.project
    _require_member(who, system.project_id, project, "classify its AI systems")
    cls = _new_classification(session, who, now, book, system)
    commit(session, "the classification clashed with another change; try again")
    return _view(session, book, system, project, cls, [], walk(book, {}, now.date()))


def _json(value: AnswerValue) -> bool | str | list[str]:
    return list(value) if isinstance(value, tuple) else value


def record_answers(
    session: Session,
    who: Principal,
    now: datetime,
    book: RuleBook,
    ref: str,
    given: Mapping[str, object],
) -> Classification:
    """Record answers (members, admins) and walk on. A changed answer replaces the earlier
    one; earlier answers it makes moot are dropped (and listed). InvalidInput, naming the
    field, leaves nothing recorded."""
    found = _found(session, who, ref)
    system, project = found.row, found.project
    _require_member(who, system.project_id, project, "classify its AI systems")
    cls = session.scalars(
        select(AiClassificationRow)
        .where(AiClassificationRow.system_id == system.id)
        .order_by(AiClassificationRow.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    rows = {a.question: a for a in _answers_of(session, cls)}
    readable, unreadable = well_formed(book, _stored(list(rows.values())))
    w, kept, moot = answer(book, readable, given, now.date())
    # A re-given answer replaces its row; it is not dropped as well.
    dropped = tuple(q for q in (*unreadable, *moot) if q not in given)
    if cls is None:
        cls = _new_classification(session, who, now, book, system)
    for q in dropped:
        session.delete(rows.pop(q))
    cites = {a.question.id: list(a.cites) for a in w.answers}
    for q in given:
        row = rows.get(q)
        if row is None:
            row = AiRiskAnswerRow(classification_id=cls.id, question=q)
            session.add(row)
            rows[q] = row
        row.value = _json(kept[q])
        row.cites = cites.get(q, [book.question(q).cites])
        row.answered_by = who.user_id
        row.answered_at = now
    cls.rules_version = book.version
    cls.updated_at = now
    if w.outcome is not None:
        cls.finished_at = now
        cls.tiers = list(w.outcome.tier_ids)
        cls.result = walk_parts(w, {})[2].model_dump(mode="json")  # type: ignore[union-attr]
    else:
        cls.finished_at, cls.tiers, cls.result = None, [], None
    commit(session, "the classification changed at the same time; reload it and answer again")
    return _view(session, book, system, project, cls, list(rows.values()), w, dropped)


def classification_result(
    session: Session, who: Principal, now: datetime, book: RuleBook, ref: str
) -> ResultOut:
    """The result of a system's current classification: its tiers and obligations with
    their dates. Conflict while questions remain."""
    current = classification(session, who, now, book, ref)
    if current.result is None:
        nxt = current.next_question
        assert nxt is not None
        raise Conflict(
            f"the classification of {current.system} is not finished: the next question is "
            f"{nxt.id!r} ({nxt.text.en}); answer it first"
        )
    return current.result
