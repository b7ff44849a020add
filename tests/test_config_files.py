"""Configuration files: each is read by one loader and checked against a strict model, so a
misspelt key or a value of the wrong type is a one-line error naming the file and the key,
never a silent default."""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from fabriek.domain.ai_act.model_rules import parse_ai_act_rules
from fabriek.domain.errors import InvalidInput
from fabriek.domain.support.expertise import parse_vocabulary
from fabriek.services.access.config import load_access_config
from fabriek.services.energy.eed_report import load_indicator_set
from fabriek.services.support.config import load_support_config

TRACK = """
version = "test"

[[tracks]]
code = "mine"
name = "Mine"
eligible_kinds = ["sme"]
decision_working_days = 3
durations_months = [1]
{extra}
"""


def _access_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "access.toml"
    path.write_text(TRACK.format(extra=extra))
    return path


def test_a_track_file_of_the_right_shape_loads(tmp_path: Path) -> None:
    config = load_access_config(_access_file(tmp_path, "preemptible = true\ntier = 2"))
    track = config.track("mine")
    assert track.preemptible and track.tier == 2 and not track.peer_review
    assert track.durations_months == (1,)


def test_a_misspelt_key_is_an_error_not_a_silent_default(tmp_path: Path) -> None:
    path = _access_file(tmp_path, "peer_reveiw = true")
    with pytest.raises(InvalidInput) as err:
        load_access_config(path)
    assert str(path) in str(err.value)
    assert "tracks[0].peer_reveiw: unknown key" in str(err.value)


def test_a_string_is_not_a_boolean(tmp_path: Path) -> None:
    """`preemptible = "no"` used to load as true (any non-empty string is truthy)."""
    with pytest.raises(InvalidInput) as err:
        load_access_config(_access_file(tmp_path, 'preemptible = "no"'))
    assert "tracks[0].preemptible: input should be a valid boolean, not 'no'" in str(err.value)


def test_a_number_as_text_is_not_a_number(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"tracks\[0\]\.tier: input should be a valid"):
        load_access_config(_access_file(tmp_path, 'tier = "2"'))


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(TRACK.format(extra="").replace('name = "Mine"\n', ""))
    with pytest.raises(InvalidInput, match=r"missing 'tracks\[0\]\.name'"):
        load_access_config(path)


def test_an_unknown_organisation_kind_is_named(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(TRACK.format(extra="").replace('["sme"]', '["smee"]'))
    with pytest.raises(InvalidInput, match=r"tracks\[0\]\.eligible_kinds\[0\]: .*'smee'"):
        load_access_config(path)


def test_rules_beyond_the_shape_still_hold(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(TRACK.format(extra="").replace("[1]", "[0]"))
    with pytest.raises(InvalidInput, match="durations_months must list months above zero"):
        load_access_config(path)


def test_a_file_that_is_not_toml_or_not_there_says_so(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text("tracks = [")
    with pytest.raises(InvalidInput, match="is not valid TOML"):
        load_access_config(path)
    with pytest.raises(InvalidInput, match="cannot read the access file"):
        load_access_config(tmp_path / "absent.toml")


def test_every_configuration_file_refuses_an_unknown_key(tmp_path: Path) -> None:
    """Support routing and the expertise vocabulary have strict shapes too."""
    shipped = resources.files("fabriek.config").joinpath("support.toml").read_text()
    path = tmp_path / "support.toml"
    path.write_text(shipped.replace("close_resolved_after", "close_resovled_after"))
    with pytest.raises(InvalidInput, match="close_resovled_after_working_days: unknown key"):
        load_support_config(path)
    path.write_text(
        shipped.replace("first_answer_working_days = 1", 'first_answer_working_days = "1"', 1)
    )
    with pytest.raises(InvalidInput, match=r"service_levels\.access-and-proposals\.first_answer"):
        load_support_config(path)
    with pytest.raises(ValueError, match=r"skills\[0\]\.label: unknown key"):
        parse_vocabulary(
            {"version": "1", "skills": [{"code": "a", "en": "A", "nl": "A", "label": "x"}]}
        )


def test_the_eed_indicator_list_refuses_an_unknown_key(tmp_path: Path) -> None:
    shipped = resources.files("fabriek.config").joinpath("eed_indicators.toml").read_text()
    path = tmp_path / "indicators.toml"
    path.write_text(shipped.replace("required = true", "requried = true", 1))
    with pytest.raises(InvalidInput, match=r"indicator\[0\]\.requried: unknown key"):
        load_indicator_set(path)
    path.write_text(shipped.replace("threshold_kw = 500.0", 'threshold_kw = "500"', 1))
    with pytest.raises(InvalidInput, match="threshold_kw: input should be a valid number"):
        load_indicator_set(path)


def test_the_ai_act_model_rules_refuse_an_unknown_key_and_a_string_for_a_boolean() -> None:
    shipped = tomllib.loads(resources.files("fabriek.config").joinpath("ai_act.toml").read_text())
    misspelt = copy.deepcopy(shipped)
    misspelt["purposes"][0]["cumulatieve"] = True
    with pytest.raises(ValueError, match=r"purposes\[0\]\.cumulatieve: unknown key"):
        parse_ai_act_rules(misspelt)
    text_for_bool = copy.deepcopy(shipped)
    text_for_bool["purposes"][0]["training"] = "no"
    with pytest.raises(
        ValueError, match=r"purposes\[0\]\.training: input should be a valid boolean"
    ):
        parse_ai_act_rules(text_for_bool)
