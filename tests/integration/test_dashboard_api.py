"""The dashboard's JSON API on real SQLite and PostgreSQL: every endpoint, its auth failures and
its bad input (a 4xx with a one-line reason, never a 500).

Here: the test message sent through the relay set (real Redis for its limits, real SMTP relays);
the rest is in tests/unit/test_dashboard_api.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from campaigns.bounces.verp import return_path_for
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from tests.dashboard_helpers import (
    SAMPLE_CSV,
    Dashboard,
    dashboard_settings,
    running_dashboard,
)
from tests.smtp_server import RecordingSmtpServer
from tests.tracking_helpers import free_port
from workers.redis_keys import LimitKeys


@pytest.fixture
def dashboard(database: Database, tmp_path: Path) -> Iterator[Dashboard]:
    with running_dashboard(database, dashboard_settings(tmp_path)) as running:
        yield running


def _relay_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    """A dashboard that sends through Redis-limited relays, in a namespace of its own so a relay
    one test found down is not left out of the next."""
    return dashboard_settings(
        tmp_path, redis_url=redis_url, queue_name=f"test-send-{uuid.uuid4().hex}", **overrides
    )


def test_a_test_message_reaches_the_relay(
    database: Database, tmp_path: Path, smtp_server: RecordingSmtpServer, redis_url: str
) -> None:
    settings = _relay_settings(
        tmp_path, redis_url, smtp_url=smtp_server.url, sender_domains="northwind.example"
    )
    with running_dashboard(database, settings) as dashboard:
        dashboard.import_csv(SAMPLE_CSV, "people")
        list_id = dashboard.get("/api/lists").json()[0]["id"]
        answer = dashboard.post(
            "/api/templates/test-send",
            json={
                "template": "newsletter",
                "list_id": list_id,
                "to": "Tester@Example.com",
                "from_address": "Northwind <news@northwind.example>",
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] is True
        assert answer.json()["to"] == "Tester@example.com"
    assert [message.rcpt_tos for message in smtp_server.messages] == [["Tester@example.com"]]
    assert b"Subject: [Test] Ann, your Pro update from Northwind" in smtp_server.messages[0].data


def test_a_test_message_carries_a_return_path_as_delivery_gives_it(
    database: Database, tmp_path: Path, smtp_server: RecordingSmtpServer, redis_url: str
) -> None:
    settings = _relay_settings(
        tmp_path, redis_url, smtp_url=smtp_server.url, sender_domains="northwind.example"
    )
    with running_dashboard(database, settings) as dashboard:
        answer = _send_test(dashboard, "news@northwind.example")
        assert answer.status_code == 200, answer.text
    [message] = smtp_server.messages
    assert message.mail_from == return_path_for(settings.secret, 0, "northwind.example")
    assert b"Hi X" in message.data


@pytest.mark.parametrize(
    "sender", ["ceo@bank.example", "Northwind <news@northwind.example.evil.example>"]
)
def test_a_test_message_from_a_foreign_domain_is_refused_and_not_sent(
    database: Database,
    tmp_path: Path,
    smtp_server: RecordingSmtpServer,
    sender: str,
    redis_url: str,
) -> None:
    settings = _relay_settings(
        tmp_path, redis_url, smtp_url=smtp_server.url, sender_domains="northwind.example"
    )
    with running_dashboard(database, settings) as dashboard:
        answer = _send_test(dashboard, sender)
        assert answer.status_code == 400
        assert answer.json()["detail"].startswith("from_address: ")
        assert "is not a sender domain" in answer.json()["detail"]
    assert smtp_server.messages == []


def test_a_test_message_goes_to_the_next_relay_when_one_cannot_be_connected_to(
    database: Database, tmp_path: Path, smtp_server: RecordingSmtpServer, redis_url: str
) -> None:
    down = f"smtp://127.0.0.1:{free_port()}"
    # The weights make the relay that is down the one tried first, as good as always.
    relays = [
        {"name": "down", "url": down, "weight": 1_000_000},
        {"name": "up", "url": smtp_server.url, "weight": 1},
    ]
    settings = _relay_settings(
        tmp_path, redis_url, sender_domains="northwind.example", extra={"relays": relays}
    )
    with running_dashboard(database, settings) as dashboard:
        answer = _send_test(dashboard, "news@northwind.example")
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] is True
    assert answer.json()["relay"] == smtp_server.url
    [message] = smtp_server.messages
    assert message.mail_from == return_path_for(settings.secret, 0, "northwind.example")
    assert b"Hi X" in message.data
    # Left out for every sender, as delivery leaves out a relay it cannot reach.
    down_key = LimitKeys(settings.redis_namespace).relay_down("down")
    with Redis.from_url(redis_url) as redis:
        assert redis.exists(down_key)
        redis.delete(down_key)


def test_a_test_message_without_a_known_redis_is_not_sent_and_says_why(
    database: Database, tmp_path: Path, smtp_server: RecordingSmtpServer
) -> None:
    settings = dashboard_settings(
        tmp_path, smtp_url=smtp_server.url, sender_domains="northwind.example"
    )
    with running_dashboard(database, settings) as dashboard:
        answer = _send_test(dashboard, "news@northwind.example")
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] is False
    assert answer.json()["reply"].startswith("not sent: no Redis is known")
    assert smtp_server.messages == []


def _send_test(dashboard: Dashboard, from_address: str) -> Any:
    return dashboard.post(
        "/api/templates/test-send",
        json={
            "source": {"subject": "Hi", "html": "<p>Hi {{ first_name }}</p>"},
            "fields": {"first_name": "X"},
            "to": "tester@example.com",
            "from_address": from_address,
        },
    )


def test_a_refused_test_message_is_reported_not_raised(
    database: Database, tmp_path: Path, redis_url: str
) -> None:
    with RecordingSmtpServer(behaviour=lambda _rcpt: (550, "5.1.1 no such user")) as server:
        settings = _relay_settings(
            tmp_path, redis_url, smtp_url=server.url, sender_domains="example.com"
        )
        with running_dashboard(database, settings) as dashboard:
            answer = dashboard.post(
                "/api/templates/test-send",
                json={
                    "source": {"subject": "Hi", "html": "<p>Hi</p>"},
                    "fields": {"first_name": "X"},
                    "to": "nobody@example.com",
                    "from_address": "news@example.com",
                },
            ).json()
    assert answer["accepted"] is False
    assert answer["reply"].startswith("550")
