"""Transactional mail with real parts: the API in-process, real `edm worker` processes (with
their transactional lane), Redis and an SMTP sink."""

from __future__ import annotations

import base64
import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaigns.bounces.verp import find_message_id, find_return_path
from campaigns.core.models import TransactionalMessage
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lists.suppression import SuppressionReason, add_suppressions
from tests.conftest import run_edm, wait_until
from tests.dashboard_helpers import Dashboard, dashboard_settings, running_dashboard
from tests.delivery_helpers import scheduled_campaign
from tests.dkim_helpers import DOMAIN, SELECTOR, keygen
from tests.smtp_server import RecordingSmtpServer

SENDER = f"Shop <orders@{DOMAIN}>"


@pytest.fixture
def api(database: Database, edm_env: dict[str, str], tmp_path: Path) -> Iterator[Dashboard]:
    settings = dashboard_settings(tmp_path)
    env_settings = Settings.from_env(edm_env)
    settings = replace(
        settings,
        redis_url=env_settings.redis_url,
        queue_name=env_settings.queue_name,
        secret_key=env_settings.secret_key,
        tx_from_address=SENDER,
        tx_max_attachment_bytes=1000,
    )
    with running_dashboard(database, settings) as dashboard:
        yield dashboard


def _messages_recorded(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(TransactionalMessage)) or 0)


def _to(smtp_server: RecordingSmtpServer, address: str) -> list[bytes]:
    return [m.data for m in smtp_server.messages if address in m.rcpt_tos]


def test_a_message_sent_by_the_api_arrives_signed_with_a_verp_return_path_and_its_state_shows(
    api: Dashboard, smtp_server: RecordingSmtpServer, start_worker, tmp_path: Path
) -> None:
    key = keygen(tmp_path, "rsa")
    start_worker(
        env={
            "EDM_DKIM_DOMAIN": DOMAIN,
            "EDM_DKIM_SELECTOR": SELECTOR,
            "EDM_DKIM_KEY_FILE": str(key.key_file),
        }
    )
    answer = api.post(
        "/api/tx",
        json={
            "to": {"email": "ann@example.net", "name": "Ann Smith"},
            "subject": "Your code is {{ code }}",
            "html": "<p>Hello {{ name }}, your code is <b>{{ code }}</b></p>",
            "data": {"code": "482913", "name": "Ann"},
            "reply_to": "help@example.com",
            "headers": {"X-Order-Id": "A-17"},
            "tags": ["signup"],
            "attachments": [
                {
                    "filename": "receipt.txt",
                    "content_type": "text/plain",
                    "content": base64.b64encode(b"paid").decode(),
                }
            ],
        },
    )
    assert answer.status_code == 202, answer.text
    message_id = answer.json()["id"]
    assert wait_until(lambda: bool(_to(smtp_server, "ann@example.net")), timeout_s=60)
    [data] = _to(smtp_server, "ann@example.net")
    assert key.verifies(data)
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == "Your code is 482913"
    assert parsed["Reply-To"] == "help@example.com"
    assert parsed["X-Order-Id"] == "A-17"
    assert parsed["List-Unsubscribe"] is None
    assert "482913" in parsed.get_body(("html",)).get_content()
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "receipt.txt" and attachment.get_content() == "paid"
    [received] = [m for m in smtp_server.messages if "ann@example.net" in m.rcpt_tos]
    secret = api.settings.secret
    verp = find_return_path(secret, [received.mail_from])
    tagged = find_message_id(secret, parsed["Message-ID"])
    assert verp is not None and tagged is not None and verp.job_id == tagged.job_id is not None

    def sent() -> bool:
        return api.get(f"/api/tx/{message_id}").json()["state"] == "sent"

    assert wait_until(sent, timeout_s=30)
    status = api.get(f"/api/tx/{message_id}").json()
    assert status["to"] == "ann@example.net"
    assert status["tags"] == ["signup"]
    assert status["last_reply"]["code"] == 250


