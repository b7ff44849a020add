"""The CLI's shared printing: user text in a table is shown as given, never read as Rich
markup or emoji codes."""

from __future__ import annotations

import pytest

from fabriek.cli.output import print_table


def test_table_cells_title_and_footer_are_not_rich_markup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [("[bold]data[/]", "[red]maria", 3), ("[/]", "x\\", None), (":smile:", "o", 1)]
    print_table("Datasets of [b]p[/b]", ["NAME", "OWNER", "#"], rows, "2 of [dim]2[/]")
    out = capsys.readouterr().out
    for text in ("[bold]data[/]", "[red]maria", "[/]", "x\\", ":smile:", "Datasets of [b]p[/b]"):
        assert text in out, out
    assert "2 of [dim]2[/]" in out


def test_shortened_columns_keep_the_text_as_given(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(None, ["JOBID", "NAME"], [(1, "[bold]train[/]")], shortened={"NAME"})
    assert "[bold]train[/]" in capsys.readouterr().out
