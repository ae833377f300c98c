"""When a deferred job is tried again, and when it stops being tried."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, within a lifetime (defaults near Postfix's)."""

    first_delay_s: float = 300.0
    max_delay_s: float = 4 * 3600.0
    lifetime_s: float = 3 * 86400.0
    jitter_ratio: float = 0.2
    """Spreads retries so a domain that deferred many recipients is not hit by all at once."""

    def __post_init__(self) -> None:
        if self.first_delay_s <= 0 or self.max_delay_s < self.first_delay_s or self.lifetime_s <= 0:
            raise ValueError("retry delays must be positive and max_delay_s >= first_delay_s")

    def next_attempt_at(
        self, *, attempts: int, first_attempt_at: datetime, now: datetime
    ) -> datetime | None:
        """The time of the next try after ``attempts`` tries, or None when the lifetime is over."""
        delay_s = min(self.first_delay_s * 2 ** max(attempts - 1, 0), self.max_delay_s)
        delay_s *= 1 + random.uniform(-self.jitter_ratio, self.jitter_ratio)
        next_at = now + timedelta(seconds=delay_s)
        if next_at > first_attempt_at + timedelta(seconds=self.lifetime_s):
            return None
        return next_at
