"""Event retention (``EDM_EVENT_RETENTION_DAYS``, ``edm maintenance prune``).

Old events and relay reply texts go; the campaigns' counters do not, because they are kept in
``campaign_counters`` and ``job_state_counts`` as events arrive and never recounted from the
events. A job keeps its state and times (when it was sent, first opened, first clicked).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from campaigns.core.batching import chunked
from campaigns.core.errors import InputError
from campaigns.core.models import Job, JobEvent
from campaigns.core.storage import Database, rows_matched

PRUNE_BATCH = 10_000
"""Rows per transaction: a long prune never holds a lock for long."""


@dataclass(frozen=True)
class PruneReport:
    events: int
    replies: int
    before: datetime


def prune_history(database: Database, *, retention_days: float, now: datetime) -> PruneReport:
    """Delete events older than ``retention_days`` and clear the reply texts of jobs not
    updated since; ``now`` is passed so the cut-off is the caller's."""
    if retention_days <= 0:
        raise InputError("EDM_EVENT_RETENTION_DAYS: set it (days, more than 0) to prune")
    before = now - timedelta(days=retention_days)
    events = 0
    while True:
        with database.session() as session:
            ids = list(
                session.scalars(
                    select(JobEvent.id).where(JobEvent.occurred_at < before).limit(PRUNE_BATCH)
                )
            )
            for batch in chunked(ids):
                session.execute(delete(JobEvent).where(JobEvent.id.in_(batch)))
        events += len(ids)
        if len(ids) < PRUNE_BATCH:
            break
    replies = 0
    while True:
        with database.session() as session:
            ids = list(
                session.scalars(
                    select(Job.id)
                    .where(Job.updated_at < before, Job.last_reply.is_not(None))
                    .limit(PRUNE_BATCH)
                )
            )
            for batch in chunked(ids):
                replies += rows_matched(
                    session.execute(update(Job).where(Job.id.in_(batch)).values(last_reply=None))
                )
        if len(ids) < PRUNE_BATCH:
            break
    return PruneReport(events, replies, before)
