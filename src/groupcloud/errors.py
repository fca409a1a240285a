"""The exception tree: every failure a user can meet has a stable ``code``.

The code is the contract (clients branch on it); the HTTP status and title follow
from it, so an error is declared once here and rendered the same way by the API
(RFC 9457 problem+json) and the CLI (one line, exit code != 0).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AddressSpaceExhausted",
    "AllocationReleased",
    "AlreadyExists",
    "AnalyticsKeyMismatch",
    "AnalyticsSecretMissing",
    "BackendUnavailable",
    "Conflict",
    "EventStreamUnavailable",
    "Forbidden",
    "GroupcloudError",
    "HostNotEmpty",
    "IdempotencyKeyReused",
    "InvalidInput",
    "InventoryInUse",
    "MethodNotAllowed",
    "NetworkQuotaExceeded",
    "NeverFits",
    "NoCapacity",
    "NoOffer",
    "NotBindable",
    "NotFound",
    "PeeringAddressFamiliesDiffer",
    "PeeringForbidden",
    "PeeringNotPending",
    "PeeringPrefixesOverlap",
    "PrefixInUse",
    "PrefixOutsideParent",
    "PrefixOverlaps",
    "ProviderInUse",
    "ProvidersUnavailable",
    "QuotaBelowUsage",
    "QuotaExceeded",
    "SegmentPoolExhausted",
    "ServiceBusy",
    "Unauthenticated",
    "ZoneForbidden",
]


class GroupcloudError(Exception):
    """Base of every error with a stable code; ``extra`` lands in the problem document."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @classmethod
    def describe(cls) -> str:
        """One paragraph for the problem-type documentation page."""
        return (cls.__doc__ or cls.title).strip()


class InvalidInput(GroupcloudError):
    """The request is malformed: a field is missing, out of range or of the wrong type.
    ``errors`` lists each field with its message."""

    code = "validation_error"
    status = 422
    title = "Invalid input"


class Unauthenticated(GroupcloudError):
    """No API token, or one that is unknown, expired or revoked. Send
    ``Authorization: Bearer <token>``."""

    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class MethodNotAllowed(GroupcloudError):
    """The path exists but does not take this HTTP method; the ``Allow`` header lists the
    methods it takes."""

    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class Forbidden(GroupcloudError):
    """The token's role does not allow this action (for example a company member adding hosts)."""

    code = "forbidden"
    status = 403
    title = "Not allowed for this role"


class NotFound(GroupcloudError):
    """The object does not exist, or belongs to a company the token may not see."""

    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(GroupcloudError):
    """The request conflicts with the current state (for example removing a host that still
    holds allocations, or shrinking an inventory below what is allocated)."""

    code = "conflict"
    status = 409
    title = "Conflict with current state"


class AllocationReleased(Conflict):
    """The allocation is released: there is nothing left to change (request a new one)."""

    code = "allocation_released"
    title = "Allocation released"


class AlreadyExists(Conflict):
    """An object with this name already exists."""

    code = "already_exists"
    title = "Already exists"


class HostNotEmpty(Conflict):
    """The host still holds allocations; release them (drain the host first to stop new ones)."""

    code = "host_not_empty"
    title = "Host still holds allocations"


class InventoryInUse(Conflict):
    """The new inventory would leave less capacity than is already allocated on the host."""

    code = "inventory_in_use"
    title = "Inventory below what is allocated"


class QuotaBelowUsage(Conflict):
    """The company already uses more than the new quota; release allocations first."""

    code = "quota_below_usage"
    title = "Quota below current usage"


class QuotaExceeded(GroupcloudError):
    """Admitting the request now would take the company above its quota for a resource class.
    ``exceeded`` lists each class with requested, used, limit and excess; releasing allocations
    (or a higher quota) makes room."""

    code = "quota_exceeded"
    status = 409
    title = "Quota exceeded"


class NoCapacity(GroupcloudError):
    """The request could fit the pool's hosts, but not enough capacity is free right now.
    ``explain`` says which filter removed how many hosts."""

    code = "no_capacity"
    status = 409
    title = "No capacity free now"


class NeverFits(GroupcloudError):
    """The request can never be satisfied as asked: no host in the allowed zone with the
    required traits is big enough, or it exceeds the company's whole quota. Waiting will not
    help; change the request."""

    code = "never_fits"
    status = 422
    title = "Request can never fit"


class ZoneForbidden(GroupcloudError):
    """The zone the request names is removed by the placement rules for regulated data
    for its data class and system type (docs/zones.md). ``rules`` names the ids of the
    rules that removed it and ``reason`` says what the zone lacks; ask for another zone,
    or leave the zone out and let groupcloud choose among the allowed ones."""

    code = "zone_forbidden"
    status = 422
    title = "Zone forbidden by the placement rules"


class NoOffer(GroupcloudError):
    """No external zone the request may use offers an instance type that fits one unit
    (or takes its resource classes at all: custom classes and GPU shares stay private).
    ``zones`` lists the external zones considered; ask for less per unit, or let
    groupcloud place it privately."""

    code = "no_offer"
    status = 422
    title = "No external offer fits"


class ProvidersUnavailable(GroupcloudError):
    """Every external zone the request may use is blocked after its provider failed or
    timed out (failover back-off), or every provider call failed. Retry later
    (``Retry-After``), or place it privately."""

    code = "providers_unavailable"
    status = 503
    title = "External providers unavailable"


