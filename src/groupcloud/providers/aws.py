"""The AWS provider: EC2 instances through boto3.

boto3 is synchronous, so every call runs in a worker thread (``asyncio.to_thread``) and
the event loop stays free to wait on other regions. botocore's own retries are off and
its timeouts short: ``with_retries`` owns the retry policy (one place decides how long a
region may take before the zone fails over), and botocore errors are folded into
``ProviderError`` with ``retryable`` saying whether the same call may succeed later.

Credentials come from boto3's standard chain (environment, shared config and profile,
instance or container role) and are never stored here. Creation is idempotent twice
over: EC2 honours ``ClientToken``, and the adapter first looks for a live instance
tagged with the token (``groupcloud:token``), so emulators that ignore client tokens
(moto does) and a token whose first call outlived EC2's idempotency window still yield
one instance per token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import boto3
import botocore.exceptions
from botocore.config import Config

from groupcloud.domain.offers import Offer
from groupcloud.providers.base import (
    TAG_MANAGED,
    Instance,
    InstanceSpec,
    InstanceState,
    ProviderError,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client
    from mypy_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeDef

__all__ = ["DEFAULT_IMAGE_ID", "TAG_TOKEN", "AwsProvider", "map_error"]

T = TypeVar("T")

TAG_TOKEN = "groupcloud:token"
"""Tag carrying the client token an instance was created with (the adapter's own
idempotency check looks it up)."""

DEFAULT_IMAGE_ID = (
    "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
)
"""Amazon Linux 2023's latest AMI, resolved by EC2 itself in every region (an AMI id
is per region; this public parameter is not)."""

_LIVE_STATES = ["pending", "running", "stopping", "stopped"]
"""The states ``list_instances`` reports: everything not yet on its way to termination
(a stopped instance still costs its volumes, so the reconciler must see it)."""

_STATES: Mapping[str, InstanceState] = {
    "pending": InstanceState.PENDING,
    "running": InstanceState.RUNNING,
    "stopping": InstanceState.STOPPING,
    "stopped": InstanceState.STOPPING,
    "shutting-down": InstanceState.STOPPING,
}
"""EC2's states folded into ours; ``terminated`` is absent: such an instance is gone."""

_RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "InsufficientInstanceCapacity",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Error codes after which the same call may succeed (any 5xx is retryable as well)."""

_NOT_FOUND = "InvalidInstanceID.NotFound"


def map_error(exc: Exception) -> ProviderError:
    """``exc`` (raised by boto3) as a ``ProviderError``: retryable for throttling, 5xx,
    connection failures and timeouts; not for anything the caller got wrong (a bad
    parameter or instance type, a malformed id, no permission, no credentials)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        retryable = code in _RETRYABLE_CODES or status >= 500
        message = f"aws: {code}: {error.get('Message', exc)}"
        return ProviderError(message, retryable=retryable, code=code)
    if isinstance(exc, botocore.exceptions.ConnectionError | botocore.exceptions.HTTPClientError):
        return ProviderError(f"aws: {exc}", retryable=True, code="connection_error")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return ProviderError(f"aws: {exc}", retryable=False, code="no_credentials")
    return ProviderError(f"aws: {type(exc).__name__}: {exc}", retryable=False)


