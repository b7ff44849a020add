"""`fabriek endpoint`: serve a model behind Fabriek's OpenAI-compatible gateway.

`create` starts the endpoint's first replicas as jobs of the project; `update --model` rolls
a new model version out replica by replica; `--min-replicas 0` lets an idle endpoint give
its GPUs back, and the next request wakes it.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from fabriek.cli import endpoint_keys
from fabriek.cli.app import JsonFlag, app
from fabriek.cli.connection import client
from fabriek.cli.output import console, print_json, print_table
from fabriek.domain.endpoints import Endpoint, EndpointChange, EndpointDraft
from fabriek.domain.errors import InvalidInput
from fabriek.sdk.client import FabriekClient
from fabriek.sdk.core import validated

endpoint_app = typer.Typer(
    help="Model endpoints: create, list, show, update, delete.", no_args_is_help=True
)
app.add_typer(endpoint_app, name="endpoint")

ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="the project (default: your first)")
]
NameArg = Annotated[str, typer.Argument(help="the endpoint's name in its project")]


def _project(c: FabriekClient, project: str | None) -> str:
    if project is not None:
        return project
    projects = list(c.identity.whoami()["projects"])
    if not projects:
        raise InvalidInput.on("--project", "you are a member of no project; give --project")
    return str(projects[0])


def _replicas(bounds: str | None, low: int | None) -> tuple[int | None, int | None]:
    """`--replicas N` or `N..M` (min..max), with `--min-replicas` winning for the minimum."""
    if bounds is None:
        return low, None
    first, dots, last = bounds.partition("..")
    if not first.isdigit() or (dots and not last.isdigit()):
        raise InvalidInput.on("--replicas", "write N or MIN..MAX, e.g. 1..4")
    top = int(last) if dots else int(first)
    return (low if low is not None else int(first)), top


def _show(endpoint: Endpoint) -> None:
    console.print(
        f"[bold]{escape(endpoint.project)}/{escape(endpoint.name)}[/bold]: {endpoint.state}, serves "
        f"{escape(endpoint.model)}" + (f" (registry version {endpoint.model_version_id})"
                               if endpoint.model_version_id else "")
    )  # fmt: skip
    console.print(
        f"replicas {endpoint.min_replicas}..{endpoint.max_replicas}, {endpoint.gpus} GPU(s) "
        f"each, idle after {endpoint.idle_s} s; {endpoint.healthy_replicas} healthy",
        markup=False,
    )
    if endpoint.replicas:
        print_table(
            None,
            ["replica", "job", "state", "model", "reason"],
            [[r.id, r.job_id, r.state, r.model, r.reason or ""] for r in endpoint.replicas],
        )


@endpoint_app.command("create")
def create(
    name: NameArg,
    model: Annotated[
        str, typer.Option("--model", help="MODEL:VERSION from the model registry, or a dataset")
    ],
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="GPUs per replica")] = 1,
    replicas: Annotated[
        str | None, typer.Option("--replicas", help="replicas: N, or MIN..MAX to autoscale")
    ] = None,
    min_replicas: Annotated[
        int | None, typer.Option("--min-replicas", min=0, help="0: scale to zero when idle")
    ] = None,
    idle: Annotated[
        int | None, typer.Option("--idle", help="seconds without a request before scaling to 0")
    ] = None,
    image: Annotated[str | None, typer.Option("--image", help="the server's image")] = None,
    gpu_type: Annotated[str | None, typer.Option("--gpu-type")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an endpoint: its first replicas start as jobs of the project."""
    low, high = _replicas(replicas, min_replicas)
    fields: dict[str, object] = {"name": name, "model": model, "gpus": gpus}
    extra = {"min_replicas": low, "max_replicas": high, "idle_s": idle, "image": image,
             "gpu_type": gpu_type, "site": site}  # fmt: skip
    fields.update({k: v for k, v in extra.items() if v is not None})
    draft = validated(EndpointDraft, fields)
    with client() as c:
        made = c.endpoints.create(_project(c, project), draft)
    if as_json:
        print_json(made.model_dump(mode="json"))
    else:
        _show(made)


@endpoint_app.command("list")
def list_endpoints(project: ProjectOpt = None, as_json: JsonFlag = False) -> None:
    """The project's endpoints, their replicas and state."""
    with client() as c:
        found = c.endpoints.list(_project(c, project))
    if as_json:
        print_json([e.model_dump(mode="json") for e in found])
        return
    print_table(
        "Endpoints",
        ["name", "model", "state", "healthy", "replicas", "GPUs"],
        [[e.name, e.model, e.state, e.healthy_replicas, f"{e.min_replicas}..{e.max_replicas}",
          e.gpus] for e in found],
    )  # fmt: skip


@endpoint_app.command("show")
def show(name: NameArg, project: ProjectOpt = None, as_json: JsonFlag = False) -> None:
    """One endpoint with its replicas and the model version that answers."""
    with client() as c:
        found = c.endpoints.get(_project(c, project), name)
    if as_json:
        print_json(found.model_dump(mode="json"))
    else:
        _show(found)


@endpoint_app.command("update")
def update(
    name: NameArg,
    model: Annotated[
        str | None, typer.Option("--model", help="a new model version: rolled out")
    ] = None,
    replicas: Annotated[str | None, typer.Option("--replicas", help="N or MIN..MAX")] = None,
    min_replicas: Annotated[int | None, typer.Option("--min-replicas", min=0)] = None,
    idle: Annotated[int | None, typer.Option("--idle", help="idle seconds before zero")] = None,
    project: ProjectOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an endpoint: a new model version rolls out replica by replica."""
    low, high = _replicas(replicas, min_replicas)
    fields = {"model": model, "min_replicas": low, "max_replicas": high, "idle_s": idle}
    change = validated(EndpointChange, {k: v for k, v in fields.items() if v is not None})
    with client() as c:
        changed = c.endpoints.update(_project(c, project), name, change)
    if as_json:
        print_json(changed.model_dump(mode="json"))
    else:
        _show(changed)


@endpoint_app.command("delete")
def delete(name: NameArg, project: ProjectOpt = None) -> None:
    """Delete an endpoint: its replicas drain, then their jobs end."""
    with client() as c:
        where = _project(c, project)
        c.endpoints.delete(where, name)
    console.print(f"Endpoint {where}/{name} deleted; its replicas drain and end.", markup=False)


endpoint_app.add_typer(endpoint_keys.key_app, name="key")
endpoint_app.command("usage")(endpoint_keys.usage)
