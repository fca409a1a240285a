"""``groupcloud sim``: simulations on the server's own engines, without a server: ``pack``
(the placement engine alone) and ``run`` / ``generate`` (the discrete-event simulator: the
placement and quota engines in memory, no database)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from groupcloud.cli.output import JsonFlag, console, errors, fail
from groupcloud.placement.policies import DEFAULT_POLICY, POLICIES
from groupcloud.simulator.demand import TraceFileError, write_requests
from groupcloud.simulator.experiment import Comparison, compare
from groupcloud.simulator.pack import PackResult, pack
from groupcloud.simulator.report import LABELS, plot, summary
from groupcloud.simulator.scenario import Scenario, ScenarioError, load
from groupcloud.simulator.trace import Node, Pod, TraceError, read_nodes, read_pods, trace_dir

__all__ = ["sim_app"]

EXIT_USAGE = 2

sim_app = typer.Typer(
    help="Simulations that drive the server's own engines (no server needed).",
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


def _scenario(path: Path, seed: int | None) -> Scenario:
    try:
        scenario = load(path)
    except ScenarioError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    return scenario if seed is None else scenario.model_copy(update={"seed": seed})


ScenarioArg = Annotated[
    Path, typer.Argument(help="Scenario YAML (see examples/scenarios/financial-group.yaml).")
]
SeedOption = Annotated[
    int | None, typer.Option(help="Seed of the workload (default: the scenario's).")
]


@sim_app.command("run")
def run_command(
    scenario_file: ScenarioArg,
    report: Annotated[Path, typer.Option(help="Folder for summary.json and the PNG plots.")] = Path(
        "sim-report"
    ),
    seed: SeedOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Simulate separate clouds and the group cloud on the scenario's demand: size both
    to the target wait (a search over the pool size), compare hosts, waits, utilisation
    and reclaims; write summary.json, utilisation.png, queue.png, company_share.png."""
    scenario = _scenario(scenario_file, seed)
    started = time.perf_counter()
    try:
        requests = scenario.requests()
        comparison = _compare_with_progress(scenario, requests)
    except (TraceFileError, ValueError) as exc:
        raise fail(f"{scenario_file}: {exc}", EXIT_USAGE) from None
    seconds = time.perf_counter() - started
    result = summary(comparison, seconds)
    report.mkdir(parents=True, exist_ok=True)
    (report / "summary.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    plots = plot(comparison, report)
    result["files"] = [str(report / "summary.json"), *(str(p) for p in plots)]
    if as_json:
        print(json.dumps(result), flush=True)
        return
    _run_table(comparison, result)
    errors.print(f"wrote {', '.join(result['files'])}", style="dim")


def _compare_with_progress(scenario: Scenario, requests: list[Any]) -> Comparison:
    """``compare`` with a progress bar per run on stderr (each run: its virtual time)."""
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, TimeElapsedColumn(), console=errors, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(label: str, done: float) -> None:
            if label not in tasks:
                for old in tasks.values():
                    bar.update(old, visible=False)
                tasks.clear()
                tasks[label] = bar.add_task(label, total=1.0)
            bar.update(tasks[label], completed=done)

        return compare(scenario, requests, progress)


def _run_table(comparison: Comparison, result: dict[str, Any]) -> None:
    sc = comparison.scenario
    head = result["headline"]
    table = Table(
        title=f"sim run {sc.name}: {result['requests']} requests over {sc.days:g} days, "
        f"seed {sc.seed}, target p95 wait <= {sc.target.p95_wait_min:g} min",
        header_style="bold",
    )
    table.add_column("SETTING")
    for column in ("HOSTS", "ADMITTED", "WAIT P50", "WAIT P95", "VCPU USED", "GPU USED",
                   "RECLAIMS"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, s in result["settings"].items():
        util = s["utilisation"]
        table.add_row(
            LABELS[name],
            f"{s['hosts']} ({', '.join(f'{k} {n}' for k, n in s['hosts_by_group'].items())})"
            if len(s["hosts_by_group"]) <= 2
            else str(s["hosts"]),
            f"{100 * s['admitted_share']:.1f} %",
            f"{s['wait_p50_min']:g} min",
            f"{s['wait_p95_min']:g} min",
            f"{100 * util.get('VCPU', 0):.1f} %",
            f"{100 * util.get('GPU', 0):.1f} %" if "GPU" in util else "-",
            f"{s['reclaims']}",
        )
    console.print(table)
    console.print(
        f"[bold]group cloud: {head['hosts_group']} hosts instead of {head['hosts_separate']} "
        f"({head['fewer_hosts_pct']:g} % fewer)[/bold] for the same demand at the same target; "
        f"{result['runs']} runs, {result['events']} events in {result['seconds']:.1f} s "
        f"({result['events_per_s']} events/s)"
    )


@sim_app.command("generate")
def generate_command(
    scenario_file: ScenarioArg,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Trace file to write: .csv or .ndjson.")
    ] = Path("requests.csv"),
    seed: SeedOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Write the scenario's request trace (generated, or read from its trace file) to a
    CSV or NDJSON file that ``workload.trace`` can replay."""
    scenario = _scenario(scenario_file, seed)
    try:
        n = write_requests(out, scenario.requests())
    except (TraceFileError, ValueError) as exc:
        raise fail(f"{scenario_file}: {exc}", EXIT_USAGE) from None
    if as_json:
        print(json.dumps({"requests": n, "file": str(out), "seed": scenario.seed}), flush=True)
        return
    console.print(f"{n} requests of {scenario.name} (seed {scenario.seed}) written to {out}")
