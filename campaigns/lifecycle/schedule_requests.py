"""A schedule request (now, at a time in a zone, or at a wall time in each recipient's zone) as
the arguments of ``schedule_campaign``: the one parser the CLI and the API share.

Errors name the fields as the caller spells them (``--at`` on the command line, ``at`` in the
API), so each user reads the name they typed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from campaigns.core.errors import InputError
from campaigns.lifecycle.send_times import LocalTimePlan, zone

When = Literal["now", "at", "local_time"]
MIN_YEAR = 1970
MAX_YEAR = 9000


@dataclass(frozen=True)
class ScheduleFields:
    """How the caller names each part of a request, for error messages."""

    at: str = "at"
    timezone: str = "timezone"
    timezone_field: str = "timezone_field"


API_FIELDS = ScheduleFields()
CLI_FIELDS = ScheduleFields(at="--at", timezone="--tz", timezone_field="--tz-field")


@dataclass(frozen=True)
class SchedulePlan:
    send_at: datetime
    local_time: LocalTimePlan | None
    spread_hours: float


def schedule_plan(
    when: When,
    *,
    at: str | None,
    timezone: str,
    timezone_field: str,
    spread_hours: float,
    fields: ScheduleFields = API_FIELDS,
    now: datetime | None = None,
) -> SchedulePlan:
    """``at`` is ISO 8601; without an offset it is in ``timezone`` (``when="at"``) or on each
    recipient's clock, whose zone is in the merge field ``timezone_field`` (``"local_time"``)."""
    now = now or datetime.now(UTC)
    if when == "now":
        return SchedulePlan(now, None, spread_hours)
    if not at:
        raise InputError(f"{fields.at}: a date and time is required (e.g. 2026-12-01T09:00)")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise InputError(
            f"{fields.at}: {at[:40]!r} is not a date and time like 2026-12-01T09:00"
        ) from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise InputError(f"{fields.at}: {at[:40]!r} is out of range ({MIN_YEAR} to {MAX_YEAR})")
    zone_info = zone(timezone, source=fields.timezone)
    if when == "local_time":
        if moment.tzinfo is not None:
            raise InputError(
                f"{fields.at}: give a wall-clock time without an offset for local time"
            )
        if not timezone_field.strip():
            raise InputError(f"{fields.timezone_field}: name the merge field that holds each zone")
        plan = LocalTimePlan(
            wall_time=moment, timezone_field=timezone_field.strip(), default_zone=timezone
        )
        return SchedulePlan(now, plan, 0.0)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_info)
    return SchedulePlan(moment.astimezone(UTC), None, spread_hours)
