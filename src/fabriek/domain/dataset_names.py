"""How a dataset is named: the name rule, and a dataset as a job names it
(`project/name@version`).

Apart from the datasets' values (`datasets`) because a job's values check the names of the
datasets it reads, on the client too, without loading every dataset shape to do it."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

NAME_MAX_CHARS = 128

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NAME_CHAR = re.compile(r"[A-Za-z0-9._-]")


def name_problem(name: str) -> str | None:
    """What is wrong with a dataset name, in words a person can act on; None when it is fine.

    A name is one file-system-safe word: it appears in URLs, in commands and (later) as a
    file name inside a job, so no path separators, no '..', no control characters.
    """
    if not name:
        return "give a name"
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        return f"may not contain control characters (found U+{ord(control):04X})"
    if "/" in name or "\\" in name:
        return (
            "may not contain a path separator ('/' or '\\'): a dataset name is a name, not a path"
        )
    if ".." in name:
        return "may not contain '..'"
    if len(name) > NAME_MAX_CHARS:
        return f"at most {NAME_MAX_CHARS} characters (this one has {len(name)})"
    if not _NAME.fullmatch(name):
        bad = next((c for c in name if not _NAME_CHAR.fullmatch(c)), name[0])
        return (
            f"use letters a-z and A-Z, digits, '.', '_' and '-', starting with a letter or "
            f"digit (found {bad!r})"
        )
    return None


_REF = re.compile(r"^(?:(?P<project>[^/@]+)/)?(?P<name>[^/@]+)(?:@(?P<version>[0-9]+))?$")


@dataclass(frozen=True, slots=True)
class DatasetRef:
    """A dataset as a job names it; `project` None is the job's own project, `version`
    None the latest."""

    name: str
    project: str | None = None
    version: int | None = None


def parse_dataset_ref(text: str) -> DatasetRef:
    """`name`, `project/name`, `name@3` or `project/name@3`; ValueError with a message a
    person can act on otherwise."""
    found = _REF.match(text.strip())
    if found is None:
        raise ValueError(
            f"dataset {text!r}: write NAME, PROJECT/NAME, NAME@VERSION or PROJECT/NAME@VERSION"
        )
    name = found["name"]
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"dataset {text!r}: {problem}")
    version = int(found["version"]) if found["version"] else None
    if version is not None and version < 1:
        raise ValueError(f"dataset {text!r}: versions are numbered from 1")
    return DatasetRef(name=name, project=found["project"], version=version)
