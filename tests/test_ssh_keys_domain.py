"""Reading SSH public keys and the certificate rules: checked against what `ssh-keygen`
itself says of real keys, and as properties over any key blob."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.errors import Forbidden, InvalidInput
from fabriek.domain.ssh_keys import (
    MAX_CERT_HOURS,
    certificate_key_id,
    certificate_window,
    check_principals,
    fingerprint,
    is_posix_name,
    parse_public_key,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def keygen(tmp_path: Path, kind: str, bits: int | None = None) -> tuple[str, str, int]:
    """A fresh key made by ssh-keygen: its public line, and ssh-keygen's own fingerprint
    and size of it."""
    path = tmp_path / f"{kind}-{bits}"
    size = ["-b", str(bits)] if bits else []
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, *size, "-N", "", "-C", "me@laptop", "-f", str(path)],
        check=True,
    )
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True, capture_output=True, text=True
    ).stdout.split()
    return Path(f"{path}.pub").read_text(), listed[1], int(listed[0])


@pytest.mark.parametrize(
    ("kind", "bits", "key_type"),
    [
        ("ed25519", None, "ssh-ed25519"),
        ("ecdsa", 256, "ecdsa-sha2-nistp256"),
        ("ecdsa", 384, "ecdsa-sha2-nistp384"),
        ("ecdsa", 521, "ecdsa-sha2-nistp521"),
        ("rsa", 3072, "ssh-rsa"),
    ],
)
def test_accepted_keys_read_as_ssh_keygen_reads_them(
    tmp_path: Path, kind: str, bits: int | None, key_type: str
) -> None:
    line, their_fingerprint, their_bits = keygen(tmp_path, kind, bits)
    key = parse_public_key(line)
    assert (key.key_type, key.bits, key.fingerprint, key.comment) == (
        key_type, their_bits, their_fingerprint, "me@laptop",
    )  # fmt: skip
    assert key.line == line.strip()


def test_a_security_key_is_accepted() -> None:
    # An sk-ssh-ed25519 public key: its type, 32 bytes of key, the application string.
    def s(b: bytes) -> bytes:
        return len(b).to_bytes(4, "big") + b

    blob = s(b"sk-ssh-ed25519@openssh.com") + s(bytes(range(32))) + s(b"ssh:")
    line = f"sk-ssh-ed25519@openssh.com {base64.b64encode(blob).decode()} yubikey"
    key = parse_public_key(line)
    assert (key.key_type, key.bits, key.comment) == ("sk-ssh-ed25519@openssh.com", 256, "yubikey")


def refusal(text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_public_key(text)
    assert caught.value.problems[0].field == "public_key"
    return caught.value.detail


def test_small_rsa_dsa_private_keys_certificates_and_garbage_are_refused_saying_why(
    tmp_path: Path,
) -> None:
    small, _, _ = keygen(tmp_path, "rsa", 2048)
    assert "2048 bits; at least 3072" in refusal(small)
    blob = base64.b64encode(b"\x00\x00\x00\x07ssh-dss" + b"\x00\x00\x00\x01\x01").decode()
    assert "DSA (ssh-dss) keys are refused" in refusal(f"ssh-dss {blob} old")
    keygen(tmp_path, "ed25519")
    private = (tmp_path / "ed25519-None").read_text()
    assert "private key, which must never leave your computer" in refusal(private)
    assert "consider it exposed" in refusal(private)
    assert "not an OpenSSH public key" in refusal("hello")
    assert "empty" in refusal("  \n")
    assert "not accepted" in refusal("ssh-foo AAAA")
    assert "not a valid ssh-ed25519 public key" in refusal("ssh-ed25519 !!!notbase64")
    # The type on the line and the type inside the key must agree.
    rsa_line = small.split()
    assert "not a valid ssh-ed25519" in refusal(f"ssh-ed25519 {rsa_line[1]}")
    cert_blob = base64.b64encode(b"x").decode()
    assert "certificate, not a key" in refusal(f"ssh-ed25519-cert-v01@openssh.com {cert_blob}")


@given(st.binary(max_size=300), st.sampled_from(["ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256"]))
def test_any_blob_is_either_a_key_or_a_refusal_never_a_crash(blob: bytes, key_type: str) -> None:
    line = f"{key_type} {base64.b64encode(blob).decode()}"
    try:
        key = parse_public_key(line)
    except InvalidInput as refused:
        assert refused.problems[0].field == "public_key"
    else:
        assert key.key_type == key_type and key.fingerprint == fingerprint(blob)


@given(st.binary(min_size=32, max_size=32), st.text(max_size=40).map(str.strip))
def test_an_ed25519_key_reads_back_to_itself(raw: bytes, comment: str) -> None:
    blob = b"\x00\x00\x00\x0bssh-ed25519" + len(raw).to_bytes(4, "big") + raw
    line = f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}".strip()
    if "\n" in comment or "\r" in comment:
        return
    key = parse_public_key(line)
    assert key.bits == 256 and key.blob == blob
    assert parse_public_key(key.line) == key


@given(st.floats(min_value=0.01, max_value=MAX_CERT_HOURS))
def test_a_certificate_starts_a_minute_back_and_never_lasts_past_the_maximum(hours: float) -> None:
    after, before = certificate_window(NOW, hours)
    assert after == NOW - timedelta(minutes=1)
    assert NOW < before <= NOW + timedelta(hours=MAX_CERT_HOURS)


@given(st.one_of(st.floats(max_value=0), st.floats(min_value=MAX_CERT_HOURS + 0.001)))
def test_a_validity_beyond_the_rules_is_refused(hours: float) -> None:
    with pytest.raises(InvalidInput):
        certificate_window(NOW, hours)


def test_the_default_validity_is_eight_hours() -> None:
    assert certificate_window(NOW, None)[1] == NOW + timedelta(hours=8)


@given(st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=4))
def test_only_ones_own_username_is_ever_signed(asked: list[str]) -> None:
    if all(p == "maria" for p in asked):
        assert check_principals(tuple(asked), "maria") == ("maria",)
    else:
        with pytest.raises(Forbidden) as caught:
            check_principals(tuple(asked), "maria")
        assert all(repr(p) in caught.value.detail for p in asked if p != "maria")


def test_key_ids_and_posix_names() -> None:
    assert certificate_key_id("maria", 42) == "fabriek:maria:42"
    assert is_posix_name("maria") and is_posix_name("fab-ssh-1")
    assert not is_posix_name("Maria") and not is_posix_name("1x") and not is_posix_name("a" * 33)
