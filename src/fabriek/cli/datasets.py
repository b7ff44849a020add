"""`fabriek data`: push and pull datasets (streamed, with a progress bar and a SHA-256 check at
the end), list them, grant and revoke other projects' access, remove them, rotate keys."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from fabriek.cli.app import JsonFlag, Limit, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.dataset_names import name_problem
from fabriek.domain.datasets import (
    Classification,
    DatasetDraft,
    DatasetVersion,
    LegalBasis,
    Residency,
    SpecialCategoryCondition,
    human_bytes,
)
from fabriek.domain.errors import InvalidInput
from fabriek.sdk import ApiError, ApiUnreachable
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.core import validated
from fabriek.sdk.transfer import file_sha256

data_app = typer.Typer(
    help="Datasets: push, pull, list, grant, revoke, remove.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

# Progress goes to stderr, so `--json` output stays clean for scripts.
progress_console = Console(stderr=True, emoji=False)

ProjectOpt = Annotated[
    str | None,
    typer.Option("--project", "-p", help="the project owning the dataset (default: found by name)"),
]
NameArg = Annotated[str, typer.Argument(help="the dataset's name")]


@contextmanager
def _bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=progress_console,
        transient=True,
        disable=not progress_console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _first_project(c: FabriekClient) -> str:
    projects = list(c.identity.whoami()["projects"])
    if not projects:
        raise InvalidInput.on("--project", "you are a member of no project; give --project")
    return str(projects[0])


def _owner(c: FabriekClient, name: str, project: str | None) -> str:
    """The project owning the dataset called `name` that the caller sees: `project` when
    given, else the only one (several: the caller must choose)."""
    if project:
        return project
    found = c.datasets.list(limit=1000, name=name).items
    if not found:
        raise InvalidInput.on("NAME", f"no dataset named {name!r} is visible to you")
    owners = sorted({d.project for d in found})
    if len(owners) > 1:
        raise InvalidInput.on(
            "NAME", f"several datasets are named {name!r} (in {', '.join(owners)}); give --project"
        )
    return owners[0]


@data_app.command("push")
def push(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the file to upload")
    ],
    name: Annotated[str | None, typer.Option(help="dataset name (default: the file's)")] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="owning project (default: your first)")
    ] = None,
    classification: Annotated[
        Classification | None, typer.Option(help="of a new dataset (default internal)")
    ] = None,
    residency: Annotated[
        Residency | None, typer.Option(help="where a new dataset may be (default eu)")
    ] = None,
    description: Annotated[str | None, typer.Option(help="what the data is")] = None,
    legal_basis: Annotated[
        LegalBasis | None, typer.Option("--legal-basis", help="GDPR art. 6 (personal data)")
    ] = None,
    special_condition: Annotated[
        SpecialCategoryCondition | None,
        typer.Option("--special-condition", help="GDPR art. 9(2) (special-category data)"),
    ] = None,
    purpose: Annotated[str | None, typer.Option(help="why it is processed (personal data)")] = None,
    licence: Annotated[str | None, typer.Option(help="e.g. CC-BY-4.0")] = None,
    provenance: Annotated[str | None, typer.Option(help="where the data came from")] = None,
    retention_until: Annotated[
        str | None, typer.Option("--retention-until", help="YYYY-MM-DD: when it must be deleted")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Upload FILE as a new version of a dataset, registering the dataset (with the terms
    given) on its first push. The file is streamed; the server keeps it only if the SHA-256
    computed here matches what arrived."""
    dataset = name or file.name
    if (problem := name_problem(dataset)) is not None:
        raise InvalidInput.on("--name", f"{dataset!r}: {problem}")
    terms: dict[str, Any] = {
        "classification": classification, "residency": residency, "description": description,
        "legal_basis": legal_basis, "special_category_condition": special_condition,
        "purpose": purpose, "licence": licence, "provenance": provenance,
        "retention_until": _date(retention_until),
    }  # fmt: skip
    given = {k: v for k, v in terms.items() if v is not None}
    with client() as c:
        owner = project or _first_project(c)
        registered = _register_unless_there(c, owner, dataset, given)
        version = _upload(c, owner, dataset, file, registered)
    if as_json:
        print_json(version)
        return
    console.print(
        f"Pushed {file} as {owner}/{dataset} version {version.number} "
        f"({human_bytes(version.size_bytes)}, SHA-256 {version.sha256})",
        markup=False,
    )


