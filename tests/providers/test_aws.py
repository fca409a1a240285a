"""The AWS provider against moto's EC2 server, over real HTTP (a thread of this process)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import moto.settings
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from moto.server import ThreadedMotoServer

from groupcloud.providers.aws import TAG_TOKEN, AwsProvider, map_error
from groupcloud.providers.base import (
    TAG_ALLOCATION,
    TAG_MANAGED,
    TAG_UNIT,
    InstanceSpec,
    InstanceState,
    Offer,
    Provider,
    ProviderError,
    ProviderUnavailable,
    with_retries,
)

REGION = "ap-northeast-2"
OFFERS = [Offer("aws", REGION, "t3.micro", 2, 1024, Decimal("15"))]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """One moto server for the module on a free port, always stopped."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Fake credentials by the standard chain's environment, no shared config read."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws(moto_url: str) -> AwsProvider:
    return AwsProvider("aws", OFFERS, endpoint_url=moto_url, image_id="ami-12c6146b")


def spec(token: str, instance_type: str = "t3.micro") -> InstanceSpec:
    return InstanceSpec(token, REGION, instance_type, {TAG_ALLOCATION: "al-1", TAG_UNIT: "0"})


def test_it_is_a_provider(aws: AwsProvider) -> None:
    assert isinstance(aws, Provider)
    assert asyncio.run(aws.list_offers(REGION)) == OFFERS
    assert asyncio.run(aws.list_offers("us-east-1")) == []


def test_the_lifecycle_create_describe_list_delete(aws: AwsProvider) -> None:
    async def run() -> None:
        made = await aws.create_instance(spec("life-1"))
        assert made.id.startswith("i-")
        assert (made.region, made.instance_type, made.client_token) == (
            REGION,
            "t3.micro",
            "life-1",
        )
        assert made.tags[TAG_ALLOCATION] == "al-1"
        assert made.tags[TAG_UNIT] == "0"
        assert made.tags[TAG_MANAGED] == "true"
        assert made.tags[TAG_TOKEN] == "life-1"
        described = await aws.describe(REGION, made.id)
        assert described is not None
        assert described.id == made.id
        assert described.state in (InstanceState.PENDING, InstanceState.RUNNING)
        assert made.id in {i.id for i in await aws.list_instances(REGION)}

        await aws.delete_instance(REGION, made.id)
        await aws.delete_instance(REGION, made.id)  # again: fine
        assert await aws.describe(REGION, made.id) is None  # terminated
        assert made.id not in {i.id for i in await aws.list_instances(REGION)}

    asyncio.run(run())


def test_create_with_the_same_token_returns_the_same_instance(aws: AwsProvider) -> None:
    async def run() -> None:
        first = await aws.create_instance(spec("same-token"))
        again = await aws.create_instance(spec("same-token"))
        assert again.id == first.id
        mine = [i for i in await aws.list_instances(REGION) if i.client_token == "same-token"]
        assert [i.id for i in mine] == [first.id]

    asyncio.run(run())


def test_moto_itself_ignores_client_tokens(moto_url: str) -> None:
    """Why the adapter looks for the token's tag first: moto (unlike EC2) creates a second
    instance for a repeated ClientToken. Should moto learn it, this test says so."""
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url)
    ids = {
        ec2.run_instances(
            ImageId="ami-12c6146b",
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            ClientToken="raw-token",
        )["Instances"][0]["InstanceId"]
        for _ in range(2)
    }
    assert len(ids) == 2
    ec2.terminate_instances(InstanceIds=sorted(ids))


def test_list_instances_reports_only_managed_instances(aws: AwsProvider, moto_url: str) -> None:
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=moto_url)
    foreign = ec2.run_instances(
        ImageId="ami-12c6146b", InstanceType="t3.micro", MinCount=1, MaxCount=1
    )["Instances"][0]["InstanceId"]
    ours = asyncio.run(aws.create_instance(spec("managed-1")))
    listed = {i.id for i in asyncio.run(aws.list_instances(REGION))}
    assert ours.id in listed
    assert foreign not in listed
    ec2.terminate_instances(InstanceIds=[foreign])


def test_describe_of_an_unknown_id_is_none(aws: AwsProvider) -> None:
    assert asyncio.run(aws.describe(REGION, "i-0123456789abcdef0")) is None
    asyncio.run(aws.delete_instance(REGION, "i-0123456789abcdef0"))  # deleting it: fine


def test_a_bad_instance_type_fails_non_retryably_at_once(
    aws: AwsProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(moto.settings, "EC2_ENABLE_INSTANCE_TYPE_VALIDATION", True)
    calls = 0

    async def create() -> object:
        nonlocal calls
        calls += 1
        return await aws.create_instance(spec("bad-type", instance_type="x9.nonexistent"))

    with pytest.raises(ProviderError) as caught:
        asyncio.run(with_retries(create, timeout_s=5, attempts=3, backoff_s=0.001))
    assert not isinstance(caught.value, ProviderUnavailable)
    assert not caught.value.retryable
    assert caught.value.code.startswith("InvalidInstanceType")
    assert calls == 1


def test_a_dead_endpoint_is_retryable_and_ends_in_provider_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = AwsProvider(
        "aws",
        OFFERS,
        endpoint_url=f"http://127.0.0.1:{port}",
        connect_timeout_s=0.5,
        read_timeout_s=0.5,
    )
    with pytest.raises(ProviderUnavailable) as caught:
        asyncio.run(
            with_retries(
                lambda: dead.list_instances(REGION), timeout_s=2, attempts=2, backoff_s=0.01
            )
        )
    cause = caught.value.__cause__
    assert isinstance(cause, ProviderError)
    assert (cause.retryable, cause.code) == (True, "connection_error")


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "RunInstances")


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (_client_error("RequestLimitExceeded", 503), True),
        (_client_error("Throttling", 400), True),
        (_client_error("InternalError", 500), True),
        (_client_error("SomethingNew", 502), True),
        (_client_error("InvalidParameterValue", 400), False),
        (_client_error("InvalidInstanceID.Malformed", 400), False),
        (_client_error("UnauthorizedOperation", 403), False),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ReadTimeoutError(endpoint_url="http://x"), True),
    ],
    ids=lambda v: v if isinstance(v, bool) else type(v).__name__ + ":" + str(v)[:40],
)
def test_botocore_errors_map_to_retryable_or_not(error: Exception, retryable: bool) -> None:
    mapped = map_error(error)
    assert mapped.retryable is retryable
    if isinstance(error, ClientError):
        assert mapped.code == error.response["Error"]["Code"]
