"""The kinds of limit a permit can be subject to. A permit is taken only when all of them allow.

Each names its Redis key; the limiter checks them together in one atomic step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

AdaptiveMode = Literal["none", "always", "when_slowed"]


def default_burst(per_second: float) -> int:
    """A tenth of a second's worth, at least one.

    A little burst lets a waiter that wakes a few milliseconds late take its slot without the
    rate losing those milliseconds for good; more would let short spikes through.
    """
    return max(1, math.ceil(per_second / 10))


@dataclass(frozen=True)
class Rate:
    """At most ``per_second`` permits a second, with bursts of at most ``burst`` (GCRA).

    Over any window of ``w`` seconds at most ``per_second * w + burst`` permits are given.
    With an ``adaptive_key`` the rate is multiplied by that key's slow-down factor; in
    ``"when_slowed"`` mode the rate applies only while a slow-down is in force (a domain
    without a configured limit, which a throttling reply gave one for a while).
    """

    key: str
    per_second: float
    burst: int = 1
    adaptive_key: str | None = None
    adaptive_mode: AdaptiveMode = "none"

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"{self.key}: per_second must be positive, got {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"{self.key}: burst must be at least 1, got {self.burst}")
        if (self.adaptive_key is None) != (self.adaptive_mode == "none"):
            raise ValueError(f"{self.key}: adaptive_key and adaptive_mode go together")


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` permits in any rolling window of ``window_s`` seconds.

    Counted in ``buckets`` slices of the window: memory stays small whatever the limit (a
    per-day quota of a million is 60 counters, not a million timestamps), at the cost of
    freeing room up to one slice later than an exact log would.
    """

    key: str
    limit: int
    window_s: float
    buckets: int = 60

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s <= 0 or self.buckets < 1:
            raise ValueError(f"{self.key}: limit, window_s and buckets must be positive")

    @property
    def bucket_us(self) -> int:
        return max(1, round(self.window_s * 1_000_000 / self.buckets))


@dataclass(frozen=True)
class Concurrency:
    """At most ``limit`` permits held at once, across every process.

    A held slot is renewed while its holder works; one whose holder died frees itself
    ``hold_s`` seconds after its last renewal.
    """

    key: str
    limit: int
    hold_s: float = 30.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.hold_s <= 0:
            raise ValueError(f"{self.key}: limit and hold_s must be positive")


@dataclass(frozen=True)
class ClosedWhileSet:
    """No permits while ``key`` exists (a relay cooling off after refusing connections)."""

    key: str


Limit = Rate | Quota | Concurrency | ClosedWhileSet
