"""Limits shared by every worker on every host, kept in Redis.

``limits`` says what a permit is subject to (rates, rolling quotas, connection slots, a closed
relay); ``RateLimiter`` owns waiting, holding and giving back; ``RedisRateLimiter`` checks all
limits of a permit in one Lua script; ``AdaptiveSlowdown`` keeps the per-domain slow-down factor.
"""

from workers.rate_limits.adaptive import AdaptivePolicy, AdaptiveSlowdown
from workers.rate_limits.limits import (
    ClosedWhileSet,
    Concurrency,
    Limit,
    Quota,
    Rate,
    default_burst,
)
from workers.rate_limits.rate_limiter import Denial, Permit, PermitRefused, RateLimiter
from workers.rate_limits.redis_limiter import RedisRateLimiter

__all__ = [
    "AdaptivePolicy",
    "AdaptiveSlowdown",
    "ClosedWhileSet",
    "Concurrency",
    "Denial",
    "Limit",
    "Permit",
    "PermitRefused",
    "Quota",
    "Rate",
    "RateLimiter",
    "RedisRateLimiter",
    "default_burst",
]
