"""Everything that happens after sending, end to end with real processes.

A campaign goes through real `edm worker` processes to an SMTP server that refuses some
recipients with 550 5.1.1; reports for accepted ones come back through `edm bounces serve` and
through `edm bounces poll` against a real Dovecot (IMAP); an ARF complaint arrives; HTTP
requests hit the pixel, click and one-click unsubscribe URLs taken from the delivered messages
on a real `edm track`. The database then holds exactly the expected event per recipient, the
counters agree, and a second campaign to the same list skips every suppressed address.
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaigns.core.events import campaign_counters
from campaigns.core.models import Job, JobEvent, JobState, Recipient, Suppression, utc_now
from campaigns.core.storage import Database
from tests.bounce_mail import corpus_message
from tests.conftest import deliver_to_mailbox, run_edm, wait_until
from tests.dovecot_server import DovecotServer
from tests.smtp_server import RecordingSmtpServer
from tests.tracking_helpers import (
    Delivered,
    accepts_connections,
    fetch,
    free_port,
    parse_delivered,
)

BOUNCE_DOMAIN = "bounces.example.com"
COMPLAINTS = "fbl@bounces.example.com"
SHOP_URL = "https://shop.example/spring"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"
REFUSED = ("gone0@example.com", "gone1@example.com")
PEOPLE = tuple(f"r{i}@example.com" for i in range(10))


def _refuse_gone(address: str) -> tuple[int, str] | None:
    if address.startswith("gone"):
        return 550, f"5.1.1 <{address}>: Recipient address rejected: User unknown"
    return None


@pytest.fixture
def relay() -> Iterator[RecordingSmtpServer]:
    with RecordingSmtpServer(behaviour=_refuse_gone) as server:
        yield server


def _start(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "edm", *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def _campaign(env: dict[str, str], template: Path, name: str) -> int:
    created = run_edm(
        ["campaigns", "create", "--name", name, "--list", "people", "--template", str(template),
         "--from", "Shop <news@shop.example>", "--json"],
        env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    campaign_id = int(json.loads(created.stdout)["id"])
    scheduled = run_edm(["campaigns", "schedule", str(campaign_id), "--now"], env)
    assert scheduled.returncode == 0, scheduled.stderr
    return campaign_id


def _completed(env: dict[str, str], campaign_id: int) -> bool:
    status = run_edm(["campaigns", "status", str(campaign_id), "--json"], env)
    return json.loads(status.stdout)["state"] == "completed"


def _events_by_email(database: Database, campaign_id: int) -> dict[str, list[tuple[str, str]]]:
    with database.session() as session:
        rows = session.execute(
            select(Recipient.email, JobEvent.kind, JobEvent.detail)
            .join(Job, Job.id == JobEvent.job_id)
            .join(Recipient, Recipient.id == Job.recipient_id)
            .where(JobEvent.campaign_id == campaign_id)
            .order_by(JobEvent.id)
        )
        events: dict[str, list[tuple[str, str]]] = {}
        for email_address, kind, detail in rows:
            events.setdefault(email_address, []).append((kind, detail.get("class", "")))
        return events


def _states_by_email(database: Database, campaign_id: int) -> dict[str, str]:
    with database.session() as session:
        rows = session.execute(
            select(Recipient.email, Job.state)
            .join(Job, Job.recipient_id == Recipient.id)
            .where(Job.campaign_id == campaign_id)
        )
        return {email_address: state for email_address, state in rows}


def test_bounces_complaints_opens_clicks_and_unsubscribes_land_on_the_right_recipient(
    database: Database,
    edm_env: dict[str, str],
    relay: RecordingSmtpServer,
    dovecot: DovecotServer,
    start_worker,
    tmp_path: Path,
) -> None:
    track_port = free_port()
    env = {
        **edm_env,
        "EDM_SMTP_URL": relay.url,
        "EDM_BASE_URL": f"http://127.0.0.1:{track_port}",
        "EDM_BOUNCE_DOMAIN": BOUNCE_DOMAIN,
        "EDM_COMPLAINTS_ADDRESS": COMPLAINTS,
    }
    csv_path = tmp_path / "people.csv"
    csv_path.write_text(
        "email,first_name\n"
        + "".join(f"{address},Name{i}\n" for i, address in enumerate((*REFUSED, *PEOPLE)))
    )
    assert run_edm(["lists", "import", str(csv_path), "--list", "people"], env).returncode == 0
    template = tmp_path / "spring"
    template.mkdir()
    (template / "subject.txt").write_text("Spring news for {{ first_name }}")
    (template / "body.html").write_text(
        f'<html><body><p>Hello {{{{ first_name }}}}</p><a href="{SHOP_URL}">Spring sale</a>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
    )

    start_worker(env=env)
    first = _campaign(env, template, "Spring")
    assert wait_until(lambda: _completed(env, first), timeout_s=120, interval_s=0.5)
    delivered: dict[str, tuple[str, Delivered]] = {
        message.rcpt_tos[0]: (message.mail_from, parse_delivered(message.data))
        for message in relay.messages
    }
    assert sorted(delivered) == sorted(PEOPLE)

    def report(name: str, address: str) -> bytes:
        return_path, message = delivered[address]
        return corpus_message(
            name,
            return_path=return_path,
            message_id=message.message["Message-ID"],
            recipient=address,
        )

    bounces_log = tmp_path / "bounces-serve.log"
    bounces = _start(["bounces", "serve", "--host", "127.0.0.1", "--port", "0"], env, bounces_log)
    tracker = _start(
        ["track", "--host", "127.0.0.1", "--port", str(track_port)], env, tmp_path / "track.log"
    )
    try:
        listening = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
        assert wait_until(lambda: listening.search(bounces_log.read_text()), timeout_s=60)
        bounce_port = int(listening.search(bounces_log.read_text()).group(1))  # type: ignore[union-attr]
        assert wait_until(lambda: accepts_connections(track_port), timeout_s=60)

        # Through the inbound SMTP endpoint: a hard bounce and a complaint.
        with smtplib.SMTP("127.0.0.1", bounce_port, timeout=30) as client:
            client.sendmail(
                "", [delivered[PEOPLE[0]][0]], report("postfix_user_unknown", PEOPLE[0])
            )
            client.sendmail("", [COMPLAINTS], report("arf_complaint", PEOPLE[3]))
        # Through the mailbox: a hard and a soft bounce, read by the IMAP poller.
        deliver_to_mailbox(
            dovecot,
            report("gmail_account_does_not_exist", PEOPLE[1]),
            report("postfix_mailbox_full", PEOPLE[2]),
        )
        polled = run_edm(["bounces", "poll", "--url", dovecot.imap_url, "--once"], env)
        assert polled.returncode == 0, polled.stderr

        # Through HTTP, with URLs taken from the messages themselves.
        click = fetch(delivered[PEOPLE[5]][1].links["Spring sale"])
        assert (click.status, click.headers["location"]) == (302, SHOP_URL)
        unsubscribe = fetch(
            delivered[PEOPLE[6]][1].list_unsubscribe,
            data=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unsubscribe.status == 200
        # An open within seconds of delivery is taken for a machine's; a reader's comes later.
        with database.session() as session:
            sent_at = session.scalar(select(func.max(Job.sent_at)).where(Job.campaign_id == first))
        assert sent_at is not None
        time.sleep(max(0.0, (sent_at + timedelta(seconds=11) - utc_now()).total_seconds()))
        pixel = fetch(delivered[PEOPLE[4]][1].pixel, headers={"User-Agent": BROWSER})
        assert pixel.status == 200
    finally:
        _stop(bounces)
        _stop(tracker)

    assert _events_by_email(database, first) == {
        REFUSED[0]: [("bounced", "hard")],
        REFUSED[1]: [("bounced", "hard")],
        PEOPLE[0]: [("bounced", "hard")],
        PEOPLE[1]: [("bounced", "hard")],
        PEOPLE[2]: [("bounced", "soft")],
        PEOPLE[3]: [("complained", "")],
        PEOPLE[4]: [("opened", "")],
        PEOPLE[5]: [("clicked", "")],
        PEOPLE[6]: [("unsubscribed", "")],
    }
    assert campaign_counters(database, first) == {
        "bounces": 5,
        "bounces_hard": 4,
        "bounces_soft": 1,
        "complaints": 1,
        "opens": 1,
        "unique_opens": 1,
        "clicks": 1,
        "unique_clicks": 1,
        "unsubscribes": 1,
    }
    states = _states_by_email(database, first)
    assert Counter(states.values()) == {JobState.SENT: 8, JobState.BOUNCED: 4}
    with database.session() as session:
        rows = session.execute(select(Suppression.email_key, Suppression.reason))
        suppressed = {key: reason for key, reason in rows}
    assert suppressed == {
        REFUSED[0]: "hard_bounce",
        REFUSED[1]: "hard_bounce",
        PEOPLE[0]: "hard_bounce",
        PEOPLE[1]: "hard_bounce",
        PEOPLE[3]: "complaint",
        PEOPLE[6]: "unsubscribe",
    }

    # A second campaign to the same list skips every suppressed address.
    before = len(relay.messages)
    second = _campaign(env, template, "Spring, again")
    assert wait_until(lambda: _completed(env, second), timeout_s=120, interval_s=0.5)
    again = sorted(rcpt for message in relay.messages[before:] for rcpt in message.rcpt_tos)
    assert again == sorted(set(PEOPLE) - set(suppressed))
    second_states = _states_by_email(database, second)
    assert {address for address, state in second_states.items() if state == "suppressed"} == set(
        suppressed
    )
