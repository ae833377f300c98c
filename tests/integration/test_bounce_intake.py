"""Bounces and complaints recorded from messages, on a real database: one event per report,
counters that agree, suppression as the policy says, and replays that change nothing.

Here through ``edm bounces serve`` (a real subprocess spoken to with smtplib), and through
``edm bounces poll`` against a real Dovecot over IMAP and POP3.

The intake called directly is in tests/unit/test_bounce_intake.py."""

from __future__ import annotations

import functools
import os
import poplib
import re
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from campaigns.bounces.intake import BounceIntake
from campaigns.bounces.isolated_reading import read_mail_isolated
from campaigns.bounces.policy import BouncePolicy
from campaigns.bounces.reading import MailReading, read_mail
from campaigns.core.errors import ServiceUnavailable
from campaigns.core.events import campaign_counters, job_history
from campaigns.core.models import Job, JobState, Suppression
from campaigns.core.storage import Database
from campaigns.tracking.tokens import sign_job_token
from tests.bounce_mail import BOUNCE_DOMAIN, SentJob, message_for, sent_jobs
from tests.conftest import deliver_to_mailbox, wait_until
from tests.dovecot_server import PASSWORD as MAILBOX_PASSWORD
from tests.dovecot_server import USER as MAILBOX_USER
from tests.dovecot_server import DovecotServer
from tests.hostile_mail import deep_mime, folded_to, forged_complaint
from workers.receivers.bounce_mailbox import parse_mailbox_url, poll_mailbox
from workers.receivers.bounce_server import MAX_RECIPIENTS, BounceHandler

SECRET = b"test-secret"
EDM = (sys.executable, "-m", "edm")


@pytest.fixture
def intake(database: Database) -> BounceIntake:
    return BounceIntake(database, secret=SECRET, policy=BouncePolicy(soft_bounce_limit=3))


def job_state(database: Database, job_id: int) -> str:
    with database.session() as session:
        return session.scalar(select(Job.state).where(Job.id == job_id))


def suppressions(database: Database) -> dict[str, str]:
    with database.session() as session:
        return dict(session.execute(select(Suppression.email_key, Suppression.reason)).all())


def events(database: Database, job: SentJob) -> list[tuple[str, str | None]]:
    return [(event.kind, event.detail.get("class")) for event in job_history(database, job.job_id)]


