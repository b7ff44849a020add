"""A waiting job's free-text reason becomes one of a closed set of classes: a metric label
that cannot grow a series per message."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.reason_classes import (
    NONE,
    OTHER,
    PREFIX_CHARS,
    REASON_CLASSES,
    WAIT_CODES,
    reason_class,
)
from fabriek.scheduler.reasons import WaitReason

CODES = sorted(WAIT_CODES)


@given(st.one_of(st.none(), st.text()))
def test_the_class_is_always_one_of_the_set(reason: str | None) -> None:
    assert reason_class(reason) in REASON_CLASSES


@given(st.sampled_from(CODES), st.text())
def test_a_code_before_its_words_is_its_class(code: str, words: str) -> None:
    assert reason_class(f"{code}: {words}") == code


@given(st.text())
def test_the_prefix_the_store_groups_by_decides_the_class(reason: str) -> None:
    # The collector groups reasons by their first PREFIX_CHARS characters in SQL.
    assert reason_class(reason[:PREFIX_CHARS]) == reason_class(reason)


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1))
def test_text_that_names_no_code_is_other_or_none(words: str) -> None:
    cls = reason_class("zz " + words)
    assert cls == OTHER


def test_every_scheduler_wait_code_has_its_class() -> None:
    assert {r.value for r in WaitReason} <= WAIT_CODES


def test_the_dispatchers_phrases() -> None:
    cases = {
        None: NONE,
        "": NONE,
        "queued": "Queued",
        "queued on the cluster": "QueuedOnCluster",
        "queued on the cluster: (Priority)": "QueuedOnCluster",
        "requeued after preemption": "Requeued",
        "waiting for the image registry: connection refused": "ImageRegistry",
        "SiteUnavailable: amsterdam: connection refused (Resources: first in line)": (
            "SiteUnavailable"
        ),
        "ContainerSites: it runs in a container image, and none ...": "ContainerSites",
        "NotBeforeStartTime: starts no earlier than 2099-01-01 00:00 UTC": "NotBeforeStartTime",
        "Resources": OTHER,  # a code without its colon is not the scheduler's words
        "started": OTHER,
    }
    for reason, cls in cases.items():
        assert reason_class(reason) == cls, reason
