"""Send rates per relay and per recipient domain, counted in a real Redis by the code that
records outcomes and read back as the dashboard reads them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis

from campaigns.core.models import JobState, utc_now
from campaigns.jobs.job_store import JobOutcome
from workers.delivery.send_rate_counters import (
    MeasuredSendRates,
    SendRateCounters,
    measured_send_rates,
)

T = TypeVar("T")
NOW = 1_800_000_005.0
"""Five seconds into a bucket: the last minute is five whole buckets and five seconds."""


def _outcome(relay: str | None, domain: str, state: JobState = JobState.SENT) -> JobOutcome:
    return JobOutcome(
        job_id=1,
        state=state,
        code=250,
        status=None,
        reply="250 ok",
        attempts=1,
        first_attempt_at=utc_now(),
        relay=relay,
        recipient_domain=domain if relay else None,
    )


def _on_redis(redis_url: str, body: Callable[[Redis, str], Awaitable[T]]) -> T:
    async def run() -> T:
        redis = Redis.from_url(redis_url)
        try:
            return await body(redis, f"test-{uuid.uuid4().hex}")
        finally:
            await redis.aclose()

    return asyncio.run(run())


def test_groups_of_outcomes_become_rates_per_relay_and_domain_over_the_last_minute(
    redis_url: str,
) -> None:
    async def body(redis: Redis, namespace: str) -> MeasuredSendRates:
        counters = SendRateCounters(redis, namespace, clock=lambda: NOW - 30)
        await counters.count(
            [_outcome("primary", "gmail.com") for _ in range(40)]
            + [_outcome("backup", "yahoo.com", JobState.DEFERRED) for _ in range(10)]
            # Nothing reached a relay: not counted.
            + [_outcome(None, "gmail.com", JobState.FAILED) for _ in range(7)]
        )
        counters = SendRateCounters(redis, namespace, clock=lambda: NOW)
        await counters.count([_outcome("primary", "gmail.com") for _ in range(15)])
        # Older than a minute: no longer in the rate.
        old = SendRateCounters(redis, namespace, clock=lambda: NOW - 70)
        await old.count([_outcome("primary", "old.example") for _ in range(100)])
        return await measured_send_rates(redis, namespace, domains=["quiet.example"], now=NOW)

    rates = _on_redis(redis_url, body)

    assert rates.relays == {"primary": 55 / 55, "backup": 10 / 55}
    assert rates.domains == {"gmail.com": 55 / 55, "yahoo.com": 10 / 55, "quiet.example": 0.0}


def test_only_the_busiest_domains_are_read_besides_those_asked_for(redis_url: str) -> None:
    async def body(redis: Redis, namespace: str) -> MeasuredSendRates:
        counters = SendRateCounters(redis, namespace, clock=lambda: NOW)
        await counters.count(
            [
                _outcome("only", f"d{number}.example")
                for number in range(30)
                for _ in range(number + 1)
            ]
        )
        return await measured_send_rates(
            redis, namespace, domains=["d0.example"], busiest=3, now=NOW
        )

    rates = _on_redis(redis_url, body)

    assert set(rates.domains) == {"d29.example", "d28.example", "d27.example", "d0.example"}
    assert rates.domains["d29.example"] == 30 / 55
    assert rates.domains["d0.example"] == 1 / 55


def test_a_redis_that_cannot_be_reached_loses_the_count_but_raises_nothing() -> None:
    async def body() -> None:
        redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
        try:
            await SendRateCounters(redis, "test").count([_outcome("only", "gmail.com")])
        finally:
            await redis.aclose()

    asyncio.run(body())
