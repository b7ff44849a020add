"""Reading the access configuration: the shipped tracks, or an operator's file."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from fabriek.domain.errors import InvalidInput
from fabriek.domain.tracks import AccessConfig, parse_access_config


def load_access_config(path: Path | None = None) -> AccessConfig:
    """The tracks and GPU-hour factors of `path`, or the shipped defaults. InvalidInput
    says in one line what is wrong with the file."""
    try:
        if path is None:
            text = resources.files("fabriek.config").joinpath("access.toml").read_text()
            where = "the shipped access.toml"
        else:
            text = Path(path).read_text()
            where = str(path)
    except OSError as missing:
        raise InvalidInput(f"cannot read the access file {path}: {missing.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise InvalidInput(f"{where} is not valid TOML: {bad}") from None
    try:
        return parse_access_config(data)
    except ValueError as bad:
        raise InvalidInput(f"{where}: {bad}") from None
