"""Property tests of the gateway's pure rules: the per-minute window, reading server-sent
events as they pass, and the names a request gives its endpoint."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from fabriek.api.gateway.sse import StreamTally
from fabriek.domain.gateway import (
    MinuteWindow,
    answer_words,
    hash_key,
    is_endpoint_key,
    parse_model,
)


@given(
    st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), min_size=1, max_size=200),
    st.integers(min_value=1, max_value=20),
)
def test_a_window_admits_at_most_the_limit_per_minute_and_says_how_long_to_wait(
    gaps: list[float], limit: int
) -> None:
    window = MinuteWindow()
    now = 1_000_000.0
    admitted: dict[int, int] = {}
    for gap in gaps:
        now += gap
        minute = int(now // 60)
        wait = window.admit(now, limit, None)
        if wait is None:
            admitted[minute] = admitted.get(minute, 0) + 1
        else:
            # Refused only when the minute's limit is reached; told to wait for the next one.
            assert admitted.get(minute, 0) == limit
            assert 1.0 <= wait <= 60 and now + wait >= (minute + 1) * 60
    assert all(n <= limit for n in admitted.values())


@given(st.integers(min_value=1, max_value=10), st.integers(min_value=1, max_value=1000))
def test_a_token_limit_refuses_once_the_minutes_tokens_reach_it(calls: int, limit: int) -> None:
    window = MinuteWindow()
    now = 60.0 * 1000
    assert window.admit(now, None, limit) is None
    window.add_tokens(now, limit)
    assert window.admit(now + 1, None, limit) is not None
    assert window.admit(now + 60, None, limit) is None  # the next minute starts afresh


def _events(words: list[str], usage: bool) -> list[bytes]:
    out = []
    for w in words:
        chunk = {"choices": [{"index": 0, "delta": {"content": w}}], "usage": None}
        out.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    if usage:
        last = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": len(words)}}
        out.append(b"data: " + json.dumps(last).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


@given(
    st.lists(st.text(alphabet="abc xyz", min_size=1, max_size=5), max_size=12),
    st.booleans(),
    st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30),
)
def test_events_pass_whole_in_order_however_the_bytes_are_cut(
    words: list[str], keep: bool, cuts: list[int]
) -> None:
    events = _events(words, usage=True)
    stream = b"".join(events)
    tally = StreamTally(keep_usage_chunk=keep)
    passed = b""
    at, i = 0, 0
    while at < len(stream):
        size = cuts[i % len(cuts)]
        passed += tally.feed(stream[at : at + size])
        at, i = at + size, i + 1
    expected = events if keep else events[:-2] + events[-1:]
    assert passed == b"".join(expected)
    assert tally.done and tally.prompt_tokens == 3 and tally.completion() == len(words)


@given(st.lists(st.text(alphabet="abc", min_size=1, max_size=3), max_size=10))
def test_without_usage_every_chunk_with_text_counts_one_token(words: list[str]) -> None:
    tally = StreamTally(keep_usage_chunk=False)
    tally.feed(b"".join(_events(words, usage=False)))
    assert tally.prompt_tokens is None and tally.completion() == len(words)


@given(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
)
def test_a_model_names_an_endpoint_with_or_without_its_project(project: str, name: str) -> None:
    assert parse_model(name) == (None, name)
    assert parse_model(f"{project}/{name}") == (project, name)


def test_endpoint_keys_are_told_apart_from_member_tokens_and_hashed() -> None:
    assert is_endpoint_key("fbe_abcdefghij_secret")
    assert not is_endpoint_key("fbk_0123456789ab_secret")
    assert hash_key("fbe_a_b") != hash_key("fbe_a_c") and len(hash_key("x")) == 64


@given(st.lists(st.text(alphabet="abc xyz\n", max_size=30), max_size=4))
def test_an_answer_without_usage_counts_the_words_of_its_choices(texts: list[str]) -> None:
    words = sum(len(t.split()) for t in texts)
    chat = {"choices": [{"message": {"role": "assistant", "content": t}} for t in texts]}
    plain = {"choices": [{"text": t} for t in texts]}
    assert answer_words(chat) == answer_words(plain) == words
    assert answer_words({"data": [{"embedding": [0.1]}]}) == 0 and answer_words([1]) == 0
