"""SSH access for the caller: their registered public keys, and certificates signed by the
factory's SSH certificate authority for their own Unix username."""

from __future__ import annotations

from fastapi import APIRouter, status

from fabriek.api.context import Caller, Ctx, Db
from fabriek.api.routers import API_PREFIX
from fabriek.domain.ssh_access import CertificateInfo, CertificateRequest, SshKeyDraft, SshKeyInfo
from fabriek.services.accounts import ssh_ca, ssh_certificates, ssh_keys

router = APIRouter(prefix=f"{API_PREFIX}/users/me", tags=["ssh"])


@router.get("/ssh-keys", response_model=list[SshKeyInfo])
def list_keys(db: Db, who: Caller, include_revoked: bool = False) -> list[SshKeyInfo]:
    """The caller's registered public keys (revoked ones too with `include_revoked`)."""
    return ssh_keys.list_keys(db, who, include_revoked)


@router.post("/ssh-keys", response_model=SshKeyInfo, status_code=status.HTTP_201_CREATED)
def add_key(body: SshKeyDraft, db: Db, who: Caller, ctx: Ctx) -> SshKeyInfo:
    """Register a public key; the login nodes accept it from the next login."""
    return ssh_keys.add_key(db, who, body.public_key, ctx.settings.local_id_base, ctx.clock())


@router.delete("/ssh-keys/{key_id}", response_model=SshKeyInfo)
def revoke_key(key_id: int, db: Db, who: Caller, ctx: Ctx) -> SshKeyInfo:
    """Revoke one of the caller's keys; the login nodes refuse it from the next login."""
    return ssh_keys.revoke_key(db, who, key_id, ctx.clock())


@router.post(
    "/ssh-certificates", response_model=CertificateInfo, status_code=status.HTTP_201_CREATED
)
def issue_certificate(body: CertificateRequest, db: Db, who: Caller, ctx: Ctx) -> CertificateInfo:
    """A short-lived OpenSSH user certificate for the given public key, for the caller's
    own Unix username."""
    return ssh_certificates.issue_certificate(
        db, who, body, ctx.settings.state_dir, ctx.settings.local_id_base, ctx.clock()
    )


@router.get("/ssh-ca")
def ca_public_key(who: Caller, ctx: Ctx) -> dict[str, str | None]:
    """The factory's SSH CA public key (for `@cert-authority` lines in known_hosts tools
    and for checking a certificate); null until the first certificate."""
    return {"public_key": ssh_ca.public_key(ctx.settings.state_dir)}
