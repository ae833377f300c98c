"""Taking an endpoint's due events from the outbox, in order, and recording how a POST went.

One deliverer holds an endpoint at a time (a lease on its row, so worker processes on several
hosts share the work without Redis) and sends its oldest events first; on failure the whole
endpoint waits, which is what keeps every message's events in order. A delivered batch is
deleted; a deliverer that dies between the receiver's answer and the delete makes the batch go
again with the same event ids (at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from campaigns.core.models import (
    Job,
    Recipient,
    TransactionalMessage,
    TransactionalStream,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookOutboxEvent,
)
from campaigns.core.storage import Database, rows_matched
from campaigns.webhooks.backoff import RetrySchedule
from campaigns.webhooks.endpoints import ACTIVE, PAUSED

ATTEMPTS_KEPT = 50
"""Delivery log rows kept per endpoint (up to ``_TRIM_EVERY`` more between trims)."""
_TRIM_EVERY = 10
_CANDIDATES_PER_PASS = 20


@dataclass(frozen=True)
class DueEndpoint:
    id: int
    url: str
    secret: str


@dataclass(frozen=True)
class PendingBatch:
    outbox_ids: list[int]
    events: list[dict[str, Any]]
    """What the receiver gets, each with its stable ``id``."""


@dataclass(frozen=True)
class Attempt:
    attempted_at: datetime
    events: int
    status_code: int | None
    response_ms: int
    error: str | None = None


def lease_due_endpoint(database: Database, *, now: datetime, lease_s: float) -> DueEndpoint | None:
    """An active endpoint with events waiting and no retry delay pending, leased to the caller
    for ``lease_s``; None when there is none."""
    free = or_(WebhookEndpoint.lease_until.is_(None), WebhookEndpoint.lease_until < now)
    due = or_(WebhookEndpoint.next_attempt_at.is_(None), WebhookEndpoint.next_attempt_at <= now)
    has_events = exists().where(WebhookOutboxEvent.endpoint_id == WebhookEndpoint.id)
    with database.session() as session:
        candidates = session.scalars(
            select(WebhookEndpoint.id)
            .where(WebhookEndpoint.state == ACTIVE, free, due, has_events)
            .order_by(WebhookEndpoint.next_attempt_at.nulls_first(), WebhookEndpoint.id)
            .limit(_CANDIDATES_PER_PASS)
        ).all()
    for endpoint_id in candidates:
        with database.session() as session:
            leased = session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.state == ACTIVE, free)
                .values(lease_until=now + timedelta(seconds=lease_s))
                .returning(WebhookEndpoint.url, WebhookEndpoint.secret)
            ).first()
        if leased is not None:
            return DueEndpoint(endpoint_id, leased.url, leased.secret)
    return None


def next_batch(database: Database, endpoint_id: int, *, limit: int) -> PendingBatch:
    """The endpoint's ``limit`` oldest undelivered events, as the receiver will see them."""
    outbox = WebhookOutboxEvent
    with database.transaction() as connection:
        # Columns, not ORM objects: this runs for every batch of every endpoint.
        rows = connection.execute(
            select(
                outbox.id,
                outbox.event_id,
                outbox.kind,
                outbox.occurred_at,
                outbox.job_id,
                outbox.campaign_id,
                outbox.detail,
                Recipient.email,
                TransactionalMessage.uuid,
                TransactionalStream.category,
            )
            .outerjoin(Job, Job.id == outbox.job_id)
            .outerjoin(Recipient, Recipient.id == Job.recipient_id)
            .outerjoin(TransactionalMessage, TransactionalMessage.job_id == outbox.job_id)
            .outerjoin(TransactionalStream, TransactionalStream.campaign_id == outbox.campaign_id)
            .where(outbox.endpoint_id == endpoint_id)
            .order_by(outbox.id)
            .limit(limit)
        ).all()
    return PendingBatch(outbox_ids=[row.id for row in rows], events=[_payload(row) for row in rows])


def _payload(row: Row[Any]) -> dict[str, Any]:
    details = dict(row.detail or {})
    if row.kind == "opened":
        # The machine-open classification of campaigns.tracking.machine_opens, as a flag.
        details["human"] = details.get("machine") is None
    return {
        "id": row.event_id,
        "type": row.kind,
        "timestamp": row.occurred_at.isoformat(),
        "message_id": row.uuid,
        "job_id": row.job_id,
        "campaign_id": row.campaign_id,
        "category": row.category,
        "recipient": row.email,
        "details": details,
    }


def record_delivered(
    database: Database, endpoint_id: int, outbox_ids: Sequence[int], attempt: Attempt
) -> None:
    with database.session() as session:
        session.execute(delete(WebhookOutboxEvent).where(WebhookOutboxEvent.id.in_(outbox_ids)))
        still_there = session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(consecutive_failures=0, failing_since=None, next_attempt_at=None)
        )
        # Removed while its batch was on the way: nothing left to log it against.
        if rows_matched(still_there):
            _log_attempt(session, endpoint_id, attempt)


def record_failed(
    database: Database,
    endpoint_id: int,
    outbox_ids: Sequence[int],
    attempt: Attempt,
    *,
    schedule: RetrySchedule,
) -> bool:
    """Count the failure and set the next attempt's time; True when the endpoint is now paused."""
    now = attempt.attempted_at
    with database.session() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        if row is None:
            return False
        failures = row.consecutive_failures + 1
        failing_since = row.failing_since or now
        paused = schedule.should_pause(failing_since, now)
        session.execute(
            update(WebhookOutboxEvent)
            .where(WebhookOutboxEvent.id.in_(outbox_ids))
            .values(attempts=WebhookOutboxEvent.attempts + 1)
        )
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(
                consecutive_failures=failures,
                failing_since=failing_since,
                next_attempt_at=schedule.next_attempt_at(failures, now),
                state=PAUSED if paused else row.state,
                lease_until=None,
            )
        )
        _log_attempt(session, endpoint_id, attempt)
        return paused


def release_lease(database: Database, endpoint_id: int) -> None:
    with database.session() as session:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(lease_until=None)
        )


def _log_attempt(session: Session, endpoint_id: int, attempt: Attempt) -> None:
    row = WebhookAttempt(
        endpoint_id=endpoint_id,
        attempted_at=attempt.attempted_at,
        events=attempt.events,
        status_code=attempt.status_code,
        response_ms=attempt.response_ms,
        error=(attempt.error or None) and attempt.error[:300],
    )
    session.add(row)
    session.flush()
    # Trimmed now and then, not on every POST: the log is a convenience, the POSTs the work.
    if row.id % _TRIM_EVERY:
        return
    kept = (
        select(WebhookAttempt.id)
        .where(WebhookAttempt.endpoint_id == endpoint_id)
        .order_by(WebhookAttempt.id.desc())
        .limit(ATTEMPTS_KEPT)
    )
    session.execute(
        delete(WebhookAttempt).where(
            WebhookAttempt.endpoint_id == endpoint_id, WebhookAttempt.id.not_in(kept)
        )
    )
