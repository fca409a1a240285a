"""The placement rules for regulated data: which zones a request may use, and why.

Every rule has a stable id and the same shape: *when* a request (data class, system
type) meets a zone (kind), the zone must meet the rule's *requirements* (country,
certifications, network separation, approvals, ...). A zone is allowed when every rule
that applies to it is met; ``decide`` records, per zone, which rules allowed it and
which removed it, so placement, refusals and ``explain`` give the same answer.

The built-in rules (``BUILTIN_RULES``) are the group's regulation; operators add rules
of their own in the same shape from a YAML file (``parse_rules``; docs/zones.md), never
remove built-in ones. Pure: values in, values out (the file is read by the runtime).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.regulation import (
    COUNTRY,
    RequestFacts,
    Sensitivity,
    SystemType,
    ZoneFacts,
    check_certifications,
)

__all__ = [
    "BUILTIN_RULES",
    "RULE_ID",
    "Requirement",
    "When",
    "ZoneDecision",
    "ZoneRule",
    "ZoneRulesError",
    "ZoneVerdict",
    "decide",
    "parse_rules",
]

RULE_ID = r"^[a-z][a-z0-9_]{0,62}$"


class When(BaseModel):
    """Which requests and zones a rule applies to (a missing key: any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_class: frozenset[Sensitivity] | None = None
    system_type: frozenset[SystemType] | None = None
    zone_kind: frozenset[ZoneKind] | None = None

    def matches(self, request: RequestFacts, zone: ZoneFacts) -> bool:
        return (
            (self.data_class is None or request.data_class in self.data_class)
            and (self.system_type is None or request.system_type in self.system_type)
            and (self.zone_kind is None or zone.kind in self.zone_kind)
        )


class Requirement(BaseModel):
    """What a zone must be for a rule that applies to it (a missing key: no condition)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: frozenset[ZoneKind] | None = None
    country: frozenset[str] | None = None
    certifications: frozenset[str] = frozenset()
    """All of these."""
    internet_separated: bool | None = None
    approved: bool | None = None
    """Approved by the group (a private zone counts as approved)."""
    approved_for_d3: bool | None = None
    owner_is_requester: bool | None = None
    """A local zone's owner is the requesting company, or lends the zone to it."""
    holds_data_class: bool | None = None
    """The zone lists the request's data class among those it may hold."""

    @field_validator("country")
    @classmethod
    def _countries(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        for code in value or ():
            if not COUNTRY.fullmatch(code):
                raise ValueError(f"country {code!r} is not an ISO 3166 alpha-2 code like 'KR'")
        return value

    @field_validator("certifications")
    @classmethod
    def _certifications(cls, value: frozenset[str]) -> frozenset[str]:
        return frozenset(check_certifications(sorted(value)))

    def unmet(self, request: RequestFacts, zone: ZoneFacts) -> list[str]:
        """The requirements ``zone`` fails, in words (empty: met)."""
        out: list[str] = []
        if self.kind is not None and zone.kind not in self.kind:
            out.append(f"kind is {zone.kind.value}, not {_words(self.kind)}")
        if self.country is not None and zone.country not in self.country:
            out.append(f"country is {zone.country or 'unknown'}, not {_words(self.country)}")
        if missing := self.certifications - zone.certifications:
            out.append(f"lacks certification {_words(missing, ' and ')}")
        if self.internet_separated is not None and (
            zone.internet_separated != self.internet_separated
        ):
            out.append("is not internet-separated" if self.internet_separated else "is separated")
        if self.approved is not None and zone.is_approved != self.approved:
            out.append("is not approved by the group" if self.approved else "is approved")
        if self.approved_for_d3 is not None and zone.approved_for_d3 != self.approved_for_d3:
            out.append("is not approved for D3" if self.approved_for_d3 else "is approved for D3")
        if self.owner_is_requester is not None and (
            (zone.owner_company == request.company or request.company in zone.lent_to)
            != self.owner_is_requester
        ):
            lent = f" (lent to {', '.join(sorted(zone.lent_to))})" if zone.lent_to else ""
            out.append(
                f"belongs to {zone.owner_company or 'no company'}{lent}, not {request.company}"
            )
        if self.holds_data_class is not None and (
            (request.data_class in zone.data_classes) != self.holds_data_class
        ):
            out.append(f"does not hold {request.data_class.value} data")
        return out


def _words(values: Iterable[str], sep: str = " or ") -> str:
    return sep.join(sorted(str(v) for v in values))


class ZoneRule(BaseModel):
    """One rule: ``id`` (stable, named in refusals and explain), when it applies, what
    it requires."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=RULE_ID)
    description: str = Field("", max_length=500)
    when: When = When()
    require: Requirement


def _builtin(rule_id: str, description: str, when: dict[str, Any], **require: Any) -> ZoneRule:
    return ZoneRule(
        id=rule_id,
        description=description,
        when=When(**when),
        require=Requirement(**require),
    )


BUILTIN_RULES: tuple[ZoneRule, ...] = (
    _builtin(
        "zone_data_classes",
        "A zone holds only the data classes it is declared for.",
        {},
        holds_data_class=True,
    ),
    _builtin(
        "local_zone_owner",
        "A local zone takes only its owner company's workloads, and those of the companies "
        "it lends the zone to.",
        {"zone_kind": {ZoneKind.LOCAL}},
        owner_is_requester=True,
    ),
    _builtin(
        "d1_approved_zone",
        "D1 (non-important) data: any zone the group approved (private zones are).",
        {"data_class": {Sensitivity.D1}},
        approved=True,
    ),
    _builtin(
        "d2_private_or_approved_external",
        "D2 (important) data: private zones, or external zones the group approved.",
        {"data_class": {Sensitivity.D2}, "zone_kind": {ZoneKind.EXTERNAL}},
        approved=True,
    ),
    _builtin(
        "d3_private_or_assessed_kr_external",
        "D3 (personal credit information, unique identifiers): private zones, or external "
        "zones in Korea that passed the cloud security assessment and are approved for D3.",
        {"data_class": {Sensitivity.D3}, "zone_kind": {ZoneKind.EXTERNAL}},
        country={"KR"},
        certifications={"cloud_security_assessment"},
        approved=True,
        approved_for_d3=True,
    ),
    _builtin(
        "internal_business_internet_separated",
        "Internal business systems run only on internet-separated zones (network separation).",
        {"system_type": {SystemType.INTERNAL_BUSINESS}},
        internet_separated=True,
    ),
)


@dataclass(frozen=True, slots=True)
class ZoneVerdict:
    """One zone's answer: the ids of the rules that applied and were met (``allowed_by``)
    or not (``removed_by``, with what failed in ``unmet``)."""

    zone: str
    allowed_by: tuple[str, ...] = ()
    removed_by: tuple[str, ...] = ()
    unmet: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return not self.removed_by

    def reason(self) -> str:
        """Why the zone was removed, in words (empty when allowed)."""
        return "; ".join(
            f"{r}: zone {self.zone} {', '.join(self.unmet[r])}" for r in self.removed_by
        )


@dataclass(frozen=True, slots=True)
class ZoneDecision:
    """Every zone's verdict for one request, in zone name order."""

    verdicts: tuple[ZoneVerdict, ...]

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(v.zone for v in self.verdicts if v.allowed)

    @property
    def restriction(self) -> frozenset[str] | None:
        """The allowed zones for ``PlacementSpec.zones``: None when the rules allow every
        zone (placement then needs no zone filter)."""
        if all(v.allowed for v in self.verdicts):
            return None
        return self.allowed

    def verdict(self, zone: str) -> ZoneVerdict | None:
        return next((v for v in self.verdicts if v.zone == zone), None)

    def as_data(self) -> list[dict[str, Any]]:
        return [
            {
                "zone": v.zone,
                "allowed": v.allowed,
                "allowed_by": list(v.allowed_by),
                "removed_by": list(v.removed_by),
                "reason": v.reason(),
            }
            for v in self.verdicts
        ]


def decide(
    request: RequestFacts, zones: Iterable[ZoneFacts], rules: Iterable[ZoneRule] = BUILTIN_RULES
) -> ZoneDecision:
    """The verdict of ``rules`` on each of ``zones`` for ``request``."""
    rules = tuple(rules)
    verdicts = []
    for zone in sorted(zones, key=lambda z: z.name):
        allowed_by: list[str] = []
        removed_by: list[str] = []
        unmet: dict[str, tuple[str, ...]] = {}
        for rule in rules:
            if not rule.when.matches(request, zone):
                continue
            failed = rule.require.unmet(request, zone)
            if failed:
                removed_by.append(rule.id)
                unmet[rule.id] = tuple(failed)
            else:
                allowed_by.append(rule.id)
        verdicts.append(ZoneVerdict(zone.name, tuple(allowed_by), tuple(removed_by), unmet))
    return ZoneDecision(tuple(verdicts))


class ZoneRulesError(ValueError):
    """An operator's rules file that cannot be used: what is wrong, and where."""


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[ZoneRule]


def parse_rules(data: object, source: str = "zone rules") -> tuple[ZoneRule, ...]:
    """The built-in rules followed by the operator's, from a loaded YAML document
    (``{"rules": [{"id": ..., "when": {...}, "require": {...}}, ...]}``). Raises
    ``ZoneRulesError`` naming the file, the rule and the field at fault."""
    if data is None:
        return BUILTIN_RULES
    try:
        parsed = _RulesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()
        )
        raise ZoneRulesError(f"{source}: {problems}") from None
    seen = {r.id for r in BUILTIN_RULES}
    for rule in parsed.rules:
        if rule.id in seen:
            raise ZoneRulesError(
                f"{source}: rule id {rule.id!r} is used twice (built-in ids: "
                f"{', '.join(r.id for r in BUILTIN_RULES)})"
            )
        seen.add(rule.id)
    return BUILTIN_RULES + tuple(parsed.rules)
