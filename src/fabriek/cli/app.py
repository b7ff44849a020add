"""The `fabriek` command's root: the Typer app every client command registers on, and the
catalogue of where each command lives.

Client commands talk to the server through the SDK only (`fabriek.cli.connection`);
importing this module imports neither the server, nor the SDK, nor any capability's command
module (see `fabriek.cli.catalogue`), so `fabriek --help` starts quickly.
"""

from __future__ import annotations

from typing import Annotated

import typer

from fabriek.cli import catalogue
from fabriek.cli.catalogue import CommandCatalogue

app = typer.Typer(
    name="fabriek",
    help="Fabriek: the control plane of a sovereign AI factory.",
    cls=CommandCatalogue,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalogue.serve_from(app)


@app.callback()
def root() -> None:
    """Fabriek: the control plane of a sovereign AI factory."""
    # A callback makes the root a group even before any command module has been imported.


JsonFlag = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=1000, help="rows to show")]


# The client commands, in the order `fabriek --help` lists them: name, module, summary.
for _name, _module, _summary in (
    ("login", "identity", "Sign in: check a token with the server and store it for later."),
    ("whoami", "identity", "Who you are signed in as, your roles and projects."),
    ("sites", "sites", "The factory's sites and their GPUs; `agent-token`, `agent` below."),
    ("orgs", "identity", "Organisations the factory serves."),
    ("projects", "identity", "Projects you can see, and their members."),
    ("run", "jobs", "Run a command as a job: `fabriek run --gpus 2 -- python train.py`."),
    ("submit", "jobs", "Submit a batch script, as `sbatch` does."),
    ("jobs", "jobs", "The jobs you can see that wait or run, like `squeue`; `--all` for all."),
    ("job", "jobs", "One job in full, with its history."),
    ("logs", "jobs", "A job's output and errors; `-f` follows it until the job ends."),
    ("cancel", "jobs", "Cancel jobs, as `scancel` does."),
    ("notebook", "notebook", "Start JupyterLab as a job and open it through Fabriek."),
    ("data", "datasets", "Datasets: push, pull, list, grant, revoke, remove."),
    ("endpoint", "endpoints", "Model endpoints: create, list, show, update, delete."),
    ("tracks", "access.proposals", "The access tracks: who may apply, how much, how fast."),
    ("calls", "access.proposals", "Calls for proposals; `new` opens one (access team)."),
    ("proposals", "access.proposals", "Proposals: new, show, submit, list; check, decide."),
    ("reviews", "access.proposals", "The reviews you are assigned; `submit` sends yours."),
    ("allocations", "access.allocations", "GPU-hour allocations of your projects."),
    ("budget", "access.allocations", "What your projects may still spend, in GPU-hours."),
    ("final-report", "access.proposals", "File an allocation's final report (the PI)."),
    ("usage", "usage", "What your projects used: GPU-hours, energy, carbon, water, heat."),
    ("models", "ai_act.models", "AI models under the EU AI Act: registry, ledger, documents."),
    ("ai-systems", "ai_act.systems", "AI systems of your projects and their AI Act risk class."),
    ("classify", "ai_act.systems", "Classify an AI system under the EU AI Act."),
    ("sandbox", "ai_act.sandboxes", "AI regulatory sandboxes and their documents."),
    ("support", "support.tickets", "Support tickets: ask your AI hub or the central desk."),
    ("experts", "support.expertise", "Experts of the AI hubs' network, requests for expertise."),
    ("kb", "support.knowledge", "The knowledge base: search and read articles."),
    ("notifications", "notifications", "Your notifications; `read` and `settings` below."),
    ("audit", "audit", "The audit trail, newest first; `verify` and `head` below."),
    ("suspend", "suspensions", "Suspend a user, project or allocation (admins)."),
    ("resume", "suspensions", "Lift a suspension (admins)."),
    ("terms", "terms", "Terms of use: what you accepted; `show`, `accept`, `publish`."),
    ("ssh-key", "ssh", "Your SSH public keys for the login nodes: `add`, `list`, `remove`."),
    ("ssh", "ssh", "SSH access: `fabriek ssh cert` signs your key for the login nodes."),
    ("account", "accounts", "Your Unix account on every site: username, UID, groups."),
):
    catalogue.add(_name, f"fabriek.cli.{_module}", _summary)