def _register_unless_there(
    c: FabriekClient, owner: str, dataset: str, given: dict[str, Any]
) -> bool:
    """Register the dataset with the terms given unless it exists (whose terms then stay as
    registered, and the user is told so); True when this registered it."""
    try:
        c.datasets.get(owner, dataset)
    except ApiError as exc:
        if exc.status != 404:
            raise
        c.datasets.register(validated(DatasetDraft, {"project": owner, "name": dataset, **given}))
        return True
    if given:
        progress_console.print(
            f"{owner}/{dataset} exists: its terms stay as registered "
            f"({', '.join(sorted(given))} not changed)",
            style="dim",
            markup=False,
        )
    return False


def _upload(
    c: FabriekClient, owner: str, dataset: str, file: Path, registered: bool
) -> DatasetVersion:
    """Checksum the file here, then stream it up as the dataset's next version."""
    size = file.stat().st_size
    try:
        with _bar("checking", size) as advance:
            digest = file_sha256(file, advance)
        with _bar(f"pushing {dataset}", size) as advance:
            return c.datasets.push(owner, dataset, file, sha256=digest, progress=advance)
    except BaseException:
        # A first push that failed leaves no empty dataset behind (where the caller may
        # delete it: a member who is not the principal investigator may not).
        if registered:
            with contextlib.suppress(ApiError, ApiUnreachable):
                c.datasets.delete(owner, dataset)
        raise


def _date(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise InvalidInput.on(
            "--retention-until", f"{value!r} is not a date (YYYY-MM-DD)"
        ) from None


@data_app.command("pull")
def pull(
    name: NameArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="where to write it (default: NAME here)")
    ] = None,
    project: ProjectOpt = None,
    version: Annotated[int | None, typer.Option(min=1, help="default: the latest")] = None,
) -> None:
    """Download a dataset (its latest version by default). It is written to a temporary
    file first and renamed only once its SHA-256 matches what the server declared."""
    dest = output or Path(name)
    if dest.is_dir():
        dest = dest / name
    with client() as c:
        owner = _owner(c, name, project)
        sizes: list[int] = []
        with Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            TransferSpeedColumn(), TimeRemainingColumn(), console=progress_console, transient=True,
            disable=not progress_console.is_terminal,
        ) as progress:  # fmt: skip
            task = progress.add_task(f"pulling {name}", total=None)

            def started(size: int) -> None:
                sizes.append(size)
                progress.update(task, total=size)

            number, digest = c.datasets.pull(
                owner, name, dest, version, lambda n: progress.advance(task, n), started
            )
    size = sizes[0] if sizes else dest.stat().st_size
    console.print(
        f"Pulled {owner}/{name} version {number} to {dest} "
        f"({human_bytes(size)}, SHA-256 {digest} verified)",
        markup=False,
    )


@data_app.command("ls")
def ls(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="only this project's")
    ] = None,
    as_json: JsonFlag = False,
    limit: Limit = 100,
) -> None:
    """The datasets of your projects and those granted to them."""
    with client() as c:
        found = c.datasets.list(limit=limit, project=project)
    if as_json:
        print_json(found.items)
        return
    rows = [
        (d.project, d.name, d.classification.value, d.residency.value,
         d.latest_version or "-", human_bytes(d.size_bytes) if d.size_bytes is not None else "-",
         d.access.value, f"{d.created_at:%Y-%m-%d}")
        for d in found.items
    ]  # fmt: skip
    print_table(
        None,
        ["Project", "Name", "Classification", "Residency", "Version", "Size", "Access", "Since"],
        rows,
        f"{found.total} dataset(s)",
    )


