"""The whole pipeline with real parts: CSV -> jobs -> two real worker processes -> SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
from collections import Counter
from html import escape
from pathlib import Path

from sqlalchemy import func, select

from campaigns.core.models import Job, JobState, Recipient
from campaigns.core.storage import open_database
from campaigns.lists.sample_lists import write_sample_list
from tests.conftest import run_edm, wait_until


def _json(result: object) -> dict:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return json.loads(result.stdout)  # type: ignore[attr-defined]


def test_every_valid_recipient_gets_exactly_one_personalised_message(
    tmp_path: Path, edm_env: dict[str, str], smtp_server, start_worker
) -> None:
    facts = write_sample_list(
        tmp_path / "list.csv", 10_000, invalid_ratio=0.03, duplicate_ratio=0.02
    )

    report = _json(
        run_edm(["lists", "import", str(facts.path), "--list", "big", "--json"], edm_env)
    )
    assert report["imported"] == len(facts.valid_unique_emails)
    assert report["rejected"] == len(facts.invalid_lines)
    assert report["duplicates"] == len(facts.duplicate_lines)
    assert sorted(error["line"] for error in report["errors"]) == sorted(facts.invalid_lines)

    created = _json(
        run_edm(
            [
                "campaigns",
                "create",
                "--name",
                "Big",
                "--list",
                "big",
                "--template",
                "newsletter",
                "--from",
                "Ünïcode Sender <news@example.com>",
                "--json",
            ],
            edm_env,
        )
    )
    campaign_id = created["id"]
    start_worker(concurrency=1)
    start_worker(concurrency=1)
    scheduled = run_edm(["campaigns", "schedule", str(campaign_id), "--now"], edm_env)
    assert scheduled.returncode == 0, scheduled.stderr

    def completed() -> bool:
        status = _json(run_edm(["campaigns", "status", str(campaign_id), "--json"], edm_env))
        return status["state"] == "completed"

    assert wait_until(completed, timeout_s=240, interval_s=1.0)
    status = _json(run_edm(["campaigns", "status", str(campaign_id), "--json"], edm_env))
    expected = len(facts.valid_unique_emails)
    assert status["counts"]["sent"] == expected
    assert status["total"] == expected

    received = Counter(
        rcpt.lower() for message in smtp_server.messages for rcpt in message.rcpt_tos
    )
    assert set(received) == set(facts.valid_unique_emails)
    assert max(received.values()) == 1

    database = open_database(edm_env["EDM_DATABASE_URL"])
    with database.session() as session:
        fields_by_email = {
            key: fields
            for key, fields in session.execute(select(Recipient.email_key, Recipient.fields))
        }
        sent_jobs = session.scalar(
            select(func.count()).where(Job.campaign_id == campaign_id, Job.state == JobState.SENT)
        )
    database.dispose()
    assert sent_jobs == len(smtp_server.messages)
    for message in smtp_server.messages[:: max(1, len(smtp_server.messages) // 200)]:
        parsed = email.message_from_bytes(message.data, policy=email.policy.default)
        recipient = message.rcpt_tos[0].lower()
        assert parsed["To"].addresses[0].addr_spec.lower() == recipient
        text = parsed.get_body(("plain",)).get_content()
        html = parsed.get_body(("html",)).get_content()
        first_name = fields_by_email[recipient]["first_name"]
        assert first_name in text, f"{recipient}: {first_name!r} not in the text part"
        assert escape(first_name) in html, f"{recipient}: {first_name!r} not in the HTML part"
        assert message.mail_from.startswith("bounces+")
