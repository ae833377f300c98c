"""When an endpoint that failed is tried again, and when it is paused.

An endpoint's events go out in order, so a failure holds back the whole endpoint (not one
event): the next POST waits ``first_delay_s``, doubling each failure up to ``max_delay_s``.
After failing every attempt for ``pause_after_s`` (a day by default) the endpoint is paused; its
events stay in the outbox and go out, in order, once a person resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrySchedule:
    first_delay_s: float = 5.0
    max_delay_s: float = 3600.0
    pause_after_s: float = 86400.0

    def __post_init__(self) -> None:
        if not 0 < self.first_delay_s <= self.max_delay_s:
            raise ValueError(
                f"retry delays: 0 < first ({self.first_delay_s}) <= max ({self.max_delay_s})"
            )

    def delay_s(self, consecutive_failures: int) -> float:
        """The wait after the ``consecutive_failures``-th failure in a row (1 for the first)."""
        exponent = max(consecutive_failures - 1, 0)
        # Capped before raising 2 to it: a month of failures must not overflow a float.
        if exponent >= 64:
            return self.max_delay_s
        return min(self.first_delay_s * 2.0**exponent, self.max_delay_s)

    def next_attempt_at(self, consecutive_failures: int, now: datetime) -> datetime:
        return now + timedelta(seconds=self.delay_s(consecutive_failures))

    def should_pause(self, failing_since: datetime, now: datetime) -> bool:
        """True once every attempt since ``failing_since`` failed for ``pause_after_s``."""
        return (now - failing_since).total_seconds() >= self.pause_after_s
