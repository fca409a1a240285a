"""The placement rules for regulated data (placement.zone_rules): every built-in rule,
their combinations against an oracle written from the issue's text, the verdicts'
rule ids, and the operators' YAML rules (good and broken)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from groupcloud.domain.inventory import ZoneKind
from groupcloud.domain.regulation import RequestFacts, Sensitivity, SystemType, ZoneFacts
from groupcloud.placement.zone_rules import (
    BUILTIN_RULES,
    ZoneRulesError,
    decide,
    parse_rules,
)
from groupcloud.services.common.zone_rules_file import load_zone_rules

D1, D2, D3 = Sensitivity.D1, Sensitivity.D2, Sensitivity.D3
INTERNAL, EXTERNAL_SVC = SystemType.INTERNAL_BUSINESS, SystemType.EXTERNAL_SERVICE
CSA = "cloud_security_assessment"


def ext(name: str, **kw: object) -> ZoneFacts:
    return ZoneFacts(name, ZoneKind.EXTERNAL, **kw)  # type: ignore[arg-type]


ZONES = [
    ZoneFacts("shared", ZoneKind.SHARED),
    ZoneFacts("shared-sep", ZoneKind.SHARED, country="KR", internet_separated=True),
    ZoneFacts("shared-d1", ZoneKind.SHARED, data_classes=frozenset({D1})),
    ZoneFacts("bank-local", ZoneKind.LOCAL, owner_company="bank", internet_separated=True),
    ext("ext-kr-d3", country="KR", certifications=frozenset({CSA}), approved=True,
        approved_for_d3=True),
    ext("ext-kr-sep-d3", country="KR", certifications=frozenset({CSA, "csap"}), approved=True,
        approved_for_d3=True, internet_separated=True),
    ext("ext-kr", country="KR", certifications=frozenset({CSA}), approved=True),
    ext("ext-kr-nocert", country="KR", approved=True, approved_for_d3=True),
    ext("ext-us", country="US", certifications=frozenset({CSA}), approved=True,
        approved_for_d3=True),
    ext("ext-unapproved", country="KR", certifications=frozenset({CSA})),
]  # fmt: skip

APPROVED_ALL = {"shared", "shared-sep", "ext-kr-d3", "ext-kr-sep-d3", "ext-kr", "ext-kr-nocert",
                "ext-us"}  # fmt: skip

D3_PLACES = {"shared", "shared-sep", "ext-kr-d3", "ext-kr-sep-d3"}

ALLOWED = [
    # data class, system type, company -> the zones allowed
    (D1, EXTERNAL_SVC, "bank", APPROVED_ALL | {"shared-d1", "bank-local"}),
    (D1, EXTERNAL_SVC, "card", APPROVED_ALL | {"shared-d1"}),
    (D2, EXTERNAL_SVC, "bank", APPROVED_ALL | {"bank-local"}),
    (D2, EXTERNAL_SVC, "card", APPROVED_ALL),
    (D3, EXTERNAL_SVC, "bank", D3_PLACES | {"bank-local"}),
    (D3, EXTERNAL_SVC, "card", D3_PLACES),
    (D1, INTERNAL, "bank", {"shared-sep", "bank-local", "ext-kr-sep-d3"}),
    (D2, INTERNAL, "card", {"shared-sep", "ext-kr-sep-d3"}),
    (D3, INTERNAL, "bank", {"shared-sep", "bank-local", "ext-kr-sep-d3"}),
    (D3, INTERNAL, "card", {"shared-sep", "ext-kr-sep-d3"}),
]  # fmt: skip


@pytest.mark.parametrize(("data_class", "system_type", "company", "allowed"), ALLOWED)
def test_allowed_zones_by_data_class_system_type_and_company(
    data_class: Sensitivity, system_type: SystemType, company: str, allowed: set[str]
) -> None:
    decision = decide(RequestFacts(company, data_class, system_type), ZONES)
    assert decision.allowed == allowed


SEPARATED = "internal_business_internet_separated"

REMOVED = [
    # data class, system type, company, zone -> the rule ids that removed it
    (D3, EXTERNAL_SVC, "bank", "ext-us", ("d3_private_or_assessed_kr_external",)),
    (D3, EXTERNAL_SVC, "bank", "ext-kr-nocert", ("d3_private_or_assessed_kr_external",)),
    (D3, EXTERNAL_SVC, "bank", "ext-kr", ("d3_private_or_assessed_kr_external",)),
    (D3, EXTERNAL_SVC, "bank", "ext-unapproved", ("d3_private_or_assessed_kr_external",)),
    (D2, EXTERNAL_SVC, "bank", "ext-unapproved", ("d2_private_or_approved_external",)),
    (D1, EXTERNAL_SVC, "bank", "ext-unapproved", ("d1_approved_zone",)),
    (D2, EXTERNAL_SVC, "bank", "shared-d1", ("zone_data_classes",)),
    (D1, EXTERNAL_SVC, "card", "bank-local", ("local_zone_owner",)),
    (D1, INTERNAL, "bank", "shared", ("internal_business_internet_separated",)),
    (D1, INTERNAL, "card", "bank-local", ("local_zone_owner",)),
    (
        D3,
        INTERNAL,
        "bank",
        "ext-us",
        ("d3_private_or_assessed_kr_external", "internal_business_internet_separated"),
    ),
    (D3, INTERNAL, "bank", "shared-d1", ("zone_data_classes", SEPARATED)),
]  # fmt: skip


def test_a_local_zone_lent_to_a_company_serves_it_too() -> None:
    lent = ZoneFacts("bank-local", ZoneKind.LOCAL, owner_company="bank",
                     lent_to=frozenset({"card"}))  # fmt: skip
    for company, allowed in (("bank", True), ("card", True), ("capital", False)):
        verdict = decide(RequestFacts(company, D1, EXTERNAL_SVC), [lent]).verdict("bank-local")
        assert verdict is not None
        assert verdict.allowed is allowed, company
    refused = decide(RequestFacts("capital", D1, EXTERNAL_SVC), [lent]).verdict("bank-local")
    assert refused is not None
    assert "belongs to bank (lent to card), not capital" in refused.reason()


@pytest.mark.parametrize(("data_class", "system_type", "company", "zone", "rules"), REMOVED)
def test_removed_zones_name_the_rules_that_removed_them(
    data_class: Sensitivity,
    system_type: SystemType,
    company: str,
    zone: str,
    rules: tuple[str, ...],
) -> None:
    verdict = decide(RequestFacts(company, data_class, system_type), ZONES).verdict(zone)
    assert verdict is not None
    assert (verdict.allowed, verdict.removed_by) == (False, rules)
    assert all(rule in verdict.reason() for rule in rules)


def test_allowed_zones_name_the_rules_that_allowed_them() -> None:
    decision = decide(RequestFacts("bank", D3, INTERNAL), ZONES)
    verdict = decision.verdict("ext-kr-sep-d3")
    assert verdict is not None
    assert verdict.allowed_by == (
        "zone_data_classes",
        "d3_private_or_assessed_kr_external",
        "internal_business_internet_separated",
    )
    local = decision.verdict("bank-local")
    assert local is not None
    assert local.allowed_by == (
        "zone_data_classes",
        "local_zone_owner",
        "internal_business_internet_separated",
    )
    assert decision.as_data()[0]["zone"] == "bank-local"  # zones in name order


def test_what_a_removed_zone_lacks_is_said_in_words() -> None:
    verdict = decide(RequestFacts("bank", D3), ZONES).verdict("ext-us")
    assert verdict is not None
    assert verdict.unmet["d3_private_or_assessed_kr_external"] == ("country is US, not KR",)
    nocert = decide(RequestFacts("bank", D3), ZONES).verdict("ext-kr-nocert")
    assert nocert is not None
    assert "lacks certification cloud_security_assessment" in nocert.reason()


def test_every_builtin_rule_has_a_stable_unique_id() -> None:
    ids = [r.id for r in BUILTIN_RULES]
    assert ids == [
        "zone_data_classes",
        "local_zone_owner",
        "d1_approved_zone",
        "d2_private_or_approved_external",
        "d3_private_or_assessed_kr_external",
        "internal_business_internet_separated",
    ]


def oracle(request: RequestFacts, zone: ZoneFacts) -> bool:
    """The issue's rules, written out independently of the rule engine."""
    if request.data_class not in zone.data_classes:
        return False
    if zone.kind is ZoneKind.LOCAL and zone.owner_company != request.company:
        return False
    if request.system_type is INTERNAL and not zone.internet_separated:
        return False
    if zone.kind is not ZoneKind.EXTERNAL:
        return True
    if request.data_class is D3:
        return (
            zone.country == "KR"
            and CSA in zone.certifications
            and zone.approved
            and zone.approved_for_d3
        )
    return zone.approved


