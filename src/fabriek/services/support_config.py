"""Reading the support centre's configuration: the shipped routing and service levels, or an
operator's file (`FABRIEK_SUPPORT_FILE`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fabriek.domain.support.routing import SupportConfig, parse_support_config
from fabriek.services.config_files import load_config_file


@cache
def load_support_config(path: Path | None = None) -> SupportConfig:
    """The routing and service levels of `path`, or the shipped support.toml. Read once per
    path; InvalidInput says in one line what is wrong with the file."""
    return load_config_file(path, "support.toml", "support", parse_support_config)
