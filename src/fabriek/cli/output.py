"""Printing results: a Rich table for people, JSON for scripts (`--json` on every listing)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

console = Console()


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    footer: str | None = None,
) -> None:
    table = Table(title=title, header_style="bold", show_lines=False)
    for c in columns:
        table.add_column(
            c, justify="right" if c.startswith("#") or c in {"GPUs", "Nodes"} else "left"
        )
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)
    if footer:
        console.print(footer, style="dim")
