"""Short-lived SSH user certificates: signed by the factory's CA for the caller's own Unix
username, recorded in the store and on the audit trail (key id, serial, fingerprint)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    SSHCertPublicKeyTypes,
    load_ssh_public_key,
)
from sqlalchemy.orm import Session

from fabriek.domain.audit import AuditAction
from fabriek.domain.errors import Forbidden, InvalidInput
from fabriek.domain.roles import Principal
from fabriek.domain.ssh_access import CertificateInfo, CertificateRequest
from fabriek.domain.ssh_keys import (
    FIELD,
    PublicKey,
    certificate_key_id,
    certificate_window,
    check_principals,
    parse_public_key,
)
from fabriek.services import audit
from fabriek.services.accounts import ssh_ca
from fabriek.services.accounts.ssh_login import login_refusal, posix_username
from fabriek.services.accounts.terms import require_accepted
from fabriek.store.tables import SshCertificateRow


def _subject(key: PublicKey) -> SSHCertPublicKeyTypes:
    try:
        loaded = load_ssh_public_key(key.line.encode())
    except (ValueError, UnsupportedAlgorithm):
        loaded = None
    if not isinstance(loaded, EllipticCurvePublicKey | RSAPublicKey | Ed25519PublicKey):
        raise InvalidInput.on(
            FIELD,
            f"the CA cannot certify {key.key_type} keys: register it as a plain key "
            "(`fabriek ssh-key add`) or ask for a certificate for an Ed25519 key",
        )
    return loaded


def issue_certificate(
    session: Session,
    who: Principal,
    request: CertificateRequest,
    state_dir: Path,
    id_base: int,
    now: datetime,
) -> CertificateInfo:
    """Sign the request's public key for the caller's own Unix username (their POSIX
    account, allocated now when they have none yet, from `id_base`). Refused: another
    principal (Forbidden naming it), a person in no project (Forbidden), terms of use not
    accepted (TermsNotAccepted), a key that may not be trusted (InvalidInput). Commits."""
    key = parse_public_key(request.public_key)
    username = posix_username(session, who.user_id, id_base)
    principals = check_principals(
        tuple(request.principals) if request.principals else None, username
    )
    refusal = login_refusal(session, who.user_id)
    if refusal is not None:
        raise Forbidden(f"no certificate: you may not log in to the login nodes: {refusal}")
    # The factory's terms (site=None): a certificate is good at every site's login nodes.
    require_accepted(session, who.user_id, None, now)
    valid_after, valid_before = certificate_window(now, request.hours)
    subject = _subject(key)
    serial = ssh_ca.new_serial()
    signed = ssh_ca.sign_user_certificate(
        state_dir,
        subject,
        principals=principals,
        key_id=certificate_key_id(username, serial),
        serial=serial,
        valid_after=valid_after,
        valid_before=valid_before,
    )
    session.add(
        SshCertificateRow(
            serial=serial, user_id=who.user_id, key_id=signed.key_id,
            principals=list(principals), fingerprint=key.fingerprint,
            valid_after=valid_after, valid_before=valid_before, issued_at=now,
        )
    )  # fmt: skip
    audit.record(
        session, action=AuditAction.SSH_CERT_ISSUE, at=now, actor_id=who.user_id,
        actor=who.username, target=f"ssh certificate {serial}",
        detail={
            "key_id": signed.key_id, "serial": str(serial), "fingerprint": key.fingerprint,
            "principals": list(principals), "valid_before": valid_before,
        },
    )  # fmt: skip
    session.commit()
    return CertificateInfo(
        certificate=signed.line,
        serial=serial,
        key_id=signed.key_id,
        principals=list(principals),
        fingerprint=key.fingerprint,
        valid_after=valid_after,
        valid_before=valid_before,
        ca_public_key=ssh_ca.ensure(state_dir),
    )
