"""The SQL conditions that say what a job is: due, claimable, pending, of a running campaign.

Written once so the dispatcher that publishes jobs, the worker that claims them, the dashboard
that counts them and the commands that cancel them never disagree about which jobs those are.
Each returns a fresh SQLAlchemy expression over ``jobs`` (and ``campaigns``) for a ``where``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, union

from campaigns.core.models import (
    CLAIMABLE_JOB_STATES,
    PENDING_JOB_STATES,
    Campaign,
    CampaignState,
    Job,
    TransactionalMessage,
    TransactionalStream,
)


def job_state_is(state: str) -> ColumnElement[bool]:
    """``jobs.state = state``, for a condition that also lists the jobs' ids.

    Without table statistics SQLite answers ``id IN (...) AND state = ?`` from the state index
    and reads every job in that state: each transmit mark would read all the jobs in flight,
    and each chunk of a retry every failed job of the campaign. The concatenation keeps the
    state index out, so the ids are looked up by primary key (PostgreSQL's statistics pick
    the primary key on their own).
    """
    return Job.state.concat("") == state


def job_is_claimable() -> ColumnElement[bool]:
    """Queued or deferred: waiting for a worker, and not yet handed to a relay."""
    return Job.state.in_(CLAIMABLE_JOB_STATES)


def job_is_pending() -> ColumnElement[bool]:
    """Not finished: waiting, or with a worker right now."""
    return Job.state.in_(PENDING_JOB_STATES)


def job_campaign_is_running() -> ColumnElement[bool]:
    return Job.campaign_id.in_(select(Campaign.id).where(Campaign.state == CampaignState.RUNNING))


def job_attempt_is_due(now: datetime) -> ColumnElement[bool]:
    """Its next attempt (or first, planned for a wall time or a spread) has come."""
    return or_(Job.next_attempt_at.is_(None), Job.next_attempt_at <= now)


def job_attempt_is_later(now: datetime) -> ColumnElement[bool]:
    """Its next attempt is still to come; a job without one is never later."""
    return Job.next_attempt_at > now


def job_is_ready_to_send(now: datetime) -> ColumnElement[bool]:
    """A claimable job of a running campaign whose attempt is due: what workers may take now."""
    return and_(job_is_claimable(), job_campaign_is_running(), job_attempt_is_due(now))


def campaign_has_pending_jobs() -> ColumnElement[bool]:
    """For a condition on ``campaigns``: some job of this campaign is not finished."""
    return exists().where(Job.campaign_id == Campaign.id, job_is_pending())


def campaign_is_stream() -> ColumnElement[bool]:
    """For a condition on ``campaigns``: the system campaign of a transactional stream."""
    return Campaign.id.in_(select(TransactionalStream.campaign_id))


def transactional_list_ids() -> Select[tuple[int]]:
    """For ``NOT IN (...)``: lists that belong to streams and their messages, not to people."""
    return select(
        union(
            select(TransactionalMessage.list_id),
            select(Campaign.list_id).where(campaign_is_stream()),
        ).subquery()
    )


def job_is_transactional() -> ColumnElement[bool]:
    """A one-to-one message: a job of a transactional stream's campaign."""
    return Job.campaign_id.in_(select(TransactionalStream.campaign_id))
