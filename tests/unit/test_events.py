"""Events and their incremental counters on a real database."""

from __future__ import annotations

from campaigns.core.events import campaign_counters, job_history, record_event
from campaigns.core.models import EventKind
from campaigns.core.storage import Database
from tests.factories import campaign_with_jobs


def test_opens_count_every_time_and_once_per_recipient(database: Database) -> None:
    campaign_id, (first_job, second_job) = campaign_with_jobs(database, 2)
    firsts = []
    for job_id in (first_job, first_job, second_job, first_job):
        with database.session() as session:
            firsts.append(
                record_event(
                    session,
                    job_id=job_id,
                    campaign_id=campaign_id,
                    kind=EventKind.OPENED,
                    detail={"user_agent": "test"},
                )
            )
    assert firsts == [True, False, True, False]
    assert campaign_counters(database, campaign_id) == {"opens": 4, "unique_opens": 2}
    assert [event.kind for event in job_history(database, first_job)] == ["opened"] * 3


def test_extra_counters_are_bumped_beside_the_kind(database: Database) -> None:
    campaign_id, (job_id,) = campaign_with_jobs(database, 1)
    with database.session() as session:
        record_event(
            session,
            job_id=job_id,
            campaign_id=campaign_id,
            kind=EventKind.BOUNCED,
            detail={"status": "5.1.1"},
            extra_counters=("bounces_hard",),
        )
    assert campaign_counters(database, campaign_id) == {"bounces": 1, "bounces_hard": 1}


def test_an_event_that_fails_mid_transaction_leaves_no_counter(database: Database) -> None:
    campaign_id, (job_id,) = campaign_with_jobs(database, 1)
    try:
        with database.session() as session:
            record_event(session, job_id=job_id, campaign_id=campaign_id, kind=EventKind.CLICKED)
            raise RuntimeError("the request failed after recording")
    except RuntimeError:
        pass
    assert campaign_counters(database, campaign_id) == {}
    assert job_history(database, job_id) == []
