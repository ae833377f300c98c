"""Opens and clicks written in batches, each exactly once, after their answers were sent.

The tracking endpoints answer a pixel or a click from its signed token alone and append the event
to a queue (``public_endpoints.tracking_events``); this module writes what the queue delivers.
Each event carries a key unique to it (the queue entry's id). A batch is one transaction: the
rows whose key is new are inserted, and only those bump the counters, so a batch delivered again
after its writer died between commit and acknowledgement changes nothing.

The counters and columns moved are those of ``campaigns.tracking.recording`` (which writes one
event as it happens, the path taken without a queue): ``opens``, ``machine_opens`` and
``unique_opens`` with ``Job.first_opened_at``; ``clicks`` and ``unique_clicks`` with
``Job.first_clicked_at``. An event whose job no longer exists is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from campaigns.core.event_outbox import OutgoingEvent, queue_outgoing_events
from campaigns.core.events import COUNTER_OF, FIRST_SEEN_COLUMN, bump_counter
from campaigns.core.models import IN_FLIGHT_JOB_STATES, EventKind, Job, JobEvent
from campaigns.core.storage import Database, conflict_insert
from campaigns.tracking.machine_opens import image_proxy, machine_open_reason
from campaigns.tracking.recording import MACHINE_OPENS_COUNTER, USER_AGENT_CHARS

TRACKED_KINDS = (EventKind.OPENED, EventKind.CLICKED)


@dataclass(frozen=True)
class TrackedEvent:
    key: str
    """Unique to this event (at most 40 characters): a second write of it is ignored."""
    kind: EventKind
    job_id: int
    occurred_at: datetime
    user_agent: str
    link_id: int | None = None
    """The clicked link (clicks only)."""


@dataclass(frozen=True)
class _Row:
    event: TrackedEvent
    campaign_id: int
    machine: bool
    values: dict[str, Any]


def write_tracked_events(database: Database, events: Sequence[TrackedEvent]) -> int:
    """Write the events not written before, in one transaction; the number newly written."""
    if not events:
        return 0
    with database.session() as session:
        rows = _rows(session, events)
        if not rows:
            return 0
        statement = conflict_insert(session, JobEvent).on_conflict_do_nothing()
        inserted = set(
            session.scalars(
                statement.returning(JobEvent.event_key), [row.values for row in rows]
            ).all()
        )
        written = [row for row in rows if row.event.key in inserted]
        _bump_counters(session, written)
        # Only the rows written now: a batch delivered again reports nothing twice.
        queue_outgoing_events(
            session.connection(),
            [
                OutgoingEvent(
                    row.event.kind.value,
                    row.event.job_id,
                    row.campaign_id,
                    row.event.occurred_at,
                    row.values["detail"],
                )
                for row in written
            ],
        )
        return len(written)


def _rows(session: Session, events: Sequence[TrackedEvent]) -> list[_Row]:
    job_ids = {event.job_id for event in events}
    jobs = {
        job.id: job
        for job in session.execute(
            select(Job.id, Job.campaign_id, Job.state, Job.sent_at).where(Job.id.in_(job_ids))
        )
    }
    rows = []
    for event in events:
        job = jobs.get(event.job_id)
        if job is None:
            continue  # its campaign was deleted since the answer
        user_agent = event.user_agent[:USER_AGENT_CHARS]
        machine = False
        if event.kind == EventKind.OPENED:
            # Still "sending" when the open came: it came as soon after delivery as one can.
            sent_at = event.occurred_at if job.state in IN_FLIGHT_JOB_STATES else job.sent_at
            reason = machine_open_reason(user_agent, opened_at=event.occurred_at, sent_at=sent_at)
            machine = reason is not None
            detail: dict[str, Any] = {
                "user_agent": user_agent,
                "machine": reason.value if reason else None,
                "proxy": image_proxy(user_agent),
            }
        else:
            detail = {"link_id": str(event.link_id), "user_agent": user_agent}
        values = {
            "job_id": event.job_id,
            "campaign_id": job.campaign_id,
            "kind": event.kind.value,
            "occurred_at": event.occurred_at,
            "detail": detail,
            "event_key": event.key,
        }
        rows.append(_Row(event=event, campaign_id=job.campaign_id, machine=machine, values=values))
    return rows


def _bump_counters(session: Session, written: list[_Row]) -> None:
    bumps: Counter[tuple[int, str]] = Counter()
    for kind in TRACKED_KINDS:
        total, unique = COUNTER_OF[kind]
        of_kind = [row for row in written if row.event.kind == kind]
        for row in of_kind:
            bumps[(row.campaign_id, total)] += 1
            if row.machine:
                bumps[(row.campaign_id, MACHINE_OPENS_COUNTER)] += 1
        # A machine-made open is never a recipient's first: it says nothing about a person.
        candidates = [row for row in of_kind if not row.machine]
        assert unique is not None
        for campaign_id in _first_seen(session, FIRST_SEEN_COLUMN[kind], candidates):
            bumps[(campaign_id, unique)] += 1
    for (campaign_id, name), by in sorted(bumps.items()):
        bump_counter(session, campaign_id, name, by)


def _first_seen(
    session: Session, column: InstrumentedAttribute[Any], candidates: list[_Row]
) -> list[int]:
    """Set ``column`` on the jobs that had it empty, to their earliest event here; the campaign
    of each job set. The conditional UPDATE decides "first" atomically against other writers."""
    earliest: dict[int, _Row] = {}
    for row in candidates:
        held = earliest.get(row.event.job_id)
        if held is None or row.event.occurred_at < held.event.occurred_at:
            earliest[row.event.job_id] = row
    if not earliest:
        return []
    times = {job_id: row.event.occurred_at for job_id, row in earliest.items()}
    first_jobs = session.scalars(
        update(Job)
        .where(Job.id.in_(times), column.is_(None))
        .values({column.key: case(times, value=Job.id)})
        .returning(Job.id)
    ).all()
    return [earliest[job_id].campaign_id for job_id in first_jobs]
