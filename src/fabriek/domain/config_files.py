"""The shape every configuration file is checked against before its values are used.

A file's tables are Pydantic models on `FileTable`: a key the model does not name is an
error (a misspelt `peer_reveiw = true` must not load as if it were absent) and values
keep their TOML types (`preemptible = "no"` is not a boolean, and a string never becomes
`true`). Reading the file is `services.config_files`; this module only says what fits.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Strict, ValidationError

# An enum value or a date written as text: strict mode would want the Python object itself,
# which TOML cannot hold, so these fields accept the text and check it against the type.
FromText = Strict(False)

Table = TypeVar("Table", bound="FileTable")


class FileTable(BaseModel):
    """A table of a configuration file: no unknown keys, no coerced values, not changed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def read_table(model: type[Table], data: Any) -> Table:
    """`data` (a parsed file or one of its tables) as `model`; a ValueError in one line
    naming the first wrong key and what is wrong with it."""
    try:
        return model.model_validate(data)
    except ValidationError as bad:
        raise ValueError(describe(bad)) from None


def describe(bad: ValidationError) -> str:
    """The first problem of a failed validation in one line: where in the file, and what. An
    unknown key comes first: a misspelt key is also a missing one, and its own name is the
    better clue."""
    errors = bad.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    where = _path(first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key (misspelt? the keys are in the documentation)"
    if first["type"] == "missing":
        return f"missing '{where}'"
    given = first.get("input")
    return f"{where}: {first['msg'][0].lower()}{first['msg'][1:]}, not {given!r}"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"
