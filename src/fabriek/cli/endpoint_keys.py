"""`fabriek endpoint key create|list|revoke` and `fabriek endpoint usage`: the keys that
call a project's endpoints through the gateway, and what they used."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.endpoint_keys import EndpointKeyDraft, EndpointKeyInfo
from fabriek.domain.errors import InvalidInput
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.core import validated

# Added to `fabriek endpoint` by cli/endpoints.py, as `key ...` and `usage`.
key_app = typer.Typer(help="Endpoint API keys: create, list, revoke.", no_args_is_help=True)

ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="the project (default: your first)")
]


def _project(c: FabriekClient, project: str | None) -> str:
    if project is not None:
        return project
    projects = list(c.identity.whoami()["projects"])
    if not projects:
        raise InvalidInput.on("--project", "you are a member of no project; give --project")
    return str(projects[0])


def _limit(value: int | None, unit: str) -> str:
    return "-" if value is None else f"{value:,} {unit}"


def _rows(keys: list[EndpointKeyInfo]) -> list[list[object]]:
    return [
        [k.id, k.name, k.prefix, ", ".join(k.endpoints) if k.endpoints is not None else "all",
         _limit(k.requests_per_minute, "req/min"), _limit(k.tokens_per_minute, "tokens/min"),
         _limit(k.tokens_per_month, "tokens/month"),
         k.expires_at.strftime("%Y-%m-%d %H:%M") if k.expires_at else "never",
         "revoked" if k.revoked_at else "active"]
        for k in keys
    ]  # fmt: skip


@key_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="a name for the key (who or what uses it)")],
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", "-e", help="an endpoint it may call (repeat); default all"),
    ] = None,
    expires: Annotated[
        datetime | None, typer.Option("--expires", help="when it stops working (UTC)")
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", min=1, help="requests per minute")] = None,
    tpm: Annotated[int | None, typer.Option("--tpm", min=1, help="tokens per minute")] = None,
    monthly: Annotated[
        int | None, typer.Option("--tokens-per-month", min=1, help="tokens per calendar month")
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a key; its secret is shown this once (only its hash is kept)."""
    fields = {"name": name, "endpoints": endpoint or None, "expires_at": expires,
              "requests_per_minute": rpm, "tokens_per_minute": tpm, "tokens_per_month": monthly}  # fmt: skip
    draft = validated(EndpointKeyDraft, {k: v for k, v in fields.items() if v is not None})
    with client() as c:
        made = c.endpoint_keys.create(_project(c, project), draft)
    if as_json:
        print_json(made.model_dump(mode="json"))
        return
    console.print(
        f"Key {made.prefix} ({made.name}) for {made.project}. Shown once, keep it safe:",
        markup=False,
    )
    print(made.key)
    console.print("Use it as an OpenAI API key with base_url <fabriek>/v1.", style="dim")


@key_app.command("list")
def list_keys(
    revoked: Annotated[bool, typer.Option("--revoked", help="revoked keys too")] = False,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The project's keys, their scope, limits and expiry (never their secrets)."""
    with client() as c:
        found = c.endpoint_keys.list_keys(_project(c, project), revoked)
    if as_json:
        print_json([k.model_dump(mode="json") for k in found])
        return
    print_table(
        "Endpoint keys",
        ["id", "name", "prefix", "endpoints", "requests", "tokens", "monthly", "expires", "state"],
        _rows(found),
    )


@key_app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="the key's id, prefix or name")],
    project: ProjectOpt = None,
) -> None:
    """Revoke a key: the gateway refuses it within seconds."""
    with client() as c:
        done = c.endpoint_keys.revoke(_project(c, project), key)
    console.print(f"Key {done.prefix} ({done.name}) revoked.", markup=False)


def usage(
    since: Annotated[str | None, typer.Option("--from", help="first day, YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option("--to", help="last day, YYYY-MM-DD")] = None,
    key: Annotated[str | None, typer.Option("--key", help="one key's id, prefix or name")] = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Requests and tokens per day, endpoint and caller (a key or a member)."""
    first = date.fromisoformat(since) if since else None
    last = date.fromisoformat(until) if until else None
    with client() as c:
        where = _project(c, project)
        rows = c.endpoint_keys.usage(where, first, last, key)
        energy = c.endpoint_keys.energy(where, first, last) if not as_json else []
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    print_table(
        "Endpoint usage (UTC days)",
        ["day", "endpoint", "caller", "requests", "failed", "prompt tokens", "completion tokens"],
        [[r.day.isoformat(), r.endpoint, (r.key_name and f"key {r.key_name}") or r.caller,
          f"{r.requests:,}", f"{r.failed_requests:,}", f"{r.prompt_tokens:,}",
          f"{r.completion_tokens:,}"] for r in rows],
        footer=f"{sum(r.prompt_tokens + r.completion_tokens for r in rows):,} tokens in all",
    )  # fmt: skip
    if energy:
        print_table(
            "Energy of the endpoints' replicas (all callers)",
            ["endpoint", "tokens", "GPU-hours", "kWh (facility)", "kg CO2e",
             "kWh per 1,000 tokens", "g CO2e per 1,000 tokens"],
            [[e.endpoint, f"{e.tokens:,}", f"{e.gpu_hours:,.3f}", f"{e.facility_kwh:,.4f}",
              f"{e.kg_co2e:,.4f}", _per(e.kwh_per_1k_tokens), _per(e.g_co2e_per_1k_tokens)]
             for e in energy],
        )  # fmt: skip


def _per(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