@pytest.fixture
def bounce_server(database_url: str, database: Database, tmp_path: Path) -> Iterator[int]:
    """``edm bounces serve`` on a free loopback port, as a real subprocess; yields the port."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"),
        EDM_DATABASE_URL=database_url,
        EDM_SECRET_KEY=SECRET.decode(),
        EDM_BOUNCE_DOMAIN=BOUNCE_DOMAIN,
        EDM_COMPLAINTS_ADDRESS="fbl@bounces.example.com",
    )
    log_path = tmp_path / "bounces-serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*EDM, "bounces", "serve", "--host", "127.0.0.1", "--port", "0"],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        listening = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        assert wait_until(
            lambda: (
                listening.search(log_path.read_text()) is not None or process.poll() is not None
            ),
            timeout_s=60,
        )
        match = listening.search(log_path.read_text())
        assert match, log_path.read_text()
        yield int(match.group(1))
    finally:
        process.terminate()
        process.wait(timeout=30)


def send(port: int, recipient: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("", [recipient], raw)


def test_the_smtp_endpoint_records_each_report_once_and_refuses_other_recipients(
    database: Database, bounce_server: int
) -> None:
    hard, soft, complained, out_of_office = sent_jobs(database, 4, secret=SECRET)
    send(bounce_server, hard.return_path, message_for(hard, "exchange_recipient_not_found"))
    send(bounce_server, hard.return_path, message_for(hard, "exchange_recipient_not_found"))
    send(bounce_server, soft.return_path, message_for(soft, "postfix_mailbox_full"))
    send(bounce_server, "fbl@bounces.example.com", message_for(complained, "arf_complaint"))
    send(
        bounce_server,
        out_of_office.return_path,
        message_for(out_of_office, "autoreply_x_autoreply"),
    )
    forged_token = "bounces+bkzxqrmvd7a2nq3hftweabcde@bounces.example.com"
    for refused in ("postmaster@bounces.example.com", "bounces+x@other.example.com", forged_token):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refusal:
            send(bounce_server, refused, message_for(hard, "postfix_user_unknown"))
        assert refusal.value.recipients[refused][0] == 550

    assert events(database, hard) == [("bounced", "hard")]
    assert events(database, soft) == [("bounced", "soft")]
    assert events(database, complained) == [("complained", None)]
    assert events(database, out_of_office) == []
    assert job_state(database, hard.job_id) == JobState.BOUNCED
    assert suppressions(database) == {
        hard.recipient: "hard_bounce",
        complained.recipient: "complaint",
    }
    assert campaign_counters(database, hard.campaign_id) == {
        "bounces": 2,
        "bounces_hard": 1,
        "bounces_soft": 1,
        "complaints": 1,
    }


def test_the_smtp_endpoint_refuses_what_costs_too_much_and_keeps_answering(
    database: Database, bounce_server: int
) -> None:
    mine, victim, bounced = sent_jobs(database, 3, secret=SECRET)
    with smtplib.SMTP("127.0.0.1", bounce_server, timeout=60) as client:
        client.ehlo()
        client.mail("")
        for job_id in range(1, MAX_RECIPIENTS + 1):
            assert client.rcpt(_return_path(job_id))[0] == 250
        assert client.rcpt(_return_path(MAX_RECIPIENTS + 1))[0] == 452
        client.rset()
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            client.sendmail("", [mine.return_path], deep_mime(1))
        assert refusal.value.smtp_code == 554
        # Read in bounded time: an unrecognised message, answered like any other.
        client.sendmail("", [mine.return_path], folded_to(3))
        # A complaint about someone else, through the complaints address: nothing happens.
        client.sendmail(
            "",
            ["fbl@bounces.example.com"],
            forged_complaint(victim.recipient, return_path=victim.return_path),
        )
        client.sendmail("", [bounced.return_path], message_for(bounced, "postfix_user_unknown"))
        assert client.noop()[0] == 250
    assert suppressions(database) == {bounced.recipient: "hard_bounce"}
    assert events(database, mine) == events(database, victim) == []


def read_when_released(started: Path, release: Path, raw: bytes) -> MailReading:
    """Reads a message marked ``X-Hold`` only once ``release`` exists, holding the GIL in C
    for seconds at a time meanwhile (a regex that backtracks), as a costly parse does."""
    if raw.startswith(b"X-Hold:"):
        started.touch()
        while not release.exists():
            re.match(r"(a+)+$", "a" * 26 + "b")
    return read_mail(raw)


def test_a_message_being_read_does_not_stop_other_clients(
    database: Database, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    reader = functools.partial(
        read_mail_isolated,
        cpu_limit_s=600,
        read=functools.partial(read_when_released, started, release),
    )
    intake = BounceIntake(database, secret=SECRET, policy=BouncePolicy(), reader=reader)
    handler = BounceHandler(intake, secret=SECRET, bounce_domain=BOUNCE_DOMAIN)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    held, other = sent_jobs(database, 2, secret=SECRET)
    outcome: list[object] = []

    def send_held() -> None:
        try:
            send(
                controller.port,
                held.return_path,
                b"X-Hold: 1\r\n" + message_for(held, "postfix_mailbox_full"),
            )
            outcome.append("sent")
        except Exception as error:
            outcome.append(error)

    first = threading.Thread(target=send_held)
    try:
        first.start()
        assert wait_until(started.exists, timeout_s=60)
        # While the first message is still being read (it cannot finish before `release`),
        # a second client gets its banner, a NOOP and a whole transaction recorded; each reply
        # well before the seconds the reading holds the GIL for at a time.
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=5) as client:
            assert client.noop()[0] == 250
            client.sendmail("", [other.return_path], message_for(other, "postfix_user_unknown"))
        assert events(database, other) == [("bounced", "hard")]
        assert first.is_alive() and outcome == []
    finally:
        release.touch()
        first.join(timeout=120)
        controller.stop()
    assert outcome == ["sent"]
    assert events(database, held) == [("bounced", "soft")]


def test_the_smtp_endpoint_answers_451_when_it_cannot_record(tmp_path: Path) -> None:
    # A database without the schema: every write fails, as when the database is down.
    broken = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    intake = BounceIntake(broken, secret=SECRET, policy=BouncePolicy())
    handler = BounceHandler(intake, secret=SECRET, bounce_domain=BOUNCE_DOMAIN)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    try:
        job = SentJob(1, 1, "person0@example.com", _return_path(1), "<x@y>")
        with pytest.raises(smtplib.SMTPDataError) as refusal:
            send(
                controller.port,
                job.return_path,
                message_for(job, "postfix_user_unknown"),
            )
        assert refusal.value.smtp_code == 451
    finally:
        controller.stop()
        broken.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _return_path(job_id: int) -> str:
    return f"bounces+{sign_job_token(SECRET, 'bounce', job_id)}@{BOUNCE_DOMAIN}"


# --- through `edm bounces poll` against Dovecot -----------------------------------------------


def mailbox_size(server: DovecotServer) -> int:
    client = poplib.POP3("127.0.0.1", server.pop3_port)
    try:
        client.user(MAILBOX_USER)
        client.pass_(MAILBOX_PASSWORD)
        return client.stat()[0]
    finally:
        client.quit()


def poll_once(database_url: str, tmp_path: Path, url: str) -> str:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(
        EDM_DATA_DIR=str(tmp_path / "data"),
        EDM_DATABASE_URL=database_url,
        EDM_SECRET_KEY=SECRET.decode(),
    )
    result = subprocess.run(
        [*EDM, "bounces", "poll", "--url", url, "--once"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_the_mailbox_poller_records_each_report_once_and_empties_the_mailbox(
    database_url: str,
    database: Database,
    dovecot: DovecotServer,
    tmp_path: Path,
    protocol: str,
) -> None:
    url = dovecot.imap_url if protocol == "imap" else dovecot.pop3_url
    hard, soft, policy, complained, out_of_office = sent_jobs(database, 5, secret=SECRET)
    hard_report = message_for(hard, "qmail_no_mailbox")
    deliver_to_mailbox(
        dovecot,
        hard_report,
        message_for(soft, "postfix_expired_4xx"),
        message_for(policy, "outlook_policy_block"),
        message_for(complained, "arf_redacted_recipient"),
        message_for(out_of_office, "autoreply_out_of_office"),
        message_for(hard, "forged_token"),
        b"From: someone@example.org\r\nSubject: hello\r\n\r\nA person writing to a bounce address.",
    )
    summary = poll_once(database_url, tmp_path, url)
    assert "7 messages read" in summary
    assert mailbox_size(dovecot) == 0

    # The same report again, as a mailbox may hand over a message a second time.
    deliver_to_mailbox(dovecot, hard_report)
    assert "1 duplicate" in poll_once(database_url, tmp_path, url)
    assert mailbox_size(dovecot) == 0

    assert events(database, hard) == [("bounced", "hard")]
    assert events(database, soft) == [("bounced", "soft")]
    assert events(database, policy) == [("bounced", "policy")]
    assert events(database, complained) == [("complained", None)]
    assert events(database, out_of_office) == []
    assert job_state(database, hard.job_id) == JobState.BOUNCED
    assert suppressions(database) == {
        hard.recipient: "hard_bounce",
        complained.recipient: "complaint",
    }
    assert campaign_counters(database, hard.campaign_id) == {
        "bounces": 3,
        "bounces_hard": 1,
        "bounces_soft": 1,
        "bounces_policy": 1,
        "complaints": 1,
    }


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_message_the_database_could_not_record_stays_in_the_mailbox(
    dovecot: DovecotServer, tmp_path: Path, protocol: str
) -> None:
    url = dovecot.imap_url if protocol == "imap" else dovecot.pop3_url
    broken = Database(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    intake = BounceIntake(broken, secret=SECRET, policy=BouncePolicy())
    job = SentJob(1, 1, "person0@example.com", _return_path(1), "<x@y>")
    deliver_to_mailbox(dovecot, message_for(job, "postfix_user_unknown"))
    try:
        with pytest.raises(ServiceUnavailable, match="database"):
            poll_mailbox(parse_mailbox_url(url), intake)
        assert mailbox_size(dovecot) == 1
    finally:
        broken.dispose()
        # Leave the shared mailbox empty for the next test.
        poplib_client = poplib.POP3("127.0.0.1", dovecot.pop3_port)
        poplib_client.user(MAILBOX_USER)
        poplib_client.pass_(MAILBOX_PASSWORD)
        for number in range(1, poplib_client.stat()[0] + 1):
            poplib_client.dele(number)
        poplib_client.quit()
