"""``with_retries``: the bound on what a slow or flaky region may cost a caller."""

from __future__ import annotations

import asyncio

import pytest

from groupcloud.providers.base import ProviderError, ProviderUnavailable, with_retries


class Flaky:
    """A call that misbehaves ``failures`` times (by ``how``), then answers ``"ok"``."""

    def __init__(self, failures: int, how: str) -> None:
        self.failures = failures
        self.how = how
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            if self.how == "hang":
                await asyncio.Event().wait()
            raise ProviderError("flaky", retryable=self.how == "retryable")
        return "ok"


def test_a_timed_out_attempt_is_retried_and_the_next_answer_returned() -> None:
    call = Flaky(1, "hang")
    result = asyncio.run(with_retries(call, timeout_s=0.05, attempts=3, backoff_s=0.001))
    assert (result, call.calls) == ("ok", 2)


def test_retryable_errors_are_retried_until_the_call_succeeds() -> None:
    call = Flaky(2, "retryable")
    result = asyncio.run(with_retries(call, timeout_s=1, attempts=3, backoff_s=0.001))
    assert (result, call.calls) == ("ok", 3)


def test_exhausted_attempts_raise_provider_unavailable_after_doubling_backoffs() -> None:
    call = Flaky(5, "hang")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    with pytest.raises(ProviderUnavailable, match="timed out") as caught:
        asyncio.run(with_retries(call, timeout_s=0.02, attempts=3, backoff_s=0.1, sleep=sleep))
    assert call.calls == 3
    assert waits == [0.1, 0.2]
    assert caught.value.retryable
    assert caught.value.code == "provider_unavailable"


def test_a_non_retryable_error_is_raised_at_once() -> None:
    call = Flaky(5, "fatal")
    with pytest.raises(ProviderError, match="flaky") as caught:
        asyncio.run(with_retries(call, timeout_s=1, attempts=3, backoff_s=0.001))
    assert not isinstance(caught.value, ProviderUnavailable)
    assert call.calls == 1
