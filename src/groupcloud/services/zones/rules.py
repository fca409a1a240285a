"""The placement rules' verdict on the zones for one request, as the claim path, the
scheduler and ``explain`` ask it: the zones' facts come with the process's capacity
index (``IndexCache.zones``), the rules from the runtime (built-in plus the operator's
file), the decision from the pure engine (``placement.zone_rules.decide``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from groupcloud.domain.inventory import ZoneChoice, ZoneKind
from groupcloud.domain.regulation import RequestFacts, Sensitivity, SystemType, ZoneFacts
from groupcloud.errors import ZoneForbidden
from groupcloud.placement.zone_rules import ZoneDecision, decide
from groupcloud.services.common.runtime import Runtime

__all__ = ["check_named_zone", "zone_decision", "zone_kinds", "zones_of_kind", "zones_words"]


def zone_decision(
    rt: Runtime,
    company: str,
    data_class: str,
    system_type: str,
    zones: Iterable[ZoneFacts] | None = None,
) -> ZoneDecision:
    """The rules' verdict on every zone (``zones``: those of the index by default, whose
    decisions are memoised until the zones change)."""
    facts = RequestFacts(company, Sensitivity(data_class), SystemType(system_type))
    if zones is not None:
        return decide(facts, zones, rt.zone_rules)
    current = rt.index.zones()
    memo = rt.index.decisions(current)
    decision = memo.get(facts)
    if decision is None:
        decision = memo[facts] = decide(facts, current, rt.zone_rules)
    return decision


def check_named_zone(decision: ZoneDecision, zone: str | None) -> None:
    """Refuse a request that names a zone the rules remove, naming the rules."""
    if zone is None:
        return
    verdict = decision.verdict(zone)
    if verdict is None or verdict.allowed:
        return
    allowed = sorted(decision.allowed)
    raise ZoneForbidden(
        f"zone {zone!r} is not allowed for this request: {verdict.reason()}; allowed zones: "
        + (", ".join(allowed) or "none"),
        zone=zone,
        rules=list(verdict.removed_by),
        reason=verdict.reason(),
        allowed_zones=allowed,
    )


def zones_words(decision: ZoneDecision) -> str:
    """The zones the rules removed, in one phrase (empty when none was)."""
    removed = [v for v in decision.verdicts if not v.allowed]
    if not removed:
        return ""
    return "the placement rules remove zone(s) " + "; ".join(
        f"{v.zone} ({', '.join(v.removed_by)})" for v in removed
    )


def zone_kinds(rt: Runtime) -> dict[str, ZoneKind]:
    """Each zone's kind, as the process's index knows the zones."""
    return {z.name: z.kind for z in rt.index.zones()}


def zones_of_kind(
    decision: ZoneDecision, kinds: Mapping[str, ZoneKind], choice: str | None
) -> frozenset[str] | None:
    """The zones a request may be placed in by the rules and its ``zone_kind`` (None:
    any): the one restriction the claim path and the scheduler give placement."""
    if choice is None:
        return decision.restriction
    admits = ZoneChoice(choice).admits
    return frozenset(z for z in decision.allowed if z in kinds and admits(kinds[z]))
