"""Provider webhooks (SES through SNS, SendGrid, Mailgun, Postmark) through FastAPI's
TestClient on a real database: signatures checked, events recorded once, suppression applied.

SNS signing certificates come from a self-signed certificate made here, served through the
router's certificate fetcher, so nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from campaigns.bounces.sns_certificates import SnsCertificates
from campaigns.core.events import campaign_counters, job_history
from campaigns.core.models import Job, JobState, Suppression
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from public_endpoints.webhooks import MAX_EVENTS_PER_CALL, RECEIVED, webhook_router
from tests.bounce_mail import SentJob, sent_jobs
from tests.conftest import wait_until

SECRET = b"test-secret"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem"
MAILGUN_KEY = "key-mailgun-test"


@pytest.fixture(scope="module")
def sns_key() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class Webhooks:
    def __init__(self, client: TestClient, fetched: list[str], confirmed: list[str]) -> None:
        self.client = client
        self.fetched = fetched
        self.confirmed = confirmed


@pytest.fixture
def webhooks(
    database: Database,
    sns_key: tuple[rsa.RSAPrivateKey, bytes],
    sendgrid_key: ec.EllipticCurvePrivateKey,
) -> Webhooks:
    public_der = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = Settings(
        secret_key=SECRET.decode(),
        ses_topic_arns=f"{TOPIC}, arn:aws:sns:us-east-1:123456789012:other",
        sendgrid_webhook_public_key=base64.b64encode(public_der).decode(),
        mailgun_signing_key=MAILGUN_KEY,
        postmark_webhook_auth="postmark:hook-password",
        postmark_webhook_token="hook-token",
    )
    fetched: list[str] = []
    confirmed: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return sns_key[1]

    app = FastAPI()
    app.include_router(
        webhook_router(
            settings, database, certificate_fetcher=fetch, confirm_subscription=confirmed.append
        )
    )
    return Webhooks(TestClient(app), fetched, confirmed)


def events(database: Database, job: SentJob) -> list[tuple[str, str | None, str]]:
    return [
        (event.kind, event.detail.get("class"), event.detail["source"])
        for event in job_history(database, job.job_id)
    ]


def suppressions(database: Database) -> dict[str, str]:
    with database.session() as session:
        return dict(session.execute(select(Suppression.email_key, Suppression.reason)).all())


# --- Amazon SES through SNS --------------------------------------------------------------------


def sns_message(
    key: rsa.RSAPrivateKey,
    *,
    message: str,
    kind: str = "Notification",
    version: str = "1",
    topic: str = TOPIC,
    cert_url: str = CERT_URL,
    timestamp: str | None = None,
    **fields: str,
) -> dict[str, Any]:
    envelope = {
        "Type": kind,
        "MessageId": "b6c6f9a2-0000-4000-8000-000000000001",
        "TopicArn": topic,
        "Message": message,
        "Timestamp": timestamp or datetime.now(UTC).isoformat(timespec="milliseconds"),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        **fields,
    }
    names = (
        ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
        if kind == "Notification"
        else ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
    )
    signed = "".join(f"{name}\n{envelope[name]}\n" for name in names if name in envelope)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(signed.encode(), padding.PKCS1v15(), algorithm)
    envelope["Signature"] = base64.b64encode(signature).decode()
    return envelope


def ses_bounce(job: SentJob, *, bounce_type: str = "Permanent", status: str = "5.1.1") -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": bounce_type,
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {
                        "emailAddress": job.recipient,
                        "action": "failed",
                        "status": status,
                        "diagnosticCode": f"smtp; 550 {status} user unknown",
                    }
                ],
                "timestamp": "2026-11-26T11:59:59.000Z",
                "feedbackId": f"0100018f-feedback-{job.job_id}",
            },
            "mail": {
                "messageId": "0100018f-ses-message-id",
                "source": job.return_path,
                "destination": [job.recipient],
                "commonHeaders": {"messageId": job.message_id, "subject": "December news"},
            },
        }
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_ses_hard_bounce_is_recorded_once(
    database: Database,
    webhooks: Webhooks,
    sns_key: tuple[rsa.RSAPrivateKey, bytes],
    version: str,
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    body = sns_message(sns_key[0], message=ses_bounce(job), version=version, Subject="Bounce")
    first = webhooks.client.post("/webhooks/ses", json=body)
    replay = webhooks.client.post("/webhooks/ses", json=body)
    assert (first.status_code, first.json()) == (200, RECEIVED)
    assert (replay.status_code, replay.json()) == (200, RECEIVED)
    assert events(database, job) == [("bounced", "hard", "ses")]
    assert suppressions(database) == {job.recipient: "hard_bounce"}
    with database.session() as session:
        assert session.scalar(select(Job.state).where(Job.id == job.job_id)) == JobState.BOUNCED
    assert webhooks.fetched == [CERT_URL]  # fetched once, then from the cache


def test_ses_complaints_and_transient_bounces(
    database: Database, webhooks: Webhooks, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    complained, soft = sent_jobs(database, 2, secret=SECRET)
    complaint = json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": complained.recipient}],
                "complaintFeedbackType": "abuse",
                "feedbackId": "complaint-1",
            },
            "mail": {"commonHeaders": {"messageId": complained.message_id}},
        }
    )
    for message in (complaint, ses_bounce(soft, bounce_type="Transient", status="5.2.2")):
        response = webhooks.client.post(
            "/webhooks/ses", json=sns_message(sns_key[0], message=message)
        )
        assert (response.status_code, response.json()) == (200, RECEIVED)
    assert events(database, complained) == [("complained", None, "ses")]
    assert events(database, soft) == [("bounced", "soft", "ses")]
    assert suppressions(database) == {complained.recipient: "complaint"}
    assert campaign_counters(database, soft.campaign_id) == {
        "bounces": 1,
        "bounces_soft": 1,
        "complaints": 1,
    }


def test_sns_messages_that_are_not_genuine_are_refused(
    database: Database, webhooks: Webhooks, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    genuine = sns_message(sns_key[0], message=ses_bounce(job))
    tampered = {**genuine, "Message": ses_bounce(replace(job, recipient="someone@example.com"))}
    other_host = sns_message(
        sns_key[0], message=ses_bounce(job), cert_url="https://attacker.example/sns.pem"
    )
    plain_http = sns_message(
        sns_key[0], message=ses_bounce(job), cert_url=CERT_URL.replace("https", "http")
    )
    other_topic = sns_message(
        sns_key[0], message=ses_bounce(job), topic="arn:aws:sns:eu-west-1:999999999999:x"
    )
    for body in (tampered, other_host, plain_http, other_topic, {**genuine, "Signature": "!!"}):
        assert webhooks.client.post("/webhooks/ses", json=body).status_code == 403
    assert webhooks.client.post("/webhooks/ses", content=b"not json").status_code == 400
    assert events(database, job) == []
    assert suppressions(database) == {}
    assert "https://attacker.example/sns.pem" not in webhooks.fetched


def test_an_sns_subscription_is_confirmed_only_on_an_sns_host(
    webhooks: Webhooks, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    subscribe_url = (
        "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=t"
    )
    body = sns_message(
        sns_key[0],
        message="You have chosen to subscribe to the topic.",
        kind="SubscriptionConfirmation",
        Token="t",
        SubscribeURL=subscribe_url,
    )
    assert webhooks.client.post("/webhooks/ses", json=body).status_code == 200
    assert webhooks.confirmed == [subscribe_url]
    elsewhere = sns_message(
        sns_key[0],
        message="You have chosen to subscribe to the topic.",
        kind="SubscriptionConfirmation",
        Token="t",
        SubscribeURL="https://attacker.example/confirm",
    )
    assert webhooks.client.post("/webhooks/ses", json=elsewhere).status_code == 403
    assert webhooks.confirmed == [subscribe_url]


def test_an_unconfigured_provider_answers_404(database: Database) -> None:
    app = FastAPI()
    app.include_router(webhook_router(Settings(secret_key="k"), database))
    client = TestClient(app)
    for provider in ("ses", "sendgrid", "mailgun", "postmark"):
        assert client.post(f"/webhooks/{provider}", json={}).status_code == 404


# --- SendGrid ----------------------------------------------------------------------------------


def sendgrid_post(
    webhooks: Webhooks,
    key: ec.EllipticCurvePrivateKey | None,
    payload: list[dict[str, Any]],
    *,
    timestamp_s: int | None = None,
) -> Any:
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()) if timestamp_s is None else timestamp_s)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers["X-Twilio-Email-Event-Webhook-Signature"] = base64.b64encode(signature).decode()
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = timestamp
    return webhooks.client.post("/webhooks/sendgrid", content=body, headers=headers)


def test_signed_sendgrid_bounces_and_spam_reports(
    database: Database, webhooks: Webhooks, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    hard, blocked, complained = sent_jobs(database, 3, secret=SECRET)
    payload = [
        {
            "email": hard.recipient,
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 user unknown",
            "sg_event_id": "ev-1",
            "smtp-id": hard.message_id,
        },
        {
            "email": blocked.recipient,
            "event": "bounce",
            "type": "blocked",
            "status": "5.7.1",
            "reason": "550 5.7.1 blocked by policy",
            "sg_event_id": "ev-2",
        },
        {"email": complained.recipient, "event": "spamreport", "sg_event_id": "ev-3"},
        {"email": hard.recipient, "event": "delivered", "sg_event_id": "ev-4"},
    ]
    response = sendgrid_post(webhooks, sendgrid_key, payload)
    assert (response.status_code, response.json()) == (200, RECEIVED)
    assert sendgrid_post(webhooks, sendgrid_key, payload).json() == RECEIVED
    assert events(database, hard) == [("bounced", "hard", "sendgrid")]
    assert events(database, blocked) == [("bounced", "policy", "sendgrid")]
    assert events(database, complained) == [("complained", None, "sendgrid")]
    assert suppressions(database) == {
        hard.recipient: "hard_bounce",
        complained.recipient: "complaint",
    }
    forged = ec.generate_private_key(ec.SECP256R1())
    assert sendgrid_post(webhooks, forged, payload).status_code == 403
    assert sendgrid_post(webhooks, None, payload).status_code == 403


def test_a_forged_sendgrid_post_with_no_key_configured_answers_404_and_suppresses_nobody(
    database: Database,
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    app = FastAPI()
    app.include_router(webhook_router(Settings(secret_key=SECRET.decode()), database))
    payload = [
        {
            "email": job.recipient,
            "event": "spamreport",
            "sg_event_id": "a",
            "smtp-id": job.message_id,
        }
    ]
    assert TestClient(app).post("/webhooks/sendgrid", json=payload).status_code == 404
    assert events(database, job) == []
    assert suppressions(database) == {}


# --- Mailgun -----------------------------------------------------------------------------------


def mailgun_payload(
    event_data: dict[str, Any], *, key: str = MAILGUN_KEY, timestamp_s: int | None = None
) -> dict[str, Any]:
    timestamp = str(int(time.time()) if timestamp_s is None else timestamp_s)
    token = uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def test_mailgun_permanent_failures_and_complaints(database: Database, webhooks: Webhooks) -> None:
    hard, delayed, complained = sent_jobs(database, 3, secret=SECRET)
    failed = {
        "event": "failed",
        "severity": "permanent",
        "id": "mg-1",
        "recipient": hard.recipient,
        "reason": "bounce",
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
        "message": {"headers": {"message-id": hard.message_id.strip("<>")}},
    }
    temporary = {**failed, "id": "mg-2", "severity": "temporary", "recipient": delayed.recipient}
    complaint = {"event": "complained", "id": "mg-3", "recipient": complained.recipient}
    answers = [
        webhooks.client.post("/webhooks/mailgun", json=mailgun_payload(data)).json()
        for data in (failed, temporary, complaint, failed)
    ]
    assert answers == [RECEIVED] * 4
    assert events(database, hard) == [("bounced", "hard", "mailgun")]
    assert events(database, delayed) == []
    assert suppressions(database) == {
        hard.recipient: "hard_bounce",
        complained.recipient: "complaint",
    }
    wrong_key = mailgun_payload({**failed, "id": "mg-4"}, key="key-someone-else")
    assert webhooks.client.post("/webhooks/mailgun", json=wrong_key).status_code == 403


# --- Postmark ----------------------------------------------------------------------------------


def test_postmark_bounces_and_spam_complaints(database: Database, webhooks: Webhooks) -> None:
    hard, complained, away = sent_jobs(database, 3, secret=SECRET)
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": hard.recipient,
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "BouncedAt": "2026-11-26T12:00:00Z",
    }
    spam = {
        "RecordType": "SpamComplaint",
        "ID": 2,
        "Type": "SpamComplaint",
        "Email": complained.recipient,
    }
    auto_reply = {**bounce, "ID": 3, "Type": "AutoResponder", "Email": away.recipient}
    auth = ("postmark", "hook-password")
    assert webhooks.client.post("/webhooks/postmark", json=bounce, auth=auth).json() == RECEIVED
    by_token = webhooks.client.post("/webhooks/postmark?token=hook-token", json=spam)
    assert by_token.json() == RECEIVED
    assert webhooks.client.post("/webhooks/postmark", json=auto_reply, auth=auth).json() == RECEIVED
    assert events(database, hard) == [("bounced", "hard", "postmark")]
    assert events(database, away) == []
    assert suppressions(database) == {
        hard.recipient: "hard_bounce",
        complained.recipient: "complaint",
    }
    assert (
        webhooks.client.post("/webhooks/postmark", json=bounce, auth=("postmark", "x")).status_code
        == 401
    )
    assert webhooks.client.post("/webhooks/postmark?token=nope", json=bounce).status_code == 401


# --- Attacks that must fail -------------------------------------------------------------------


def test_a_signed_event_naming_a_guessed_message_id_changes_nothing(
    database: Database, webhooks: Webhooks, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    first, second = sent_jobs(database, 2, secret=SECRET)
    tag = first.message_id.split("@")[0].rsplit(".", 1)[1]
    untagged = first.message_id.replace(f".{tag}@", "@")
    # The next job's number with the first job's tag: job ids are sequential, tags are not.
    next_job = first.message_id.replace(f".{first.job_id}.", f".{second.job_id}.")
    payload = [
        {"email": second.recipient, "event": "spamreport", "sg_event_id": f"g{n}", "smtp-id": id_}
        for n, id_ in enumerate((untagged, next_job, next_job.replace(tag, "a" * len(tag))))
    ]
    assert sendgrid_post(webhooks, sendgrid_key, payload).json() == RECEIVED
    assert events(database, first) == events(database, second) == []
    assert suppressions(database) == {}


def test_the_answer_is_the_same_for_a_known_and_an_unknown_address(
    database: Database, webhooks: Webhooks, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    answers = [
        sendgrid_post(
            webhooks,
            sendgrid_key,
            [{"email": email, "event": "spamreport", "sg_event_id": f"o-{email}"}],
        )
        for email in (job.recipient, "nobody-here@example.org")
    ]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].content == answers[1].content
    assert suppressions(database) == {job.recipient: "complaint"}


def test_a_body_over_the_limit_is_refused_with_413(database: Database, webhooks: Webhooks) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    padding_event = {"event": "delivered", "email": job.recipient, "pad": "x" * 2_000_000}
    body = json.dumps([padding_event]).encode()
    auth = ("postmark", "hook-password")
    assert webhooks.client.post("/webhooks/postmark", content=body, auth=auth).status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = webhooks.client.post("/webhooks/postmark", content=chunks(), auth=auth)
    assert streamed.status_code == 413
    for provider in ("ses", "sendgrid", "mailgun"):
        assert webhooks.client.post(f"/webhooks/{provider}", content=body).status_code == 413
    assert suppressions(database) == {}


def test_too_many_events_in_one_call_are_refused(
    database: Database, webhooks: Webhooks, sendgrid_key: ec.EllipticCurvePrivateKey
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    payload = [
        {"email": job.recipient, "event": "spamreport", "sg_event_id": f"many-{n}"}
        for n in range(MAX_EVENTS_PER_CALL + 1)
    ]
    response = sendgrid_post(webhooks, sendgrid_key, payload)
    assert response.status_code == 413
    assert str(MAX_EVENTS_PER_CALL) in response.json()["detail"]
    assert suppressions(database) == {}


def test_replayed_and_stale_signed_payloads_are_refused(
    database: Database,
    webhooks: Webhooks,
    sendgrid_key: ec.EllipticCurvePrivateKey,
    sns_key: tuple[rsa.RSAPrivateKey, bytes],
) -> None:
    first, second, third, fourth = sent_jobs(database, 4, secret=SECRET)
    complaint = {"event": "complained", "id": "mg-r", "recipient": first.recipient}
    captured = mailgun_payload(complaint)
    assert webhooks.client.post("/webhooks/mailgun", json=captured).status_code == 200
    assert webhooks.client.post("/webhooks/mailgun", json=captured).status_code == 403
    stale_s = int(time.time()) - 6 * 60
    future_s = int(time.time()) + 6 * 60
    for timestamp_s in (stale_s, future_s):
        event = {"event": "complained", "id": f"mg-{timestamp_s}", "recipient": second.recipient}
        stale = mailgun_payload(event, timestamp_s=timestamp_s)
        assert webhooks.client.post("/webhooks/mailgun", json=stale).status_code == 403
        spam = [{"email": third.recipient, "event": "spamreport", "sg_event_id": "s"}]
        assert (
            sendgrid_post(webhooks, sendgrid_key, spam, timestamp_s=timestamp_s).status_code == 403
        )
        old = datetime.fromtimestamp(timestamp_s, UTC).isoformat(timespec="milliseconds")
        sns = sns_message(sns_key[0], message=ses_bounce(fourth), timestamp=old)
        assert webhooks.client.post("/webhooks/ses", json=sns).status_code == 403
    assert suppressions(database) == {first.recipient: "complaint"}


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.s3.amazonaws.com/x.pem",
        "http://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
    ],
)
def test_sns_certificate_urls_off_a_regional_sns_host_are_refused(
    database: Database,
    webhooks: Webhooks,
    sns_key: tuple[rsa.RSAPrivateKey, bytes],
    cert_url: str,
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    body = sns_message(sns_key[0], message=ses_bounce(job), cert_url=cert_url)
    assert webhooks.client.post("/webhooks/ses", json=body).status_code == 403
    assert webhooks.fetched == []
    assert suppressions(database) == {}


def test_an_sns_certificate_naming_another_subject_is_refused_and_not_fetched_again(
    database: Database, sns_key: tuple[rsa.RSAPrivateKey, bytes]
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    key = sns_key[0]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker.example")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return certificate.public_bytes(serialization.Encoding.PEM)

    app = FastAPI()
    app.include_router(
        webhook_router(
            Settings(secret_key=SECRET.decode(), ses_topic_arns=TOPIC),
            database,
            certificate_fetcher=fetch,
        )
    )
    client = TestClient(app)
    for _ in range(2):
        body = sns_message(key, message=ses_bounce(job))
        response = client.post("/webhooks/ses", json=body)
        assert response.status_code == 403
        assert "sns.amazonaws.com" in response.json()["detail"]
    assert fetched == [CERT_URL]  # the failure is remembered
    assert suppressions(database) == {}


def test_sns_certificates_are_fetched_once_per_url_at_a_time_and_the_cache_is_bounded(
    sns_key: tuple[rsa.RSAPrivateKey, bytes],
) -> None:
    release = threading.Event()
    fetched: list[str] = []

    def slow_fetch(url: str) -> bytes:
        fetched.append(url)
        release.wait(30)
        return sns_key[1]

    certificates = SnsCertificates(slow_fetch, max_entries=2)
    waiting = [threading.Thread(target=certificates.get, args=(CERT_URL,)) for _ in range(4)]
    for thread in waiting:
        thread.start()
    assert wait_until(lambda: len(fetched) >= 1, timeout_s=30)
    release.set()
    for thread in waiting:
        thread.join(30)
    assert fetched == [CERT_URL]
    others = [CERT_URL.replace("test.pem", f"{n}.pem") for n in range(2)]
    for url in others:
        certificates.get(url)
    certificates.get(CERT_URL)  # dropped as least recently used: fetched again
    assert fetched == [CERT_URL, *others, CERT_URL]