def _code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class AwsProvider:
    """EC2 in the regions of ``offers`` (any region may be asked; offers only price them).

    ``endpoint_url``: another EC2 endpoint (moto, LocalStack, a VPC endpoint).
    ``image_id``: the AMI of every instance, ``image_ids`` one per region where given.
    ``profile``: a named profile of the shared config (None: the default chain).
    ``connect_timeout_s`` / ``read_timeout_s``: botocore's socket timeouts, short so
    that ``with_retries``'s per-attempt timeout is what a slow region costs."""

    def __init__(
        self,
        name: str,
        offers: Sequence[Offer],
        *,
        endpoint_url: str | None = None,
        image_id: str = DEFAULT_IMAGE_ID,
        image_ids: Mapping[str, str] | None = None,
        profile: str | None = None,
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.offers = tuple(offers)
        self.endpoint_url = endpoint_url
        self.image_id = image_id
        self.image_ids = dict(image_ids or {})
        self._profile = profile
        self._config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, EC2Client] = {}
        self._lock = threading.Lock()

    # -- the protocol ----------------------------------------------------------------

    async def create_instance(self, spec: InstanceSpec) -> Instance:
        """The live instance tagged with ``spec.client_token``, else a new one
        (``RunInstances`` with that ``ClientToken``, tagged with ``spec.tags``,
        ``TAG_MANAGED`` and the token)."""
        return await self._call(spec.region, lambda ec2: self._create(ec2, spec))

    async def delete_instance(self, region: str, instance_id: str) -> None:
        """Terminate the instance; one EC2 does not know (any more) is fine."""

        def terminate(ec2: EC2Client) -> None:
            try:
                ec2.terminate_instances(InstanceIds=[instance_id])
            except botocore.exceptions.ClientError as exc:
                if _code(exc) != _NOT_FOUND:
                    raise

        await self._call(region, terminate)

    async def describe(self, region: str, instance_id: str) -> Instance | None:
        """The instance, or None when EC2 does not know it or it is terminated."""

        def describe(ec2: EC2Client) -> Instance | None:
            try:
                answer = ec2.describe_instances(InstanceIds=[instance_id])
            except botocore.exceptions.ClientError as exc:
                if _code(exc) == _NOT_FOUND:
                    return None
                raise
            found = [i for r in answer["Reservations"] for i in r.get("Instances", [])]
            return next((x for i in found if (x := _instance(region, i))), None)

        return await self._call(region, describe)

    async def list_instances(self, region: str) -> list[Instance]:
        """Every instance in ``region`` tagged ``groupcloud:managed=true`` and not on its
        way to termination (all pages)."""

        def list_all(ec2: EC2Client) -> list[Instance]:
            return self._find(ec2, region, [{"Name": f"tag:{TAG_MANAGED}", "Values": ["true"]}])

        return await self._call(region, list_all)

    async def list_offers(self, region: str) -> list[Offer]:
        """The offers (types and prices) configured for this provider and region: EC2's
        price list is another API and region, and the operator's contract prices differ
        from it anyway."""
        return [o for o in self.offers if o.provider == self.name and o.region == region]

    # -- internals -------------------------------------------------------------------

    def _create(self, ec2: EC2Client, spec: InstanceSpec) -> Instance:
        token_filter: list[FilterTypeDef] = [
            {"Name": f"tag:{TAG_TOKEN}", "Values": [spec.client_token]}
        ]
        existing = self._find(ec2, spec.region, token_filter)
        if existing:
            return existing[0]
        tags = {**spec.tags, TAG_MANAGED: "true", TAG_TOKEN: spec.client_token}
        answer = ec2.run_instances(
            ImageId=self.image_ids.get(spec.region, self.image_id),
            InstanceType=spec.instance_type,  # type: ignore[arg-type]  # any string: EC2 checks
            MinCount=1,
            MaxCount=1,
            ClientToken=spec.client_token,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
                }
            ],
        )
        made = _instance(spec.region, answer["Instances"][0])
        if made is None:  # EC2 answered an old token with its terminated instance
            raise ProviderError(
                f"aws: the instance of client token {spec.client_token!r} is terminated;"
                " a new instance needs a new token",
                retryable=False,
                code="client_token_used",
            )
        return made

    def _find(self, ec2: EC2Client, region: str, filters: list[FilterTypeDef]) -> list[Instance]:
        state_filter: FilterTypeDef = {"Name": "instance-state-name", "Values": _LIVE_STATES}
        pages = ec2.get_paginator("describe_instances").paginate(Filters=[*filters, state_filter])
        found = [
            _instance(region, i)
            for page in pages
            for r in page["Reservations"]
            for i in r.get("Instances", [])
        ]
        return [i for i in found if i is not None]

    def _client(self, region: str) -> EC2Client:
        """This region's client, made once: clients are thread-safe, sessions are not, so
        clients are made under the lock and shared afterwards."""
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                if self._session is None:
                    self._session = boto3.session.Session(profile_name=self._profile)
                client = self._session.client(
                    "ec2",
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                )
                self._clients[region] = client
            return client

    async def _call(self, region: str, work: Callable[[EC2Client], T]) -> T:
        """``work`` on the region's client in a worker thread, boto errors mapped."""

        def run() -> T:
            try:
                return work(self._client(region))
            except ProviderError:
                raise
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise map_error(exc) from exc

        return await asyncio.to_thread(run)


def _instance(region: str, raw: InstanceTypeDef) -> Instance | None:
    """EC2's description as an ``Instance`` (None when terminated)."""
    state = _STATES.get(raw.get("State", {}).get("Name", "terminated"))
    if state is None:
        return None
    return Instance(
        id=raw["InstanceId"],
        region=region,
        instance_type=str(raw.get("InstanceType", "")),
        state=state,
        client_token=raw.get("ClientToken", ""),
        tags={t["Key"]: t["Value"] for t in raw.get("Tags", [])},
    )
