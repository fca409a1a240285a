"""``groupcloud sim run`` and ``sim generate``: summary.json and three PNGs in the report
folder, the JSON summary as the last stdout line with --json, usage errors (exit 2)
that name the file and the field for bad scenarios."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.image import imread
from typer.testing import CliRunner, Result

from groupcloud.cli.main import app
from groupcloud.simulator.demand import read_requests
from groupcloud.simulator.scenario import load

PNG = b"\x89PNG\r\n\x1a\n"
TINY = """
name: tiny
seed: 2
start: 2027-01-29T00:00:00+09:00
days: 0.5
hosts:
  - name: cpu
    resources: {VCPU: 32, MEMORY_MB: 131072}
  - name: gpu
    resources: {VCPU: 64, MEMORY_MB: 524288, GPU: 8}
workload: {companies: [bank, card, savings], scale: 0.2}
target: {p95_wait_min: 60}
"""


def sim(*args: str) -> Result:
    env = {"GROUPCLOUD_URL": "http://127.0.0.1:9", "GROUPCLOUD_DATABASE_URL": "sqlite:///"}
    return CliRunner().invoke(app, ["sim", *args], env=env)


def scenario(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_run_writes_the_summary_and_three_pngs(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = sim("run", str(scenario(tmp_path)), "--report", str(out), "--json")
    assert done.exit_code == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert printed["headline"] == written["headline"]
    assert printed["settings"] == written["settings"]
    head = written["headline"]
    assert head["hosts_group"] <= head["hosts_separate"]
    assert set(written["settings"]) == {"separate", "group_same_hosts", "group"}
    assert written["requests"] == sum(written["requests_by_company"].values()) > 0
    for name in ("utilisation.png", "queue.png", "company_share.png"):
        assert (out / name).read_bytes().startswith(PNG), name
        height, width, _ = imread(out / name).shape  # decodes: a whole image
        assert (width, height) == (1000, 600 if name == "utilisation.png" else 400)
    assert printed["files"][0].endswith("summary.json")


def test_run_without_json_prints_the_table_and_the_headline(tmp_path: Path) -> None:
    done = sim("run", str(scenario(tmp_path)), "--report", str(tmp_path / "r"), "--seed", "3")
    assert done.exit_code == 0, done.stderr
    assert "sim run tiny" in done.stdout
    assert "seed 3" in done.stdout
    assert "group cloud, sized" in done.stdout
    assert "% fewer)" in done.stdout


def test_generate_writes_a_trace_that_a_scenario_can_replay(tmp_path: Path) -> None:
    path = scenario(tmp_path)
    trace = tmp_path / "trace.csv"
    done = sim("generate", str(path), "--out", str(trace), "--json")
    assert done.exit_code == 0, done.stderr
    generated = load(path).requests()
    assert json.loads(done.stdout.splitlines()[-1])["requests"] == len(generated)
    assert read_requests(trace) == generated
    ndjson = tmp_path / "trace.ndjson"
    assert sim("generate", str(path), "-o", str(ndjson)).exit_code == 0
    assert read_requests(ndjson) == generated
    replay = scenario(tmp_path, TINY.replace("scale: 0.2}", "trace: trace.csv}"))
    assert load(replay).requests() == generated


def test_bad_scenarios_are_usage_errors_that_name_the_field(tmp_path: Path) -> None:
    broken = sim("run", str(scenario(tmp_path, "name: [unclosed")))
    assert broken.exit_code == 2
    assert "not valid YAML" in broken.stderr
    wrong = TINY.replace("resources: {VCPU: 32, MEMORY_MB: 131072}", "resources: {VCPU: -1}")
    bad_field = sim("run", str(scenario(tmp_path, wrong)))
    assert bad_field.exit_code == 2
    assert "hosts.0" in bad_field.stderr
    assert "positive" in bad_field.stderr
    naive = sim("run", str(scenario(tmp_path, TINY.replace("+09:00", ""))))
    assert naive.exit_code == 2
    assert "start" in naive.stderr
    missing = sim("run", str(tmp_path / "none.yaml"))
    assert missing.exit_code == 2
    assert "none.yaml" in missing.stderr
    (tmp_path / "big.ndjson").write_text(
        '{"arrival_s": 0, "duration_s": 60, "company": "bank", "resources": {"VCPU": 128}}\n',
        encoding="utf-8",
    )
    too_big = TINY.replace("scale: 0.2}", "trace: big.ndjson}")  # fits no host kind
    never_fits = sim("run", str(scenario(tmp_path, too_big)), "--report", str(tmp_path / "x"))
    assert never_fits.exit_code == 2
    assert "no host kind" in never_fits.stderr
