"""Delivering batches in-process against a real SMTP server and a real database."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from campaigns.core.models import Job, JobState, Recipient, utc_now
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import (
    create_campaign,
    pause_campaign,
    resume_campaign,
    schedule_campaign,
)
from campaigns.lists.importer import import_recipients
from tests.delivery_helpers import deliver, delivery_context, publish_due_jobs
from tests.smtp_server import DataEnd, RecordingSmtpServer


def _template(folder: Path) -> Path:
    folder.mkdir()
    (folder / "subject.txt").write_text("News for {{ first_name }}")
    (folder / "body.html").write_text("<p>Hello {{ first_name }}</p>")
    return folder


def _campaign(
    database: Database, tmp_path: Path, addresses: Sequence[str]
) -> tuple[int, list[int]]:
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(
        "email,first_name\n"
        + "".join(f"{address},Name{i}\n" for i, address in enumerate(addresses))
    )
    import_recipients(database, csv_path, "people")
    campaign = create_campaign(
        database,
        name="Test",
        list_name="people",
        template=str(_template(tmp_path / "template")),
        from_address="Sender <news@example.com>",
        templates_dir=tmp_path,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    return campaign.id, publish_due_jobs(database)


def _jobs_by_email(database: Database) -> dict[str, Job]:
    with database.session() as session:
        rows = session.execute(
            select(Recipient.email, Job).join(Job, Job.recipient_id == Recipient.id)
        )
        return {email: job for email, job in rows}


def test_each_reply_class_ends_in_its_state_with_the_reply_recorded(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    def behaviour(address: str) -> tuple[int, str] | None:
        if address.startswith("gone"):
            return 550, "5.1.1 <gone@example.com>: Recipient address rejected: User unknown"
        if address.startswith("later"):
            return 451, "4.7.1 Greylisted, try again later"
        return None

    addresses = ["ok1@example.com", "gone@example.com", "later@example.com", "ok2@example.com"]
    with RecordingSmtpServer(behaviour=behaviour) as server:
        _, job_ids = _campaign(database, tmp_path, addresses)
        before = utc_now()
        deliver(delivery_context(database, server, redis_url), job_ids)
        received = sorted(rcpt for message in server.messages for rcpt in message.rcpt_tos)

    assert received == ["ok1@example.com", "ok2@example.com"]
    jobs = _jobs_by_email(database)
    assert jobs["ok1@example.com"].state == JobState.SENT
    assert jobs["ok1@example.com"].last_code == 250
    assert jobs["ok1@example.com"].sent_at is not None
    gone = jobs["gone@example.com"]
    assert (gone.state, gone.last_code, gone.last_status) == (JobState.BOUNCED, 550, "5.1.1")
    assert "User unknown" in (gone.last_reply or "")
    later = jobs["later@example.com"]
    assert (later.state, later.last_code, later.last_status) == (JobState.DEFERRED, 451, "4.7.1")
    assert later.attempts == 1
    assert later.next_attempt_at is not None and later.next_attempt_at > before
    assert all(job.claimed_by is None for job in jobs.values())


def test_no_reply_to_the_final_dot_is_recorded_as_unknown_not_retried(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    with RecordingSmtpServer(data_behaviour=lambda _rcpts: DataEnd.HANG) as server:
        _, job_ids = _campaign(database, tmp_path, ["slow@example.com"])
        deliver(delivery_context(database, server, redis_url, smtp_data_timeout_s=1.0), job_ids)
    job = _jobs_by_email(database)["slow@example.com"]
    assert job.state == JobState.UNKNOWN
    assert publish_due_jobs(database) == []


def test_a_batch_delivered_twice_sends_each_message_once(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    addresses = [f"p{i}@example.com" for i in range(30)]
    with RecordingSmtpServer() as server:
        _, job_ids = _campaign(database, tmp_path, addresses)
        context = delivery_context(database, server, redis_url)
        deliver(context, job_ids)
        deliver(delivery_context(database, server, redis_url), job_ids)
        received = Counter(rcpt for message in server.messages for rcpt in message.rcpt_tos)
    assert received == Counter(addresses)
    assert server.connections <= 3 * 2


def test_pause_mid_batch_hands_back_the_rest_and_resume_sends_each_once(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    addresses = [f"p{i}@example.com" for i in range(60)]
    with RecordingSmtpServer(delay_s=0.05) as server:
        campaign_id, job_ids = _campaign(database, tmp_path, addresses)
        pauser = threading.Timer(0.6, pause_campaign, args=(database, campaign_id))
        pauser.start()
        started = time.monotonic()
        deliver(delivery_context(database, server, redis_url), job_ids)
        pauser.join()
        assert time.monotonic() - started < 2.5
        sent_before_resume = len(server.messages)
        assert 0 < sent_before_resume < len(addresses)
        states = Counter(job.state for job in _jobs_by_email(database).values())
        assert states == {
            JobState.SENT: sent_before_resume,
            JobState.QUEUED: 60 - sent_before_resume,
        }

        resume_campaign(database, campaign_id)
        deliver(delivery_context(database, server, redis_url), publish_due_jobs(database))
        received = Counter(rcpt for message in server.messages for rcpt in message.rcpt_tos)
    assert received == Counter(addresses)


def test_a_recipient_whose_data_cannot_render_fails_alone(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    field = "first_name"
    with RecordingSmtpServer() as server:
        _, job_ids = _campaign(database, tmp_path, ["a@example.com", "b@example.com"])
        with database.session() as session:
            recipient = session.scalar(select(Recipient).where(Recipient.email == "b@example.com"))
            assert recipient is not None
            recipient.fields = {
                key: value for key, value in recipient.fields.items() if key != field
            }
        deliver(delivery_context(database, server, redis_url), job_ids)
        assert [message.rcpt_tos for message in server.messages] == [["a@example.com"]]
    failed = _jobs_by_email(database)["b@example.com"]
    assert failed.state == JobState.FAILED
    assert field in (failed.last_reply or "")
