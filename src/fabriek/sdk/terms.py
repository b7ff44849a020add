"""Terms of use: reading them, where one stands, accepting, publishing."""

from __future__ import annotations

from urllib.parse import quote

from fabriek.domain.terms import Acceptance, Terms, TermsDraft, TermsStatus
from fabriek.sdk.core import SubClient


class TermsClient(SubClient):
    """`client.terms`: the factory's and the sites' acceptable-use terms."""

    def newest(self) -> list[Terms]:
        """The newest version of the factory's terms and of each site's."""
        return self._core.items(Terms, "/terms")

    def get(self, scope: str, version: int | None = None) -> Terms:
        """One version of a scope's terms (None: the newest)."""
        path = f"/terms/{quote(scope, safe='')}"
        return Terms.model_validate(
            self._core.get(path if version is None else f"{path}/{version}")
        )

    def mine(self) -> list[TermsStatus]:
        """Which terms one accepted when, and which one must still accept."""
        return self._core.items(TermsStatus, "/users/me/terms")

    def accept(self, scope: str, version: int) -> Acceptance:
        """Accept a version of a scope's terms."""
        answer = self._core.post(f"/terms/{quote(scope, safe='')}/{version}/accept")
        return Acceptance.model_validate(answer)

    def publish(self, draft: TermsDraft) -> Terms:
        """Publish the next version of a scope's terms (admins; a site's operators)."""
        return Terms.model_validate(self._core.post("/terms", draft))
