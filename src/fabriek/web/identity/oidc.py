"""Portal sign-in through an OpenID Connect provider (SURFconext, an eduGAIN proxy, a
company's identity provider); signing in with an API token is in `web/identity/tokens.py`.

`/signin/oidc` sends the browser to the provider with a fresh state, nonce and PKCE
challenge; the secrets stay in the store, and the state also goes in a short-lived HttpOnly
cookie, so that only the browser that started a sign-in can finish it.
`/signin/oidc/callback` takes the sign-in back (once), redeems the code, checks the ID
token, signs the person in with the same session cookie as the token sign-in, and says
what to do next when the factory does not know their organisation.

`/account/identities/link` starts the same dance for a person already signed in, to link
another of their identities: the callback then signs no one in, but keeps the identity that
came back and asks the person to confirm it (`web/identity/identities.py`).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fabriek.api.context import AppContext, Ctx, Db
from fabriek.domain.identity import tokens as token_format
from fabriek.domain.identity.entitlements import EntitlementScheme
from fabriek.domain.identity.oidc import ClaimsProblem, identity_from_claims, new_login_secrets
from fabriek.services.identity import identities, oidc
from fabriek.services.identity.oidc_client import RelyingParty, RelyingPartyConfig, SignInRefused
from fabriek.settings import Settings
from fabriek.web.identity.tokens import AFTER_SIGNIN
from fabriek.web.layout import TOKEN_COOKIE, page, safe_next, signed_in
from fabriek.web.state import Kept, PortalState

# The sign-in's state, for the callback to compare with the provider's answer. Lax, not
# Strict: the callback is a navigation from the provider's site, which must carry it.
STATE_COOKIE = "fabriek_oidc_state"
CALLBACK_PATH = "/signin/oidc/callback"
LINK_PATH = "/account/identities/link"
SESSION_S = 12 * 3600


def redirect_uri(settings: Settings) -> str:
    """The callback address to register with the provider."""
    return settings.public_url.rstrip("/") + CALLBACK_PATH


def _config(settings: Settings) -> RelyingPartyConfig:
    if not settings.oidc_client_id:
        raise SignInRefused(
            503,
            "sign-in through your institution is not fully set up here "
            "(FABRIEK_OIDC_CLIENT_ID is missing): sign in with an API token meanwhile",
        )
    if "openid" not in settings.oidc_scopes.split():
        raise SignInRefused(
            503,
            "sign-in through your institution is misconfigured: FABRIEK_OIDC_SCOPES lacks openid",
        )
    assert settings.oidc_issuer is not None
    return RelyingPartyConfig(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret or None,
        scopes=settings.oidc_scopes,
        redirect_uri=redirect_uri(settings),
    )


def _problem(
    request: Request, refused: SignInRefused, next_path: str | None = None
) -> HTMLResponse:
    answer = page(request, "signin_problem.html", "signin.problem_title", None,
                  {"problem": refused.detail, "next": next_path}, status_code=refused.status)  # fmt: skip
    answer.delete_cookie(STATE_COOKIE, path="/signin/oidc")
    return answer


def _secure(request: Request, ctx: AppContext) -> bool:
    return request.url.scheme == "https" or ctx.settings.public_url.startswith("https://")


router = APIRouter(include_in_schema=False)


def party(ctx: AppContext, portal: PortalState) -> RelyingParty:
    """One relying party per configuration, so the provider's keys are read once."""
    if ctx.settings.oidc_issuer is None:
        raise SignInRefused(
            404, "sign-in through an institution is not offered here: use an API token"
        )
    config = _config(ctx.settings)
    with portal.lock:
        return portal.relying_parties.setdefault(config, RelyingParty(config))


def _away(request: Request, ctx: AppContext, url: str, state: str) -> RedirectResponse:
    away = RedirectResponse(url, status_code=303)
    away.set_cookie(
        STATE_COOKIE, state, max_age=int(oidc.LOGIN_TTL.total_seconds()),
        path="/signin/oidc", httponly=True, samesite="lax", secure=_secure(request, ctx),
    )  # fmt: skip
    return away