@data_app.command("show")
def show(name: NameArg, project: ProjectOpt = None, as_json: JsonFlag = False) -> None:
    """One dataset: its terms, versions and grants."""
    with client() as c:
        found = c.datasets.get(_owner(c, name, project), name)
    if as_json:
        print_json(found)
        return
    console.print(
        f"[bold]{escape(found.project)}/{escape(found.name)}[/] ({escape(found.organisation)})"
    )
    for label, value in (
        ("classification", found.classification.value), ("residency", found.residency.value),
        ("legal basis", found.legal_basis), ("art. 9(2)", found.special_category_condition),
        ("purpose", found.purpose), ("licence", found.licence), ("provenance", found.provenance),
        ("retention until", found.retention_until), ("access", found.access.value),
        ("granted to", ", ".join(found.grants) or None),
    ):  # fmt: skip
        if value:
            console.print(f"{label}: {value}", markup=False)
    rows = [
        (v.number, human_bytes(v.size_bytes), v.sha256, v.key_version, v.created_by,
         f"{v.created_at:%Y-%m-%d %H:%M}")
        for v in found.versions
    ]  # fmt: skip
    print_table("Versions", ["#", "Size", "SHA-256", "Key version", "By", "At"], rows)


@data_app.command("grant")
def grant(
    name: NameArg,
    grantee: Annotated[str, typer.Argument(help="the project to grant read access")],
    project: ProjectOpt = None,
    cross_org: Annotated[
        bool,
        typer.Option("--cross-org", help="consent to a grant to a project of another organisation"),
    ] = False,
) -> None:
    """Let another project's members read a dataset (its owner's principal investigator)."""
    with client() as c:
        made = c.datasets.grant(_owner(c, name, project), name, grantee, cross_org)
    across = " (another organisation, with your consent)" if made.cross_organisation else ""
    console.print(
        f"Granted {made.project} read access to {made.owner}/{made.dataset}{across}.", markup=False
    )


@data_app.command("revoke")
def revoke(
    name: NameArg,
    grantee: Annotated[str, typer.Argument(help="the project losing read access")],
    project: ProjectOpt = None,
) -> None:
    """Withdraw a project's read access."""
    with client() as c:
        owner = _owner(c, name, project)
        c.datasets.revoke(owner, name, grantee)
    console.print(f"Revoked {grantee}'s access to {owner}/{name}.", markup=False)


@data_app.command("rm")
def rm(
    name: NameArg,
    project: ProjectOpt = None,
    version: Annotated[int | None, typer.Option(min=1, help="only this version")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a dataset (or one version) for good: its keys are destroyed, so no copy of
    its ciphertext can be read again."""
    with client() as c:
        owner = _owner(c, name, project)
        what = f"{owner}/{name}" + (f" version {version}" if version else " and every version")
        if not yes and not typer.confirm(f"Delete {what} for good?", err=True):
            raise typer.Abort()
        c.datasets.delete(owner, name, version)
    console.print(f"Deleted {what}; its keys are destroyed.", markup=False)


@data_app.command("keys")
def keys(as_json: JsonFlag = False) -> None:
    """Key versions of the organisations whose keys you may rotate (never the keys)."""
    with client() as c:
        found = c.datasets.organisation_keys()
    if as_json:
        print_json(found)
        return
    rows = [
        (k.organisation_id, k.organisation, k.version, "current" if k.current else "retired",
         k.data_keys, f"{k.created_at:%Y-%m-%d %H:%M}")
        for k in found
    ]  # fmt: skip
    print_table(None, ["#", "Organisation", "Version", "State", "Data keys", "Created"], rows)


@data_app.command("rotate-key")
def rotate_key(
    organisation_id: Annotated[int, typer.Argument(help="the organisation's number")],
    as_json: JsonFlag = False,
) -> None:
    """Rotate an organisation's key: its data keys are re-wrapped, no data re-encrypted."""
    with client() as c:
        done = c.datasets.rotate_organisation_key(organisation_id)
    if as_json:
        print_json(done)
        return
    console.print(
        f"{done.organisation}: key version {done.from_version or '-'} → {done.to_version}; "
        f"{done.data_keys_rewrapped} data key(s) re-wrapped, no data re-encrypted.",
        markup=False,
    )
