"""The webhook outbox: written with the event, delivered in order, backed off, paused."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from campaigns.core.models import CampaignLink, EventKind, JobState, WebhookOutboxEvent
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.jobs.job_store import JobOutcome, write_jobs
from campaigns.tracking.batch_recording import TrackedEvent, write_tracked_events
from campaigns.tracking.recording import record_click, record_open, unsubscribe
from campaigns.webhooks.endpoints import (
    PAUSED,
    add_endpoint,
    endpoint,
    recent_attempts,
    resume_endpoint,
)
from tests.factories import campaign_with_jobs
from workers.webhook_delivery import WebhookDeliverer

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    outgoing_webhook_allow_private=True,
    outgoing_webhook_retry_first_s=10,
    outgoing_webhook_retry_max_s=40,
    outgoing_webhook_pause_after_s=100,
    outgoing_webhook_batch_size=3,
)


def _endpoint(database: Database, events: str, **scope: object) -> int:
    created, _ = add_endpoint(
        database,
        "https://hooks.example.test/in",
        events=events.split(","),
        allow_private=True,
        **scope,
    )  # type: ignore[arg-type]
    return created.id


def _outbox_count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(WebhookOutboxEvent)) or 0


def _sent(job_id: int) -> JobOutcome:
    return JobOutcome(
        job_id=job_id,
        state=JobState.SENT,
        code=250,
        status="2.0.0",
        reply="250 2.0.0 queued as ABC",
        attempts=1,
        first_attempt_at=NOW,
        sent_at=NOW,
    )


class Receiver:
    """Answers each POST with the next status; keeps what arrived."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, text="ok")

    def event_ids(self) -> list[str]:
        return [e["id"] for r in self.requests for e in json.loads(r.content)["events"]]


def _deliverer(
    database: Database,
    receiver: Receiver,
    clock: Callable[[], datetime],
    settings: Settings = SETTINGS,
) -> WebhookDeliverer:
    client = httpx.Client(transport=httpx.MockTransport(receiver))
    return WebhookDeliverer(database, client, settings, clock=clock)


def test_nothing_is_written_without_a_subscribed_endpoint(database: Database) -> None:
    _, jobs = campaign_with_jobs(database, 2)
    _endpoint(database, "clicked")
    write_jobs(database, outcomes=[_sent(job) for job in jobs])
    record_open(database, jobs[0], user_agent="Thunderbird", opened_at=NOW)
    assert _outbox_count(database) == 0


def test_events_are_written_with_what_records_them_and_filtered_by_scope(
    database: Database,
) -> None:
    campaign_id, jobs = campaign_with_jobs(database, 2)
    other_campaign, other_jobs = campaign_with_jobs(database, 1)
    everything = _endpoint(database, "sent,opened,clicked,unsubscribed")
    only_other = _endpoint(database, "sent", campaign_id=other_campaign)
    only_category = _endpoint(database, "sent", category="transactional")
    write_jobs(database, outcomes=[_sent(job) for job in [*jobs, *other_jobs]])
    record_open(database, jobs[0], user_agent="Mozilla/5.0", opened_at=NOW + timedelta(hours=1))
    record_click(database, jobs[0], 12345, user_agent="Thunderbird")  # not a link: nothing
    with database.session() as session:
        session.add(CampaignLink(campaign_id=campaign_id, id=77, url="https://example.com/"))
    record_click(database, jobs[1], 77, user_agent="Thunderbird")
    unsubscribe(database, jobs[1], how="one-click")
    with database.session() as session:
        rows = session.execute(
            select(
                WebhookOutboxEvent.endpoint_id, WebhookOutboxEvent.kind, WebhookOutboxEvent.job_id
            ).order_by(WebhookOutboxEvent.id)
        ).all()
    assert [(r.kind, r.job_id) for r in rows if r.endpoint_id == everything] == [
        ("sent", jobs[0]),
        ("sent", jobs[1]),
        ("sent", other_jobs[0]),
        ("opened", jobs[0]),
        ("clicked", jobs[1]),
        ("unsubscribed", jobs[1]),
    ]
    assert [(r.kind, r.job_id) for r in rows if r.endpoint_id == only_other] == [
        ("sent", other_jobs[0])
    ]
    assert not [r for r in rows if r.endpoint_id == only_category]


def test_opens_and_clicks_written_in_batches_reach_the_outbox_once(database: Database) -> None:
    _, jobs = campaign_with_jobs(database, 1)
    hook = _endpoint(database, "opened,clicked")
    write_jobs(database, outcomes=[_sent(jobs[0])])
    batch = [
        TrackedEvent("1-0", EventKind.OPENED, jobs[0], NOW + timedelta(hours=1), "Thunderbird"),
        TrackedEvent("2-0", EventKind.CLICKED, jobs[0], NOW + timedelta(hours=2), "Thunderbird", 7),
    ]
    assert write_tracked_events(database, batch) == 2
    # The queue delivers the batch again (its writer died between commit and acknowledgement).
    assert write_tracked_events(database, batch) == 0
    with database.session() as session:
        rows = session.execute(
            select(WebhookOutboxEvent.kind, WebhookOutboxEvent.detail)
            .where(WebhookOutboxEvent.endpoint_id == hook)
            .order_by(WebhookOutboxEvent.id)
        ).all()
    assert [row.kind for row in rows] == ["opened", "clicked"]
    assert rows[0].detail["machine"] is None


