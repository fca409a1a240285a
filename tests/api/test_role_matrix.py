"""Every route of the OpenAPI document, called with every role on its own company's objects
and on another company's: allowed, forbidden (403) or hidden (404), as docs/roles.md says.

The expected answers come from the documented matrix below (``MATRIX``), written out here
rather than read from ``groupcloud.domain.policy``, so that the test checks the code against
the documentation and not against itself. A route added to the API without a line in
``OPS`` fails ``test_every_route_has_a_line``.

Each role gets a world of its own (the demo group plus one object of every kind for bank
and card), so that what one role is allowed to change cannot change another's answers.
Within a world the reads run first, then the writes, then the deletes; another company's
objects before the own ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from groupcloud.domain.tenancy import Role
from groupcloud.schemas.catalog import BindingCreate, ServiceCreate, TemplateAdd
from groupcloud.schemas.compute import AllocationCreate
from groupcloud.schemas.isolation import PeeringBanCreate, PeeringCreate, SecurityRuleCreate
from groupcloud.schemas.network import (
    FloatingIpCreate,
    IpCreate,
    SegmentPoolCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.schemas.providers import ProviderCreate, ProviderKind
from groupcloud.schemas.tenancy import TokenCreate, TokenCreated
from groupcloud.services.analytics import activity
from groupcloud.services.catalog import bindings, instances, templates
from groupcloud.services.common.runtime import Runtime
from groupcloud.services.compute import allocations, hosts
from groupcloud.services.demo.seed import seed_demo
from groupcloud.services.network import ips, peerings, prefixes, security_rules, segments
from groupcloud.services.providers import catalog
from groupcloud.services.tenancy import tokens
from groupcloud.services.tenancy.tokens import SYSTEM
from tests.conftest import open_runtime
from tests.support import DBAAS_SETTINGS, drop_service_databases, host, start_thread_server

ALLOW = "allow"

MATRIX: dict[str, tuple[frozenset[str], str]] = {
    # role: (actions, scope) -- docs/roles.md
    "group-admin": (
        frozenset({"read", "use", "manage", "operate", "audit", "review-access"}),
        "group",
    ),
    "group-auditor": (frozenset({"read", "audit", "review-access"}), "group"),
    "company-admin": (
        frozenset({"read", "use", "manage", "audit", "review-access"}),
        "company",
    ),
    "member": (frozenset({"read", "use", "audit"}), "company"),
    "company-viewer": (frozenset({"read", "audit"}), "company"),
}
OWN, OTHER, GROUP = "own", "other", "group"
"""Targets: the caller's company's objects (bank), another company's (card), the group's
(hosts, zones, supernets, ...: no company)."""


def expected(role: str, action: str, target: str) -> str | int:
    actions, scope = MATRIX[role]
    if action == "public":
        return ALLOW
    if target == OTHER and scope == "company":
        return 404  # another company's objects are not found, as if missing
    if action not in actions:
        return 403
    if target == GROUP and action != "read" and scope == "company":
        return 403
    return ALLOW


Ids = dict[str, Any]
SLOT = re.compile(r"\{(\w+)(?:=(\w+))?\}")
Body = Callable[[Ids], Any]


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    action: str
    targets: tuple[str, ...] = (OTHER, OWN)
    body: Body | None = None
    params: Body | None = None

    @property
    def phase(self) -> int:
        return {"GET": 0, "DELETE": 2}.get(self.method, 1)

    @property
    def template(self) -> str:
        """The route as the OpenAPI document names it: ``{name=host}`` -> ``{name}``."""
        return SLOT.sub(lambda m: "{" + m[1] + "}", self.path)

    def url(self, values: Ids) -> str:
        """The path with the target's ids: ``{company}`` from ``company``, ``{name=host}``
        from ``host``."""
        return SLOT.sub(lambda m: str(values[m[2] or m[1]]), self.path)


_TEMPLATE = (
    "name: new-svc\nversion: '1'\ndescription: d\nplans:\n"
    "  - name: one\n    parts:\n      - name: a\n        resources: {VCPU: 1}\n"
)
C = (OTHER, OWN)
G = (GROUP,)


def _alloc_body(i: Ids) -> Any:
    return {
        "company": i["company"],
        "project": i["project"],
        "resources": {"VCPU": 1, "MEMORY_MB": 512},
    }


OPS: list[Op] = [
    Op("GET", "/healthz", "public", G),
    Op("GET", "/readyz", "public", G),
    Op("GET", "/v1/whoami", "public", G),
    # compute
    Op("POST", "/v1/allocations", "use", C, _alloc_body),
    Op("GET", "/v1/allocations", "read", C, params=lambda i: {"company": i["company"]}),
    Op("GET", "/v1/allocations/{allocation_id}", "read"),
    Op("GET", "/v1/allocations/{allocation_id}/explain", "read"),
    Op("PATCH", "/v1/allocations/{allocation_id}", "use", C, lambda i: {"keep": True}),
    Op(
        "POST",
        "/v1/allocations/{allocation_id}/utilisation",
        "use",
        C,
        lambda i: {"utilisation": 0.5},
    ),
    Op(
        "POST",
        "/v1/utilisation",
        "use",
        C,
        lambda i: {"reports": [{"allocation": i["allocation_id"], "utilisation": 0.5}]},
    ),
    Op("POST", "/v1/allocations/{allocation_id}/release", "use"),
    Op("GET", "/v1/hosts", "read", G),
    Op("GET", "/v1/hosts/{name=host}", "read", G),
    Op("POST", "/v1/hosts", "operate", G, lambda i: _host("new-host")),
    Op("POST", "/v1/hosts/batch", "operate", G, lambda i: {"hosts": [_host("new-batch")]}),
    Op(
        "PUT",
        "/v1/hosts/{name=host}/inventories",
        "operate",
        G,
        lambda i: {"inventories": {"VCPU": {"total": 8}}},
    ),
    Op("POST", "/v1/hosts/{name=host}/drain", "operate", G),
    Op("POST", "/v1/hosts/{name=host}/resume", "operate", G),
    Op("DELETE", "/v1/hosts/{name=host}", "operate", G),
    Op("GET", "/v1/quotas", "read", C, params=lambda i: {"company": i["company"]}),
    Op(
        "PUT",
        "/v1/quotas/{company=bank}/{resource_class}",
        "operate",
        G,
        lambda i: {"nominal": 200},
    ),
    Op("GET", "/v1/usage", "read", C, params=lambda i: {"by": "company", "company": i["company"]}),
    Op("GET", "/v1/events", "audit", C, params=lambda i: {"company": i["company"]}),
    # tenancy
    Op("GET", "/v1/companies", "read", G),
    Op("POST", "/v1/companies", "operate", G, lambda i: {"slug": "newco", "name": "New Co"}),
    Op("GET", "/v1/companies/{company}", "read"),
    Op("PATCH", "/v1/companies/{company=bank}", "operate", G, lambda i: {"fair_weight": 2.0}),
    Op("GET", "/v1/companies/{company}/projects", "read"),
    Op("POST", "/v1/companies/{company}/projects", "manage", C, lambda i: {"slug": "new-project"}),
    Op(
        "PATCH",
        "/v1/companies/{company}/projects/{project}",
        "manage",
        C,
        lambda i: {"default_priority": 600},
    ),
    Op("GET", "/v1/zones", "read", G),
    Op("POST", "/v1/zones", "operate", G, lambda i: {"name": "new-zone"}),
    Op("GET", "/v1/zones/{name=zone}", "read", G),
    Op("PATCH", "/v1/zones/{name=zone}", "operate", G, lambda i: {"internet_separated": True}),
    Op("GET", "/v1/services", "read", C, params=lambda i: {"company": i["company"]}),
    Op("GET", "/v1/services/{service_id}", "read"),
    Op(
        "POST",
        "/v1/services",
        "use",
        C,
        lambda i: {
            "company": i["company"],
            "project": i["project"],
            "template": "redis",
            "plan": "small",
        },
    ),
    Op("PATCH", "/v1/services/{service_id}", "use", C, lambda i: {"parameters": {}}),
    Op("GET", "/v1/services/{service_id=db_service}/bindings", "read"),
    Op("GET", "/v1/services/{service_id=db_service}/bindings/{binding_id}", "read"),
    Op("POST", "/v1/services/{service_id=db_service}/bindings", "use", C, lambda i: {}),
    Op("POST", "/v1/services/{service_id=db_service}/bindings/{binding_id}/rotate", "use"),
    Op("DELETE", "/v1/services/{service_id=db_service}/bindings/{binding_id}", "use"),
    Op("DELETE", "/v1/services/{service_id}", "use"),
    Op("DELETE", "/v1/services/{service_id=db_service}", "use"),
    Op("GET", "/v1/catalog", "read", G),
    Op("GET", "/v1/catalog/{name=template}", "read", G),
    Op("POST", "/v1/catalog/{name=template}/resolve", "read", G, lambda i: {"plan": "small"}),
    Op("POST", "/v1/catalog", "operate", G, lambda i: {"source": _TEMPLATE}),
    Op("DELETE", "/v1/catalog/{name=spare_template}/{version=spare_version}", "operate", G),
    Op("GET", "/v1/providers", "read", G),
    Op("POST", "/v1/providers", "operate", G, lambda i: {"name": "new-cloud", "kind": "simulated"}),
    Op("GET", "/v1/providers/{name=provider}", "read", G),
    Op("PATCH", "/v1/providers/{name=provider}", "operate", G, lambda i: {"description": "x"}),
    Op("DELETE", "/v1/providers/{name=spare_provider}", "operate", G),
    Op("GET", "/v1/offers", "read", G, params=lambda i: {"data_class": "D2", "vcpu": 2}),
    Op("GET", "/v1/tokens", "review-access", C, params=lambda i: {"company": i["company"]}),
    Op(
        "POST",
        "/v1/tokens",
        "manage",
        C,
        lambda i: {"name": "new", "role": "company-viewer", "company": i["company"]},
    ),
    Op("POST", "/v1/tokens", "operate", G, lambda i: {"name": "new", "role": "group-auditor"}),
    Op("DELETE", "/v1/tokens/{token_id}", "manage"),
    Op("DELETE", "/v1/tokens/{token_id=group_token}", "operate", G),
    # networks
    Op("GET", "/v1/networks/supernets", "read", G),
    Op(
        "POST",
        "/v1/networks/supernets",
        "operate",
        G,
        lambda i: {"name": "new-net", "cidr": "192.168.0.0/16"},
    ),
    Op("GET", "/v1/networks/supernets/{name=corp}", "read", G),
    Op("DELETE", "/v1/networks/supernets/{name=spare_supernet}", "operate", G),
    Op("GET", "/v1/networks/vpcs", "read", C, params=lambda i: {"company": i["company"]}),
    Op(
        "POST",
        "/v1/networks/vpcs",
        "manage",
        C,
        lambda i: {"name": "new-vpc", "supernet": "corp", "company": i["company"], "prefixlen": 24},
    ),
    Op("GET", "/v1/networks/vpcs/{company}/{vpc}", "read"),
    Op("DELETE", "/v1/networks/vpcs/{company}/{vpc}", "manage"),
    Op("GET", "/v1/networks/subnets", "read", C, params=lambda i: {"company": i["company"]}),
    Op(
        "POST",
        "/v1/networks/vpcs/{company}/{vpc}/subnets",
        "manage",
        C,
        lambda i: {"name": "new-subnet", "prefixlen": 26},
    ),
    Op("GET", "/v1/networks/subnets/{company}/{subnet}", "read"),
    Op("DELETE", "/v1/networks/subnets/{company}/{subnet}", "manage"),
    Op("GET", "/v1/networks/subnets/{company}/{subnet}/ips", "read"),
    Op("POST", "/v1/networks/subnets/{company}/{subnet}/ips", "use", C, lambda i: {}),
    Op("GET", "/v1/networks/ips/{ip_id}", "read"),
    Op("POST", "/v1/networks/ips/{ip_id}/release", "use"),
    Op("GET", "/v1/networks/floating-ips", "read", C, params=lambda i: {"company": i["company"]}),
    Op(
        "POST",
        "/v1/networks/floating-ips",
        "use",
        C,
        lambda i: {"pool": "internet", "company": i["company"]},
    ),
    Op(
        "PATCH",
        "/v1/networks/floating-ips/{ip_id=fip}",
        "use",
        C,
        lambda i: {"attach_to": i["ip2_id"]},
    ),
    Op("GET", "/v1/networks/segment-pools", "read", G),
    Op(
        "POST",
        "/v1/networks/segment-pools",
        "operate",
        G,
        lambda i: {"name": "new-pool", "kind": "vlan", "first": 3000, "last": 3010},
    ),
    Op("DELETE", "/v1/networks/segment-pools/{name=spare_pool}", "operate", G),
    Op("GET", "/v1/networks/quotas", "read", C, params=lambda i: {"company": i["company"]}),
    Op("PUT", "/v1/networks/quotas/{company=bank}/{kind}", "operate", G, lambda i: {"limit": 20}),
    Op("GET", "/v1/networks/plan/{company}", "read"),
    Op("GET", "/v1/networks/vpcs/{company}/{vpc}/rules", "read"),
    Op(
        "POST",
        "/v1/networks/vpcs/{company}/{vpc}/rules",
        "manage",
        C,
        lambda i: {"direction": "ingress", "protocol": "tcp", "cidr": "10.0.0.0/8"},
    ),
    Op("DELETE", "/v1/networks/rules/{rule_id}", "manage"),
    Op("GET", "/v1/networks/peerings", "read", C, params=lambda i: {"company": i["company"]}),
    Op("POST", "/v1/networks/peerings", "manage", C, lambda i: i["new_peering"]),
    Op("GET", "/v1/networks/peerings/{peering_id}", "read"),
    Op("POST", "/v1/networks/peerings/{peering_id=peer_accept}/accept", "manage"),
    Op("POST", "/v1/networks/peerings/{peering_id=peer_reject}/reject", "manage"),
    Op("DELETE", "/v1/networks/peerings/{peering_id=peer_delete}", "manage"),
    Op("GET", "/v1/networks/peering-bans", "read", G),
    Op(
        "POST",
        "/v1/networks/peering-bans",
        "operate",
        G,
        lambda i: {"kind": "data_class", "side_a": "public", "side_b": "restricted"},
    ),
    Op("DELETE", "/v1/networks/peering-bans/{ban_id}", "operate", G),
    Op(
        "GET",
        "/v1/networks/reachability",
        "read",
        C,
        params=lambda i: {
            "source": i["address"],
            "destination": i["address2"],
            "protocol": "tcp",
            "port": 443,
        },
    ),
    # analytics: the group's app analytics are public to every role; what is a company's
    # own in the scorecard and the capacity plan is filtered (tests below)
    Op(
        "POST",
        "/v1/analytics/events",
        "operate",
        G,
        lambda i: {
            "events": [
                {
                    "event_id": "e1",
                    "app": "won_banking",
                    "person_id": "p1",
                    "occurred_at": "2026-11-02T10:00:00+09:00",
                    "kind": "login",
                }
            ]
        },
    ),
    Op("GET", "/v1/analytics/mau", "public", G, params=lambda i: {"month": "2026-11"}),
    Op(
        "GET",
        "/v1/analytics/sketch",
        "public",
        G,
        params=lambda i: {"first": "2026-11-01", "last": "2026-11-30"},
    ),
    Op("GET", "/v1/analytics/overlap", "public", G, params=lambda i: {"month": "2026-11"}),
    Op(
        "GET",
        "/v1/analytics/trend",
        "public",
        G,
        params=lambda i: {"first": "2026-10", "last": "2026-11"},
    ),
    Op(
        "GET",
        "/v1/analytics/rolling",
        "public",
        G,
        params=lambda i: {"first": "2026-11-01", "last": "2026-11-30"},
    ),
    Op("GET", "/v1/analytics/forecast", "public", G, params=lambda i: {"target": 15_000_000}),
    Op("GET", "/v1/analytics/capacity", "public", G, params=lambda i: {"month": "2026-11"}),
    Op("GET", "/v1/analytics/scorecard", "public", G, params=lambda i: {"month": "2026-11"}),
]


def _host(name: str) -> dict[str, Any]:
    return {"name": name, "inventories": {"VCPU": {"total": 8}}}


@dataclass
class MatrixWorld:
    url: str
    tokens: dict[str, str]
    ids: dict[str, Ids] = field(default_factory=dict)


def _build(rt: Runtime) -> tuple[dict[str, str], dict[str, Ids]]:
    """The demo group plus, for bank (own) and card (other), one object of every kind; a
    token of every role (company roles: of bank)."""
    seed_demo(rt)
    loaded = activity.ingest_batch(
        rt.settings,
        [
            {
                "event_id": f"{app}-{month}-{p}",
                "app": app,
                "person_id": f"person-{p}",
                "occurred_at": f"{month}-05T10:00:00+09:00",
                "kind": "login",
            }
            for month in ("2026-10", "2026-11")
            for app in ("won_banking", "won_card")
            for p in range(10)
        ],
    )
    assert loaded.loaded == 40, loaded
    hosts.add_hosts(rt, SYSTEM, [host("spare-host", vcpu=8, memory=8192)])
    catalog.create_provider(
        rt, SYSTEM, ProviderCreate(name="spare-cloud", kind=ProviderKind.SIMULATED)
    )
    templates.add_template(
        rt, SYSTEM, TemplateAdd(source=_TEMPLATE.replace("new-svc", "spare-svc"))
    )
    prefixes.create_supernet(rt, SYSTEM, SupernetCreate(name="spare", cidr="172.16.0.0/16"))
    segments.create_pool(
        rt, SYSTEM, SegmentPoolCreate(name="spare-pool", kind="vlan", first=2000, last=2010)
    )
    for company in ("bank", "card", "capital", "savings"):
        for extra in ("b1", "b2", "b3"):
            prefixes.create_vpc(
                rt,
                SYSTEM,
                VpcCreate(name=extra, supernet="corp", company=company, prefixlen=24),
            )

    def peer(vpc: str, other: str) -> int:
        return peerings.request_peering(rt, SYSTEM, PeeringCreate(vpc=vpc, peer=other)).id

    def token(name: str, role: Role, company: str | None) -> TokenCreated:
        return tokens.issue_token(rt, SYSTEM, TokenCreate(name=name, role=role, company=company))

    ban_id = peerings.add_ban(
        rt, SYSTEM, PeeringBanCreate(kind="data_class", side_a="internal", side_b="public")
    ).id
    ids: dict[str, Ids] = {}
    projects = {"bank": "mobile-banking", "card": "payments"}
    accept = {"bank": ("card/b1", "bank/b1"), "card": ("capital/b1", "card/b1")}
    reject = {"bank": ("savings/b1", "bank/b2"), "card": ("savings/b2", "card/b2")}
    seen = {"bank": ("bank/main", "card/main"), "card": ("card/main", "capital/main")}
    for target, company in ((OWN, "bank"), (OTHER, "card")):
        alloc = allocations.allocate(
            rt,
            SYSTEM,
            AllocationCreate(company=company, project=projects[company], resources={"VCPU": 1}),
        )
        first = ips.allocate_ip(rt, SYSTEM, company, "app", IpCreate())
        second = ips.allocate_ip(rt, SYSTEM, company, "app", IpCreate())
        floating = ips.allocate_floating_ip(
            rt, SYSTEM, FloatingIpCreate(pool="internet", company=company)
        )
        rule = security_rules.add_rule(
            rt,
            SYSTEM,
            company,
            "main",
            SecurityRuleCreate(direction="egress", protocol="any", cidr="10.0.0.0/8"),
        )
        database = instances.create_service(
            rt,
            SYSTEM,
            ServiceCreate(
                company=company,
                project=projects[company],
                template="postgresql",
                plan="small",
                parameters={"storage_gb": 10},
            ),
        )
        ids[target] = {
            "company": company,
            "vpc": "main",
            "subnet": "app",
            "project": projects[company],
            "allocation_id": alloc.id,
            "ip_id": first.id,
            "address": first.address,
            "address2": second.address,
            "ip2_id": second.id,
            "fip": floating.id,
            "rule_id": rule.id,
            "peering_id": peer(*seen[company]),
            "peer_accept": peer(*accept[company]),
            "peer_reject": peer(*reject[company]),
            "peer_delete": peer(f"{company}/b3", f"{company}/main"),
            "new_peering": {"vpc": f"{company}/b3", "peer": "savings/b3"},
            "token_id": token("spare", Role.MEMBER, company).id,
            "service_id": instances.create_service(
                rt,
                SYSTEM,
                ServiceCreate(
                    company=company, project=projects[company], template="redis", plan="small"
                ),
            ).id,
            "db_service": database.id,
            "binding_id": bindings.bind(rt, SYSTEM, database.id, BindingCreate()).id,
        }
    ids[GROUP] = {
        "host": "spare-host",
        "zone": "shared",
        "provider": "sim",
        "template": "redis",
        "spare_template": "spare-svc",
        "spare_version": "1",
        "spare_provider": "spare-cloud",
        "ban_id": ban_id,
        "group_token": token("spare-auditor", Role.GROUP_AUDITOR, None).id,
        "bank": "bank",
        "corp": "corp",
        "spare_supernet": "spare",
        "spare_pool": "spare-pool",
        "resource_class": "VCPU",
        "kind": "vpcs",
    }
    made = {
        role.value: token(
            role.value,
            role,
            None if role in (Role.GROUP_ADMIN, Role.GROUP_AUDITOR) else "bank",
        ).secret
        for role in Role
    }
    return made, ids


@pytest.fixture(scope="module")
def openapi_ops(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    from groupcloud.api.app import create_app

    directory = tmp_path_factory.mktemp("doc")
    rt = open_runtime(f"sqlite:///{directory / 'doc.db'}", directory)
    try:
        document = create_app(rt).openapi()
    finally:
        rt.close()
    return {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}


BROKER = "/v2/"
"""The Open Service Broker routes answer in the specification's terms (410 for what does
not exist, 412 without its version header): tests/api/test_broker.py checks their roles."""


def test_every_route_has_a_line(openapi_ops: set[tuple[str, str]]) -> None:
    covered = {(op.method, op.template) for op in OPS}
    openapi_ops = {(m, p) for m, p in openapi_ops if not p.startswith(BROKER)}
    assert openapi_ops - covered == set(), "routes without a line in the role matrix"
    assert covered - openapi_ops == set(), "lines for routes the API does not have"


def _requests(ids: dict[str, Ids]) -> Iterator[tuple[Op, str, str, dict[str, Any]]]:
    """(op, target, url path, request kwargs), reads first, deletes last."""
    for op in sorted(OPS, key=lambda o: o.phase):
        for target in op.targets:
            values = {**ids[GROUP], **ids.get(target, ids[OWN])}
            kwargs: dict[str, Any] = {}
            if op.body is not None:
                kwargs["json"] = op.body(values)
            if op.params is not None:
                kwargs["params"] = op.params(values)
            yield op, target, op.url(values), kwargs


def _outcome(response: httpx.Response) -> str | int:
    if response.status_code in (401, 403, 404):
        return response.status_code
    assert response.status_code < 500, response.text
    assert response.status_code != 422 or "validation_error" not in response.text, (
        f"the matrix's own request is malformed: {response.text}"
    )
    return ALLOW


@pytest.mark.slow
@pytest.mark.parametrize("role", list(MATRIX))
def test_each_role_is_allowed_exactly_what_the_matrix_says(
    role: str, sqlite_url: str, tmp_path: Path
) -> None:
    rt = open_runtime(sqlite_url, tmp_path, analytics_secret="s" * 40, ip_quarantine_s=0,
                      **DBAAS_SETTINGS)  # fmt: skip
    try:
        secrets, ids = _build(rt)
        wrong: list[str] = []
        with (
            start_thread_server(rt) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {secrets[role]}"}, timeout=30
            ) as client,
        ):
            for op, target, path, kwargs in _requests(ids):
                got = _outcome(client.request(op.method, path, **kwargs))
                want = expected(role, op.action, target)
                if got != want:
                    wrong.append(f"{op.method} {path} ({op.action}, {target}): {got}, not {want}")
        assert wrong == []
    finally:
        drop_service_databases(rt)
        rt.close()
