"""Delivery events out, with real parts: `edm worker` processes (which run the webhook
deliverer), an SMTP sink, the CLI, and a receiver on loopback that fails a fifth of requests."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from campaigns.core.models import utc_now
from campaigns.core.storage import Database
from campaigns.jobs.state_counts import job_state_counts
from campaigns.tracking.recording import record_open
from tests.conftest import run_edm, wait_until
from tests.delivery_helpers import scheduled_campaign
from tests.smtp_server import RecordingSmtpServer
from tests.webhook_receiver import WebhookReceiver

FAST_WEBHOOKS = {
    "EDM_OUTGOING_WEBHOOK_ALLOW_PRIVATE": "1",
    "EDM_OUTGOING_WEBHOOK_RETRY_FIRST_S": "0.05",
    "EDM_OUTGOING_WEBHOOK_RETRY_MAX_S": "0.2",
    "EDM_OUTGOING_WEBHOOK_BATCH_SIZE": "7",
    "EDM_OUTGOING_WEBHOOK_INTERVAL_S": "0.1",
    "EDM_RETRY_FIRST_DELAY_S": "0.5",
}


class _DeferOnceBounceGone:
    """``gone*`` addresses bounce (5.1.1); ``slow*`` ones are deferred once, then accepted."""

    def __init__(self) -> None:
        self.deferred: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, address: str) -> tuple[int, str] | None:
        if address.startswith("gone"):
            return 550, "5.1.1 no such user"
        with self.lock:
            if address.startswith("slow") and address not in self.deferred:
                self.deferred.add(address)
                return 451, "4.3.0 try again later"
        return None


@pytest.fixture
def smtp_server() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer(behaviour=_DeferOnceBounceGone()) as server:
        yield server


@pytest.fixture
def env(edm_env: dict[str, str]) -> dict[str, str]:
    return {**edm_env, **FAST_WEBHOOKS}


def _add(env: dict[str, str], url: str, events: str, *more: str) -> dict[str, Any]:
    added = run_edm(["webhooks", "add", url, "--events", events, *more, "--json"], env)
    assert added.returncode == 0, added.stderr
    return dict(json.loads(added.stdout))


def _list(env: dict[str, str]) -> list[dict[str, Any]]:
    listed = run_edm(["webhooks", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout)["webhooks"])


def test_every_event_arrives_signed_in_order_per_message_through_a_failing_receiver(
    database: Database, env: dict[str, str], start_worker, tmp_path: Path
) -> None:
    addresses = [
        *(f"ok{i}@example.net" for i in range(30)),
        *(f"slow{i}@example.net" for i in range(6)),
        *(f"gone{i}@example.net" for i in range(4)),
    ]
    with WebhookReceiver(failure_rate=0.2) as receiver:
        endpoint = _add(env, receiver.url, "sent,deferred,bounced,opened")
        receiver.secret = endpoint["secret"]
        campaign_id = scheduled_campaign(database, tmp_path, addresses)
        start_worker(env=FAST_WEBHOOKS)
        start_worker(env=FAST_WEBHOOKS, dispatcher=False)

        def finished() -> bool:
            with database.session() as session:
                counts = job_state_counts(session, campaign_id)
            return counts.get("sent", 0) == 36 and counts.get("bounced", 0) == 4

        assert wait_until(finished, timeout_s=120)
        # 36 sent, 6 deferred, 4 bounced.
        assert wait_until(lambda: len(list(receiver.first_arrivals())) == 46, timeout_s=60)
        job_of = {event["recipient"]: event["job_id"] for event in receiver.first_arrivals()}
        opened_at = utc_now() + timedelta(minutes=5)
        for address in addresses[:10]:
            record_open(database, job_of[address], user_agent="Mozilla/5.0", opened_at=opened_at)
            record_open(
                database, job_of[address], user_agent="Thunderbird/115", opened_at=opened_at
            )
        # And 20 opens.
        assert wait_until(lambda: len(list(receiver.first_arrivals())) == 66, timeout_s=90)
        assert wait_until(lambda: not _list(env)[0]["pending_events"], timeout_s=30)

    assert receiver.bad_signatures == 0
    assert receiver.failed > 0, "the receiver must have failed some requests"
    events = receiver.events()
    copies = defaultdict(list)
    for event in events:
        copies[event["id"]].append(event)
    assert all(all(copy == same[0] for copy in same) for same in copies.values())
    assert len(events) > len(copies), "failed batches were delivered again with the same ids"
    kinds_by_recipient: dict[str, list[str]] = defaultdict(list)
    for event in receiver.first_arrivals():
        kinds_by_recipient[event["recipient"]].append(event["type"])
    assert kinds_by_recipient["ok0@example.net"] == ["sent", "opened", "opened"]
    assert kinds_by_recipient["slow0@example.net"] == ["deferred", "sent"]
    assert kinds_by_recipient["gone0@example.net"] == ["bounced"]
    assert Counter(len(kinds) for kinds in kinds_by_recipient.values()) == Counter(
        {1: 24, 3: 10, 2: 6}
    )
    opens = [event for event in receiver.first_arrivals() if event["type"] == "opened"]
    assert Counter(event["details"]["human"] for event in opens) == {True: 10, False: 10}
    sent = next(event for event in receiver.first_arrivals() if event["type"] == "sent")
    assert sent["details"]["code"] == 250 and sent["campaign_id"] == campaign_id


def test_an_endpoint_that_keeps_failing_is_paused_shown_and_delivers_once_resumed(
    database: Database, env: dict[str, str], start_worker, tmp_path: Path
) -> None:
    pausing = {**FAST_WEBHOOKS, "EDM_OUTGOING_WEBHOOK_PAUSE_AFTER_S": "1"}
    with WebhookReceiver(failure_rate=1.0) as receiver:
        endpoint = _add({**env, **pausing}, receiver.url, "sent")
        receiver.secret = endpoint["secret"]
        scheduled_campaign(database, tmp_path, ["ann@example.net"])
        start_worker(env=pausing)
        assert wait_until(lambda: _list(env)[0]["state"] == "paused", timeout_s=90)
        paused = run_edm(["webhooks", "list"], env)
        assert "paused" in paused.stdout and "1 waiting" in paused.stdout
        assert receiver.failed >= 2
        tries = len(receiver.events())
        receiver.failure_rate = 0.0
        resumed = run_edm(["webhooks", "resume", str(endpoint["id"])], env)
        assert resumed.returncode == 0, resumed.stderr
        assert wait_until(lambda: receiver.requests > receiver.failed, timeout_s=60)
    assert {event["recipient"] for event in receiver.events()} == {"ann@example.net"}
    assert len(receiver.events()) == tries + 1
    assert _list(env)[0]["state"] == "active"


def test_webhooks_test_signs_an_event_and_remove_deletes_the_endpoint(
    env: dict[str, str],
) -> None:
    with WebhookReceiver() as receiver:
        endpoint = _add(env, receiver.url, "sent,clicked", "--category", "transactional")
        receiver.secret = endpoint["secret"]
        tested = run_edm(["webhooks", "test", str(endpoint["id"])], env)
        assert tested.returncode == 0, tested.stderr
        assert "HTTP 204 in" in tested.stdout
        assert [event["type"] for event in receiver.events()] == ["test"]
        assert receiver.bad_signatures == 0
        listed = _list(env)
        assert listed[0]["category"] == "transactional" and "secret" not in listed[0]
    unreachable = run_edm(["webhooks", "test", str(endpoint["id"])], env)
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") == 1
    assert run_edm(["webhooks", "remove", str(endpoint["id"])], env).returncode == 0
    assert _list(env) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://93.184.216.34/hook", "--events", "sent"], "only http and https"),
        (["https://93.184.216.34/hook", "--events", "sent,delivered"], "unknown event"),
        (["http://127.0.0.1:8080/", "--events", "sent"], "EDM_OUTGOING_WEBHOOK_ALLOW_PRIVATE"),
        (["https://93.184.216.34/hook", "--events", "sent", "--campaign", "999"], "campaign"),
    ],
)
def test_bad_webhook_input_is_one_line_and_a_non_zero_exit(
    edm_env: dict[str, str], args: list[str], message: str
) -> None:
    added = run_edm(["webhooks", "add", *args], edm_env)
    assert added.returncode == 1
    assert added.stderr.startswith("edm: error:") and message in added.stderr
    assert added.stderr.count("\n") == 1
    assert _list(edm_env) == []


def test_removing_an_unknown_endpoint_names_it(edm_env: dict[str, str]) -> None:
    removed = run_edm(["webhooks", "remove", "42"], edm_env)
    assert removed.returncode == 1 and "webhook endpoint 42" in removed.stderr
