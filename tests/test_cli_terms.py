"""`fabriek terms` against a real server of its own (tests/terms_factory.py): publishing,
reading, accepting, and a job refused in one line until the terms are accepted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fabriek.services.demo.seed import demo_token
from tests.terms_factory import Factory, fresh_factory
from tests.test_cli import fabriek, one_line_error


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[Factory]:
    with fresh_factory("sqlite", tmp_path) as made:
        yield made


def as_(factory: Factory, username: str, tmp_path: Path) -> dict[str, str]:
    return {"FABRIEK_URL": factory.url, "FABRIEK_TOKEN": demo_token(username).token,
            "FABRIEK_CONFIG_DIR": str(tmp_path / username)}  # fmt: skip


def test_publish_show_accept_and_the_job_it_unblocks(factory: Factory, tmp_path: Path) -> None:
    admin, maria = as_(factory, "admin", tmp_path), as_(factory, "maria", tmp_path)
    assert "nothing to accept" in fabriek("terms", env=maria).stdout
    text = tmp_path / "terms.md"
    text.write_text("Use the GPUs for your project's work only.\n")
    out = fabriek("terms", "publish", "factory", "--title", "Acceptable use", "--file", str(text),
                  env=admin).stdout  # fmt: skip
    assert out == "Published factory's terms of use version 1 (must be accepted)\n"
    refused = one_line_error(fabriek("run", "--", "true", env=maria, check=False), 1)
    assert "the factory's terms of use version 1" in refused
    assert "fabriek terms accept factory 1" in refused

    [pending] = json.loads(fabriek("terms", "--json", env=maria).stdout)
    assert (pending["scope"], pending["newest_version"], pending["pending"]) == ("factory", 1, True)
    assert "ACCEPT" in fabriek("terms", env=maria).stdout
    shown = fabriek("terms", "show", "factory", env=maria).stdout
    assert "Acceptable use" in shown and "for your project's work only" in shown
    accepted = fabriek("terms", "accept", "factory", env=maria).stdout
    assert accepted.startswith("Accepted factory's terms of use version 1 at ")
    assert fabriek("run", "--", "true", env=maria).stdout.startswith("Submitted job ")

    # An editorial version, and a maria who may not publish.
    fabriek("terms", "publish", "factory", "--title", "Typos", "--file", str(text),
            "--editorial", env=admin)  # fmt: skip
    assert json.loads(fabriek("terms", "--json", env=maria).stdout)[0]["pending"] is False
    denied = fabriek("terms", "publish", "factory", "--title", "Mine", "--file", str(text),
                     env=maria, check=False)  # fmt: skip
    assert "only an admin may publish" in one_line_error(denied, 1)
    missing = one_line_error(fabriek("terms", "show", "factory", "7", env=maria, check=False), 1)
    assert "factory version 7" in missing
