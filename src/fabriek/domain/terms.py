"""Terms of use: which version of the factory's or a site's acceptable-use terms a person must
still accept before their next job, SSH certificate or dataset upload there.

Each scope ("factory", or a site's name) publishes numbered versions. A version that
`requires_acceptance` must be accepted (or a later one); an editorial version (False) does not
undo an earlier acceptance. A scope with nothing published asks nothing of anyone.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from fabriek.domain.errors import Forbidden

FACTORY = "factory"
# Where people read and accept terms: the API (a client follows these) and the portal.
API_PATH = "/api/v1/terms"
PORTAL_PATH = "/terms"


@dataclass(frozen=True, slots=True)
class TermsVersion:
    """One published version of a scope's terms, as the rule needs it."""

    scope: str
    version: int
    requires_acceptance: bool = True


@dataclass(frozen=True, slots=True)
class PendingTerms:
    """Terms a person must accept: the newest version of the scope (accepting it, or any
    version since the last that required acceptance, satisfies the scope)."""

    scope: str
    version: int
    title: str = ""

    @property
    def terms_url(self) -> str:
        """The API path that answers the text of these terms."""
        return f"{API_PATH}/{self.scope}/{self.version}"

    @property
    def accept_url(self) -> str:
        """The API path to POST to, to accept them."""
        return f"{self.terms_url}/accept"

    def words(self) -> str:
        """How a person names them: `factory terms of use version 3`."""
        what = "the factory's" if self.scope == FACTORY else f"site {self.scope}'s"
        return f"{what} terms of use version {self.version}"


def floor_version(versions: Iterable[TermsVersion]) -> int | None:
    """The newest version that requires acceptance: an acceptance of it or of any later
    version counts. None: no version asks for acceptance."""
    return max((v.version for v in versions if v.requires_acceptance), default=None)


def pending_version(versions: Collection[TermsVersion], accepted: Collection[int]) -> int | None:
    """The version of one scope's terms a person must still accept (the newest published),
    or None when they need accept nothing: nothing requires acceptance, or they accepted the
    newest version that does, or a later one."""
    floor = floor_version(versions)
    if floor is None or any(a >= floor for a in accepted):
        return None
    return max(v.version for v in versions)


def may_accept(versions: Collection[TermsVersion], version: int) -> bool:
    """Whether accepting `version` is worth recording: it exists and no later version requires
    acceptance (accepting superseded terms would satisfy nothing)."""
    if not any(v.version == version for v in versions):
        return False
    floor = floor_version(versions)
    return floor is None or version >= floor


def scopes_for(site: str | None) -> tuple[str, ...]:
    """The scopes whose terms apply to work at `site` (None: anywhere): the factory's
    always, the site's when named."""
    return (FACTORY,) if site is None or site == FACTORY else (FACTORY, site)


class TermsNotAccepted(Forbidden):
    """The person must accept terms of use first (HTTP 403, with links to the terms)."""

    def __init__(self, pending: tuple[PendingTerms, ...]) -> None:
        names = "; ".join(p.words() for p in pending)
        first = pending[0]
        super().__init__(
            f"accept {names} first: read them with `fabriek terms show {first.scope}` and "
            f"accept with `fabriek terms accept {first.scope} {first.version}`, or in the "
            f"portal at {PORTAL_PATH}"
        )
        self.code = "terms-not-accepted"
        self.pending = pending

    def extensions(self) -> dict[str, object]:
        """The first terms to accept (`terms_url`, `accept_url`, `portal_url`) and all of
        them (`terms`)."""
        first = self.pending[0]
        return {
            "terms_url": first.terms_url,
            "accept_url": first.accept_url,
            "portal_url": PORTAL_PATH,
            "terms": [
                {"scope": p.scope, "version": p.version, "title": p.title,
                 "terms_url": p.terms_url, "accept_url": p.accept_url}
                for p in self.pending
            ],
        }  # fmt: skip


# -- the shapes the API answers and reads ---------------------------------------------------------


class TermsDraft(BaseModel):
    """A new version of a scope's terms, as published (its number is assigned)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: str = Field(min_length=1, max_length=63, description='"factory", or the name of a site')
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=200_000, description="the text, in Markdown")
    requires_acceptance: bool = Field(
        default=True,
        description="false for an editorial change: acceptances of earlier versions still count",
    )


class Terms(BaseModel):
    """One published version of a scope's terms."""

    scope: str
    version: int
    title: str
    body: str
    requires_acceptance: bool
    published_at: datetime
    published_by: str | None


class TermsStatus(BaseModel):
    """Where a person stands with one scope's terms: what they accepted last, and whether
    they must accept the newest version (`pending`) before working there."""

    scope: str
    newest_version: int
    title: str
    requires_acceptance: bool
    accepted_version: int | None
    accepted_at: datetime | None
    pending: bool


class Acceptance(BaseModel):
    """A person's acceptance of one version of terms (the first time they accepted it)."""

    scope: str
    version: int
    user: str
    accepted_at: datetime
