"""Events after sending (opens, clicks, unsubscribes, bounces, complaints) and their counters.

Every event is a row on the recipient's job and, in the same transaction, a bump of the
campaign's counters, so counts are read without scanning events or jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.core.event_outbox import OutgoingEvent, queue_outgoing_events
from campaigns.core.models import CampaignCounter, EventKind, Job, JobEvent, utc_now
from campaigns.core.storage import Database, conflict_insert, rows_matched

# The counter named by each event kind, and the one bumped only on a recipient's first such event.
COUNTER_OF = {
    EventKind.OPENED: ("opens", "unique_opens"),
    EventKind.CLICKED: ("clicks", "unique_clicks"),
    EventKind.UNSUBSCRIBED: ("unsubscribes", None),
    EventKind.BOUNCED: ("bounces", None),
    EventKind.COMPLAINED: ("complaints", None),
}
FIRST_SEEN_COLUMN = {EventKind.OPENED: Job.first_opened_at, EventKind.CLICKED: Job.first_clicked_at}


def record_event(
    session: Session,
    *,
    job_id: int,
    campaign_id: int,
    kind: EventKind,
    detail: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
    extra_counters: tuple[str, ...] = (),
    counts_as_first: bool = True,
) -> bool:
    """Add the event and bump its counters; True when it is the recipient's first of its kind.

    ``extra_counters`` are bumped too (e.g. ``bounces_hard`` beside ``bounces``). With
    ``counts_as_first`` false the event can never be the recipient's first: the unique counter
    and ``first_opened_at`` are left alone (a machine-made open says nothing about a person).
    Subscribed webhook endpoints get the event through the outbox, in this same transaction.
    """
    occurred_at = occurred_at or utc_now()
    session.add(
        JobEvent(
            job_id=job_id,
            campaign_id=campaign_id,
            kind=kind,
            occurred_at=occurred_at,
            detail=dict(detail or {}),
        )
    )
    queue_outgoing_events(
        session.connection(),
        [OutgoingEvent(kind.value, job_id, campaign_id, occurred_at, dict(detail or {}))],
    )
    total, unique = COUNTER_OF[kind]
    first = counts_as_first
    if kind in FIRST_SEEN_COLUMN and counts_as_first:
        column = FIRST_SEEN_COLUMN[kind]
        # A conditional UPDATE decides "first" atomically, even with two requests at once.
        result = session.execute(
            update(Job).where(Job.id == job_id, column.is_(None)).values({column.key: occurred_at})
        )
        first = rows_matched(result) == 1
    names = [total, *extra_counters]
    if first and unique:
        names.append(unique)
    for name in names:
        bump_counter(session, campaign_id, name)
    return first


def bump_counter(session: Session, campaign_id: int, name: str, by: int = 1) -> None:
    statement = conflict_insert(session, CampaignCounter).values(
        campaign_id=campaign_id, name=name, value=by
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[CampaignCounter.campaign_id, CampaignCounter.name],
            set_={"value": CampaignCounter.value + by},
        )
    )


def campaign_counters(database: Database, campaign_id: int) -> dict[str, int]:
    with database.session() as session:
        rows = session.execute(
            select(CampaignCounter.name, CampaignCounter.value).where(
                CampaignCounter.campaign_id == campaign_id
            )
        )
        return {name: value for name, value in rows}


def job_history(database: Database, job_id: int) -> list[JobEvent]:
    with database.session() as session:
        return list(
            session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.occurred_at)
            )
        )
