"""Who may see and change what. Pure checks over the caller's roles."""

from __future__ import annotations

from fabriek.domain.errors import Forbidden
from fabriek.domain.roles import Principal, Role


def require_admin(who: Principal, action: str) -> None:
    if not who.is_admin:
        raise Forbidden(f"only an admin may {action}")


def may_manage_hub(who: Principal, hub: str) -> bool:
    """Admins everywhere; hub staff for the organisations of their own hub."""
    return who.is_admin or hub in who.scopes(Role.HUB_STAFF)


def require_hub(who: Principal, hub: str, action: str) -> None:
    if not may_manage_hub(who, hub):
        raise Forbidden(f"only an admin or staff of hub {hub} may {action}")


def may_operate_site(who: Principal, site: str) -> bool:
    return who.is_admin or site in who.scopes(Role.SITE_OPERATOR)
