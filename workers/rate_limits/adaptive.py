"""Slowing down for a receiver that says "try later", and speeding up again little by little.

A slow-down factor per key lives in Redis, so every worker on every host sees the same one:
a throttling reply halves it (multiplicative decrease), and after a hold it climbs back to 1 by a
fixed amount per second (additive increase), the feedback Postfix applies to its per-destination
concurrency. No state means full speed; the key expires when the factor is back at 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workers.rate_limits.scripts import FACTORS, SLOW_DOWN

if TYPE_CHECKING:
    # Only annotations: the CLI reads relay settings through this package without Redis.
    from redis.asyncio import Redis


@dataclass(frozen=True, kw_only=True)
class AdaptivePolicy:
    """How far and for how long throttling slows a domain down. Times in seconds."""

    min_factor: float = 1 / 16
    """Never slower than this share of the configured rate."""
    hold_s: float = 60.0
    """After a halving, the factor stays put this long before it starts to recover."""
    recovery_per_s: float = 1 / 300
    """Then it climbs by this much each second: from half speed to full in 150 s."""
    quiet_s: float = 5.0
    """Throttling replies this soon after a halving count as the same event."""
    unlisted_domain_rate: float = 10.0
    """Messages per second a domain without a configured limit is slowed down from."""

    def __post_init__(self) -> None:
        if not 0 < self.min_factor <= 1:
            raise ValueError(f"min_factor must be in (0, 1], got {self.min_factor}")
        if self.hold_s < 0 or self.quiet_s < 0:
            raise ValueError("hold_s and quiet_s cannot be negative")
        if self.recovery_per_s <= 0 or self.unlisted_domain_rate <= 0:
            raise ValueError("recovery_per_s and unlisted_domain_rate must be positive")


class AdaptiveSlowdown:
    def __init__(self, redis: Redis, policy: AdaptivePolicy) -> None:
        self.policy = policy
        self._slow_down = redis.register_script(SLOW_DOWN)
        self._factors = redis.register_script(FACTORS)

    async def slow_down(self, key: str) -> float:
        """Halve ``key``'s factor (once per quiet period); returns the factor now in force."""
        policy = self.policy
        factor = await self._slow_down(
            keys=[key],
            args=[
                repr(policy.min_factor),
                round(policy.hold_s * 1_000_000),
                repr(policy.recovery_per_s / 1_000_000),
                round(policy.quiet_s * 1_000_000),
            ],
        )
        return float(factor)

    async def factors(self, keys: Sequence[str]) -> list[float | None]:
        """Each key's current factor, None where there is no slow-down (full speed)."""
        if not keys:
            return []
        answers = await self._factors(keys=list(keys))
        return [float(answer) if answer else None for answer in answers]
