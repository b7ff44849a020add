"""The pure rules of datasets: names, GDPR terms, residency, quota; and the chunked AES-GCM
format, whose every tampering (altered, reordered, dropped, cut, extended) is detected."""

from __future__ import annotations

import io
import string
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from fabriek.domain.dataset_names import NAME_MAX_CHARS, name_problem
from fabriek.domain.datasets import (
    Classification,
    DatasetDraft,
    LegalBasis,
    Residency,
    SpecialCategoryCondition,
    quota_refusal,
    residency_allows,
    terms_problems,
)
from fabriek.store.envelope import (
    HEADER_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    Sealer,
    Secret,
    Undecryptable,
    new_key,
    open_sealed,
    unwrap,
    wrap,
)

SAFE = string.ascii_letters + string.digits + "._-"
good_names = st.text(alphabet=SAFE, min_size=1, max_size=NAME_MAX_CHARS).filter(
    lambda n: n[0] not in "._-" and ".." not in n
)


@given(good_names)
def test_names_of_safe_characters_are_accepted(name: str) -> None:
    assert name_problem(name) is None


@given(st.text(max_size=40), st.sampled_from(["/", "\\"]), st.text(max_size=40))
def test_a_path_separator_is_always_refused(before: str, sep: str, after: str) -> None:
    problem = name_problem(before + sep + after)
    assert problem is not None
    assert "path separator" in problem or "control characters" in problem


@given(
    st.text(max_size=20),
    st.characters(codec="utf-8", categories=["Cc"]),
    st.text(max_size=20),
)
def test_a_control_character_is_always_refused_and_named(before: str, c: str, after: str) -> None:
    problem = name_problem(before + c + after)
    assert problem is not None and "control characters" in problem


@given(good_names, good_names)
def test_dot_dot_is_refused(a: str, b: str) -> None:
    problem = name_problem(f"{a}..{b}")
    assert problem == "may not contain '..'"


def test_name_messages_say_what_to_change() -> None:
    assert name_problem("") == "give a name"
    assert name_problem("x" * (NAME_MAX_CHARS + 1)) == (
        f"at most {NAME_MAX_CHARS} characters (this one has {NAME_MAX_CHARS + 1})"
    )
    assert "found ' '" in (name_problem("my data") or "")
    assert "starting with a letter or digit" in (name_problem(".hidden") or "")
    assert "U+000A" in (name_problem("a\nb") or "")


@given(
    st.sampled_from(list(Classification)),
    st.none() | st.sampled_from(list(LegalBasis)),
    st.none() | st.text(max_size=5),
    st.none() | st.dates(),
    st.none() | st.sampled_from(list(SpecialCategoryCondition)),
)
def test_personal_data_needs_basis_purpose_and_retention(
    classification: Classification,
    basis: LegalBasis | None,
    purpose: str | None,
    until: date | None,
    condition: SpecialCategoryCondition | None,
) -> None:
    fields = {f for f, _ in terms_problems(classification, basis, purpose, until, condition)}
    personal = classification.is_personal
    assert ("legal_basis" in fields) == (personal and basis is None)
    assert ("purpose" in fields) == (personal and not (purpose or "").strip())
    assert ("retention_until" in fields) == (personal and until is None)
    special = classification is Classification.SPECIAL_CATEGORY
    assert ("special_category_condition" in fields) == (special != (condition is not None))


def test_a_draft_of_personal_data_without_terms_is_refused_with_each_field() -> None:
    with pytest.raises(ValidationError) as caught:
        DatasetDraft(project="p", name="patients", classification=Classification.PERSONAL)
    message = str(caught.value)
    assert "legal_basis" in message and "purpose" in message and "retention_until" in message


jurisdictions = st.sampled_from(["nl", "eu", "us", "ch", "", None])


@given(st.sampled_from(list(Residency)), jurisdictions, st.booleans(), st.booleans())
def test_residency_rule(
    residency: Residency, where: str | None, gdpr_ready: bool, personal: bool
) -> None:
    reason = residency_allows(residency, where, gdpr_ready, personal=personal)
    inside = {Residency.NL: {"nl"}, Residency.EU: {"nl", "eu"}}.get(residency)
    place_ok = inside is None or (where or "") in inside
    assert (reason is None) == (place_ok and (gdpr_ready or not personal))
    if not place_ok:
        assert reason is not None and f"residency {residency.value}" in reason