def test_a_batch_goes_in_order_signed_and_is_removed_once_accepted(database: Database) -> None:
    _, jobs = campaign_with_jobs(database, 1)
    endpoint_id = _endpoint(database, "sent,opened")
    write_jobs(database, outcomes=[_sent(jobs[0])])
    record_open(database, jobs[0], user_agent="Mozilla/5.0", opened_at=NOW + timedelta(hours=1))
    record_open(database, jobs[0], user_agent="Thunderbird/115", opened_at=NOW + timedelta(hours=2))
    receiver = Receiver([200])
    assert _deliverer(database, receiver, lambda: NOW).deliver_once() == 3
    body = json.loads(receiver.requests[0].content)
    assert [event["type"] for event in body["events"]] == ["sent", "opened", "opened"]
    sent, machine_open, human_open = body["events"]
    assert sent["recipient"] == "person0@example.com"
    assert sent["details"]["reply"] == "250 2.0.0 queued as ABC"
    assert (machine_open["details"]["human"], human_open["details"]["human"]) == (False, True)
    assert receiver.requests[0].headers["EDM-Webhook-Signature"].startswith("v1=")
    assert _outbox_count(database) == 0
    assert recent_attempts(database, endpoint_id)[0].status_code == 200
    assert _deliverer(database, receiver, lambda: NOW).deliver_once() is None


def test_a_failed_batch_goes_again_with_the_same_ids_after_the_backoff(database: Database) -> None:
    _, jobs = campaign_with_jobs(database, 5)
    endpoint_id = _endpoint(database, "sent")
    write_jobs(database, outcomes=[_sent(job) for job in jobs])
    receiver = Receiver([500])
    now = [NOW]
    deliverer = _deliverer(database, receiver, lambda: now[0])
    assert deliverer.deliver_once() == 0
    failed = endpoint(database, endpoint_id)
    assert failed.consecutive_failures == 1
    assert failed.next_attempt_at == NOW + timedelta(seconds=10)
    assert deliverer.deliver_once() is None  # still waiting
    now[0] = NOW + timedelta(seconds=10)
    # Batches of 3: the full one is followed at once by the rest, on the same lease.
    assert deliverer.deliver_once() == 5
    ids = receiver.event_ids()
    assert ids[:3] == ids[3:6]
    assert len(set(ids)) == 5
    assert endpoint(database, endpoint_id).consecutive_failures == 0


def test_an_endpoint_failing_every_attempt_for_the_pause_time_is_paused_and_resumed(
    database: Database,
) -> None:
    _, jobs = campaign_with_jobs(database, 1)
    endpoint_id = _endpoint(database, "sent")
    write_jobs(database, outcomes=[_sent(jobs[0])])
    receiver = Receiver([503] * 100)
    now = [NOW]
    deliverer = _deliverer(database, receiver, lambda: now[0])
    while endpoint(database, endpoint_id).state != PAUSED:
        assert deliverer.deliver_once() == 0
        now[0] = endpoint(database, endpoint_id).next_attempt_at or now[0]
    assert now[0] - NOW >= timedelta(seconds=100)
    assert deliverer.deliver_once() is None
    assert endpoint(database, endpoint_id).pending_events == 1
    resume_endpoint(database, endpoint_id)
    receiver.statuses = [200]
    assert deliverer.deliver_once() == 1


@pytest.mark.parametrize("answer", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_no_answer_is_a_failure_with_its_reason(database: Database, answer: Exception) -> None:
    _, jobs = campaign_with_jobs(database, 1)
    endpoint_id = _endpoint(database, "sent")
    write_jobs(database, outcomes=[_sent(jobs[0])])

    def fail(request: httpx.Request) -> httpx.Response:
        raise answer

    client = httpx.Client(transport=httpx.MockTransport(fail))
    assert WebhookDeliverer(database, client, SETTINGS, clock=lambda: NOW).deliver_once() == 0
    attempt = recent_attempts(database, endpoint_id)[0]
    assert attempt.status_code is None
    assert type(answer).__name__ in (attempt.error or "")


def test_a_private_destination_fails_unless_allowed(database: Database) -> None:
    _, jobs = campaign_with_jobs(database, 1)
    created, _ = add_endpoint(
        database, "http://127.0.0.1:9/in", events=["sent"], allow_private=True
    )
    write_jobs(database, outcomes=[_sent(jobs[0])])
    receiver = Receiver([])
    refusing = replace(SETTINGS, outgoing_webhook_allow_private=False)
    assert _deliverer(database, receiver, lambda: NOW, refusing).deliver_once() == 0
    assert not receiver.requests
    assert "private" in (recent_attempts(database, created.id)[0].error or "")
