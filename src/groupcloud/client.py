"""A small typed Python client of the groupcloud API (httpx); the CLI is built on it.

    from groupcloud.client import Client
    with Client("http://127.0.0.1:8080", token) as gc:
        alloc = gc.allocate(AllocationCreate(project="web", resources={"VCPU": 2}))
        gc.release(alloc.id)

Every refusal raises ``ApiError`` carrying the problem document's stable ``code``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from groupcloud.domain.allocation import AllocationState
from groupcloud.domain.inventory import HostState
from groupcloud.domain.isolation import Direction, PeeringState, Protocol
from groupcloud.schemas.audit import Event
from groupcloud.schemas.base import Page
from groupcloud.schemas.catalog import (
    Binding,
    BindingCreate,
    ResolutionOut,
    ResolveRequest,
    ServiceCreate,
    ServiceInstance,
    ServiceUpdate,
    TemplateAdd,
    TemplateOut,
    TemplateSummary,
)
from groupcloud.schemas.compute import (
    Allocation,
    AllocationCreate,
    AllocationUpdate,
    Explanation,
    Host,
    HostCreate,
    InventoryIn,
    Quota,
    QuotaSet,
    UsageLine,
    UtilisationReport,
    UtilisationReports,
)
from groupcloud.schemas.isolation import (
    Peering,
    PeeringBan,
    PeeringBanCreate,
    PeeringBanCreated,
    PeeringCreate,
    Reachability,
    SecurityRule,
    SecurityRuleCreate,
)
from groupcloud.schemas.network import (
    AddressPlan,
    FloatingIpCreate,
    FloatingIpUpdate,
    IpAddress,
    IpCreate,
    NetQuota,
    NetQuotaSet,
    NetworkPrefix,
    SegmentPool,
    SegmentPoolCreate,
    SubnetCreate,
    SupernetCreate,
    VpcCreate,
)
from groupcloud.schemas.providers import Offers, ProviderCreate, ProviderOut, ProviderUpdate
from groupcloud.schemas.tenancy import (
    Company,
    CompanyCreate,
    CompanyUpdate,
    Project,
    ProjectCreate,
    ProjectUpdate,
    Token,
    TokenCreate,
    TokenCreated,
    Whoami,
)
from groupcloud.schemas.zones import Zone, ZoneCreate, ZoneUpdate

__all__ = ["ApiError", "Client", "ConnectionFailed"]

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """The API refused a request: ``status``, stable ``code`` and the problem document."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code: str = str(problem.get("code", f"http_{status}"))
        self.detail: str = str(problem.get("detail") or problem.get("title") or "")
        super().__init__(f"{self.code}: {self.detail}")


class ConnectionFailed(Exception):
    """The API could not be reached at all."""


