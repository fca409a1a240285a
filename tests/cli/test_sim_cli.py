"""``groupcloud sim pack``: no server, no database; the last line of --json is the
result object; a table otherwise; bad traces and policies are usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from groupcloud.cli.main import app
from groupcloud.simulator.pack import pack
from groupcloud.simulator.trace import read_nodes, read_pods
from tests.simulator.traces import NODE_COLUMNS, POD_COLUMNS, write_csv


def trace(tmp_path: Path) -> tuple[Path, Path]:
    nodes = write_csv(
        tmp_path / "nodes.csv",
        NODE_COLUMNS,
        [(f"g{i}", 96000, 393216, 8, "G2") for i in range(4)]
        + [(f"t{i}", 104000, 524288, 2, "T4") for i in range(4)]
        + [("c0", 32000, 131072, 0, "")],
    )
    pods = write_csv(
        tmp_path / "pods.csv",
        POD_COLUMNS,
        [("a", 12000, 16384, 1, 1000, ""), ("b", 6000, 12288, 1, 460, ""),
         ("c", 8000, 30517, 0, 0, ""), ("d", 4000, 8192, 1, 810, "T4"),
         ("e", 64000, 262144, 8, 1000, "")],
    )  # fmt: skip
    return nodes, pods


def sim(*args: str) -> Result:
    # No database, no server: whatever these point at is never used.
    env = {"GROUPCLOUD_URL": "http://127.0.0.1:9", "GROUPCLOUD_DATABASE_URL": "sqlite:///"}
    return CliRunner().invoke(app, ["sim", "pack", *args], env=env)


def test_json_is_the_last_line_and_equals_the_engine_s_result(tmp_path: Path) -> None:
    nodes, pods = trace(tmp_path)
    args = ("--nodes", str(nodes), "--pods", str(pods), "--seed", "5")
    for policy in ("best-fit", "fgd-fluid"):
        done = sim(*args, "--policy", policy, "--json")
        assert done.exit_code == 0, (done.stdout, done.stderr)
        data = json.loads(done.stdout.strip().splitlines()[-1])
        expected = pack(read_nodes(nodes), read_pods(pods), policy, seed=5).to_json()
        assert data == json.loads(json.dumps(expected))
        assert data["policy"] == policy
    default = json.loads(sim(*args, "--json").stdout.splitlines()[-1])
    assert default["policy"] == "fgd-fluid"
    assert default == json.loads(sim(*args, "--json").stdout.splitlines()[-1])  # repeats


def test_without_json_a_summary_table_and_the_curve(tmp_path: Path) -> None:
    nodes, pods = trace(tmp_path)
    done = sim("--nodes", str(nodes), "--pods", str(pods), "--policy", "gpu-packing")
    assert done.exit_code == 0, done.stderr
    assert "sim pack: policy gpu-packing, seed 0" in done.stdout
    for label in ("GPU capacity", "GPUs allocated", "GPUs unallocated", "tasks failed"):
        assert label in done.stdout
    assert "ARRIVED DEMAND" in done.stdout


def test_bad_traces_and_unknown_policies_are_usage_errors(tmp_path: Path) -> None:
    nodes, pods = trace(tmp_path)
    missing = sim("--nodes", str(tmp_path / "none.csv"), "--pods", str(pods))
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: cannot read")
    unknown = sim("--nodes", str(nodes), "--pods", str(pods), "--policy", "first-fit")
    assert unknown.exit_code == 2
    assert "is not one of fgd-fluid" in unknown.stderr
