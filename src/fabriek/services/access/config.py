"""Reading the access configuration: the shipped tracks, or an operator's file."""

from __future__ import annotations

from pathlib import Path

from fabriek.domain.access.tracks import AccessConfig, parse_access_config
from fabriek.services.config_files import load_config_file


def load_access_config(path: Path | None = None) -> AccessConfig:
    """The tracks and GPU-hour factors of `path`, or the shipped defaults. InvalidInput
    says in one line what is wrong with the file."""
    return load_config_file(path, "access.toml", "access", parse_access_config)
