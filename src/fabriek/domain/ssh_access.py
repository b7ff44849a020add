"""SSH access as the API shows it: a registered key, a certificate request and the
certificate signed for it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from fabriek.domain.ssh_keys import MAX_CERT_HOURS


class SshKeyDraft(BaseModel):
    """A public key to register: one OpenSSH line (the content of a .pub file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: str = Field(max_length=16_384)


class SshKeyInfo(BaseModel):
    """A registered public key as listed."""

    id: int
    key_type: str
    bits: int
    fingerprint: str
    comment: str
    public_key: str
    created_at: datetime
    revoked_at: datetime | None


class CertificateRequest(BaseModel):
    """Sign this public key for the caller. `principals`: leave out (the caller's own POSIX
    username); any other name is refused. `hours`: how long it is valid (default 8)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: str = Field(max_length=16_384)
    hours: float | None = Field(default=None, gt=0, le=MAX_CERT_HOURS)
    principals: list[str] | None = Field(default=None, max_length=16)


class CertificateInfo(BaseModel):
    """A certificate the factory's CA signed: `certificate` is the line to save as
    `<key>-cert.pub` next to the key."""

    certificate: str
    serial: int
    key_id: str
    principals: list[str]
    fingerprint: str
    valid_after: datetime
    valid_before: datetime
    ca_public_key: str