@given(jurisdictions, st.booleans(), st.booleans())
def test_a_stricter_residency_never_allows_more(
    where: str | None, gdpr_ready: bool, personal: bool
) -> None:
    allowed = [
        residency_allows(r, where, gdpr_ready, personal=personal) is None
        for r in (Residency.NL, Residency.EU, Residency.ANYWHERE)
    ]
    assert allowed == sorted(allowed)  # nl ⇒ eu ⇒ anywhere


@given(st.integers(0, 10**13), st.integers(0, 10**13), st.integers(1, 10**13))
def test_quota_refuses_exactly_what_does_not_fit(used: int, incoming: int, quota: int) -> None:
    refusal = quota_refusal("p", used, incoming, quota)
    assert (refusal is None) == (used + incoming <= quota)
    if refusal:
        assert "nothing was kept" in refusal


# --- the sealed format -------------------------------------------------------------------------


def seal(data: bytes, chunk: int, name: str = "a" * 32) -> tuple[bytes, Secret]:
    key = new_key()
    sealer = Sealer(key, name, chunk)
    out = bytearray(sealer.header)
    # A full last chunk is still the last one; empty data is one empty last chunk.
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    for i, piece in enumerate(pieces):
        nonce, sealed = sealer.seal(piece, last=i == len(pieces) - 1)
        out += nonce + sealed
    return bytes(out), key


def unseal(blob: bytes, key: Secret, name: str = "a" * 32) -> bytes:
    return b"".join(open_sealed(key, name, io.BytesIO(blob)))


@given(st.binary(max_size=3000), st.integers(1, 700))
def test_sealed_data_opens_to_itself(data: bytes, chunk: int) -> None:
    blob, key = seal(data, chunk)
    # On disk: the header, then one record (nonce, ciphertext, tag) per chunk, at least one.
    chunks = max(1, -(-len(data) // chunk))
    assert len(blob) == HEADER_BYTES + len(data) + chunks * (NONCE_BYTES + TAG_BYTES)
    assert unseal(blob, key) == data


def records(blob: bytes, chunk: int) -> list[bytes]:
    size = NONCE_BYTES + chunk + TAG_BYTES
    body = blob[HEADER_BYTES:]
    return [body[i : i + size] for i in range(0, len(body), size)]


@given(st.binary(min_size=2, max_size=2000), st.integers(1, 300), st.data())
def test_every_tampering_is_detected(data: bytes, chunk: int, draw: st.DataObject) -> None:
    blob, key = seal(data, chunk)
    parts = records(blob, chunk)
    head = blob[:HEADER_BYTES]
    tampered = [
        head + b"".join(parts[:-1]),  # the last chunk dropped (or everything, for one chunk)
        blob[: draw.draw(st.integers(0, len(blob) - 1))],  # cut anywhere
        blob + draw.draw(st.binary(min_size=1, max_size=40)),  # extended
    ]
    at = draw.draw(st.integers(0, len(blob) - 1))
    tampered.append(blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :])  # one bit flipped
    if len(parts) > 2:
        tampered.append(head + parts[1] + parts[0] + b"".join(parts[2:]))  # reordered
    for bad in tampered:
        with pytest.raises(Undecryptable):
            unseal(bad, key)
    # Bound to its object: the same bytes under another object's name do not open.
    with pytest.raises(Undecryptable):
        unseal(blob, key, name="b" * 32)
    with pytest.raises(Undecryptable):
        unseal(blob, new_key())


def test_a_wrapped_key_unwraps_only_with_its_key_and_context() -> None:
    kek, key = new_key(), new_key()
    wrapped = wrap(kek, key, "data key of object x")
    assert unwrap(kek, wrapped, "data key of object x") == key
    for other_kek, context in ((new_key(), "data key of object x"), (kek, "data key of object y")):
        with pytest.raises(Undecryptable):
            unwrap(other_kek, wrapped, context)
    assert key.reveal().hex() not in repr(key) and "hidden" in repr(key)
