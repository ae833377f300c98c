"""The limiter on Redis: one Lua script checks every limit of a permit and takes all or none.

One round trip per attempt. Separate limiters taken one after the other would either hold a
connection slot while waiting for a domain's token or spend a relay's token while waiting for a
slot; one script avoids both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workers.rate_limits.limits import ClosedWhileSet, Concurrency, Limit, Quota, Rate
from workers.rate_limits.rate_limiter import Denial, Permit, RateLimiter
from workers.rate_limits.scripts import ACQUIRE, RENEW_SLOTS

if TYPE_CHECKING:
    # Only annotations: the CLI reads relay settings through this package without Redis.
    from redis.asyncio import Redis


class RedisRateLimiter(RateLimiter):
    def __init__(self, redis: Redis, *, poll_s: float = 0.02, check_s: float = 0.25) -> None:
        super().__init__(poll_s=poll_s, check_s=check_s)
        self.redis = redis
        self._acquire = redis.register_script(ACQUIRE)
        self._renew_slots = redis.register_script(RENEW_SLOTS)

    async def _try_acquire(self, limits: Sequence[Limit], token: str) -> Permit | Denial:
        keys: list[str] = []
        args: list[Any] = [token, len(limits)]
        for limit in limits:
            _encode(limit, keys, args)
        taken, time_us, index, *counted = await self._acquire(keys=keys, args=args)
        if int(taken):
            held = tuple(limit for limit in limits if isinstance(limit, Concurrency))
            return Permit(
                token,
                held,
                granted_at=int(time_us) / 1_000_000,
                unconstrained=int(counted[0]) == 0,
            )
        wait_us = int(time_us)
        return Denial(limits[int(index) - 1], None if wait_us < 0 else wait_us / 1_000_000)

    async def _renew(self, permit: Permit) -> None:
        # Renewed together, so one hold time serves: the shortest, which is the strictest.
        hold_us = round(min(slot.hold_s for slot in permit.held) * 1_000_000)
        await self._renew_slots(
            keys=[slot.key for slot in permit.held], args=[permit.token, hold_us]
        )

    async def _release(self, permit: Permit) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for slot in permit.held:
                pipe.zrem(slot.key, permit.token)
            await pipe.execute()


def _encode(limit: Limit, keys: list[str], args: list[Any]) -> None:
    """Append the limit's keys and arguments in the order the ACQUIRE script reads them."""
    keys.append(limit.key)
    if isinstance(limit, ClosedWhileSet):
        args.append("closed")
    elif isinstance(limit, Rate):
        args.extend(["rate", repr(limit.per_second), limit.burst, limit.adaptive_mode])
        if limit.adaptive_key is not None:
            keys.append(limit.adaptive_key)
    elif isinstance(limit, Quota):
        args.extend(["quota", limit.limit, limit.bucket_us, limit.buckets])
    elif isinstance(limit, Concurrency):
        args.extend(["slots", limit.limit, round(limit.hold_s * 1_000_000)])
    else:
        raise TypeError(f"unknown limit {limit!r}")