class Client:
    """Synchronous client; one instance keeps one connection pool."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """One call; the decoded JSON body, or ApiError / ConnectionFailed."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach groupcloud at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            if not isinstance(problem, dict):
                problem = {"detail": str(problem)}
            raise ApiError(response.status_code, problem)
        return response.json() if response.content else None

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        return model.model_validate(self.request("GET", path, params=params))

    def _page(self, model: type[M], path: str, **params: Any) -> Page[M]:
        return Page[model].model_validate(self.request("GET", path, params=params))  # type: ignore[valid-type]

    def _list(self, model: type[M], path: str, **params: Any) -> list[M]:
        return TypeAdapter(list[model]).validate_python(  # type: ignore[valid-type]
            self.request("GET", path, params=params)
        )

    def _send(
        self,
        model: type[M],
        method: str,
        path: str,
        body: BaseModel | None = None,
        idempotency_key: str | None = None,
    ) -> M:
        payload = body.model_dump(mode="json", exclude_unset=True) if body is not None else None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return model.model_validate(self.request(method, path, json=payload, headers=headers))

    def pages(self, fetch: Any, **params: Any) -> Iterator[Any]:
        """Every item of a paginated list: ``for h in gc.pages(gc.hosts, zone="shared")``."""
        cursor = None
        while True:
            page = fetch(**params, cursor=cursor)
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll /readyz until the server answers (for scripts that start one)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.request("GET", "/readyz")
                return
            except (ConnectionFailed, ApiError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # --- tenancy --------------------------------------------------------------------------

    def whoami(self) -> Whoami:
        return self._get(Whoami, "/v1/whoami")

    def companies(self, *, cursor: str | None = None, limit: int | None = None) -> Page[Company]:
        return self._page(Company, "/v1/companies", cursor=cursor, limit=limit)

    def create_company(self, slug: str, name: str, fair_weight: float = 1.0) -> Company:
        body = CompanyCreate(slug=slug, name=name, fair_weight=fair_weight)
        return self._send(Company, "POST", "/v1/companies", body)

    def projects(
        self, company: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Project]:
        return self._page(Project, f"/v1/companies/{company}/projects", cursor=cursor, limit=limit)

    def update_company(self, slug: str, fair_weight: float) -> Company:
        body = CompanyUpdate(fair_weight=fair_weight)
        return self._send(Company, "PATCH", f"/v1/companies/{slug}", body)

    def update_project(
        self, company: str, slug: str, default_priority: int | None = None, **defaults: Any
    ) -> Project:
        """Change a project's defaults: ``default_priority``, and ``default_data_class``
        or ``default_system_type`` by keyword (those left out stay)."""
        fields = {"default_priority": default_priority, **defaults}
        body = ProjectUpdate(**{k: v for k, v in fields.items() if v is not None})
        return self._send(Project, "PATCH", f"/v1/companies/{company}/projects/{slug}", body)

    def create_project(
        self,
        company: str,
        slug: str,
        name: str = "",
        default_priority: int = 500,
        **defaults: Any,
    ) -> Project:
        """Add a project; ``default_data_class`` and ``default_system_type`` by keyword."""
        body = ProjectCreate(slug=slug, name=name, default_priority=default_priority, **defaults)
        return self._send(Project, "POST", f"/v1/companies/{company}/projects", body)

    def zones(self) -> list[Zone]:
        return self._list(Zone, "/v1/zones")

    def create_zone(self, body: ZoneCreate) -> Zone:
        return self._send(Zone, "POST", "/v1/zones", body)

    def zone(self, name: str) -> Zone:
        return self._get(Zone, f"/v1/zones/{name}")

    def update_zone(self, name: str, body: ZoneUpdate) -> Zone:
        return self._send(Zone, "PATCH", f"/v1/zones/{name}", body)

    def templates(self) -> list[TemplateSummary]:
        return self._list(TemplateSummary, "/v1/catalog")

    def template(self, name: str, version: str | None = None) -> TemplateOut:
        return self._get(TemplateOut, f"/v1/catalog/{name}", version=version)

    def add_template(self, body: TemplateAdd) -> TemplateOut:
        return self._send(TemplateOut, "POST", "/v1/catalog", body)

    def remove_template(self, name: str, version: str) -> None:
        self.request("DELETE", f"/v1/catalog/{name}/{version}")

    def resolve_template(self, name: str, body: ResolveRequest) -> ResolutionOut:
        return self._send(ResolutionOut, "POST", f"/v1/catalog/{name}/resolve", body)

    def create_service(self, body: ServiceCreate) -> ServiceInstance:
        return self._send(ServiceInstance, "POST", "/v1/services", body)

    def services(self, company: str | None = None) -> list[ServiceInstance]:
        return self._list(ServiceInstance, "/v1/services", company=company)

    def service(self, service_id: str) -> ServiceInstance:
        return self._get(ServiceInstance, f"/v1/services/{service_id}")

    def delete_service(self, service_id: str) -> ServiceInstance:
        return self._send(ServiceInstance, "DELETE", f"/v1/services/{service_id}")

    def update_service(self, service_id: str, body: ServiceUpdate) -> ServiceInstance:
        return self._send(ServiceInstance, "PATCH", f"/v1/services/{service_id}", body)

    def bind_service(self, service_id: str, body: BindingCreate | None = None) -> Binding:
        body = body or BindingCreate()
        return self._send(Binding, "POST", f"/v1/services/{service_id}/bindings", body)

    def bindings(self, service_id: str) -> list[Binding]:
        return self._list(Binding, f"/v1/services/{service_id}/bindings")

    def binding(self, service_id: str, binding_id: str) -> Binding:
        return self._get(Binding, f"/v1/services/{service_id}/bindings/{binding_id}")

    def rotate_binding(self, service_id: str, binding_id: str) -> Binding:
        path = f"/v1/services/{service_id}/bindings/{binding_id}/rotate"
        return self._send(Binding, "POST", path)

    def unbind_service(self, service_id: str, binding_id: str) -> Binding:
        return self._send(Binding, "DELETE", f"/v1/services/{service_id}/bindings/{binding_id}")

    def providers(self) -> list[ProviderOut]:
        return self._list(ProviderOut, "/v1/providers")

    def provider(self, name: str) -> ProviderOut:
        return self._get(ProviderOut, f"/v1/providers/{name}")

    def create_provider(self, body: ProviderCreate) -> ProviderOut:
        return self._send(ProviderOut, "POST", "/v1/providers", body)

    def update_provider(self, name: str, body: ProviderUpdate) -> ProviderOut:
        return self._send(ProviderOut, "PATCH", f"/v1/providers/{name}", body)

    def delete_provider(self, name: str) -> None:
        self.request("DELETE", f"/v1/providers/{name}")

    def offers(self, **params: Any) -> Offers:
        """``GET /v1/offers``: data_class, system_type, vcpu, memory_gb, gpu, gpu_model,
        company, limit."""
        return self._get(Offers, "/v1/offers", **params)

    def tokens(
        self, *, company: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> Page[Token]:
        return self._page(Token, "/v1/tokens", company=company, cursor=cursor, limit=limit)

    def issue_token(self, body: TokenCreate) -> TokenCreated:
        return self._send(TokenCreated, "POST", "/v1/tokens", body)

    def revoke_token(self, token_id: int) -> Token:
        return self._send(Token, "DELETE", f"/v1/tokens/{token_id}")

    # --- hosts and quotas -----------------------------------------------------------------

    def hosts(
        self,
        *,
        zone: str | None = None,
        state: HostState | None = None,
        trait: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Host]:
        return self._page(
            Host, "/v1/hosts", zone=zone, state=state, trait=trait, cursor=cursor, limit=limit
        )

    def host(self, name: str) -> Host:
        return self._get(Host, f"/v1/hosts/{name}")

    def add_host(self, body: HostCreate) -> Host:
        return self._send(Host, "POST", "/v1/hosts", body)

    def add_hosts(self, bodies: list[HostCreate]) -> list[Host]:
        payload = {"hosts": [b.model_dump(mode="json") for b in bodies]}
        return TypeAdapter(list[Host]).validate_python(
            self.request("POST", "/v1/hosts/batch", json=payload)
        )

    def set_inventories(self, name: str, inventories: dict[str, InventoryIn]) -> Host:
        payload = {"inventories": {rc: i.model_dump() for rc, i in inventories.items()}}
        return Host.model_validate(
            self.request("PUT", f"/v1/hosts/{name}/inventories", json=payload)
        )

    def drain_host(self, name: str) -> Host:
        return self._send(Host, "POST", f"/v1/hosts/{name}/drain")

    def resume_host(self, name: str) -> Host:
        return self._send(Host, "POST", f"/v1/hosts/{name}/resume")

    def remove_host(self, name: str) -> Host:
        return self._send(Host, "DELETE", f"/v1/hosts/{name}")

    def quotas(self, company: str | None = None) -> list[Quota]:
        return self._list(Quota, "/v1/quotas", company=company)

    def set_quota(
        self, company: str, resource_class: str, nominal: int, **limits: int | None
    ) -> Quota:
        """``borrowing_limit=``/``lending_limit=`` (None: no limit); left out: unchanged."""
        return self._send(
            Quota,
            "PUT",
            f"/v1/quotas/{company}/{resource_class}",
            QuotaSet(nominal=nominal, **limits),
        )

    # --- allocations ----------------------------------------------------------------------

    def allocate(self, body: AllocationCreate, idempotency_key: str | None = None) -> Allocation:
        return self._send(Allocation, "POST", "/v1/allocations", body, idempotency_key)

    def allocations(
        self,
        *,
        company: str | None = None,
        project: str | None = None,
        state: AllocationState | None = None,
        host: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Allocation]:
        return self._page(
            Allocation,
            "/v1/allocations",
            company=company,
            project=project,
            state=state,
            host=host,
            cursor=cursor,
            limit=limit,
        )

    def allocation(self, allocation_id: str) -> Allocation:
        return self._get(Allocation, f"/v1/allocations/{allocation_id}")

    def release(self, allocation_id: str) -> Allocation:
        return self._send(Allocation, "POST", f"/v1/allocations/{allocation_id}/release")

    def update_allocation(self, allocation_id: str, body: AllocationUpdate) -> Allocation:
        return self._send(Allocation, "PATCH", f"/v1/allocations/{allocation_id}", body)

    def explain(self, allocation_id: str) -> Explanation:
        return self._get(Explanation, f"/v1/allocations/{allocation_id}/explain")

    def report_utilisation(self, reports: list[UtilisationReport]) -> int:
        body = UtilisationReports(reports=reports).model_dump(mode="json", exclude_unset=True)
        return int(self.request("POST", "/v1/utilisation", json=body)["stored"])

    # --- networks ---------------------------------------------------------------------

    def supernets(
        self, *, zone: str | None = None, cursor: str | None = None, limit: int | None = None
    ) -> Page[NetworkPrefix]:
        return self._page(
            NetworkPrefix, "/v1/networks/supernets", zone=zone, cursor=cursor, limit=limit
        )

    def create_supernet(self, body: SupernetCreate) -> NetworkPrefix:
        return self._send(NetworkPrefix, "POST", "/v1/networks/supernets", body)

    def vpcs(
        self,
        company: str | None = None,
        *,
        zone: str | None = None,
        supernet: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[NetworkPrefix]:
        return self._page(
            NetworkPrefix,
            "/v1/networks/vpcs",
            company=company,
            zone=zone,
            supernet=supernet,
            cursor=cursor,
            limit=limit,
        )

    def create_vpc(self, body: VpcCreate) -> NetworkPrefix:
        return self._send(NetworkPrefix, "POST", "/v1/networks/vpcs", body)

    def subnets(
        self,
        company: str | None = None,
        *,
        zone: str | None = None,
        vpc: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[NetworkPrefix]:
        return self._page(
            NetworkPrefix,
            "/v1/networks/subnets",
            company=company,
            zone=zone,
            vpc=vpc,
            cursor=cursor,
            limit=limit,
        )

    def create_subnet(self, company: str, vpc: str, body: SubnetCreate) -> NetworkPrefix:
        path = f"/v1/networks/vpcs/{company}/{vpc}/subnets"
        return self._send(NetworkPrefix, "POST", path, body)

    def prefix(self, kind: str, name: str, company: str | None = None) -> NetworkPrefix:
        """One supernet, VPC or subnet (``kind``) by name."""
        return self._get(NetworkPrefix, _prefix_path(kind, name, company))

    def delete_prefix(self, kind: str, name: str, company: str | None = None) -> NetworkPrefix:
        return self._send(NetworkPrefix, "DELETE", _prefix_path(kind, name, company))

    def ips(
        self,
        company: str,
        subnet: str,
        *,
        released: bool = False,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[IpAddress]:
        return self._page(
            IpAddress,
            f"/v1/networks/subnets/{company}/{subnet}/ips",
            released=released or None,
            cursor=cursor,
            limit=limit,
        )

    def allocate_ip(
        self, company: str, subnet: str, body: IpCreate, idempotency_key: str | None = None
    ) -> IpAddress:
        path = f"/v1/networks/subnets/{company}/{subnet}/ips"
        return self._send(IpAddress, "POST", path, body, idempotency_key)

    def ip(self, ip_id: int) -> IpAddress:
        return self._get(IpAddress, f"/v1/networks/ips/{ip_id}")

    def release_ip(self, ip_id: int) -> IpAddress:
        return self._send(IpAddress, "POST", f"/v1/networks/ips/{ip_id}/release")

    def floating_ips(
        self, company: str | None = None, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[IpAddress]:
        return self._page(
            IpAddress, "/v1/networks/floating-ips", company=company, cursor=cursor, limit=limit
        )

    def allocate_floating_ip(
        self, body: FloatingIpCreate, idempotency_key: str | None = None
    ) -> IpAddress:
        return self._send(IpAddress, "POST", "/v1/networks/floating-ips", body, idempotency_key)

    def update_floating_ip(self, ip_id: int, body: FloatingIpUpdate) -> IpAddress:
        payload = body.model_dump(mode="json")  # attach_to: null detaches, so always sent
        return IpAddress.model_validate(
            self.request("PATCH", f"/v1/networks/floating-ips/{ip_id}", json=payload)
        )

    def segment_pools(self) -> list[SegmentPool]:
        return self._list(SegmentPool, "/v1/networks/segment-pools")

    def create_segment_pool(self, body: SegmentPoolCreate) -> SegmentPool:
        return self._send(SegmentPool, "POST", "/v1/networks/segment-pools", body)

    def delete_segment_pool(self, name: str) -> SegmentPool:
        return self._send(SegmentPool, "DELETE", f"/v1/networks/segment-pools/{name}")

    def net_quotas(self, company: str | None = None) -> list[NetQuota]:
        return self._list(NetQuota, "/v1/networks/quotas", company=company)

    def set_net_quota(self, company: str, kind: str, body: NetQuotaSet) -> NetQuota:
        payload = body.model_dump(mode="json")  # limit: null lifts it, so always sent
        return NetQuota.model_validate(
            self.request("PUT", f"/v1/networks/quotas/{company}/{kind}", json=payload)
        )

    def address_plan(self, company: str) -> AddressPlan:
        return self._get(AddressPlan, f"/v1/networks/plan/{company}")

    def address_plan_csv(self, company: str) -> str:
        try:
            response = self._http.get(f"/v1/networks/plan/{company}", params={"format": "csv"})
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach groupcloud at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.json())
        return response.text

    # --- network isolation ------------------------------------------------------------

    def rules(
        self,
        company: str,
        vpc: str,
        *,
        direction: Direction | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[SecurityRule]:
        path = f"/v1/networks/vpcs/{company}/{vpc}/rules"
        return self._page(SecurityRule, path, direction=direction, cursor=cursor, limit=limit)

    def add_rule(self, company: str, vpc: str, body: SecurityRuleCreate) -> SecurityRule:
        return self._send(SecurityRule, "POST", f"/v1/networks/vpcs/{company}/{vpc}/rules", body)

    def delete_rule(self, rule_id: int) -> SecurityRule:
        return self._send(SecurityRule, "DELETE", f"/v1/networks/rules/{rule_id}")

    def peerings(
        self,
        *,
        company: str | None = None,
        state: PeeringState | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Peering]:
        return self._page(
            Peering,
            "/v1/networks/peerings",
            company=company,
            state=state,
            cursor=cursor,
            limit=limit,
        )

    def peering(self, peering_id: int) -> Peering:
        return self._get(Peering, f"/v1/networks/peerings/{peering_id}")

    def request_peering(self, vpc: str, peer: str) -> Peering:
        """Peer ``vpc`` (``company/vpc``, or ``vpc`` of the token's company) with ``peer``."""
        body = PeeringCreate(vpc=vpc, peer=peer)
        return self._send(Peering, "POST", "/v1/networks/peerings", body)

    def accept_peering(self, peering_id: int) -> Peering:
        return self._send(Peering, "POST", f"/v1/networks/peerings/{peering_id}/accept")

    def reject_peering(self, peering_id: int) -> Peering:
        return self._send(Peering, "POST", f"/v1/networks/peerings/{peering_id}/reject")

    def delete_peering(self, peering_id: int) -> Peering:
        return self._send(Peering, "DELETE", f"/v1/networks/peerings/{peering_id}")

    def peering_bans(self) -> list[PeeringBan]:
        return self._list(PeeringBan, "/v1/networks/peering-bans")

    def add_peering_ban(self, body: PeeringBanCreate) -> PeeringBanCreated:
        return self._send(PeeringBanCreated, "POST", "/v1/networks/peering-bans", body)

    def delete_peering_ban(self, ban_id: int) -> PeeringBan:
        return self._send(PeeringBan, "DELETE", f"/v1/networks/peering-bans/{ban_id}")

    def reachability(
        self, source: str, destination: str, protocol: Protocol, port: int | None = None
    ) -> Reachability:
        """Whether traffic may go from ``source`` to ``destination`` (allowed or denied,
        with the stable reason)."""
        return self._get(
            Reachability,
            "/v1/networks/reachability",
            source=source,
            destination=destination,
            protocol=protocol,
            port=port,
        )

    # --- usage and events -----------------------------------------------------------------

    def usage(
        self,
        by: str = "pool",
        *,
        zone: str | None = None,
        company: str | None = None,
        resource_class: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[UsageLine]:
        return self._page(
            UsageLine,
            "/v1/usage",
            by=by,
            zone=zone,
            company=company,
            resource_class=resource_class,
            cursor=cursor,
            limit=limit,
        )

    def events(
        self,
        *,
        company: str | None = None,
        kind: str | None = None,
        subject: str | None = None,
        after_id: int | None = None,
        tail: int | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> Page[Event]:
        return self._page(
            Event,
            "/v1/events",
            company=company,
            kind=kind,
            subject=subject,
            after_id=after_id,
            tail=tail,
            cursor=cursor,
            limit=limit,
        )


def _prefix_path(kind: str, name: str, company: str | None) -> str:
    if kind == "supernet":
        return f"/v1/networks/supernets/{name}"
    return f"/v1/networks/{kind}s/{company}/{name}"
