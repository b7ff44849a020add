"""Printing results: a Rich table for people, JSON for scripts (`--json` on every listing)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from fabriek.sdk.core import is_model

# No emoji codes: Fabriek's own texts use none, and a name such as `:smile:` is a name.
console = Console(emoji=False)


def to_jsonable(value: Any) -> Any:
    if is_model(value):
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
    shortened: Collection[str] = (),
) -> None:
    """Rows as a table: on a terminal as wide as the terminal, the `shortened` columns cut
    with an ellipsis so each row stays one line; into a pipe or file at full width, so no
    value is cut or wrapped at some assumed 80 columns. Text is shown as given: a job named
    `[red]x` or `[/]` is that name, not Rich markup that recolours or breaks the table."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    full = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    widths: list[int | None] = [None] * len(columns)
    if console.is_terminal and shortened:
        # Rich would squeeze every column alike, ids and states too: give the others their
        # full width and share what is left of the line among the shortened ones.
        kept = sum(w for w, c in zip(full, columns, strict=True) if c not in shortened)
        left = console.width - kept - (3 * len(columns) + 1)
        wanted = sum(w for w, c in zip(full, columns, strict=True) if c in shortened)
        for i, c in enumerate(columns):
            if c in shortened and wanted > left:
                widths[i] = max(len(c), left * full[i] // max(wanted, 1))
    table = Table(
        title=None if title is None else escape(title), header_style="bold", show_lines=False
    )
    for i, c in enumerate(columns):
        table.add_column(
            c,
            justify="right" if c.startswith("#") or c in {"GPUs", "Nodes"} else "left",
            no_wrap=c in shortened,
            overflow="ellipsis" if c in shortened else "fold",
            max_width=widths[i],
        )
    for row in cells:
        # Escaped, not Text: a plain cell keeps Rich's highlighting (numbers, dates) as before.
        table.add_row(*(escape(c) for c in row))
    if console.is_terminal:
        console.print(table)
    else:
        natural = Measurement.get(console, console.options.update_width(10_000), table).maximum
        Console(width=max(console.width, natural), emoji=False).print(table)
    if footer:
        console.print(escape(footer), style="dim")
