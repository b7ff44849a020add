"""`fabriek sites`: the factory's sites, where they are and what GPUs they hold."""

from __future__ import annotations

from typing import Annotated

import typer

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import print_json, print_table


@app.command()
def sites(
    as_json: JsonFlag = False,
    province: Annotated[str | None, typer.Option(help="only sites in this province")] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type", help="only sites with it")] = None,
    limit: Limit = 100,
) -> None:
    """The factory's sites and their GPUs."""
    with client() as c:
        found = c.sites.list(limit=limit, province=province, gpu_type=gpu_type)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (s.name, s.city, s.province.value, s.engine, s.nodes,
         ", ".join(f"{n}×{t}" for t, n in s.gpus.items()) or "-",
         f"{s.pue:.2f}" if s.pue else "-")
        for s in found.items
    ]  # fmt: skip
    print_table(None, ["Site", "City", "Province", "Engine", "Nodes", "GPUs", "PUE"], rows,
                f"{found.total} site(s)")  # fmt: skip
