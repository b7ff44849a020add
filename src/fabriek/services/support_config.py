"""Reading the support centre's configuration: the shipped routing and service levels, or an
operator's file (`FABRIEK_SUPPORT_FILE`)."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from pathlib import Path

from fabriek.domain.errors import InvalidInput
from fabriek.domain.support import SupportConfig, parse_support_config


@cache
def load_support_config(path: Path | None = None) -> SupportConfig:
    """The routing and service levels of `path`, or the shipped support.toml. Read once per
    path; InvalidInput says in one line what is wrong with the file."""
    try:
        if path is None:
            text = resources.files("fabriek.config").joinpath("support.toml").read_text()
            where = "the shipped support.toml"
        else:
            text = Path(path).read_text()
            where = str(path)
    except OSError as missing:
        raise InvalidInput(f"cannot read the support file {path}: {missing.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise InvalidInput(f"{where} is not valid TOML: {bad}") from None
    try:
        return parse_support_config(data)
    except ValueError as bad:
        raise InvalidInput(f"{where}: {bad}") from None
