"""`fabriek sim`: replay a job trace through the production scheduler on a simulated clock.

A local command like `serve`: it needs no server, only the pure scheduler.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from fabriek.cli.output import print_json, print_table
from fabriek.scheduler import Policy, TraceError, load_trace, run_simulation


def sim(
    trace: Annotated[
        Path,
        typer.Option(
            "--trace",
            help="CSV: job_id,submit_time_s,duration_s,num_gpus[,tenant,time_limit_s,gpu_type]",
        ),
    ],
    nodes: Annotated[int, typer.Option("--nodes", min=1, help="nodes in the cluster")],
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", min=1)],
    sites: Annotated[int, typer.Option("--sites", min=1, help="split the nodes over K sites")] = 1,
    policy: Annotated[
        Policy, typer.Option("--policy", help="fifo, backfill or fabriek")
    ] = Policy.FABRIEK,
    overestimate: Annotated[
        float,
        typer.Option(
            "--overestimate", help="time limit = duration × this, where the trace has none"
        ),
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Replay a trace with the scheduler production runs; print the quality metrics."""
    try:
        rows = load_trace(trace)
        result = run_simulation(rows, nodes, gpus_per_node, sites, policy, overestimate)
    except (TraceError, ValueError) as exc:
        print(f"fabriek: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    summary = result.to_dict()
    if as_json:
        print_json(summary)
        return
    shown = [(k, f"{v:,.3f}" if isinstance(v, float) else v) for k, v in summary.items()
             if not isinstance(v, list | dict)]  # fmt: skip
    print_table(f"{policy.value} on {nodes} × {gpus_per_node} GPUs", ["metric", "value"], shown)
    skipped = summary.get("skipped_jobs")
    if isinstance(skipped, list) and skipped:
        print(
            f"{len(skipped)} job(s) skipped: they need more GPUs than the cluster has",
            file=sys.stderr,
        )
