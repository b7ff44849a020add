"""Image names and registry scopes (fabriek.domain.images): examples and properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabriek.domain.images import (
    BadImageName,
    Grantee,
    ImageRef,
    Scope,
    allowed_actions,
    grant,
    is_allowed,
    parse_image,
    parse_scope,
)

OWN = "registry.fabriek.example:5000"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("python:3.12", ImageRef(None, "library/python", "3.12")),
        ("dutch-llm/torch", ImageRef(None, "dutch-llm/torch")),
        ("dutch-llm/team/torch:v1", ImageRef(None, "dutch-llm/team/torch", "v1")),
        (f"{OWN}/dutch-llm/torch:v1", ImageRef(OWN, "dutch-llm/torch", "v1")),
        (f"{OWN}#dutch-llm/torch:v1", ImageRef(OWN, "dutch-llm/torch", "v1")),  # Pyxis
        ("localhost/a/b", ImageRef("localhost", "a/b")),
        (f"dutch-llm/torch@{DIGEST}", ImageRef(None, "dutch-llm/torch", None, DIGEST)),
        (f"dutch-llm/torch:v1@{DIGEST}", ImageRef(None, "dutch-llm/torch", "v1", DIGEST)),
        ("docker://python:3.12", ImageRef(None, "library/python", "3.12")),
        ("quay.io/org/img", ImageRef("quay.io", "org/img")),
    ],
)
def test_names_are_read_as_docker_reads_them_but_without_a_host_mean_the_factorys(
    text: str, expected: ImageRef
) -> None:
    assert parse_image(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "Dutch-LLM/torch:v1x/", "dutch-llm/Torch", "a/b:", "a/b@sha256:12", "#a/b",
     "a//b", "a/b:-x", "-a/b", "a/b-", "bad_host!:5000/a/b"],
)  # fmt: skip
def test_bad_names_are_refused_saying_why(text: str) -> None:
    with pytest.raises(BadImageName):
        parse_image(text)


def test_only_the_factorys_registry_and_allowed_upstreams_are_allowed() -> None:
    upstreams = ["Harbor.EU.example"]
    assert is_allowed(parse_image("dutch-llm/x"), OWN, upstreams)
    assert is_allowed(parse_image(f"{OWN}/dutch-llm/x"), OWN, upstreams)
    assert is_allowed(parse_image("harbor.eu.example/x/y"), OWN, upstreams)
    assert not is_allowed(parse_image("docker.io/library/python"), OWN, upstreams)
    # Without a registry of its own, a name without a host has nowhere to come from.
    assert not is_allowed(parse_image("dutch-llm/x"), None, upstreams)


def test_scopes_are_read_with_their_class_and_actions() -> None:
    assert parse_scope("repository:dutch-llm/x:pull,push") == Scope(
        "repository", "dutch-llm/x", frozenset({"pull", "push"})
    )
    assert parse_scope("repository(plugin):a/b:pull") == Scope(
        "repository", "a/b", frozenset({"pull"})
    )
    assert parse_scope("registry:catalog:*") == Scope("registry", "catalog", frozenset({"*"}))
    assert parse_scope("nonsense") is None


def test_members_push_and_pull_their_project_others_nothing_library_for_all() -> None:
    maria = Grantee(frozenset({"dutch-llm"}))
    assert allowed_actions(maria, "dutch-llm/torch") == {"pull", "push"}
    assert allowed_actions(maria, "legal-nl/torch") == frozenset()
    assert allowed_actions(maria, "library/python") == {"pull"}
    job = Grantee(frozenset({"dutch-llm"}), pull_only=True)
    assert allowed_actions(job, "dutch-llm/torch") == {"pull"}
    admin = Grantee(frozenset(), is_admin=True)
    assert allowed_actions(admin, "library/python") == {"pull", "push"}
    assert allowed_actions(admin, "legal-nl/torch") == {"pull"}
    assert grant(admin, [Scope("registry", "catalog", frozenset({"*"}))])
    assert not grant(maria, [Scope("registry", "catalog", frozenset({"*"}))])


# --- properties ------------------------------------------------------------------------------

_part = st.from_regex(r"\A[a-z0-9]{1,5}(?:[._-][a-z0-9]{1,5})?\Z")
_repo = st.lists(_part, min_size=2, max_size=4).map("/".join)
_tag = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
_digest = st.from_regex(r"\A[0-9a-f]{64}\Z").map(lambda h: f"sha256:{h}")
_host = st.sampled_from([None, OWN, "localhost", "harbor.eu.example", "127.0.0.1:5000"])


@given(_host, _repo, st.none() | _tag, st.none() | _digest)
def test_a_written_name_reads_back_as_itself(
    host: str | None, repo: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageRef(host, repo, tag, digest)
    text = ref.reference(OWN)
    again = parse_image(text)
    assert again.reference(OWN) == text
    assert again.pinned(OWN, DIGEST) == f"{host or OWN}/{repo}@{DIGEST}"


@given(st.text(max_size=80))
def test_any_text_is_a_name_or_a_bad_name_never_a_crash(text: str) -> None:
    with contextlib.suppress(BadImageName):
        parse_image(text)


_grantee = st.builds(
    Grantee,
    st.frozensets(st.sampled_from(["dutch-llm", "legal-nl", "library"]), max_size=3),
    st.booleans(),
    st.booleans(),
)
_scope = st.builds(
    Scope,
    st.sampled_from(["repository", "registry", "other"]),
    st.sampled_from(["dutch-llm/a", "legal-nl/b/c", "library/x", "catalog", "x", "A/b"]),
    st.frozensets(st.sampled_from(["pull", "push", "delete", "*"]), max_size=4),
)


@given(_grantee, st.lists(_scope, max_size=5))
def test_what_is_granted_is_asked_and_allowed_and_a_job_never_pushes(
    who: Grantee, asked: list[Scope]
) -> None:
    granted = grant(who, asked)
    for g in granted:
        assert g.actions
        assert any(a.type == g.type and a.name == g.name and g.actions <= a.actions for a in asked)
        if g.type == "repository":
            assert g.actions <= allowed_actions(who, g.name)
            namespace = g.name.split("/")[0]
            if namespace not in who.projects and namespace != "library":
                assert who.is_admin and not who.pull_only and g.actions == {"pull"}
            if who.pull_only:
                assert "push" not in g.actions
        else:
            assert g == Scope("registry", "catalog", frozenset({"*"})) and who.is_admin
