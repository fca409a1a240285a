"""Small event files and settings for the analytics tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from groupcloud.config import Settings

__all__ = ["HEADER", "SECRET", "settings_for", "write_csv", "write_ndjson"]

SECRET = "test-secret-0123456789-abcdefghijkl"
HEADER = ("event_id", "app", "person_id", "occurred_at", "kind")
Event = Sequence[str]


def settings_for(data_dir: Path, **extra: object) -> Settings:
    given: dict[str, object] = {"analytics_secret": SECRET, **extra}
    return Settings(data_dir=data_dir, database_url=None, **given)  # type: ignore[arg-type]


def write_csv(path: Path, rows: Sequence[Event]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def write_ndjson(path: Path, rows: Sequence[Event]) -> Path:
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(dict(zip(HEADER, row, strict=True))) + "\n")
    return path
