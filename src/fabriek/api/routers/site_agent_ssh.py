"""What a site's login nodes ask at every login, through `fabriek site-agent
authorized-keys` and `fabriek site-agent principals`, with the site's token: the keys and
the certificate principals to accept for a Unix username right now."""

from __future__ import annotations

from fastapi import APIRouter

from fabriek.api.context import Db
from fabriek.api.routers import API_PREFIX
from fabriek.api.routers.site_agent import Agent
from fabriek.services.accounts import ssh_keys

router = APIRouter(prefix=f"{API_PREFIX}/sites/{{site}}/agent", tags=["site agent"])


@router.get("/ssh-keys/{username}")
def authorized_keys(username: str, agent: Agent, db: Db) -> dict[str, list[str]]:
    """The registered, unrevoked keys of the person with this Unix username; none for an
    unknown person or one who may not log in now."""
    return {"keys": ssh_keys.authorized_keys(db, username)}


@router.get("/principals/{username}")
def principals(username: str, agent: Agent, db: Db) -> dict[str, list[str]]:
    """`[username]` when its person may log in now (a member of a project), else `[]`."""
    return {"principals": ssh_keys.principals(db, username)}
