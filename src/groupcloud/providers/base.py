"""The provider protocol: what groupcloud asks of a public cloud, and nothing more.

An external zone is one region of one provider. groupcloud creates one instance per
allocation unit there and must be able to find it again after any crash, so creation is
idempotent on a *client token* (the same token returns the same instance, never a second
one) and every instance carries tags naming its allocation and unit, by which the
reconciler lists what groupcloud owns in a region. Calls are coroutines, so one worker
can wait on many regions at once; ``with_retries`` bounds each call by a timeout and
retries what the provider calls retryable, so a slow region costs a bounded wait and then
a failover, never a hung worker.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, runtime_checkable

from groupcloud.domain.offers import Offer

__all__ = [
    "TAG_ALLOCATION",
    "TAG_MANAGED",
    "TAG_UNIT",
    "Instance",
    "InstanceSpec",
    "InstanceState",
    "Offer",
    "Provider",
    "ProviderError",
    "ProviderUnavailable",
    "with_retries",
]

T = TypeVar("T")

TAG_MANAGED = "groupcloud:managed"
"""Tag on every instance groupcloud creates (value ``"true"``): what the reconciler lists."""
TAG_ALLOCATION = "groupcloud:allocation"
"""Tag naming the allocation id an instance belongs to."""
TAG_UNIT = "groupcloud:unit"
"""Tag naming the allocation unit (0-based, as a string) an instance is."""


class InstanceState(enum.StrEnum):
    """An instance as the provider reports it (its own states folded into three)."""

    PENDING = "pending"
    """Being created: not usable yet."""
    RUNNING = "running"
    """Up."""
    STOPPING = "stopping"
    """Being deleted (or stopped): on its way out."""


@dataclass(frozen=True, slots=True)
class InstanceSpec:
    """What to create: one instance of ``instance_type`` in ``region``.

    ``client_token`` makes the call idempotent: the provider returns the instance an
    earlier call with the same token created (however many times the call is repeated,
    by retries or after a crash)."""

    client_token: str
    region: str
    instance_type: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Instance:
    """An instance that exists at the provider (terminated ones are not reported)."""

    id: str
    region: str
    instance_type: str
    state: InstanceState
    client_token: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


class ProviderError(Exception):
    """A provider call failed. ``retryable``: the same call may succeed later (throttling,
    a 5xx, a timeout); otherwise it never will (bad instance type, no permission)."""

    def __init__(self, message: str, *, retryable: bool = True, code: str = "provider_error"):
        super().__init__(message)
        self.retryable = retryable
        self.code = code


class ProviderUnavailable(ProviderError):
    """Every attempt of a call failed or timed out: the caller blocks the zone (failover)."""


@runtime_checkable
class Provider(Protocol):
    """A public cloud (or its simulation). Implementations: ``simulated``, ``aws``."""

    name: str
    """The provider's name as the operator registered it (``aws``, ``sim-kr``)."""

    async def create_instance(self, spec: InstanceSpec) -> Instance:
        """Create (or, for a token seen before, return) the instance ``spec`` asks for."""
        ...

    async def delete_instance(self, region: str, instance_id: str) -> None:
        """Delete the instance; deleting one that is already gone is not an error."""
        ...

    async def describe(self, region: str, instance_id: str) -> Instance | None:
        """The instance, or None when it does not exist (any more)."""
        ...

    async def list_instances(self, region: str) -> list[Instance]:
        """Every live instance in ``region`` that groupcloud created (``TAG_MANAGED``)."""
        ...

    async def list_offers(self, region: str) -> list[Offer]:
        """The instance types the provider offers in ``region``, priced."""
        ...


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    timeout_s: float,
    attempts: int = 3,
    backoff_s: float = 0.2,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """``call()`` bounded by ``timeout_s`` per attempt, repeated up to ``attempts`` times
    while it times out or fails retryably (waiting ``backoff_s``, doubling). A
    non-retryable error is raised at once; the last retryable one as
    ``ProviderUnavailable``. ``call`` must be idempotent (every provider call is)."""
    last: BaseException | None = None
    delay = backoff_s
    for attempt in range(attempts):
        if attempt:
            await sleep(delay)
            delay *= 2
        try:
            return await asyncio.wait_for(call(), timeout_s)
        except TimeoutError as exc:
            last = exc
        except ProviderError as exc:
            if not exc.retryable:
                raise
            last = exc
    what = "timed out" if isinstance(last, TimeoutError) else str(last)
    raise ProviderUnavailable(
        f"provider call failed after {attempts} attempt(s): {what}", code="provider_unavailable"
    ) from last
