"""Latencies of transactional messages: from the moment the project accepted each one (the API's
202, the submission's 250) to the moment the sink answered its 250, matched by recipient."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of them at or
    below it (p99 of 1,000 values is the 990th smallest, an actually observed latency)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class LatencySummary:
    accepted: int
    arrived: int
    missing: int
    """Accepted but never seen at the sink (within the wait)."""
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def summarise(accepted: Mapping[str, float], arrived: Mapping[str, float]) -> LatencySummary:
    """``accepted`` and ``arrived`` map a recipient to a time in seconds on the same clock."""
    latencies_ms = [
        (arrived[address] - at) * 1000 for address, at in accepted.items() if address in arrived
    ]
    if not latencies_ms:
        return LatencySummary(len(accepted), 0, len(accepted), None, None, None)
    return LatencySummary(
        accepted=len(accepted),
        arrived=len(latencies_ms),
        missing=len(accepted) - len(latencies_ms),
        p50_ms=percentile(latencies_ms, 0.50),
        p99_ms=percentile(latencies_ms, 0.99),
        max_ms=max(latencies_ms),
    )