class ProviderInUse(Conflict):
    """The provider still serves external zones: point them elsewhere first."""

    code = "provider_in_use"
    title = "Provider in use"


class IdempotencyKeyReused(GroupcloudError):
    """The ``Idempotency-Key`` was already used for a different request body."""

    code = "idempotency_key_reused"
    status = 422
    title = "Idempotency key reused with a different request"


def all_error_types() -> list[type[GroupcloudError]]:
    """Every concrete error class, for the problem-type documentation."""
    seen: list[type[GroupcloudError]] = [GroupcloudError]
    stack = list(GroupcloudError.__subclasses__())
    while stack:
        cls = stack.pop(0)
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


class PrefixOverlaps(Conflict):
    """The prefix overlaps one that is allocated already (another supernet, VPC, subnet or
    address). ``overlaps`` names it where known."""

    code = "prefix_overlaps"
    title = "Prefix overlaps an allocated one"


class AddressSpaceExhausted(Conflict):
    """No free block of the requested size is left in the parent; ``largest_free`` says
    what is."""

    code = "address_space_exhausted"
    title = "Address space exhausted"


class PrefixOutsideParent(GroupcloudError):
    """The prefix or address is not inside the supernet, VPC or subnet it was asked from."""

    code = "prefix_outside_parent"
    status = 422
    title = "Prefix outside its parent"


class NetworkQuotaExceeded(Conflict):
    """The company's network quota (``kind``: ``vpcs``, ``floating_ips`` or
    ``ipv4_addresses``) does not leave room for the request; ``requested``, ``used`` and
    ``limit`` say by how much. Releasing addresses or VPCs, or a higher quota, makes room."""

    code = "network_quota_exceeded"
    title = "Network quota exceeded"


class PrefixInUse(Conflict):
    """The VPC, subnet or supernet still holds children or addresses (``holds`` counts
    them): release those first."""

    code = "prefix_in_use"
    title = "Prefix in use"


class SegmentPoolExhausted(Conflict):
    """No VLAN id or VXLAN network identifier is free in the zone's pool (or the given one
    is taken)."""

    code = "segment_pool_exhausted"
    title = "Segment pool exhausted"


class PeeringPrefixesOverlap(Conflict):
    """The two VPCs' prefixes overlap: an address would mean a host on either side, so
    they cannot be peered. ``cidrs`` names both prefixes."""

    code = "peering_prefixes_overlap"
    title = "Peered prefixes overlap"


class PeeringForbidden(Conflict):
    """The operator forbids peering between these zones or data classes; ``ban`` names the
    rule (kind and sides). Only a group admin can lift it."""

    code = "peering_forbidden"
    title = "Peering forbidden by the operator"


class PeeringNotPending(Conflict):
    """The peering was already decided (accepted, rejected or deleted); ``state`` says
    which. Request a new one if the pair should be peered again."""

    code = "peering_not_pending"
    title = "Peering no longer pending"


class PeeringAddressFamiliesDiffer(GroupcloudError):
    """One VPC is IPv4 and the other IPv6: no traffic could cross a peering between them."""

    code = "peering_address_families_differ"
    status = 422
    title = "Peered VPCs of different address families"


class AnalyticsSecretMissing(GroupcloudError):
    """Events cannot be ingested: ``GROUPCLOUD_ANALYTICS_SECRET`` (the group secret that turns
    person identifiers into person keys) is not configured. Set it in the environment of the
    process that ingests (see docs/analytics.md)."""

    code = "analytics_secret_missing"
    status = 503
    title = "Analytics secret not configured"


class AnalyticsKeyMismatch(Conflict):
    """The configured analytics secret is not the one the event store was built with
    (``store_fingerprint`` and ``configured_fingerprint`` say which); loading with it would
    count every person twice. Use the store's secret, or rebuild the store (key rotation)."""

    code = "analytics_key_mismatch"
    title = "Analytics secret differs from the event store's"


class EventStreamUnavailable(GroupcloudError):
    """The NATS JetStream server of the activity-event stream could not be reached or
    refused the stream or consumer (``servers`` names where it was looked for). Nothing was
    acknowledged, so every message not yet loaded is delivered again next time."""

    code = "event_stream_unavailable"
    status = 503
    title = "Event stream unavailable"


class BackendUnavailable(GroupcloudError):
    """The server behind a catalog service (the managed PostgreSQL) is not configured
    (``GROUPCLOUD_DBAAS_POSTGRES_URL``) or could not be reached. Nothing was claimed or
    changed for a request refused this way; an operation already under way is retried by
    the worker until ``GROUPCLOUD_SERVICE_TIMEOUT_S``."""

    code = "backend_unavailable"
    status = 503
    title = "Service backend unavailable"


class ServiceBusy(Conflict):
    """The service is in a state that does not allow the request: an operation is under
    way (provisioning, updating, deprovisioning; ``state`` says which), or it failed or is
    gone. Wait for the operation (``svc show``, ``--wait``) and retry."""

    code = "service_busy"
    title = "Service busy"


class NotBindable(GroupcloudError):
    """The service's template has no backend that issues credentials (its parts are
    compute only), so it cannot be bound."""

    code = "not_bindable"
    status = 422
    title = "Service not bindable"
