"""The portal page where a person registers and revokes the SSH public keys the login nodes
accept for them (the same services as `fabriek ssh-key` and the API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fabriek.api.context import Ctx, Db
from fabriek.domain.errors import Conflict, InvalidInput, NotFound
from fabriek.domain.roles import Principal
from fabriek.services.accounts import ssh_keys
from fabriek.web.forms import Form
from fabriek.web.layout import page
from fabriek.web.session import SignedIn

router = APIRouter(include_in_schema=False)

OnKeys = Annotated[Principal, Depends(SignedIn("/ssh-keys"))]


def keys_page(
    request: Request, db: Db, who: Principal, extra: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:  # fmt: skip
    context = {"keys": ssh_keys.list_keys(db, who), **(extra or {})}
    return page(request, "ssh_keys.html", "ssh.title", who, context, status_code)


@router.get("/ssh-keys", response_model=None)
def keys(request: Request, db: Db, who: OnKeys) -> Response:
    """The signed-in person's SSH public keys."""
    return keys_page(request, db, who)


@router.post("/ssh-keys", response_model=None)
def add_key(request: Request, db: Db, ctx: Ctx, who: OnKeys, form: Form) -> Response:
    """Register a pasted public key; a refusal is shown above the form, in the service's
    own words (which key type or size, or that a private key was pasted)."""
    text = form.get("public_key", "")
    try:
        ssh_keys.add_key(db, who, text, ctx.settings.local_id_base, ctx.clock())
    except InvalidInput as bad:
        db.rollback()
        return keys_page(request, db, who, {"refusal": bad.problems[0].message if bad.problems else bad.detail}, 422)  # fmt: skip
    except Conflict as bad:
        db.rollback()
        return keys_page(request, db, who, {"refusal": bad.detail}, 409)
    return RedirectResponse("/ssh-keys", status_code=303)


@router.post("/ssh-keys/{key_id}/revoke", response_model=None)
def revoke_key(key_id: int, request: Request, db: Db, ctx: Ctx, who: OnKeys) -> Response:
    try:
        ssh_keys.revoke_key(db, who, key_id, ctx.clock())
    except NotFound:
        return keys_page(request, db, who, {"error": "ssh.not_found"}, 404)
    return RedirectResponse("/ssh-keys", status_code=303)
