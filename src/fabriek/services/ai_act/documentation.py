"""The documentation of a model version under the AI Act: the provider's answers to the
form, and the Annex XI / XII documents pre-filled from the registry and the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from fabriek.domain.ai_act.documentation import ModelDocumentation, documentation, provider_keys
from fabriek.domain.ai_act.ledger import Ledger
from fabriek.domain.errors import Forbidden, InvalidInput
from fabriek.domain.roles import Principal
from fabriek.services.ai_act.ledger import version_ledger, version_state
from fabriek.services.ai_act.registry import may_edit, model_view, version_row, version_views
from fabriek.services.ai_act.rules import ai_act_rules
from fabriek.services.transactions import commit


def set_documentation(
    session: Session, who: Principal, ref: str, answers: Mapping[str, str | None]
) -> dict[str, str]:
    """Write the provider's answers to the documentation form (a null removes one); every
    key must be a documentation field. Returns all answers now."""
    row, model, _ = version_row(session, who, ref)
    if not may_edit(who, model.project_id):
        raise Forbidden(f"only members of the model's project may document {ref}")
    known = provider_keys(ai_act_rules())
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise InvalidInput.on(
            unknown[0], f"no documentation field {unknown[0]!r}; fields: {', '.join(known)}"
        )
    current = dict(row.documentation or {})
    for key, text in answers.items():
        if text is None or not text.strip():
            current.pop(key, None)
        elif len(text) > 100_000:
            raise InvalidInput.on(key, "at most 100,000 characters")
        else:
            current[key] = text.strip()
    # A fresh dict, so the JSON column sees the change.
    row.documentation = current
    commit(session, "the version changed meanwhile; try again")
    return current


def model_documentation(
    session: Session, who: Principal, ref: str, now: datetime
) -> tuple[ModelDocumentation, Ledger]:
    """The version's Annex XI / XII documentation, pre-filled from its ledger."""
    version, model, project = version_row(session, who, ref)
    state = version_state(session, version, model, project, now)
    book = version_ledger(session, state)
    view = version_views(session, model, [version])[0]
    doc = documentation(
        ai_act_rules(), model_view(model, project, [version.version]), view, book,
        dict(version.documentation or {}), now,
    )  # fmt: skip
    return doc, book
