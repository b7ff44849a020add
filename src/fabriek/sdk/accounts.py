"""One's POSIX identity at the sites: username, UID and project groups."""

from __future__ import annotations

from fabriek.domain.site_agent_status import PosixAccountOut
from fabriek.sdk.core import SubClient


class AccountsClient(SubClient):
    """`client.accounts`: the Unix account one has on every site."""

    def me(self) -> PosixAccountOut:
        """One's own POSIX username, UID and groups."""
        return PosixAccountOut.model_validate(self._core.get("/users/me/account"))
