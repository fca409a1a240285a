"""``groupcloud sim``: simulations on the placement engine, without a server or database."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from groupcloud.cli.output import JsonFlag, console, errors, fail
from groupcloud.placement.policies import DEFAULT_POLICY, POLICIES
from groupcloud.simulator.pack import PackResult, pack
from groupcloud.simulator.trace import Node, Pod, TraceError, read_nodes, read_pods, trace_dir

__all__ = ["sim_app"]

EXIT_USAGE = 2

sim_app = typer.Typer(
    help="Simulations that drive the placement engine itself (no server, no database).",
    no_args_is_help=True,
)


def _known_policy(name: str) -> str:
    if name not in POLICIES:
        raise typer.BadParameter(f"{name!r} is not one of {', '.join(POLICIES)}")
    return name


@sim_app.command("pack")
def pack_command(
    nodes: Annotated[
        Path | None,
        typer.Option(
            help="Nodes CSV (sn, cpu_milli, memory_mib, gpu, model); default: "
            "openb_node_list_all_node.csv in GROUPCLOUD_TRACE_DIR or "
            "../shared/data/traces/alibaba-openb-2023.",
            show_default=False,
        ),
    ] = None,
    pods: Annotated[
        Path | None,
        typer.Option(
            help="Pods CSV (name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec]); "
            "default: openb_pod_list_default.csv next to the default nodes.",
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        str,
        typer.Option(
            callback=_known_policy,
            help=f"Placement policy: {', '.join(POLICIES)} (default: the server's).",
        ),
    ] = DEFAULT_POLICY,
    seed: Annotated[int, typer.Option(help="Seed of arrivals and tie-breaks.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Fill the empty cluster with tasks drawn from the pod list until their GPU demand
    reaches its GPU capacity (the ATC'23 "Beware of Fragmentation" experiment); report
    the GPU capacity allocated then."""
    folder = trace_dir()
    nodes_csv = nodes or folder / "openb_node_list_all_node.csv"
    pods_csv = pods or folder / "openb_pod_list_default.csv"
    try:
        node_list, pod_list = read_nodes(nodes_csv), read_pods(pods_csv)
        started = time.perf_counter()
        if as_json:
            result = pack(node_list, pod_list, policy, seed=seed)
        else:
            result = _with_progress(node_list, pod_list, policy, seed)
        seconds = time.perf_counter() - started
    except TraceError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if as_json:
        print(json.dumps(result.to_json()), flush=True)
        return
    _summary(result, nodes_csv, pods_csv, len(node_list), len(pod_list), seed, seconds)


def _with_progress(nodes: list[Node], pods: list[Pod], policy: str, seed: int) -> PackResult:
    """``pack`` with a progress bar of the arrived demand on stderr (gone when done)."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, TimeElapsedColumn(), console=errors, transient=True) as bar:
        task = bar.add_task(f"packing with {policy}", total=1.0)
        return pack(
            nodes, pods, policy, seed=seed, progress=lambda done: bar.update(task, completed=done)
        )


def _summary(
    result: PackResult,
    nodes_csv: Path,
    pods_csv: Path,
    nodes: int,
    pods: int,
    seed: int,
    seconds: float,
) -> None:
    table = Table(title=f"sim pack: policy {result.policy}, seed {seed}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    unallocated = result.gpu_capacity - result.gpu_allocated
    rows = [
        ("nodes", f"{nodes} ({nodes_csv})"),
        ("pod list", f"{pods} ({pods_csv})"),
        ("GPU capacity", f"{result.gpu_capacity}"),
        ("GPUs allocated", f"{result.gpu_allocated:.2f} ({100 * result.allocation_ratio:.2f} %)"),
        (
            "GPUs unallocated",
            f"{unallocated:.2f} ({100 * unallocated / result.gpu_capacity:.2f} %)",
        ),
        ("tasks arrived", f"{result.tasks}"),
        ("tasks failed", f"{result.failed_tasks}"),
        ("time", f"{seconds:.1f} s ({result.tasks / max(seconds, 1e-9):.0f} tasks/s)"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    curve = Table(title="GPU capacity as demand arrives", header_style="bold", min_width=40)
    curve.add_column("ARRIVED DEMAND", justify="right")
    curve.add_column("ALLOCATED", justify="right")
    shown = [p for p in result.curve if round(p[0] * 100) % 10 == 0 and p[0] > 0]
    for arrived, allocated in [*shown[:-1], result.curve[-1]]:
        curve.add_row(f"{100 * arrived:.0f} %", f"{100 * allocated:.2f} %")
    console.print(curve)
    errors.print("add --json for the whole curve", style="dim")