def test_a_transactional_message_does_not_wait_behind_queued_campaign_batches(
    api: Dashboard, database: Database, start_worker, tmp_path: Path
) -> None:
    addresses = [f"reader{i}@example.org" for i in range(400)]
    with RecordingSmtpServer(delay_s=0.1) as slow_relay:
        env = {"EDM_SMTP_URL": slow_relay.url, "EDM_SMTP_CONNECTIONS": "2"}
        start_worker(concurrency=1, env=env)
        scheduled_campaign(database, tmp_path, addresses)
        # Its batches are queued or being sent before the message comes.
        assert wait_until(lambda: len(slow_relay.messages) >= 5, timeout_s=90)
        answer = api.post(
            "/api/tx",
            json={"to": {"email": "urgent@example.net"}, "subject": "Reset", "html": "<p>x</p>"},
        )
        assert answer.status_code == 202, answer.text
        assert wait_until(lambda: bool(_to(slow_relay, "urgent@example.net")), timeout_s=90)
        assert wait_until(lambda: len(slow_relay.messages) == 401, timeout_s=300)
        arrived = [message.rcpt_tos[0] for message in slow_relay.messages]
    # It arrived while the first batch (EDM_BATCH_SIZE 200) still held the only campaign
    # process: its own lane took it, where queue order alone would have waited for that batch.
    assert arrived.index("urgent@example.net") < 200
    assert sorted(arrived) == sorted([*addresses, "urgent@example.net"])


def test_an_idempotency_key_sends_once_even_when_requests_race(
    api: Dashboard, database: Database, smtp_server: RecordingSmtpServer, start_worker
) -> None:
    start_worker()
    body = {"to": {"email": "bob@example.net"}, "subject": "Receipt", "html": "<p>ok</p>"}
    headers = {**api.bearer, "Idempotency-Key": "order-991"}
    answers: list[tuple[int, str]] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        barrier.wait()
        answer = api.client.post("/api/tx", json=body, headers=headers)
        answers.append((answer.status_code, answer.json().get("id", answer.text)))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in answers} == {202}
    assert len({message_id for _, message_id in answers}) == 1
    again = api.client.post("/api/tx", json=body, headers=headers)
    assert again.status_code == 202 and again.json() == {"id": answers[0][1], "duplicate": True}
    assert _messages_recorded(database) == 1
    assert wait_until(lambda: bool(_to(smtp_server, "bob@example.net")), timeout_s=60)
    other_key = api.client.post(
        "/api/tx", json=body, headers={**api.bearer, "Idempotency-Key": "order-992"}
    )
    assert other_key.json()["id"] != answers[0][1]
    assert wait_until(lambda: len(_to(smtp_server, "bob@example.net")) == 2, timeout_s=60)


def test_an_idempotency_key_reused_with_another_body_is_422_and_records_nothing(
    api: Dashboard, database: Database
) -> None:
    headers = {**api.bearer, "Idempotency-Key": "order-993"}
    body = {
        "to": {"email": "Cy@Example.net"},
        "subject": "Receipt",
        "html": "<p>{{ total }}</p>",
        "data": {"total": "9.90", "currency": "EUR"},
    }
    first = api.client.post("/api/tx", json=body, headers=headers)
    assert first.status_code == 202, first.text
    # The same request written otherwise (keys in another order) is the same request.
    same = {**body, "data": {"currency": "EUR", "total": "9.90"}}
    again = api.client.post("/api/tx", json=same, headers=headers)
    assert again.json() == {"id": first.json()["id"], "duplicate": True}

    for changed in (
        {**body, "data": {"total": "99.00", "currency": "EUR"}},
        {**body, "to": {"email": "dee@example.net"}},
        {**body, "tags": ["late"]},
    ):
        refused = api.client.post("/api/tx", json=changed, headers=headers)
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"].startswith("Idempotency-Key: 'order-993' was used")
    assert _messages_recorded(database) == 1


