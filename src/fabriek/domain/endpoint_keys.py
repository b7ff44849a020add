"""Endpoint API keys and endpoint usage as the API and the CLI show them."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from fabriek.domain.inputs import ID_MAX


class EndpointKeyDraft(BaseModel):
    """A key to create: its name, the endpoints it may call (None: all of the project's),
    when it expires and its limits (None: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    endpoints: list[str] | None = None
    expires_at: datetime | None = None
    requests_per_minute: int | None = Field(default=None, ge=1, le=ID_MAX)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=ID_MAX)
    tokens_per_month: int | None = Field(default=None, ge=1)


class EndpointKeyInfo(BaseModel):
    """A key as listed (never its secret)."""

    id: int
    project: str
    name: str
    prefix: str
    endpoints: list[str] | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    tokens_per_month: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewEndpointKey(EndpointKeyInfo):
    """A key just created: `key` is shown this once and stored only hashed."""

    key: str


class EndpointUsage(BaseModel):
    """Usage of one endpoint by one caller on one day (UTC)."""

    day: date
    endpoint: str
    caller: str
    key_id: int | None
    key_name: str | None
    requests: int
    failed_requests: int
    prompt_tokens: int
    completion_tokens: int


class EndpointEnergy(BaseModel):
    """An endpoint's replicas' energy and carbon (from the energy ledger's records of their
    jobs) against the tokens it served, in a period."""

    endpoint: str
    model: str
    tokens: int
    gpu_hours: float
    it_kwh: float
    facility_kwh: float
    kg_co2e: float
    kwh_without_intensity: float = Field(description="energy of hours with no grid intensity")
    kwh_per_1k_tokens: float | None = Field(description="facility kWh per 1,000 tokens")
    g_co2e_per_1k_tokens: float | None = Field(description="location-based g CO2e per 1,000")
