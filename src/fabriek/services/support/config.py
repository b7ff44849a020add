"""The support centre's configuration: the shipped routing and service levels, or an
operator's file (`FABRIEK_SUPPORT_FILE`), and what the support services need of the
server's settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fabriek.domain.support.attachments import parse_media_types
from fabriek.domain.support.routing import SupportConfig, parse_support_config
from fabriek.services.config_files import load_config_file
from fabriek.settings import Settings

MIB = 1024 * 1024


@cache
def load_support_config(path: Path | None = None) -> SupportConfig:
    """The routing and service levels of `path`, or the shipped support.toml. Read once per
    path; InvalidInput says in one line what is wrong with the file."""
    return load_config_file(path, "support.toml", "support", parse_support_config)


@dataclass(frozen=True)
class SupportOptions:
    """What the support services need of the server's settings."""

    config: SupportConfig
    support_address: str
    attachments_dir: Path
    attachment_max_bytes: int
    attachment_types: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> SupportOptions:
        domain = settings.smtp_from.rpartition("@")[2] or "localhost"
        return cls(
            config=load_support_config(settings.support_file),
            support_address=settings.support_address or f"support@{domain}",
            attachments_dir=settings.state_dir / "support" / "attachments",
            attachment_max_bytes=int(settings.support_attachment_max_mib * MIB),
            attachment_types=parse_media_types(settings.support_attachment_types),
        )
