"""Messages sent per relay and per recipient domain, counted in Redis for the dashboard.

Workers add each group of recorded outcomes (``JobWriter``) to counters in 10-second
buckets, with one script call per group, so counting costs no round trip per message; the
buckets expire after two minutes. The dashboard sums the last minute into messages per second.

A message counts once a relay gave its verdict on it (accepted, refused, deferred by reply, or
no reply to the final '.'): what that relay's and that domain's limits were spent on. Failures
to connect and messages that reached no relay are not counted. Buckets follow each host's own
clock, which is fine for hosts kept in time by NTP.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from campaigns.jobs.job_store import JobOutcome
from workers.rate_limits.scripts import read_script
from workers.redis_keys import SendRateKeys

log = logging.getLogger(__name__)

BUCKET_S = 10
BUCKET_LIFETIME_S = 120
"""Twice the window: a bucket is gone well after the last reader needed it."""
WINDOW_S = 60
PAUSE_AFTER_FAILURE_S = 5.0
"""After Redis failed to take a count, counting stops this long: outcomes go on being written."""

# One script call per group: a pipeline of an HINCRBY and ZINCRBY per name costs the worker's
# event loop about twice the CPU (measured with redis-py's asyncio client, groups of 10).
ADD_COUNTS = read_script("add_counts.lua")


class SendRateCounters:
    """Counts on ``redis`` from one event loop; ``clock`` gives seconds since the epoch."""

    def __init__(
        self, redis: Redis, namespace: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._redis = redis
        self._keys = SendRateKeys(namespace)
        self._clock = clock
        self._paused_until = 0.0
        self._add = redis.register_script(ADD_COUNTS)

    async def count(self, outcomes: Iterable[JobOutcome]) -> None:
        """Add the outcomes a relay gave its verdict on. Never raises: the outcomes themselves
        are already written, and a lost count only makes a rate look lower for a minute."""
        relays: Counter[str] = Counter()
        domains: Counter[str] = Counter()
        for outcome in outcomes:
            if outcome.relay is not None:
                relays[outcome.relay] += 1
                domains[outcome.recipient_domain or ""] += 1
        if not relays or time.monotonic() < self._paused_until:
            return
        bucket = int(self._clock() // BUCKET_S)
        args: list[str | int] = [BUCKET_LIFETIME_S, len(relays)]
        for name, sent in (*relays.items(), *domains.items()):
            args += [name, sent]
        try:
            await self._add(keys=[self._keys.relays(bucket), self._keys.domains(bucket)], args=args)
        except Exception as error:
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_S
            log.warning(
                "send rate counters in Redis: %s; not counting for %.0f s",
                error,
                PAUSE_AFTER_FAILURE_S,
            )


@dataclass(frozen=True)
class MeasuredSendRates:
    """Messages per second over the last minute."""

    relays: dict[str, float]
    """Every relay that sent anything."""
    domains: dict[str, float]
    """The busiest domains, and every domain asked for (0 when it received nothing)."""


async def measured_send_rates(
    redis: Redis,
    namespace: str,
    *,
    domains: Sequence[str] = (),
    busiest: int = 10,
    now: float | None = None,
) -> MeasuredSendRates:
    """The last minute's rates, in one round trip: the ``busiest`` domains and ``domains``."""
    keys = SendRateKeys(namespace)
    now = time.time() if now is None else now
    current = int(now // BUCKET_S)
    buckets = range(current - WINDOW_S // BUCKET_S + 1, current + 1)
    # The oldest bucket is whole; the current one only as far as it has come.
    elapsed_s = WINDOW_S - BUCKET_S + (now - current * BUCKET_S)
    asked = list(dict.fromkeys(domain.lower() for domain in domains))
    union = keys.scratch()
    async with redis.pipeline(transaction=False) as pipe:
        for bucket in buckets:
            pipe.hgetall(keys.relays(bucket))
        # Summed inside Redis: a minute may hold thousands of domains, only a few are read.
        pipe.zunionstore(union, [keys.domains(bucket) for bucket in buckets])
        pipe.expire(union, 10)
        pipe.zrevrange(union, 0, busiest - 1, withscores=True)
        if asked:
            pipe.zmscore(union, asked)
        pipe.delete(union)
        results = await pipe.execute()
    relay_counts: Counter[str] = Counter()
    for counts in results[: len(buckets)]:
        for relay, sent in counts.items():
            relay_counts[_text(relay)] += int(sent)
    top = results[len(buckets) + 2]
    domain_counts = {_text(domain): float(sent) for domain, sent in top}
    if asked:
        for domain, sent in zip(asked, results[len(buckets) + 3], strict=True):
            domain_counts.setdefault(domain, float(sent or 0))
    return MeasuredSendRates(
        relays={relay: sent / elapsed_s for relay, sent in relay_counts.items()},
        domains={domain: sent / elapsed_s for domain, sent in domain_counts.items()},
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
