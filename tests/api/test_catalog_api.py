"""The service catalog over HTTP: every role lists and reads the shipped templates,
resolution validates parameters (every error listed) and fills defaults, group admins
add and remove their own templates (refused listing every problem), shipped ones stay."""

from __future__ import annotations

from tests.api.stack import Stack, assert_problem

MINE = """
name: cache-plus
version: "2"
description: An operator's cache.
parameters:
  type: object
  properties:
    nodes: {type: integer, minimum: 1, maximum: 6, default: 2}
plans:
  - name: std
    parts:
      - name: node
        resources: {VCPU: 2, MEMORY_MB: 8192}
        count: "{nodes}"
"""


def test_the_catalog_is_read_by_every_role(sqlite_stack: Stack) -> None:
    listed = sqlite_stack.card.get("/v1/catalog")
    assert listed.status_code == 200, listed.text
    names = [t["name"] for t in listed.json()]
    assert names == ["batch-gpu-job", "gpu-notebook", "k8s-namespace", "message-broker",
                     "postgresql", "redis"]  # fmt: skip
    pg = sqlite_stack.bank.get("/v1/catalog/postgresql").json()
    assert pg["backend"] == "postgresql"
    assert pg["shipped"] is True
    assert [p["name"] for p in pg["plans"]] == ["small", "medium", "large"]
    assert pg["parameters"]["properties"]["storage_gb"]["default"] == 50
    assert_problem(sqlite_stack.bank.get("/v1/catalog/nope"), 404, "not_found")
    assert_problem(sqlite_stack.bank.get("/v1/catalog/redis", params={"version": "9"}),
                   404, "not_found")  # fmt: skip


def test_resolve_validates_fills_defaults_and_lists_every_error(sqlite_stack: Stack) -> None:
    bank = sqlite_stack.bank
    ok = bank.post("/v1/catalog/postgresql/resolve",
                   json={"plan": "medium", "parameters": {"replicas": 2}})  # fmt: skip
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["parameters"] == {"storage_gb": 50, "replicas": 2, "extensions": []}
    assert body["demand"] == {"DISK_GB": 150, "MEMORY_MB": 49152, "VCPU": 12}
    assert [(p["name"], p["count"]) for p in body["parts"]] == [("primary", 1), ("replica", 2)]
    wrong = {"plan": "small", "parameters": {"storage_gb": 1, "replicas": -1}}
    bad = bank.post("/v1/catalog/postgresql/resolve", json=wrong)
    problem = assert_problem(bad, 422, "validation_error")
    assert {e["field"] for e in problem["errors"]} == {"storage_gb", "replicas"}
    plan = assert_problem(bank.post("/v1/catalog/redis/resolve", json={"plan": "xl"}),
                          422, "validation_error")  # fmt: skip
    assert plan["errors"] == [{"field": "plan", "message": "one of small, medium"}]


def test_group_admins_add_and_remove_their_templates(sqlite_stack: Stack) -> None:
    admin, bank = sqlite_stack.admin, sqlite_stack.bank
    assert_problem(bank.post("/v1/catalog", json={"source": MINE}), 403, "forbidden")
    added = admin.post("/v1/catalog", json={"source": MINE})
    assert added.status_code == 201, added.text
    assert (added.json()["name"], added.json()["shipped"]) == ("cache-plus", False)
    assert added.json()["created_by"]
    assert_problem(admin.post("/v1/catalog", json={"source": MINE}), 409, "already_exists")
    newer = admin.post("/v1/catalog", json={"source": MINE.replace('"2"', '"10"')})
    assert newer.status_code == 201, newer.text
    summary = {t["name"]: t for t in bank.get("/v1/catalog").json()}["cache-plus"]
    assert (summary["version"], summary["versions"]) == ("10", ["2", "10"])  # 10 > 2
    broken = admin.post("/v1/catalog", json={"source": "name: X\nversion: ''\nplans: []\n"})
    problem = assert_problem(broken, 422, "validation_error")
    assert {"name", "version", "plans", "description"} <= {e["field"] for e in problem["errors"]}
    shipped = admin.post("/v1/catalog", json={"source": MINE.replace("cache-plus", "redis")
                                                               .replace('"2"', '"7"')})  # fmt: skip
    assert_problem(shipped, 409, "already_exists")
    assert_problem(admin.delete("/v1/catalog/redis/7"), 409, "conflict")
    assert_problem(bank.delete("/v1/catalog/cache-plus/2"), 403, "forbidden")
    assert admin.delete("/v1/catalog/cache-plus/2").status_code == 204
    assert_problem(admin.delete("/v1/catalog/cache-plus/2"), 404, "not_found")
    assert bank.get("/v1/catalog/cache-plus").json()["version"] == "10"
    kinds = [e["kind"] for e in admin.get("/v1/events", params={"subject": "template/cache-plus"})
             .json()["items"]]  # fmt: skip
    assert kinds == ["template.added", "template.added", "template.removed"]


def test_a_service_over_http_is_claimed_whole_and_deleted_whole(sqlite_stack: Stack) -> None:
    bank = sqlite_stack.bank
    broker = {"project": "web", "template": "message-broker", "plan": "standard"}
    problem = assert_problem(bank.post("/v1/services", json=broker), 422, "never_fits")
    assert problem["detail"].startswith("part broker can never fit")  # no disks in this world
    redis = {"project": "web", "template": "redis", "plan": "medium"}
    made = bank.post("/v1/services", json={**redis, "parameters": {"replicas": 1}})
    assert made.status_code == 201, made.text
    service = made.json()
    assert [p["name"] for p in service["parts"]] == ["primary", "replica"]
    assert len({h for p in service["parts"] for h in p["hosts"]}) == 2
    assert bank.get(f"/v1/services/{service['id']}").json() == service
    assert [s["id"] for s in bank.get("/v1/services").json()] == [service["id"]]
    assert_problem(sqlite_stack.card.get(f"/v1/services/{service['id']}"), 404, "not_found")
    assert_problem(sqlite_stack.card.get("/v1/services", params={"company": "bank"}),
                   404, "not_found")  # fmt: skip
    gone = bank.delete(f"/v1/services/{service['id']}", params={"wait": True})
    assert gone.status_code == 200, gone.text
    assert gone.json()["state"] == "gone"
    assert {p["state"] for p in gone.json()["parts"]} == {"released"}
    bad = bank.post("/v1/services", json={**redis, "parameters": {"replicas": 99}})
    assert_problem(bad, 422, "validation_error")
