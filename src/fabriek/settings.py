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
    local_id_base: int = Field(
        default=1_900_000_000,
        ge=1000,
        le=2**31 - 2,
        description="First UID and GID of the local engine's job users: a person's jobs run "
        "as UID base + their number, in the project's group GID base + its number.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API processes; one of them (holding a lock in the state dir) dispatches.",
    )
    log_level: str = Field(default="info", description="Server log level (debug, info, warning).")
    housekeeping_interval_s: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds between rounds of notices and e-mail."
    )
    harvest_interval_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Seconds between reads of each Slurm site's accounting into the ledger.",
    )
    access_file: Path | None = Field(
        default=None,
        description="TOML file of access tracks and GPU-hour factors; default: the shipped one.",
    )
    ai_act_rules_file: Path | None = Field(
        default=None,
        description="TOML file of the AI Act risk-classification rules; default: the shipped one.",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for notification e-mail; none: e-mail is off."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Port of the SMTP server.")
    smtp_from: str = Field(
        default="fabriek@localhost", description="Sender address of notification e-mail."
    )
    smtp_starttls: bool = Field(default=False, description="Use STARTTLS with the SMTP server.")
    smtp_user: str | None = Field(default=None, description="SMTP login, if the server needs one.")
    smtp_password: str | None = Field(default=None, description="SMTP password for smtp_user.")
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The portal's address as users reach it, for links in e-mail.",
    )
    heat_weight: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Weight of heat demand against carbon when timing shiftable jobs at sites "
        "that reuse heat: cost = carbon x (1 - weight x heat demand); 0: carbon only.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect provider (its issuer URL) for portal sign-in; none: off.",
    )
    oidc_client_id: str | None = Field(
        default=None, description="Fabriek's client id, as registered with the provider."
    )
    oidc_client_secret: str | None = Field(
        default=None, description="Fabriek's client secret; none: a public client (PKCE only)."
    )
    oidc_scopes: str = Field(
        default="openid profile email",
        description="Scopes asked of the provider, space-separated; must include openid.",
    )
    oidc_organisation_claim: str = Field(
        default="schac_home_organization",
        description="Claim naming the user's organisation by its domain (tudelft.nl).",
    )
    datasets_dir: Path | None = Field(
        default=None,
        description="The site's storage for dataset ciphertext; default: STATE_DIR/datasets.",
    )
    master_key_file: Path | None = Field(
        default=None,
        description="File holding the master key that wraps organisation keys (created, mode "
        "0600, when missing and no key was ever made); default: STATE_DIR/master.key.",
    )
    dataset_quota_gib: float = Field(
        default=100.0,
        gt=0,
        description="Most dataset data (all versions, before encryption) a project may hold, GiB.",
    )
    support_file: Path | None = Field(
        default=None,
        description="TOML file of the support centre's routing and service levels; default: "
        "the shipped one.",
    )
    support_address: str | None = Field(
        default=None,
        description="The support mailbox; replies go to support+T42-<key>@ its domain and are "
        "piped back with `fabriek support inbound`; default: support@ the SMTP_FROM domain.",
    )
    support_attachment_max_mib: float = Field(
        default=10.0, gt=0, le=1024, description="Largest file attached to a ticket, MiB."
    )
    support_attachment_types: str = Field(
        default="text/plain,text/markdown,text/csv,application/json,application/pdf,"
        "image/png,image/jpeg",
        description="Media types a ticket may have attached, comma-separated.",
    )
