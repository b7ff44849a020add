"""What any value sent to the API must be, whatever the route: the rules checked at the edge.

The store's id columns are 32-bit (PostgreSQL `integer`), SQLite's integers 64-bit, and
PostgreSQL refuses a NUL in any text; so an id, a count or a string that breaks these could
only reach the store to fail there. Pure functions: the API applies them once, for every
route (`fabriek.api.edge`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import Field

from fabriek.domain.errors import FieldProblem

ID_MAX = 2**31 - 1
"""The largest id or other number a path or query parameter may carry (32-bit columns)."""
ID_MIN = -(2**31)
INT_MAX = 2**63 - 1
"""The largest number a body may carry anywhere (64-bit columns); a field may say less."""
INT_MIN = -(2**63)

# In a path or a query parameter: no control character at all (C0, DEL and C1).
_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# In a body's text (a script, a description): tab, line feed and carriage return are text;
# any other C0 control and DEL are not, and NUL never is.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

CONTROL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""What a name (a path or query parameter, a field such as a job's name) may hold."""


def _describe(char: str) -> str:
    return "a NUL byte" if char == "\x00" else f"the control character U+{ord(char):04X}"


def line_problem(value: str) -> str | None:
    """Why a one-line value (a name, a path segment, a query value) is refused, or None."""
    found = _LINE_CONTROL.search(value)
    if found is None:
        return None
    return f"holds {_describe(found.group())}; control characters are not allowed here"


def text_problem(value: str) -> str | None:
    """Why a text value of a body is refused, or None: tabs and line breaks are fine."""
    found = _TEXT_CONTROL.search(value)
    if found is None:
        return None
    return (
        f"holds {_describe(found.group())}; control characters other than tab, line feed and "
        "carriage return are not allowed"
    )


def id_problem(value: int) -> str | None:
    """Why an integer path or query parameter is out of range, or None."""
    if ID_MIN <= value <= ID_MAX:
        return None
    return f"must be between {ID_MIN} and {ID_MAX}"


def body_problems(value: object, at: str = "") -> Iterator[FieldProblem]:
    """Every string and number of a parsed JSON body the store could not take, with the
    field's dotted path (`environment.PATH`, `command.2`)."""
    if isinstance(value, str):
        if (why := text_problem(value)) is not None:
            yield FieldProblem(at or "body", why)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            yield FieldProblem(at or "body", f"must be between {INT_MIN} and {INT_MAX}")
    elif isinstance(value, dict):
        for key, item in value.items():
            # A key is named as written, its control characters spelled out (\x00).
            shown = _LINE_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(key))
            name = f"{at}.{shown}" if at else shown
            if isinstance(key, str) and (why := line_problem(key)) is not None:
                yield FieldProblem(name, f"the key {why}")
            yield from body_problems(item, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from body_problems(item, f"{at}.{i}" if at else str(i))


def is_id(ref: str) -> bool:
    """Whether a reference that may be an id or a name (`/projects/{ref}`) is an id: ASCII
    digits within the id range. Anything else (`²`, or digits past 2^31) is looked up as a
    name, and so names nothing rather than failing in the store."""
    return ref.isascii() and ref.isdigit() and int(ref) <= ID_MAX


Id = Annotated[int, Field(ge=1, le=ID_MAX)]
"""An id a body refers to (an organisation, a job, an expert): positive, within 32 bits."""
