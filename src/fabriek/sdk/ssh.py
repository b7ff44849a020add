"""SSH access: one's registered public keys, and short-lived certificates signed by the
factory's SSH certificate authority."""

from __future__ import annotations

from fabriek.domain.ssh_access import (
    CertificateInfo,
    CertificateRequest,
    SshKeyDraft,
    SshKeyInfo,
)
from fabriek.sdk.core import SubClient


class SshClient(SubClient):
    """`client.ssh`: keys and certificates for the login nodes."""

    def keys(self, include_revoked: bool = False) -> list[SshKeyInfo]:
        """One's registered keys (revoked ones too when asked)."""
        params = {"include_revoked": "true"} if include_revoked else None
        return self._core.items(SshKeyInfo, "/users/me/ssh-keys", params)

    def add_key(self, public_key: str) -> SshKeyInfo:
        """Register a public key (one OpenSSH line, the content of a .pub file)."""
        answer = self._core.post("/users/me/ssh-keys", SshKeyDraft(public_key=public_key))
        return SshKeyInfo.model_validate(answer)

    def remove_key(self, key_id: int) -> SshKeyInfo:
        """Revoke one of one's keys by its number."""
        answer = self._core.request("DELETE", f"/users/me/ssh-keys/{key_id}").json()
        return SshKeyInfo.model_validate(answer)

    def certificate(self, public_key: str, hours: float | None = None) -> CertificateInfo:
        """A certificate for this public key, for one's own Unix username."""
        request = CertificateRequest(public_key=public_key, hours=hours)
        return CertificateInfo.model_validate(
            self._core.post("/users/me/ssh-certificates", request)
        )

    def ca_public_key(self) -> str | None:
        """The factory's SSH CA public key (OpenSSH form); None until it has one."""
        answer: dict[str, str | None] = self._core.get("/users/me/ssh-ca")
        return answer["public_key"]