def test_two_bodies_racing_on_one_idempotency_key_record_one_and_refuse_the_other(
    api: Dashboard, database: Database
) -> None:
    headers = {**api.bearer, "Idempotency-Key": "order-994"}
    bodies = [
        {"to": {"email": "eve@example.net"}, "subject": subject, "html": "<p>ok</p>"}
        for subject in ("Receipt A", "Receipt B")
    ]
    answers: list[tuple[str, int, str]] = []
    barrier = threading.Barrier(8)

    def post(body: dict) -> None:
        barrier.wait()
        answer = api.client.post("/api/tx", json=body, headers=headers)
        answers.append((body["subject"], answer.status_code, answer.text))

    threads = [threading.Thread(target=post, args=(bodies[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with database.session() as session:
        recorded = session.scalars(select(TransactionalMessage)).all()
        assert len(recorded) == 1
        winner = recorded[0].subject_template
    for subject, status, text in answers:
        if subject == winner:
            assert status == 202 and recorded[0].uuid in text, text
        else:
            assert status == 422 and "Idempotency-Key" in text, text


def test_hard_bounced_addresses_are_refused_but_marketing_unsubscribes_are_not(
    api: Dashboard, database: Database
) -> None:
    add_suppressions(database, ["gone@example.net"], reason=SuppressionReason.HARD_BOUNCE)
    add_suppressions(database, ["left@example.net"], reason=SuppressionReason.UNSUBSCRIBE)
    content = {"subject": "Code", "html": "<p>1</p>"}
    refused = api.post("/api/tx", json={"to": {"email": "gone@example.net"}, **content})
    assert refused.status_code == 409
    assert "hard_bounce" in refused.json()["detail"]
    assert _messages_recorded(database) == 0
    accepted = api.post("/api/tx", json={"to": {"email": "left@example.net"}, **content})
    assert accepted.status_code == 202, accepted.text
    marketing = api.post(
        "/api/tx",
        json={"to": {"email": "left@example.net"}, "category": "newsletter", **content},
    )
    assert marketing.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"template": "no-such-template"}, 400, "template"),
        ({"template": "newsletter", "data": {}}, 400, "first_name"),
        ({"subject": "Hi {{ who }}", "html": "<p>x</p>"}, 400, "who"),
        (
            {"subject": "Hi", "html": "x", "headers": {"X-Tag": "a\r\nBcc: x@evil.test"}},
            400,
            "headers.X-Tag",
        ),
        ({"subject": "Hi", "html": "x", "headers": {"Bcc": "x@evil.test"}}, 400, "headers.Bcc"),
        ({"subject": "Hi\r\nBcc: x@evil.test", "html": "x"}, 400, "subject"),
        ({"subject": "Hi", "html": "x", "reply_to": "a@b.test\nBcc: c@d.test"}, 400, "reply_to"),
        (
            {
                "subject": "Hi",
                "html": "x",
                "attachments": [
                    {"filename": "big.bin", "content": base64.b64encode(b"x" * 2000).decode()}
                ],
            },
            400,
            "attachments[0]",
        ),
        ({"subject": "Hi"}, 400, "html"),
        ({"subject": "Hi", "html": "x", "bcc": "x@evil.test"}, 422, "bcc"),
    ],
)
def test_bad_requests_name_the_field_and_record_nothing(
    api: Dashboard, database: Database, body: dict, status: int, named: str
) -> None:
    answer = api.post("/api/tx", json={"to": {"email": "ann@example.net"}, **body})
    assert answer.status_code == status, answer.text
    assert named in answer.json()["detail"]
    assert _messages_recorded(database) == 0


def test_a_body_past_the_attachment_bound_is_413_before_it_is_parsed(
    api: Dashboard, database: Database
) -> None:
    # The bound is the attachments' (1,000 bytes here) in base64 plus 4 MiB for the rest.
    body = {"to": {"email": "ann@example.net"}, "subject": "Hi", "html": "x" * (5 * 1024 * 1024)}
    answer = api.post("/api/tx", json=body)
    assert answer.status_code == 413, answer.text
    assert "EDM_TX_MAX_ATTACHMENT_BYTES" in answer.json()["detail"]
    assert _messages_recorded(database) == 0


def test_the_api_needs_a_token_and_an_unknown_message_is_404(api: Dashboard) -> None:
    body = {"to": {"email": "ann@example.net"}, "subject": "Hi", "html": "x"}
    assert api.client.post("/api/tx", json=body).status_code == 401
    assert api.get("/api/tx/00000000-0000-0000-0000-000000000000").status_code == 404


def test_edm_send_goes_through_the_same_checks_and_prints_the_id(
    edm_env: dict[str, str], smtp_server: RecordingSmtpServer, start_worker, tmp_path: Path
) -> None:
    html = tmp_path / "body.html"
    html.write_text("<p>Your code: {{ code }}</p>")
    base = ["send", "--to", "cli@example.net", "--subject", "Code", "--html-file", str(html)]
    env = {**edm_env, "EDM_TX_FROM_ADDRESS": SENDER}
    missing = run_edm(base, env)
    assert missing.returncode == 1
    assert missing.stderr.startswith("edm: error:") and "code" in missing.stderr
    assert missing.stderr.count("\n") == 1
    start_worker()
    sent = run_edm([*base, "--data", '{"code": "777"}', "--idempotency-key", "k1"], env)
    assert sent.returncode == 0, sent.stderr
    again = run_edm([*base, "--data", '{"code": "777"}', "--idempotency-key", "k1"], env)
    assert again.stdout == sent.stdout
    assert wait_until(lambda: bool(_to(smtp_server, "cli@example.net")), timeout_s=60)
    assert b"777" in _to(smtp_server, "cli@example.net")[0]
