"""The operator's zone rules file (``GROUPCLOUD_ZONE_RULES``), read once when a process
opens its runtime: a broken file stops the start with a message naming what is wrong,
instead of placing regulated data under rules nobody meant."""

from __future__ import annotations

from pathlib import Path

import yaml

from groupcloud.placement.zone_rules import BUILTIN_RULES, ZoneRule, ZoneRulesError, parse_rules

__all__ = ["load_zone_rules"]


def load_zone_rules(path: Path | None) -> tuple[ZoneRule, ...]:
    """The built-in rules plus those of ``path`` (none: the built-in rules only)."""
    if path is None:
        return BUILTIN_RULES
    source = f"GROUPCLOUD_ZONE_RULES={path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ZoneRulesError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ZoneRulesError(f"{source}: not valid YAML ({exc})") from None
    return parse_rules(data, source)
