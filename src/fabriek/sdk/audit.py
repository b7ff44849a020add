"""The audit trail: who did what to which dataset or project, in a hash chain."""

from __future__ import annotations

from fabriek.domain.audit import AuditEntryView, VerifyReport
from fabriek.sdk.core import Listing, SubClient


class AuditClient(SubClient):
    """`client.audit`: read and check the audit trail."""

    def entries(
        self,
        limit: int = 100,
        offset: int = 0,
        dataset: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        project: str | None = None,
        since: str | None = None,
    ) -> Listing[AuditEntryView]:
        """Audit entries the caller may see, newest first."""
        params = {
            "limit": limit, "offset": offset, "dataset": dataset, "actor": actor,
            "action": action, "project": project, "since": since,
        }  # fmt: skip
        return self._core.listing(AuditEntryView, "/audit", params)

    def head(self) -> str:
        """The audit trail's head, `SEQ:HASH`, to write down elsewhere (admins)."""
        return str(self._core.get("/audit/head")["head"])

    def verify(self, expected_head: str | None = None) -> VerifyReport:
        """Check the whole audit chain (admins); `ok` is false when it is broken. The server
        reads every entry (some 10,000 a second), so a long trail may take minutes."""
        params = {"expected_head": expected_head} if expected_head else {}
        answer = self._core.request("GET", "/audit/verify", params=params, timeout=1800.0)
        return VerifyReport.model_validate(answer.json())
