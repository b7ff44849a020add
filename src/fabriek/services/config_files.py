"""Reading a configuration file: the one shipped in `fabriek/config/`, or an operator's own.

Every such file (access tracks, support routing, AI Act rules, ...) is read the same way,
and a problem with it is one line saying which file and what is wrong. `parse` checks the
data against the file's model (`domain.config_files.FileTable`: no unknown keys, no coerced
values) before it builds anything from it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from fabriek.domain.errors import InvalidInput

T = TypeVar("T")


def load_config_file(
    path: Path | None,
    shipped: str,
    what: str,
    parse: Callable[[dict[str, Any]], T],
    package: str = "fabriek.config",
) -> T:
    """`parse` of the TOML at `path`, or of the shipped file named `shipped` (in `package`,
    `fabriek/config/` unless said) when `path` is None. InvalidInput names the file (`what`
    says which kind) and the fault."""
    try:
        # TOML is UTF-8 by its specification, whatever the machine's locale says.
        if path is None:
            text = resources.files(package).joinpath(shipped).read_text(encoding="utf-8")
            where = f"the shipped {shipped}"
        else:
            text = Path(path).read_text(encoding="utf-8")
            where = str(path)
    except OSError as missing:
        raise InvalidInput(f"cannot read the {what} file {path}: {missing.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise InvalidInput(f"{where} is not valid TOML: {bad}") from None
    try:
        return parse(data)
    except ValueError as bad:
        raise InvalidInput(f"{where}: {bad}") from None