def entitlement_scheme(settings: Settings) -> EntitlementScheme | None:
    """Which entitlements make memberships (FABRIEK_OIDC_ENTITLEMENT_*); None: none do."""
    prefix = (settings.oidc_entitlement_prefix or "").strip().rstrip(":")
    if not prefix:
        return None
    return EntitlementScheme(prefix, settings.oidc_entitlement_authority or None)


@router.post(LINK_PATH, response_model=None)
def start_link(request: Request, db: Db, ctx: Ctx, portal: Kept) -> Response:
    """Off to the provider, to sign in with another identity and link it to this account."""
    presented = request.cookies.get(TOKEN_COOKIE, "")
    who = signed_in(request, db, ctx)
    key = token_format.token_key(presented)
    if who is None or key is None:
        return RedirectResponse("/signin?next=/account/identities", status_code=303)
    try:
        secrets = new_login_secrets()
        # Ask for credentials again: the provider may still hold a session of the identity
        # the person is signed in with, and would hand that back.
        url = party(ctx, portal).authorization_url(secrets, prompt="login")
    except SignInRefused as refused:
        return _problem(request, refused)
    oidc.begin_login(db, secrets, "/account/identities", ctx.clock(),
                     link=oidc.Link(who.user_id, key))  # fmt: skip
    return _away(request, ctx, url, secrets.state)


@router.get("/signin/oidc", response_model=None)
def start(request: Request, db: Db, ctx: Ctx, portal: Kept, next: str = AFTER_SIGNIN) -> Response:
    """Off to the provider's login page."""
    try:
        secrets = new_login_secrets()
        url = party(ctx, portal).authorization_url(secrets)
    except SignInRefused as refused:
        return _problem(request, refused)
    oidc.begin_login(db, secrets, safe_next(next), ctx.clock())
    return _away(request, ctx, url, secrets.state)


@router.get(CALLBACK_PATH, response_model=None)
def callback(
    request: Request,
    db: Db,
    ctx: Ctx,
    portal: Kept,
    state: str = "",
    code: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    """Back from the provider: finish the sign-in this browser started."""
    kept = request.cookies.get(STATE_COOKIE, "")
    try:
        rp = party(ctx, portal)
        if not state or not kept or not hmac.compare_digest(kept.encode(), state.encode()):
            raise SignInRefused(
                400,
                "this sign-in was not started in this browser, or it was started again "
                "since (the state does not match): start again from the sign-in page",
            )
        pending = oidc.take_login(db, state, ctx.clock())
        if error:
            raise SignInRefused(
                400 if error != "access_denied" else 403,
                f"your institution did not sign you in ({error}"
                f"{': ' + error_description[:300] if error_description else ''})",
            )
        if not code:
            raise SignInRefused(400, "the provider sent no authorization code: start again")
        claims: dict[str, Any] = rp.redeem(code, pending.secrets, ctx.clock())
        try:
            who = identity_from_claims(
                claims, rp.config.issuer, ctx.settings.oidc_organisation_claim
            )
        except ClaimsProblem as bad:
            raise SignInRefused(400, str(bad)) from None
        if pending.link is not None:
            # The session cookie (SameSite=Strict) does not come along on this navigation
            # from the provider: the person confirms on the next page, from this site, and
            # that request must carry the session that started the link.
            offer = identities.offer_link(
                db, pending.link.user_id, pending.link.token_key, who, ctx.clock()
            )
            confirm = page(request, "identity_link.html", "identities.confirm_title", None,
                           {"offer": offer})  # fmt: skip
            confirm.delete_cookie(STATE_COOKIE, path="/signin/oidc")
            return confirm
        done = oidc.sign_in(
            db, who, ctx.clock(), ctx.settings.token_days, ctx.assurance,
            entitlement_scheme(ctx.settings),
        )  # fmt: skip
    except SignInRefused as refused:
        return _problem(request, refused)
    signed = page(request, "signed_in.html", "signed_in.title", None,
                  {"person": done, "next": pending.next_path})  # fmt: skip
    # A page, not a redirect: the session cookie is SameSite=Strict, and a redirect
    # that began on the provider's site would not carry it on the first request.
    signed.set_cookie(
        TOKEN_COOKIE, done.session_token, httponly=True, samesite="strict",
        secure=_secure(request, ctx), max_age=SESSION_S,
    )  # fmt: skip
    signed.delete_cookie(STATE_COOKIE, path="/signin/oidc")
    return signed
