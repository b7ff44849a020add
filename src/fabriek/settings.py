"""The control plane's settings, typed and described; read from `FABRIEK_*` variables.

Built once by the entry point and passed down explicitly (never read at import time).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the server; `docs/configuration.md` lists them (a test keeps it so)."""

    model_config = SettingsConfigDict(env_prefix="FABRIEK_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.fabriek/fabriek.db",
        description="SQLAlchemy URL of the store: sqlite:///PATH or postgresql+psycopg://...",
    )
    host: str = Field(default="127.0.0.1", description="Address the server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    state_dir: Path = Field(
        default=Path(".fabriek"),
        description="Where the server keeps files: the embedded database, job output.",
    )
    token_days: int = Field(
        default=90, ge=1, le=3650, description="Default lifetime of a new API token, in days."
    )
    sites_file: Path | None = Field(
        default=None,
        description="TOML file binding sites to engines (local, slurm); default: all local.",
    )
    dispatch_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="Seconds between dispatcher cycles at most."
    )
    local_gpus: int | None = Field(
        default=None,
        ge=0,
        description="Virtual GPUs of a local-engine site without GPUs; default: the site's own.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes; one of them (holding a lock in the state dir) dispatches.",
    )
    log_level: str = Field(default="info", description="Server log level (debug, info, warning).")
