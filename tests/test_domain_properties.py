"""Property tests of the pure core of the foundation: tokens, units, geography."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.geography import HUBS, Province, hub_for_province
from fabriek.domain.gpus import GPU_TYPES, gpu_type
from fabriek.domain.identity import tokens
from fabriek.domain.units import GpuHours, KilowattHours, gpu_hours

KEYS = st.text("0123456789abcdef", min_size=12, max_size=12)
SECRETS = st.text(string.ascii_letters + string.digits + "-_", min_size=43, max_size=43)


@given(KEYS, SECRETS)
def test_a_made_token_parses_and_matches_its_hash_only(key: str, secret: str) -> None:
    new = tokens.make_token(key, secret)
    assert tokens.token_key(new.token) == key
    assert tokens.token_matches(new.token, new.hash)
    # What is stored reveals nothing of the secret.
    assert secret not in new.hash and len(new.hash) == 64


@given(KEYS, SECRETS, st.integers(min_value=0, max_value=86), st.characters())
def test_any_changed_token_is_refused(key: str, secret: str, pos: int, ch: str) -> None:
    new = tokens.make_token(key, secret)
    i = pos % len(new.token)
    changed = new.token[:i] + ch + new.token[i + 1 :]
    if changed != new.token:
        assert not tokens.token_matches(changed, new.hash)


@given(st.text(max_size=120))
def test_arbitrary_text_never_crashes_the_parser(text: str) -> None:
    key = tokens.token_key(text)
    assert key is None or (text.startswith(f"fbk_{key}_") and len(key) == 12)


def test_fresh_tokens_are_unique() -> None:
    made = {tokens.make_token().token for _ in range(200)}
    assert len(made) == 200


NOW = datetime(2026, 3, 1, tzinfo=UTC)
OFFSETS = st.one_of(
    st.none(), st.integers(-10_000, 10_000).map(lambda s: NOW + timedelta(seconds=s))
)


@given(OFFSETS, OFFSETS)
def test_usable_exactly_before_expiry_and_revocation(
    expires: datetime | None, revoked: datetime | None
) -> None:
    usable = tokens.is_usable(expires, revoked, NOW)
    expected = (expires is None or expires > NOW) and (revoked is None or revoked > NOW)
    assert usable == expected


def test_every_province_has_exactly_one_hub() -> None:
    served = [p for info in HUBS.values() for p in info.provinces]
    assert sorted(served) == sorted(Province)
    assert len(HUBS) == 7
    for p in Province:
        assert p in HUBS[hub_for_province(p)].provinces


def test_gpu_reference_data_is_sane() -> None:
    for g in GPU_TYPES.values():
        assert g.memory_gb > 0 and 100 <= g.tdp_w <= 1500 and g.peak_bf16_tflops > 100
    assert gpu_type(" H100 ") is GPU_TYPES["h100"]
    assert gpu_type("tpu") is None


FLOATS = st.floats(-1e9, 1e9, allow_nan=False)


@given(FLOATS, FLOATS, FLOATS)
def test_quantities_add_like_numbers_and_keep_their_unit(a: float, b: float, c: float) -> None:
    x, y = GpuHours(a), GpuHours(b)
    assert (x + y).value == a + b
    assert isinstance(x + y, GpuHours)
    assert (x * c).value == a * c
    assert str(GpuHours(1.5)) == "1.50 GPU-h"


def test_units_do_not_mix() -> None:
    try:
        GpuHours(1) + KilowattHours(1)  # type: ignore[operator]
    except TypeError:
        return
    raise AssertionError("GPU-hours and kWh were added")


@given(st.integers(0, 4096), st.floats(0, 1e7, allow_nan=False))
def test_gpu_hours_of_gpus_and_seconds(gpus: int, seconds: float) -> None:
    assert abs(gpu_hours(gpus, seconds).value - gpus * seconds / 3600) <= 1e-9 * max(
        1, gpus * seconds
    )
