"""Who in a campaign was not delivered and why, and trying again for those it may help.

``edm campaigns failures`` lists every job not ``sent``; ``edm campaigns retry`` re-queues the
ones whose failure may pass. What may pass is decided by the same classification delivery used
(:mod:`campaigns.core.reply_classes`):

- deferred: due now instead of at its next backoff time;
- expired, soft bounces, other refusals and messages never sent: queued again, their attempts
  kept, with a fresh retry lifetime;
- unknown (the relay may have the message): only with ``include_unknown``; it may arrive twice;
- policy refusals (5.7.x): only with ``include_policy``, once the sender fixed the cause;
- hard bounces, suppressed and cancelled recipients: never.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.core.batching import chunked
from campaigns.core.errors import NotFound, StateError
from campaigns.core.job_predicates import job_state_is
from campaigns.core.models import Campaign, CampaignState, Job, JobState, Recipient, utc_now
from campaigns.core.reply_classes import ReplyClass, job_reply_class
from campaigns.core.storage import Database, rows_matched

_STREAM_ROWS = 1000
_RETRIED_STATES = (
    JobState.DEFERRED,
    JobState.EXPIRED,
    JobState.BOUNCED,
    JobState.FAILED,
    JobState.UNKNOWN,
)
_REQUEUED_CLASSES = frozenset(
    {ReplyClass.TRANSIENT, ReplyClass.SOFT_BOUNCE, ReplyClass.PERMANENT, ReplyClass.NOT_SENT}
)
_RETRYABLE_CAMPAIGN_STATES = (
    CampaignState.RUNNING,
    CampaignState.PAUSED,
    CampaignState.COMPLETED,
)


@dataclass(frozen=True)
class UndeliveredRecipient:
    """One job not ``sent``, with what the relay last said about it."""

    job_id: int
    email: str
    state: str
    reply_class: ReplyClass | None
    """None while no relay has answered (queued, sending, suppressed, cancelled)."""
    attempts: int
    last_code: int | None
    last_status: str | None
    last_reply: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class RetryResult:
    campaign_state: str
    due_now: int
    """Deferred jobs whose next attempt was brought forward."""
    requeued: dict[str, int]
    """Jobs queued again, by the class of their last outcome."""

    @property
    def total(self) -> int:
        return self.due_now + sum(self.requeued.values())


def undelivered_recipients(
    database: Database, campaign_id: int, *, states: Sequence[str] = ()
) -> Iterator[UndeliveredRecipient]:
    """Every job of the campaign not ``sent`` (only ``states`` when given), in job order.

    An unknown campaign raises here, not once the stream is read, so nothing is half-written.
    """
    _require_campaign(database, campaign_id)
    query = (
        select(
            Job.id,
            Recipient.email,
            Job.state,
            Job.attempts,
            Job.last_code,
            Job.last_status,
            Job.last_reply,
            Job.next_attempt_at,
        )
        .join(Recipient, Recipient.id == Job.recipient_id)
        .where(Job.campaign_id == campaign_id, Job.state != JobState.SENT)
        .order_by(Job.id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    if states:
        query = query.where(Job.state.in_(list(states)))
    return _stream(database, query)


def _stream(database: Database, query: Any) -> Iterator[UndeliveredRecipient]:
    with database.session() as session:
        for row in session.execute(query):
            yield UndeliveredRecipient(
                job_id=row.id,
                email=row.email,
                state=row.state,
                reply_class=job_reply_class(row.state, row.last_code, row.last_status),
                attempts=row.attempts,
                last_code=row.last_code,
                last_status=row.last_status,
                last_reply=row.last_reply,
                next_attempt_at=row.next_attempt_at,
            )


def retry_failures(
    database: Database,
    campaign_id: int,
    *,
    include_unknown: bool = False,
    include_policy: bool = False,
) -> RetryResult:
    """Re-queue the retryable jobs and put a completed campaign back to running, atomically."""
    requeue_classes = set(_REQUEUED_CLASSES)
    if include_unknown:
        requeue_classes.add(ReplyClass.UNKNOWN)
    if include_policy:
        requeue_classes.add(ReplyClass.POLICY)
    now = utc_now()
    with database.session() as session:
        # Locked until commit: the dispatcher cannot complete the campaign half-way through.
        campaign_state = session.scalar(
            select(Campaign.state).where(Campaign.id == campaign_id).with_for_update()
        )
        if campaign_state is None:
            raise NotFound(f"campaign {campaign_id} not found")
        if campaign_state not in _RETRYABLE_CAMPAIGN_STATES:
            raise StateError(f"campaign {campaign_id} is {campaign_state}; cannot retry it")
        deferred: list[int] = []
        requeued: dict[str, list[int]] = {}
        requeued_by_class: Counter[str] = Counter()
        candidates = session.execute(
            select(Job.id, Job.state, Job.last_code, Job.last_status).where(
                Job.campaign_id == campaign_id, Job.state.in_(_RETRIED_STATES)
            )
        )
        for row in candidates:
            if row.state == JobState.DEFERRED:
                deferred.append(row.id)
                continue
            reply_class = job_reply_class(row.state, row.last_code, row.last_status)
            if reply_class in requeue_classes:
                requeued.setdefault(row.state, []).append(row.id)
                requeued_by_class[str(reply_class)] += 1
        due_now = _update_jobs(
            session,
            deferred,
            from_state=JobState.DEFERRED,
            values={"next_attempt_at": now, "dispatched_at": None, "updated_at": now},
        )
        for from_state, job_ids in requeued.items():
            _update_jobs(
                session,
                job_ids,
                from_state=from_state,
                # A fresh lifetime: an expired job deferred once more must not expire at once.
                values={
                    "state": JobState.QUEUED,
                    "first_attempt_at": None,
                    "next_attempt_at": None,
                    "dispatched_at": None,
                    "updated_at": now,
                },
            )
        if requeued_by_class and campaign_state == CampaignState.COMPLETED:
            session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(state=CampaignState.RUNNING, finished_at=None)
            )
            campaign_state = CampaignState.RUNNING
        return RetryResult(
            campaign_state=campaign_state, due_now=due_now, requeued=dict(requeued_by_class)
        )


def _update_jobs(
    session: Session, job_ids: list[int], *, from_state: str, values: dict[str, Any]
) -> int:
    updated = 0
    for ids in chunked(job_ids):
        # The state condition leaves alone a job a worker claimed since it was read.
        result = session.execute(
            update(Job).where(Job.id.in_(ids), job_state_is(from_state)).values(**values)
        )
        updated += rows_matched(result)
    return updated


def _require_campaign(database: Database, campaign_id: int) -> None:
    with database.session() as session:
        if session.get(Campaign, campaign_id) is None:
            raise NotFound(f"campaign {campaign_id} not found")
