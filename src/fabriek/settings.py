"""The control plane's settings, typed and described; read from `FABRIEK_*` variables.

Built once by the entry point and passed down explicitly (never read at import time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the server; `docs/configuration.md` lists them (a test keeps it so)."""

    model_config = SettingsConfigDict(env_prefix="FABRIEK_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///.fabriek/fabriek.db",
        description="SQLAlchemy URL of the store: sqlite:///PATH or postgresql+psycopg://...",
    )
    database_pool_size: int = Field(
        default=20, ge=1, le=1000, description="Connections the server keeps to PostgreSQL."
    )
    database_max_overflow: int = Field(
        default=20, ge=0, le=1000, description="Connections it may open beyond the pool's size."
    )
    database_pool_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds a request waits for a free connection; past it: 503, Retry-After.",
    )
    database_statement_timeout_s: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="PostgreSQL's statement_timeout for the server's statements (0: none); "
        "a statement cancelled for it answers 503 with Retry-After.",
    )
    database_lock_timeout_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="PostgreSQL's lock_timeout: seconds a statement waits for a lock (0: no "
        "limit); past it: 503 with Retry-After.",
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
    partners_file: Path | None = Field(
        default=None,
        description="TOML file of the partner factories this one runs jobs for (their "
        "accounts and public keys); default: none.",
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
        description="API processes; one of them (holding the dispatcher's lease) dispatches.",
    )
    log_level: str = Field(default="info", description="Server log level (debug, info, warning).")
    lease_ttl_s: float = Field(
        default=6.0,
        ge=2,
        le=300,
        description="Seconds a server's lease on the dispatcher's (or the housekeeping's) role "
        "lasts; renewed every quarter of it. Another server takes over within about 1.25 times "
        "this after the holder dies (docs/operations.md).",
    )
    housekeeping_interval_s: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds between rounds of notices and e-mail."
    )
    notebook_idle_minutes: float = Field(
        default=60.0,
        ge=0,
        le=10080,
        description="Minutes without activity after which a notebook is stopped (0: never).",
    )
    harvest_interval_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="Seconds between reads of each Slurm site's accounting into the ledger.",
    )
    # The EuroHPC federation platform (a Waldur marketplace): Fabriek as one of its sites.
    federation_enabled: bool = Field(
        default=False,
        description="Take in the platform's orders and report usage back, in the server "
        "that holds the housekeeping's lease (docs/federation.md).",
    )
    federation_api_url: str = Field(
        default="", description="The platform's API, e.g. https://platform.example/ (no /api)."
    )
    federation_api_token: str | None = Field(
        default=None, description="The token of the platform's service-provider account."
    )
    federation_offering_uuid: str = Field(
        default="", description="UUID of Fabriek's offering on the platform."
    )
    federation_interval_s: float = Field(
        default=300.0, gt=0, le=86400, description="Seconds between syncs with the platform."
    )
    federation_actor: str = Field(
        default="federation",
        description="Fabriek user (an admin) the sync acts as: the audit trail names it.",
    )
    federation_unknown: Literal["hold", "create"] = Field(
        default="hold",
        description="An order naming an organisation or person Fabriek does not know: hold "
        "it for an operator, or create them.",
    )
    federation_organisation_kind: str = Field(
        default="university", description="Kind of an organisation the platform creates."
    )
    federation_organisation_province: str = Field(
        default="Utrecht", description="Province of an organisation the platform creates."
    )
    federation_gpu_hours_component: str = Field(
        default="gpu_hours", description="The offering's component for GPU-hours."
    )
    federation_energy_component: str = Field(
        default="energy_kwh", description="The offering's component for energy, kWh."
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
    oidc_entitlement_prefix: str | None = Field(
        default=None,
        description="Group prefix of the entitlements (eduperson_entitlement, AARC-G002) that "
        "make project memberships, e.g. urn:geant:myaccessid.org:group:fabriek: an entitlement "
        "PREFIX:PROJECT[:role=member|pi] adds the person to PROJECT at sign-in, and its absence "
        "removes them again; none: entitlements make no memberships.",
    )
    oidc_entitlement_authority: str | None = Field(
        default=None,
        description="The only group authority (the entitlement's #suffix) believed; none: any.",
    )
    assurance_minimums: str = Field(
        default="",
        description="Least assurance a federated sign-in needs per role or access track, e.g. "
        "'admin=medium+mfa, site-operator=mfa, track:large-scale=mfa': low, medium or high "
        "(REFEDS RAF identity assurance) and/or mfa (REFEDS MFA); a sign-in below the "
        "minimum of a role the person holds is refused, and a token keeps its sign-in's "
        "assurance; empty: no minimum.",
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
    registry: str | None = Field(
        default=None,
        description="The factory's own image registry as sites and users reach it, "
        "host[:port]; image names without a host mean it. None: no registry.",
    )
    registry_insecure: bool = Field(
        default=False,
        description="Reach the registry over plain HTTP (a loopback test registry only).",
    )
    registry_upstreams: str = Field(
        default="",
        description="Other registries jobs may pull from, host[:port], comma-separated; "
        "none by default (sovereignty: nothing from outside unless allowed here).",
    )
    registry_token_s: int = Field(
        default=300,
        ge=30,
        le=86400,
        description="Lifetime of the tokens the registry accepts from Fabriek, seconds.",
    )
    rate_limit_token_per_s: float = Field(
        default=50.0,
        ge=0,
        description="Requests a second one token may make, sustained (0: no limit); 429 "
        "with Retry-After past it.",
    )
    rate_limit_token_burst: int = Field(
        default=500, ge=1, description="Requests one token may make at once after a pause."
    )
    rate_limit_token_writes_per_s: float = Field(
        default=10.0,
        ge=0,
        description="Writes (POST, PUT, PATCH, DELETE: job submissions among them) a second "
        "one token may make, sustained (0: no limit).",
    )
    rate_limit_token_writes_burst: int = Field(
        default=200, ge=1, description="Writes one token may make at once after a pause."
    )
    rate_limit_address_per_s: float = Field(
        default=200.0,
        ge=0,
        description="Requests a second from one client address, whatever its tokens, "
        "sustained (0: no limit).",
    )
    rate_limit_address_burst: int = Field(
        default=2000, ge=1, description="Requests one client address may make at once."
    )
    rate_limit_failed_signins_per_min: float = Field(
        default=10.0,
        ge=0,
        description="Failed sign-ins (a token refused with 401) a minute from one client "
        "address, sustained (0: no limit); past it, tokens not seen to work are refused "
        "unchecked.",
    )
    rate_limit_failed_signins_burst: int = Field(
        default=30, ge=1, description="Failed sign-ins from one client address at once."
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        le=1024**3,
        description="Largest request body the API reads, bytes (413 past it); dataset "
        "uploads, ticket attachments, the gateway and web apps have their own limits.",
    )
