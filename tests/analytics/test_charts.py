"""PNG charts: real PNG files of a plausible size from a real store, with suppressed
months and cells, and the refusal of a backwards month range."""

from __future__ import annotations

import struct
from pathlib import Path

from typer.testing import CliRunner, Result

from groupcloud.analytics.charts import PNG_MAGIC, overlap_png, trend_png
from groupcloud.cli.main import app
from groupcloud.services.analytics.activity import ingest_batch
from tests.analytics.helpers import SECRET, settings_for


def _size(png: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which must come first."""
    assert png[:8] == PNG_MAGIC
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_a_trend_with_a_gap_and_a_heatmap_with_suppressed_cells_render() -> None:
    trend = trend_png(["2026-01", "2026-02", "2026-03"], [100, None, 300],
                      {"won_card": [50, None, 80]}, 400)  # fmt: skip
    assert _size(trend) == (990, 550)  # 9 x 5 inches at 110 dpi
    assert len(trend) > 10_000
    matrix = {"a": {"a": 40, "b": None}, "b": {"a": None, "b": 12}}
    heat = overlap_png("2026-02", ["a", "b"], matrix)
    assert min(_size(heat)) > 300
    assert len(heat) > 10_000


def _mau(data: Path, *args: str) -> Result:
    env = {
        "GROUPCLOUD_DATA_DIR": str(data),
        "GROUPCLOUD_DATABASE_URL": None,
        "GROUPCLOUD_ANALYTICS_SECRET": SECRET,
    }
    return CliRunner().invoke(app, ["mau", "chart", *args], env=env)


def test_the_chart_commands_write_png_files(tmp_path: Path) -> None:
    events = [
        {
            "event_id": f"{month}-{name}-{p}",
            "app": name,
            "person_id": f"CI-{p}",
            "occurred_at": f"{month}-03T09:00:00+09:00",
            "kind": "login",
        }
        for month, persons in (("2026-01", 30), ("2026-03", 45))
        for name in ("won_banking", "won_card")
        for p in range(persons if name == "won_banking" else 5)  # card: 5, suppressed
    ]
    ingest_batch(settings_for(tmp_path), events)
    trend = tmp_path / "trend.png"
    made = _mau(tmp_path, "trend", "--from", "2026-01", "--to", "2026-03", "--out", str(trend))
    assert made.exit_code == 0, made.output
    assert f"wrote {trend}" in made.stdout
    assert _size(trend.read_bytes()) == (990, 550)
    overlap = tmp_path / "overlap.png"
    made = _mau(tmp_path, "overlap", "--month", "2026-03", "--out", str(overlap))
    assert made.exit_code == 0, made.output
    assert len(overlap.read_bytes()) > 10_000
    assert min(_size(overlap.read_bytes())) > 300

    backwards = _mau(tmp_path, "trend", "--from", "2026-03", "--to", "2026-01",
                     "--out", str(tmp_path / "x.png"))  # fmt: skip
    assert backwards.exit_code == 1
    assert "validation_error: the months must run forward" in backwards.stderr
    assert not (tmp_path / "x.png").exists()
