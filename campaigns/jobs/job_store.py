"""Per-recipient jobs: claiming a batch, recording outcomes, releasing and renewing claims.

Every function here is one short transaction. A claim is atomic: a job moves from a claimable
state to ``sending`` in a single UPDATE, so a batch delivered twice by the broker finds nothing
left to send the second time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from campaigns.bounces.policy import BOUNCE_COUNTER
from campaigns.core.batching import chunked
from campaigns.core.event_outbox import (
    OutgoingEvent,
    queue_outgoing_events,
    subscriptions,
    wanted_kinds,
)
from campaigns.core.events import record_event
from campaigns.core.job_predicates import job_is_ready_to_send, job_state_is
from campaigns.core.models import (
    IN_FLIGHT_JOB_STATES,
    Campaign,
    EventKind,
    Job,
    JobState,
    Recipient,
    Suppression,
    TransactionalStream,
    utc_now,
)
from campaigns.core.reply_classes import ReplyClass, bounce_event_class
from campaigns.core.storage import Database, rows_matched
from campaigns.lists.blocked_domains import blocked_domain
from campaigns.lists.suppression import (
    SuppressionReason,
    insert_new_suppressions,
    suppression_blocks,
    suppression_row,
)


@dataclass(frozen=True)
class ClaimedJob:
    job_id: int
    campaign_id: int
    email: str
    fields: dict[str, str]
    attempts: int
    first_attempt_at: datetime | None


@dataclass(frozen=True)
class JobOutcome:
    job_id: int
    state: JobState
    code: int | None
    status: str | None
    reply: str
    attempts: int
    """Attempts including the one that produced this outcome."""
    first_attempt_at: datetime
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    suppression_reason: SuppressionReason | None = None
    """Set for a hard bounce: the address joins the suppression list with this outcome."""
    relay: str | None = None
    """The relay that gave the verdict; None when no relay was reached. Not stored: it feeds
    the measured send rates (workers/delivery/send_rate_counters.py), with ``recipient_domain``."""
    recipient_domain: str | None = None


def claim_jobs(
    database: Database,
    job_ids: Sequence[int],
    *,
    worker_id: str,
    lease_s: float,
    blocked_domains: frozenset[str] = frozenset(),
) -> list[ClaimedJob]:
    """Take the still-claimable jobs among ``job_ids`` for this worker; others are skipped.
    Jobs whose address is suppressed, or at one of ``blocked_domains``, end ``suppressed``."""
    now = utc_now()
    claimed_ids: list[int] = []
    with database.session() as session:
        for ids in chunked(list(job_ids)):
            result = session.execute(
                update(Job)
                .where(Job.id.in_(ids), job_is_ready_to_send(now))
                .values(
                    state=JobState.SENDING,
                    claimed_by=worker_id,
                    lease_until=now + timedelta(seconds=lease_s),
                    updated_at=now,
                )
                .returning(Job.id)
            )
            claimed_ids.extend(result.scalars())
    if not claimed_ids:
        return []
    claimed: list[ClaimedJob] = []
    suppressed_ids: list[int] = []
    with database.session() as session:
        for ids in chunked(claimed_ids):
            rows = session.execute(
                select(
                    Job.id,
                    Job.campaign_id,
                    Job.attempts,
                    Job.first_attempt_at,
                    Recipient.email,
                    Recipient.fields,
                    Suppression.reason,
                    TransactionalStream.category,
                )
                .join(Recipient, Recipient.id == Job.recipient_id)
                .outerjoin(Suppression, Suppression.email_key == Recipient.email_key)
                .outerjoin(TransactionalStream, TransactionalStream.campaign_id == Job.campaign_id)
                .where(Job.id.in_(ids))
                .order_by(Job.id)
            )
            for row in rows:
                # Checked again at send time: an address may be suppressed after the campaign began.
                if row.reason is not None and suppression_blocks(row.reason, row.category):
                    suppressed_ids.append(row.id)
                    continue
                if blocked_domain(row.email, blocked_domains) is not None:
                    suppressed_ids.append(row.id)
                    continue
                claimed.append(
                    ClaimedJob(
                        job_id=row.id,
                        campaign_id=row.campaign_id,
                        email=row.email,
                        fields=dict(row.fields or {}),
                        attempts=row.attempts,
                        first_attempt_at=row.first_attempt_at,
                    )
                )
        for ids in chunked(suppressed_ids):
            session.execute(
                update(Job)
                .where(Job.id.in_(ids))
                .values(
                    state=JobState.SUPPRESSED, claimed_by=None, lease_until=None, updated_at=now
                )
            )
    return claimed


_RECORD_OUTCOME = update(Job).where(Job.id == bindparam("job_id"))
"""Sets, for each row of parameters, the columns its keys name."""


def write_jobs(
    database: Database,
    *,
    outcomes: Sequence[JobOutcome] = (),
    transmitting: Sequence[int] = (),
    worker_id: str = "",
) -> set[int]:
    """Record ``outcomes`` and mark the ``transmitting`` jobs in one transaction; returns the
    ids marked (those still ``worker_id``'s, see ``mark_transmitting``).

    A sending worker writes both at once: on SQLite every transaction takes the one write
    lock that all the worker processes share.
    """
    if not outcomes and not transmitting:
        return set()
    with database.transaction() as connection:
        if outcomes:
            _record_outcomes(connection, outcomes)
        return _mark_transmitting(connection, transmitting, worker_id)


def _record_outcomes(connection: Connection, outcomes: Sequence[JobOutcome]) -> None:
    now = utc_now()
    rows = [
        {
            "job_id": outcome.job_id,
            "state": outcome.state,
            "last_code": outcome.code,
            "last_status": outcome.status,
            "last_reply": outcome.reply[:2000],
            "attempts": outcome.attempts,
            "first_attempt_at": outcome.first_attempt_at,
            "next_attempt_at": outcome.next_attempt_at,
            "sent_at": outcome.sent_at,
            "claimed_by": None,
            "lease_until": None,
            "dispatched_at": None,
            "updated_at": now,
        }
        for outcome in outcomes
    ]
    connection.execute(_RECORD_OUTCOME, rows)
    _queue_relay_events(connection, outcomes, now)
    # Same transaction: a hard bounce is never recorded without its suppression, or the
    # address could be mailed again by a campaign that claims it meanwhile.
    _record_refusals(connection, outcomes)


_RELAY_EVENT_OF = {JobState.SENT: "sent", JobState.DEFERRED: "deferred"}
"""Outcomes reported as they are; a bounce is reported by its event (``_record_refusals``)."""


def _queue_relay_events(
    connection: Connection, outcomes: Sequence[JobOutcome], now: datetime
) -> None:
    """Webhook events for sent and deferred outcomes, when an endpoint wants them (the common
    case of none costs one small read)."""
    subscribed = subscriptions(connection)
    wanted = wanted_kinds(subscribed)
    reported = [
        (kind, outcome)
        for outcome in outcomes
        if (kind := _RELAY_EVENT_OF.get(JobState(outcome.state))) in wanted
    ]
    if not reported:
        return
    campaign_of = dict(
        connection.execute(
            select(Job.id, Job.campaign_id).where(
                Job.id.in_([outcome.job_id for _, outcome in reported])
            )
        ).all()
    )
    events = [
        OutgoingEvent(
            kind,
            outcome.job_id,
            campaign_of[outcome.job_id],
            outcome.sent_at or now,
            {
                "code": outcome.code,
                "status": outcome.status,
                "reply": outcome.reply[:1000],
                "attempts": outcome.attempts,
                "next_attempt_at": (
                    outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else None
                ),
            },
        )
        for kind, outcome in reported
        if outcome.job_id in campaign_of
    ]
    queue_outgoing_events(connection, events, subscribed)


def _record_refusals(connection: Connection, outcomes: Sequence[JobOutcome]) -> None:
    """Bounces the relay gave while sending: an event and counters on the job, like a bounce
    that arrives later, and the suppression a hard bounce calls for."""
    bounced = [outcome for outcome in outcomes if outcome.state == JobState.BOUNCED]
    suppressing = [outcome for outcome in outcomes if outcome.suppression_reason]
    if not bounced and not suppressing:
        return
    with Session(bind=connection) as session:
        _record_refusals_in(session, bounced, suppressing)
        session.flush()


def _record_refusals_in(
    session: Session, bounced: list[JobOutcome], suppressing: list[JobOutcome]
) -> None:
    by_job = {outcome.job_id: outcome for outcome in (*bounced, *suppressing)}
    rows = session.execute(
        select(Job.id, Job.campaign_id, Recipient.email_key)
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(Job.id.in_(list(by_job)))
    ).all()
    now = utc_now()
    for row in rows:
        outcome = by_job[row.id]
        if outcome.state != JobState.BOUNCED:
            continue
        bounce_class = (
            ReplyClass.HARD_BOUNCE if outcome.suppression_reason else ReplyClass.SOFT_BOUNCE
        )
        detail = {
            "source": "smtp",
            "class": bounce_event_class(bounce_class),
            "diagnostic": outcome.reply[:1000],
        }
        if outcome.status:
            detail["status"] = outcome.status
        record_event(
            session,
            job_id=row.id,
            campaign_id=row.campaign_id,
            kind=EventKind.BOUNCED,
            detail=detail,
            occurred_at=now,
            extra_counters=(BOUNCE_COUNTER[bounce_class],),
        )
    # Same transaction as the outcome: a hard bounce is never recorded without its suppression.
    insert_new_suppressions(
        session,
        [
            suppression_row(row.email_key, SuppressionReason(reason), by_job[row.id].reply, now)
            for row in rows
            if (reason := by_job[row.id].suppression_reason)
        ],
    )


def release_jobs(database: Database, job_ids: Sequence[int], *, worker_id: str) -> int:
    """Give unsent claimed jobs back (pause, shutdown); the dispatcher publishes them again."""
    released = 0
    with database.session() as session:
        for ids in chunked(list(job_ids)):
            result = session.execute(
                update(Job)
                .where(
                    Job.id.in_(ids),
                    job_state_is(JobState.SENDING),
                    Job.claimed_by == worker_id,
                )
                .values(
                    state=JobState.QUEUED,
                    claimed_by=None,
                    lease_until=None,
                    dispatched_at=None,
                    updated_at=utc_now(),
                )
            )
            released += rows_matched(result)
    return released


_MARK_TRANSMITTING = (
    update(Job)
    .where(
        Job.id.in_(bindparam("ids", expanding=True)),
        job_state_is(JobState.SENDING),
        Job.claimed_by == bindparam("worker_id"),
    )
    .values(state=JobState.TRANSMITTING)
    .returning(Job.id)
)


def mark_transmitting(database: Database, job_ids: Sequence[int], *, worker_id: str) -> set[int]:
    """Record that these jobs' data is about to go to the relay; returns the ids still ours.

    Committed before the data is sent: a worker that dies after this point leaves jobs the
    relay may have accepted, and those must never be handed to another worker to send again.
    """
    return write_jobs(database, transmitting=job_ids, worker_id=worker_id)


def _mark_transmitting(connection: Connection, job_ids: Sequence[int], worker_id: str) -> set[int]:
    marked: set[int] = set()
    for ids in chunked(list(job_ids)):
        result = connection.execute(_MARK_TRANSMITTING, {"ids": ids, "worker_id": worker_id})
        marked.update(result.scalars())
    return marked


def renew_leases(
    database: Database, job_ids: Sequence[int], *, worker_id: str, lease_s: float
) -> None:
    lease_until = utc_now() + timedelta(seconds=lease_s)
    with database.session() as session:
        for ids in chunked(list(job_ids)):
            session.execute(
                update(Job)
                .where(
                    Job.id.in_(ids),
                    Job.state.in_(IN_FLIGHT_JOB_STATES),
                    Job.claimed_by == worker_id,
                )
                .values(lease_until=lease_until)
            )


LOST_IN_TRANSMISSION = (
    "the worker stopped while sending the message: the relay may have accepted it "
    "(`edm campaigns retry --include-unknown` sends it again)"
)


def release_expired_leases(
    database: Database, now: datetime, *, retry_transmitting: bool = False
) -> int:
    """Jobs of a worker that died mid-batch come back once their lease runs out.

    Jobs it had not begun go back to the queue. Jobs whose data it was sending end ``unknown``
    (the relay may have them), unless ``retry_transmitting`` accepts the risk of a duplicate.
    """
    expired = Job.lease_until < now
    with database.session() as session:
        released = session.execute(
            update(Job)
            .where(Job.state == JobState.SENDING, expired)
            .values(state=JobState.QUEUED, claimed_by=None, lease_until=None, dispatched_at=None)
        )
        transmitting = session.execute(
            update(Job)
            .where(Job.state == JobState.TRANSMITTING, expired)
            .values(
                state=JobState.QUEUED if retry_transmitting else JobState.UNKNOWN,
                claimed_by=None,
                lease_until=None,
                dispatched_at=None,
                last_code=None,
                last_status=None,
                last_reply=LOST_IN_TRANSMISSION,
                updated_at=now,
            )
        )
        return rows_matched(released) + rows_matched(transmitting)


def campaign_states(database: Database, campaign_ids: Iterable[int]) -> dict[int, str]:
    with database.session() as session:
        rows = session.execute(
            select(Campaign.id, Campaign.state).where(Campaign.id.in_(list(campaign_ids)))
        )
        return {row.id: row.state for row in rows}
