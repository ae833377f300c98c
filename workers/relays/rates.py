"""The rates in force right now, per relay and per recipient domain, for a dashboard to show."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from workers.rate_limits import AdaptiveSlowdown, Quota
from workers.redis_keys import LimitKeys
from workers.relays.config import ANY_OTHER_DOMAIN, RelayConfig, RelaySetConfig
from workers.relays.relay_set import DAY_S, HOUR_S


@dataclass(frozen=True)
class RelayRates:
    """One relay's limits (None: no limit) and how much of them is in use."""

    name: str
    url: str
    weight: float
    per_second: float | None
    per_hour: int | None
    per_day: int | None
    max_connections: int | None
    closed_for_s: float
    """Seconds of cool-off left after failed connections; 0 when the relay is in use."""
    closed_reason: str | None
    connections_in_use: int
    sent_last_hour: int | None
    """Counted only for a relay with that quota, as the quota counts it."""
    sent_last_day: int | None


@dataclass(frozen=True)
class DomainRates:
    domain: str
    configured_per_second: float | None
    factor: float
    """1 at full speed; below after throttling replies, climbing back."""
    effective_per_second: float | None
    """What the domain may receive now; None means no limit."""


@dataclass(frozen=True)
class EffectiveRates:
    send_rate: float | None
    relays: list[RelayRates]
    domains: list[DomainRates]


async def effective_rates(
    redis: Redis, config: RelaySetConfig, *, domains: Iterable[str] = ()
) -> EffectiveRates:
    """Rates of every relay, and of every domain that is configured, slowed down or asked for."""
    keys = LimitKeys(config.namespace)
    seconds, microseconds = await redis.time()
    now_us = seconds * 1_000_000 + microseconds
    relays = [await _relay_rates(redis, keys, relay, now_us) for relay in config.relays]
    slowed = [
        keys.domain_of_slowdown_key(key.decode() if isinstance(key, bytes) else key)
        async for key in redis.scan_iter(match=keys.domain_slowdown_pattern(), count=1000)
    ]
    names = {domain for domain in config.domain_limits if domain != ANY_OTHER_DOMAIN}
    names.update(slowed)
    names.update(domain.lower() for domain in domains)
    ordered = sorted(names)
    factors = await AdaptiveSlowdown(redis, config.adaptive).factors(
        [keys.domain_slowdown(domain) for domain in ordered]
    )
    return EffectiveRates(
        send_rate=config.send_rate or None,
        relays=relays,
        domains=[
            _domain_rates(config, domain, factor)
            for domain, factor in zip(ordered, factors, strict=True)
        ],
    )


async def _relay_rates(
    redis: Redis, keys: LimitKeys, relay: RelayConfig, now_us: int
) -> RelayRates:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.pttl(keys.relay_down(relay.name))
        pipe.get(keys.relay_down(relay.name))
        pipe.zcount(keys.relay_connections(relay.name), now_us, "+inf")
        pipe.hgetall(keys.relay_quota(relay.name, "hour"))
        pipe.hgetall(keys.relay_quota(relay.name, "day"))
        closed_ms, reason, in_use, hour_counts, day_counts = await pipe.execute()
    return RelayRates(
        name=relay.name,
        url=relay.relay.display(),
        weight=relay.weight,
        per_second=relay.per_second or None,
        per_hour=relay.per_hour or None,
        per_day=relay.per_day or None,
        max_connections=relay.max_connections or None,
        closed_for_s=max(closed_ms, 0) / 1000,
        closed_reason=reason.decode() if reason else None,
        connections_in_use=int(in_use),
        sent_last_hour=_quota_count(relay.per_hour, HOUR_S, hour_counts, now_us),
        sent_last_day=_quota_count(relay.per_day, DAY_S, day_counts, now_us),
    )


def _quota_count(limit: int, window_s: float, counts: dict, now_us: int) -> int | None:
    if not limit:
        return None
    quota = Quota("", limit, window_s)
    first = now_us // quota.bucket_us - quota.buckets
    return sum(int(count) for bucket, count in counts.items() if int(bucket) >= first)


def _domain_rates(config: RelaySetConfig, domain: str, factor: float | None) -> DomainRates:
    configured = config.domain_rate(domain) or None
    if factor is None:
        return DomainRates(domain, configured, 1.0, configured)
    base = configured or config.adaptive.unlisted_domain_rate
    return DomainRates(domain, configured, factor, base * factor)
