"""Outcomes of refusals in delivery, the failure listing and retrying, on a real database.

Delivery to a real SMTP server and the CLI are in tests/integration/test_failures.py."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select, update

from campaigns.core.errors import NotFound, StateError
from campaigns.core.models import (
    Campaign,
    CampaignState,
    Job,
    JobState,
    Suppression,
    utc_now,
)
from campaigns.core.reply_classes import ReplyClass
from campaigns.core.storage import Database
from campaigns.jobs.dispatch import Dispatcher, DispatchLimits
from campaigns.jobs.job_store import JobOutcome, write_jobs
from campaigns.lifecycle.failures import retry_failures, undelivered_recipients
from tests.delivery_helpers import (
    publish_due_jobs,
)
from tests.factories import campaign_in_every_state, campaign_with_jobs, set_jobs


def _suppressions(database: Database) -> dict[str, Suppression]:
    with database.session() as session:
        return {row.email_key: row for row in session.scalars(select(Suppression))}


def test_a_hard_bounce_of_an_address_already_suppressed_keeps_the_first_reason(
    database: Database,
) -> None:
    _, job_ids = campaign_with_jobs(database, 2)
    with database.session() as session:
        session.add(Suppression(email_key="person0@example.com", reason="unsubscribed"))
    bounce = {
        "state": JobState.BOUNCED,
        "code": 550,
        "status": "5.1.1",
        "reply": "550 5.1.1 User unknown",
        "attempts": 1,
        "first_attempt_at": utc_now(),
        "suppression_reason": "hard_bounce",
    }
    write_jobs(database, outcomes=[JobOutcome(job_id=job_id, **bounce) for job_id in job_ids])
    suppressions = _suppressions(database)
    assert suppressions["person0@example.com"].reason == "unsubscribed"
    assert suppressions["person1@example.com"].reason == "hard_bounce"
    assert _job_states_all(database) == [JobState.BOUNCED, JobState.BOUNCED]


def _job_states_all(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(Job.state).order_by(Job.id)))


def _states(database: Database, ids: dict[str, int]) -> dict[str, str]:
    with database.session() as session:
        state_of = {job_id: state for job_id, state in session.execute(select(Job.id, Job.state))}
    return {name: state_of[job_id] for name, job_id in ids.items()}


def test_failures_lists_every_recipient_not_sent_with_its_class(database: Database) -> None:
    campaign_id, ids = campaign_in_every_state(database)
    listed = {row.job_id: row for row in undelivered_recipients(database, campaign_id)}
    assert set(listed) == set(ids.values()) - {ids["sent"]}
    by_name = {name: listed[job_id] for name, job_id in ids.items() if job_id in listed}
    assert by_name["hard"].reply_class == ReplyClass.HARD_BOUNCE
    assert by_name["soft"].reply_class == ReplyClass.SOFT_BOUNCE
    assert by_name["deferred"].next_attempt_at is not None
    assert by_name["suppressed"].reply_class is None
    only = list(undelivered_recipients(database, campaign_id, states=["bounced"]))
    assert {row.job_id for row in only} == {ids["hard"], ids["soft"]}
    with pytest.raises(NotFound):
        undelivered_recipients(database, 999)


def test_retry_requeues_what_may_pass_and_reopens_the_campaign(database: Database) -> None:
    campaign_id, ids = campaign_in_every_state(database)
    before = utc_now()

    result = retry_failures(database, campaign_id)

    assert result.campaign_state == CampaignState.RUNNING
    assert result.due_now == 1
    assert result.requeued == {"transient": 1, "soft_bounce": 1, "permanent": 1, "not_sent": 1}
    assert _states(database, ids) == {
        "sent": JobState.SENT,
        "deferred": JobState.DEFERRED,
        "expired": JobState.QUEUED,
        "hard": JobState.BOUNCED,
        "soft": JobState.QUEUED,
        "policy": JobState.FAILED,
        "plain": JobState.QUEUED,
        "not_sent": JobState.QUEUED,
        "unknown": JobState.UNKNOWN,
        "suppressed": JobState.SUPPRESSED,
        "cancelled": JobState.CANCELLED,
    }
    with database.session() as session:
        deferred = session.get_one(Job, ids["deferred"])
        expired = session.get_one(Job, ids["expired"])
    assert deferred.next_attempt_at is not None and deferred.next_attempt_at <= utc_now()
    assert deferred.next_attempt_at >= before
    # Attempts are history and stay; the retry lifetime starts again.
    assert (expired.attempts, expired.first_attempt_at) == (1, None)

    published = publish_due_jobs(database)
    assert sorted(published) == sorted(
        ids[name] for name in ("deferred", "expired", "soft", "plain", "not_sent")
    )
    with database.session() as session:
        assert session.get_one(Campaign, campaign_id).state == CampaignState.RUNNING


def test_retry_takes_unknown_and_policy_only_when_asked(database: Database) -> None:
    campaign_id, ids = campaign_in_every_state(database)
    result = retry_failures(database, campaign_id, include_unknown=True, include_policy=True)
    assert result.requeued["unknown"] == 1
    assert result.requeued["policy"] == 1
    states = _states(database, ids)
    assert (states["unknown"], states["policy"], states["hard"]) == (
        JobState.QUEUED,
        JobState.QUEUED,
        JobState.BOUNCED,
    )


def test_retry_with_nothing_to_retry_leaves_a_completed_campaign_completed(
    database: Database,
) -> None:
    campaign_id, job_ids = campaign_with_jobs(database, 2, state=CampaignState.COMPLETED)
    set_jobs(database, {job_id: {"state": JobState.SENT} for job_id in job_ids})
    result = retry_failures(database, campaign_id)
    assert (result.total, result.campaign_state) == (0, CampaignState.COMPLETED)


def test_retry_refuses_a_cancelled_campaign(database: Database) -> None:
    campaign_id, _ = campaign_with_jobs(database, 1, state=CampaignState.CANCELLED)
    with pytest.raises(StateError, match="cancelled; cannot retry"):
        retry_failures(database, campaign_id)


def test_a_retry_committed_while_the_dispatcher_waits_on_the_campaign_keeps_it_running(
    database: Database,
) -> None:
    campaign_id, job_ids = campaign_with_jobs(database, 2)
    set_jobs(database, {job_id: {"state": JobState.EXPIRED} for job_id in job_ids})
    dispatcher = Dispatcher(
        database, publish=lambda _ids: None, queue_depth=lambda: 0, limits=DispatchLimits()
    )
    with database.session() as session:
        # What retry_failures does, held open: the campaign row locked, a job queued again.
        session.execute(select(Campaign.id).where(Campaign.id == campaign_id).with_for_update())
        session.execute(update(Job).where(Job.id == job_ids[0]).values(state=JobState.QUEUED))
        session.flush()
        passing = threading.Thread(target=dispatcher.run_once)
        passing.start()
        # Long enough for the pass to reach the campaign row and wait for it (PostgreSQL) or
        # for the write lock (SQLite); were it slower, it would only see the committed retry.
        time.sleep(0.5)
    passing.join(timeout=30)
    assert _campaign_state(database, campaign_id) == CampaignState.RUNNING


def _campaign_state(database: Database, campaign_id: int) -> str:
    with database.session() as session:
        return session.get_one(Campaign, campaign_id).state
