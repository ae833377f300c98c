"""Dispatcher and job claiming against a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select

from campaigns.core.models import (
    Campaign,
    CampaignState,
    Job,
    JobState,
    Suppression,
    utc_now,
)
from campaigns.core.storage import Database
from campaigns.jobs.dispatch import Dispatcher, DispatchLimits
from campaigns.jobs.job_store import (
    JobOutcome,
    claim_jobs,
    mark_transmitting,
    release_jobs,
    write_jobs,
)
from tests.factories import campaign_with_jobs


def _job_states(database: Database, job_ids: Sequence[int]) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(Job.state).where(Job.id.in_(job_ids)).order_by(Job.id)))


def _campaign_state(database: Database, campaign_id: int) -> str:
    with database.session() as session:
        return session.get_one(Campaign, campaign_id).state


class _Broker:
    """Collects published batches in place of Celery; the depth is what the test says."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.depth = 0

    def publish(self, job_ids: Sequence[int]) -> None:
        self.batches.append(list(job_ids))

    def dispatcher(self, database: Database, **limits: float) -> Dispatcher:
        return Dispatcher(
            database,
            publish=self.publish,
            queue_depth=lambda: self.depth,
            limits=DispatchLimits(**limits),  # type: ignore[arg-type]
        )


def test_a_batch_claimed_twice_is_sent_once(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 5)
    first = claim_jobs(database, job_ids, worker_id="a", lease_s=60)
    second = claim_jobs(database, job_ids, worker_id="b", lease_s=60)
    assert [job.job_id for job in first] == job_ids
    assert second == []
    assert _job_states(database, job_ids) == [JobState.SENDING] * 5


def test_jobs_of_a_paused_campaign_are_not_claimed(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 3, state=CampaignState.PAUSED)
    assert claim_jobs(database, job_ids, worker_id="a", lease_s=60) == []
    assert _job_states(database, job_ids) == [JobState.QUEUED] * 3


def test_an_address_suppressed_after_scheduling_is_not_sent(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 3)
    with database.session() as session:
        session.add(Suppression(email_key="person1@example.com", reason="unsubscribe"))
    claimed = claim_jobs(database, job_ids, worker_id="a", lease_s=60)
    assert [job.email for job in claimed] == ["person0@example.com", "person2@example.com"]
    assert _job_states(database, job_ids)[1] == JobState.SUPPRESSED


def test_released_jobs_can_be_claimed_again(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 4)
    claim_jobs(database, job_ids, worker_id="a", lease_s=60)
    assert release_jobs(database, job_ids[2:], worker_id="someone-else") == 0
    assert release_jobs(database, job_ids[2:], worker_id="a") == 2
    again = claim_jobs(database, job_ids, worker_id="b", lease_s=60)
    assert [job.job_id for job in again] == job_ids[2:]


def test_dispatcher_publishes_due_jobs_in_batches_within_the_queue_room(
    database: Database,
) -> None:
    _, job_ids = campaign_with_jobs(database, 25)
    broker = _Broker()
    broker.depth = 1
    dispatcher = broker.dispatcher(database, batch_size=10, max_queued_batches=3)
    result = dispatcher.run_once()
    assert result.published_jobs == 20
    assert [len(batch) for batch in broker.batches] == [10, 10]
    # Published and not yet stale: not published again.
    assert dispatcher.run_once().published_jobs == 5
    assert dispatcher.run_once().published_jobs == 0
    assert sorted(job for batch in broker.batches for job in batch) == job_ids


def test_a_full_queue_gets_nothing_more(database: Database) -> None:
    campaign_with_jobs(database, 5)
    broker = _Broker()
    broker.depth = 8
    assert broker.dispatcher(database, max_queued_batches=8).run_once().published_jobs == 0


def test_jobs_whose_message_was_lost_are_published_again(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 3)
    broker = _Broker()
    dispatcher = broker.dispatcher(database, redispatch_after_s=30)
    dispatcher.run_once()
    later = utc_now() + timedelta(seconds=31)
    assert dispatcher.run_once(now=later).published_jobs == 3
    assert broker.batches == [job_ids, job_ids]


def test_a_dead_workers_jobs_return_after_the_lease(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 2)
    claim_jobs(database, job_ids, worker_id="dead", lease_s=5)
    broker = _Broker()
    dispatcher = broker.dispatcher(database)
    assert dispatcher.run_once().released_leases == 0
    result = dispatcher.run_once(now=utc_now() + timedelta(seconds=6))
    assert result.released_leases == 2
    assert result.published_jobs == 2


def test_scheduled_campaign_starts_when_due_and_completes_when_nothing_is_pending(
    database: Database,
) -> None:
    campaign_id, job_ids = campaign_with_jobs(database, 2, state=CampaignState.SCHEDULED)
    with database.session() as session:
        session.get_one(Campaign, campaign_id).send_at = utc_now() + timedelta(hours=1)
    broker = _Broker()
    dispatcher = broker.dispatcher(database)
    assert dispatcher.run_once().started_campaigns == 0
    assert _campaign_state(database, campaign_id) == CampaignState.SCHEDULED
    assert dispatcher.run_once(now=utc_now() + timedelta(hours=2)).started_campaigns == 1
    claimed = claim_jobs(database, job_ids, worker_id="a", lease_s=60)
    now = utc_now()
    write_jobs(
        database,
        outcomes=[
            JobOutcome(
                job_id=job.job_id,
                state=JobState.SENT,
                code=250,
                status="2.0.0",
                reply="ok",
                attempts=1,
                first_attempt_at=now,
                sent_at=now,
            )
            for job in claimed
        ],
    )
    assert dispatcher.run_once().completed_campaigns == 1
    assert _campaign_state(database, campaign_id) == CampaignState.COMPLETED


@pytest.mark.parametrize("leftover", [JobState.QUEUED, JobState.DEFERRED])
def test_jobs_left_in_a_cancelled_campaign_end_cancelled(database: Database, leftover: str) -> None:
    _, job_ids = campaign_with_jobs(database, 1, state=CampaignState.CANCELLED)
    with database.session() as session:
        session.get_one(Job, job_ids[0]).state = leftover
    _Broker().dispatcher(database).run_once()
    assert _job_states(database, job_ids) == [JobState.CANCELLED]


def test_a_dead_workers_transmitting_jobs_end_unknown_never_sent_again(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 3)
    claim_jobs(database, job_ids, worker_id="dead", lease_s=5)
    assert mark_transmitting(database, job_ids[:1], worker_id="someone-else") == set()
    assert mark_transmitting(database, job_ids[:2], worker_id="dead") == set(job_ids[:2])
    broker = _Broker()
    result = broker.dispatcher(database).run_once(now=utc_now() + timedelta(seconds=6))
    assert result.released_leases == 3
    assert broker.batches == [job_ids[2:]]
    assert _job_states(database, job_ids) == [JobState.UNKNOWN, JobState.UNKNOWN, JobState.QUEUED]


def test_retry_policy_for_lost_transmissions_sends_them_again(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 1)
    claim_jobs(database, job_ids, worker_id="dead", lease_s=5)
    mark_transmitting(database, job_ids, worker_id="dead")
    broker = _Broker()
    dispatcher = broker.dispatcher(database, retry_lost_in_transmission=True)
    dispatcher.run_once(now=utc_now() + timedelta(seconds=6))
    assert broker.batches == [job_ids]
