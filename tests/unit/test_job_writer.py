"""The sending batch's writer of transmit marks and outcomes, against a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import event, select

from campaigns.core.models import Job, JobState, utc_now
from campaigns.core.storage import Database
from campaigns.jobs import job_store as jobs
from campaigns.jobs.job_store import JobOutcome, claim_jobs
from tests.factories import campaign_with_jobs
from workers.delivery import job_writer
from workers.delivery.job_writer import WRITE_RETRY_DELAYS_S, JobWriter, TransmitNotRecorded


def _sent(job_id: int) -> JobOutcome:
    now = utc_now()
    return JobOutcome(
        job_id=job_id,
        state=JobState.SENT,
        code=250,
        status="2.0.0",
        reply=f"250 2.0.0 queued as {job_id}",
        attempts=1,
        first_attempt_at=now,
        sent_at=now,
    )


def _states(database: Database, job_ids: Sequence[int]) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(Job.state).where(Job.id.in_(job_ids)).order_by(Job.id)))


def _recording(waited_s: list[float]) -> Callable[[float], Awaitable[None]]:
    """A sleep that returns at once: the test reads the delays instead of waiting them out."""

    async def sleep(delay_s: float) -> None:
        waited_s.append(delay_s)

    return sleep


def _count_commits(database: Database) -> list[int]:
    commits = [0]

    def counted(_connection: Any) -> None:
        commits[0] += 1

    event.listen(database.engine, "commit", counted)
    return commits


def test_marks_and_outcomes_waiting_together_share_one_transaction(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 6)
    claim_jobs(database, job_ids, worker_id="w", lease_s=60)
    commits = _count_commits(database)

    async def send() -> None:
        writer = JobWriter(database, "w")
        marks = [asyncio.ensure_future(writer.mark(job_id)) for job_id in job_ids[1:5]]
        writer.add(_sent(job_ids[0]))
        await asyncio.gather(*marks)
        await writer.close()

    asyncio.run(send())
    assert commits[0] == 1
    assert _states(database, job_ids) == [
        JobState.SENT,
        *[JobState.TRANSMITTING] * 4,
        JobState.SENDING,
    ]


def test_a_job_that_is_no_longer_ours_is_not_marked(database: Database) -> None:
    _, job_ids = campaign_with_jobs(database, 2)
    claim_jobs(database, job_ids[:1], worker_id="someone-else", lease_s=60)
    claim_jobs(database, job_ids[1:], worker_id="w", lease_s=60)

    async def send() -> None:
        writer = JobWriter(database, "w")
        with pytest.raises(TransmitNotRecorded, match="no longer ours"):
            await writer.mark(job_ids[0])
        await writer.mark(job_ids[1])
        await writer.close()

    asyncio.run(send())
    assert _states(database, job_ids) == [JobState.SENDING, JobState.TRANSMITTING]


def test_a_failed_write_refuses_its_marks_and_retries_its_outcomes(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, job_ids = campaign_with_jobs(database, 3)
    claim_jobs(database, job_ids, worker_id="w", lease_s=60)
    failures = [RuntimeError("disk I/O error")]

    def failing_once(database: Database, **changes: Any) -> set[int]:
        if failures:
            raise failures.pop()
        return jobs.write_jobs(database, **changes)

    monkeypatch.setattr(job_writer, "write_jobs", failing_once)
    waited_s: list[float] = []

    async def send() -> None:
        writer = JobWriter(database, "w", sleep=_recording(waited_s))
        writer.add(_sent(job_ids[0]))
        with pytest.raises(TransmitNotRecorded, match="disk I/O error"):
            await writer.mark(job_ids[1])
        # A mark asked for while outcomes wait to be written again is written with them.
        await writer.mark(job_ids[2])
        await writer.close()

    asyncio.run(send())
    assert failures == []
    assert waited_s == [WRITE_RETRY_DELAYS_S[0]]
    assert _states(database, job_ids) == [JobState.SENT, JobState.SENDING, JobState.TRANSMITTING]


def test_outcomes_that_cannot_be_written_fail_the_batch_and_its_waiting_marks(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, job_ids = campaign_with_jobs(database, 2)
    claim_jobs(database, job_ids, worker_id="w", lease_s=60)

    def failing(database: Database, **changes: Any) -> set[int]:
        raise RuntimeError("database is gone")

    monkeypatch.setattr(job_writer, "write_jobs", failing)
    waited_s: list[float] = []

    async def send() -> None:
        writer = JobWriter(database, "w", sleep=_recording(waited_s))
        writer.add(_sent(job_ids[0]))
        waiting = asyncio.ensure_future(writer.mark(job_ids[1]))
        with pytest.raises(RuntimeError, match="database is gone"):
            await writer.close()
        with pytest.raises(TransmitNotRecorded):
            await waiting

    asyncio.run(send())
    # Every retry was waited for before the batch gave up.
    assert waited_s == list(WRITE_RETRY_DELAYS_S)
    assert _states(database, job_ids) == [JobState.SENDING, JobState.SENDING]