def every_zone() -> list[ZoneFacts]:
    zones = []
    grid = itertools.product(
        [(ZoneKind.SHARED, None), (ZoneKind.LOCAL, "bank"), (ZoneKind.EXTERNAL, None)],
        ["KR", "US", None],
        [frozenset(), frozenset({CSA}), frozenset({"csap"}), frozenset({CSA, "csap"})],
        [False, True],
        [(False, False), (True, False), (True, True)],
        [frozenset(Sensitivity), frozenset({D1}), frozenset({D2, D3})],
    )
    for i, ((kind, owner), country, certs, separated, (ok, ok3), classes) in enumerate(grid):
        zones.append(
            ZoneFacts(f"z{i:04d}", kind, owner, country, separated, certs, classes, ok, ok3)
        )
    return zones


@pytest.mark.parametrize("company", ["bank", "card"])
@pytest.mark.parametrize("system_type", list(SystemType))
@pytest.mark.parametrize("data_class", list(Sensitivity))
def test_every_combination_of_zone_attributes_agrees_with_the_rules_as_written(
    data_class: Sensitivity, system_type: SystemType, company: str
) -> None:
    zones = every_zone()
    request = RequestFacts(company, data_class, system_type)
    decision = decide(request, zones)
    expected = {z.name for z in zones if oracle(request, z)}
    assert decision.allowed == expected
    assert 0 < len(expected) < len(zones)


