"""When each recipient's message is due: all at once, in each recipient's local time, or spread.

The dispatcher releases a job only once its ``next_attempt_at`` has passed, so a send plan is
nothing more than those times, written once at scheduling.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.core.errors import InputError

SPREAD_SLOT_S = 60.0
"""A spread campaign releases its recipients in slots of this length, evenly filled."""


@dataclass(frozen=True, kw_only=True)
class LocalTimePlan:
    """Send at ``wall_time`` as read on each recipient's clock."""

    wall_time: datetime
    """Naive: the date and time of day, in no zone."""
    timezone_field: str = "timezone"
    default_zone: str = "UTC"

    def __post_init__(self) -> None:
        if self.wall_time.tzinfo is not None:
            raise InputError("--local-time: give --at without an offset (a wall-clock time)")
        zone(self.default_zone, source="--tz")


def zone(name: str, *, source: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{source}: unknown time zone {name!r}") from None


@dataclass(frozen=True)
class LocalTimes:
    due_by_zone: dict[str, datetime]
    """Zone name -> the UTC moment the wall time comes there (the default's for unknown names)."""
    unknown_zones: frozenset[str]


def local_send_times(plan: LocalTimePlan, zone_names: Iterable[str | None]) -> LocalTimes:
    """UTC due times for the zones named by recipients; unknown or missing ones use the default."""
    default = zone(plan.default_zone, source="--tz")
    due: dict[str, datetime] = {plan.default_zone: _due(plan.wall_time, default)}
    unknown: set[str] = set()
    for name in zone_names:
        if not name or name in due:
            continue
        try:
            due[name] = _due(plan.wall_time, ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            due[name] = due[plan.default_zone]
            unknown.add(name)
    return LocalTimes(due, frozenset(unknown))


def _due(wall_time: datetime, where: ZoneInfo) -> datetime:
    return wall_time.replace(tzinfo=where).astimezone(UTC)


@dataclass(frozen=True)
class SpreadSlot:
    first_index: int
    last_index: int
    due: datetime


def spread_slots(count: int, *, start: datetime, spread_s: float) -> Sequence[SpreadSlot]:
    """Split ``count`` recipients, in order, into evenly filled slots across ``spread_s``."""
    if spread_s <= 0:
        raise InputError("--spread-hours: must be more than 0")
    if count == 0:
        return []
    slots = max(1, min(count, int(spread_s // SPREAD_SLOT_S)))
    step_s = spread_s / slots
    result = []
    for slot in range(slots):
        first = slot * count // slots
        last = (slot + 1) * count // slots - 1
        if last >= first:
            result.append(SpreadSlot(first, last, start + timedelta(seconds=slot * step_s)))
    return result
