"""Service templates: the shipped ones parse, broken ones are refused with every
problem named, parameters are validated (every error), defaults filled, amounts bound."""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from groupcloud.catalog.templates import (
    ParameterError,
    TemplateError,
    parse_template,
    resolve,
)

SHIPPED = sorted(
    f.name
    for f in resources.files("groupcloud.catalog").joinpath("templates").iterdir()
    if f.name.endswith(".yaml")
)


def _shipped(name: str) -> Any:
    text = resources.files("groupcloud.catalog").joinpath("templates", name).read_text()
    return parse_template(text, name)


def test_the_shipped_templates_parse_and_resolve_every_plan_with_defaults() -> None:
    assert SHIPPED == [
        "batch-gpu-job.yaml", "gpu-notebook.yaml", "k8s-namespace.yaml",
        "message-broker.yaml", "postgresql.yaml", "redis.yaml",
    ]  # fmt: skip
    for name in SHIPPED:
        template = _shipped(name)
        assert f"{template.name}.yaml" == name
        params = {"vcpu": 4, "memory_mb": 8192} if template.name == "k8s-namespace" else {}
        for plan in template.plans:
            resolved = resolve(template, plan.name, params)
            assert resolved.parts, (name, plan.name)
            assert all(p.count >= 1 for p in resolved.parts)


def test_parameters_are_validated_defaults_filled_and_amounts_bound() -> None:
    pg = _shipped("postgresql.yaml")
    small = resolve(pg, "small", {})
    assert small.parameters == {"storage_gb": 50, "replicas": 0, "extensions": []}
    assert [(p.name, p.resources, p.count) for p in small.parts] == [
        ("primary", {"VCPU": 2, "MEMORY_MB": 8192, "DISK_GB": 50}, 1)
    ]
    medium = resolve(pg, "medium", {"storage_gb": 100, "replicas": 2})
    assert [(p.name, p.count, p.anti_affinity) for p in medium.parts] == [
        ("primary", 1, True), ("replica", 2, True),
    ]  # fmt: skip
    assert medium.demand == {"DISK_GB": 300, "MEMORY_MB": 49152, "VCPU": 12}
    assert [p.name for p in resolve(pg, "medium", {}).parts] == ["primary"]  # 0 replicas
    with pytest.raises(ParameterError) as bad:
        resolve(pg, "small", {"storage_gb": 5, "replicas": "two", "colour": "red"})
    fields = {e["field"] for e in bad.value.errors}
    assert fields == {"parameters", "replicas", "storage_gb"}  # every error, by path
    assert "5 is less than the minimum of 10" in str(bad.value)
    with pytest.raises(ParameterError) as plan:
        resolve(pg, "huge", {})
    assert plan.value.errors == [{"field": "plan", "message": "one of small, medium, large"}]
    with pytest.raises(ParameterError, match=r"extensions\.0"):
        resolve(pg, "small", {"extensions": ["plpython"]})
    k8s = _shipped("k8s-namespace.yaml")
    with pytest.raises(ParameterError) as missing:
        resolve(k8s, "share", {})
    assert "'vcpu' is a required property" in str(missing.value)


GOOD: dict[str, Any] = {
    "name": "svc",
    "version": "1",
    "description": "d",
    "parameters": {"type": "object", "properties": {"n": {"type": "integer", "default": 1}}},
    "plans": [{"name": "p", "parts": [{"name": "a", "resources": {"VCPU": "{n}"}}]}],
}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": "Bad Name"}, "name", "String should match pattern"),
        ({"plans": []}, "plans", "at least 1 item"),
        ({"parameters": {"type": "array"}}, "parameters", '{"type": "object", ...}'),
        ({"parameters": {"type": "object", "properties": {"n": {"type": "int"}}}},
         "parameters", "not a JSON Schema"),
        ({"plans": [{"name": "p", "parts": [{"name": "a", "resources": {"CPU": 1}}]}]},
         "plans.0.parts.0.resources", "unknown resource class 'CPU'"),
        ({"plans": [{"name": "p", "parts": [{"name": "a", "resources": {"VCPU": "{m}"}}]}]},
         "template", "{m} is not an integer parameter"),
        ({"plans": [{"name": "p", "parts": [{"name": "a", "resources": {"VCPU": "lots"}}]}]},
         "plans.0.parts.0.resources", "a whole number or '{parameter}'"),
        ({"plans": [GOOD["plans"][0], GOOD["plans"][0]]}, "template", "plan names repeat"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_broken_templates_are_refused_naming_the_field(
    change: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(TemplateError) as refused:
        parse_template({**GOOD, **change}, "svc.yaml")
    assert any(e["field"] == field and message in e["message"] for e in refused.value.errors), (
        refused.value.errors
    )
    assert str(refused.value).startswith("svc.yaml: ")


def test_every_problem_is_listed_and_bad_yaml_is_refused() -> None:
    with pytest.raises(TemplateError) as many:
        parse_template({**GOOD, "name": "X", "version": "", "plans": []})
    assert {e["field"] for e in many.value.errors} == {"name", "version", "plans"}
    with pytest.raises(TemplateError, match="yaml"):
        parse_template("name: [unclosed")
    with pytest.raises(TemplateError, match="expected a mapping"):
        parse_template("- a list")
    assert parse_template(GOOD).plan("p") is not None


def test_yaml_aliases_are_refused() -> None:
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nname: svc\n'
    with pytest.raises(TemplateError, match="aliases"):
        parse_template(bomb)