# --- operators' rules (YAML) -------------------------------------------------------------

GOOD = """
rules:
  - id: d2_stays_in_korea
    description: D2 data of external services stays in Korea.
    when: {data_class: [D2], zone_kind: [external]}
    require: {country: [KR]}
  - id: d3_csap_too
    when: {data_class: [D3], system_type: [external_service, internal_business]}
    require: {certifications: [csap], kind: [external, shared]}
"""


def test_operator_rules_are_added_after_the_builtin_ones_and_applied(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    rules = load_zone_rules(path)
    assert [r.id for r in rules[: len(BUILTIN_RULES)]] == [r.id for r in BUILTIN_RULES]
    assert [r.id for r in rules[len(BUILTIN_RULES) :]] == ["d2_stays_in_korea", "d3_csap_too"]
    d2 = decide(RequestFacts("bank", D2), ZONES, rules)
    assert d2.allowed == (APPROVED_ALL - {"ext-us"}) | {"bank-local"}
    us = d2.verdict("ext-us")
    assert us is not None
    assert us.removed_by == ("d2_stays_in_korea",)
    d3 = decide(RequestFacts("bank", D3), ZONES, rules)
    assert d3.allowed == {"ext-kr-sep-d3"}
    local = d3.verdict("bank-local")
    assert local is not None
    assert local.removed_by == ("d3_csap_too",)


def test_no_file_means_the_builtin_rules() -> None:
    assert load_zone_rules(None) == BUILTIN_RULES
    assert parse_rules(None) == BUILTIN_RULES
    assert parse_rules({"rules": []}) == BUILTIN_RULES


BROKEN = [
    ("rules:\n  - id: x\n    require: {contry: [KR]}\n", "rules.0.require.contry"),
    ("rules:\n  - id: x\n    require: {country: [Korea]}\n", "not an ISO 3166 alpha-2"),
    ("rules:\n  - id: x\n    when: {data_class: [D4]}\n    require: {}\n", "when.data_class"),
    ("rules:\n  - id: Bad-Id\n    require: {}\n", "rules.0.id"),
    ("rules:\n  - id: x\n", "rules.0.require: Field required"),
    ("rules:\n  - id: local_zone_owner\n    require: {}\n", "'local_zone_owner' is used twice"),
    ("rules:\n  - {id: a, require: {}}\n  - {id: a, require: {}}\n", "'a' is used twice"),
    ("- id: x\n", "document"),
    ("rules: [\n", "not valid YAML"),
    ("rulez: []\n", "rulez"),
    ("rules:\n  - id: x\n    require: {certifications: [CSAP]}\n", "certification 'CSAP'"),
    ("rules:\n  - id: x\n    require: {internet_separated: maybe}\n", "internet_separated"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_broken_rule_files_are_refused_naming_the_fault(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(ZoneRulesError) as caught:
        load_zone_rules(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_missing_rule_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ZoneRulesError, match="cannot be read"):
        load_zone_rules(tmp_path / "missing.yaml")


def test_a_decision_that_removes_no_zone_restricts_nothing() -> None:
    private = [ZoneFacts("shared", ZoneKind.SHARED), ZoneFacts("more", ZoneKind.SHARED)]
    assert decide(RequestFacts("bank"), private).restriction is None
    mixed = decide(RequestFacts("bank"), ZONES)
    assert mixed.restriction == mixed.allowed
