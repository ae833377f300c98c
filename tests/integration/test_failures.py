"""Outcomes of refusals in delivery, the failure listing and retrying, on a real database.

Here: delivery to a real SMTP server and the CLI; the rest is in tests/unit/test_failures.py."""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select, update

from campaigns.core.models import (
    Job,
    JobState,
    Recipient,
    Suppression,
)
from campaigns.core.storage import Database
from tests.conftest import run_edm
from tests.delivery_helpers import (
    deliver,
    delivery_context,
    publish_due_jobs,
    scheduled_campaign,
)
from tests.factories import campaign_in_every_state
from tests.smtp_server import DataEnd, RecordingSmtpServer

REFUSALS = {
    "gone": (550, "5.1.1 <gone@example.com>: Recipient address rejected: User unknown"),
    "disabled": (550, "5.2.1 Mailbox disabled"),
    "full": (552, "5.2.2 Mailbox full"),
    "big": (552, "5.3.4 Message too big for system"),
    "policy": (550, "5.7.1 Message rejected due to DMARC policy"),
    "plain": (554, "Transaction failed"),
}


def _refuse_by_local_part(address: str) -> tuple[int, str] | None:
    return REFUSALS.get(address.split("@")[0])


def _campaign(database: Database, tmp_path: Path, addresses: list[str]) -> list[int]:
    scheduled_campaign(database, tmp_path, addresses)
    return publish_due_jobs(database)


def _jobs_by_local_part(database: Database) -> dict[str, Job]:
    with database.session() as session:
        rows = session.execute(
            select(Recipient.email, Job).join(Job, Job.recipient_id == Recipient.id)
        )
        return {email.split("@")[0]: job for email, job in rows}


def _suppressions(database: Database) -> dict[str, Suppression]:
    with database.session() as session:
        return {row.email_key: row for row in session.scalars(select(Suppression))}


def test_refusals_end_bounced_or_failed_and_only_hard_bounces_are_suppressed(
    database: Database, redis_url: str, tmp_path: Path
) -> None:
    addresses = [f"{name}@example.com" for name in (*REFUSALS, "ok")]
    with database.session() as session:
        session.add(Suppression(email_key="unsub@example.com", reason="unsubscribed"))
    with RecordingSmtpServer(behaviour=_refuse_by_local_part) as server:
        job_ids = _campaign(database, tmp_path, addresses)
        deliver(delivery_context(database, server, redis_url), job_ids)
        assert [message.rcpt_tos for message in server.messages] == [["ok@example.com"]]

    jobs = _jobs_by_local_part(database)
    states = {name: (job.state, job.last_code, job.last_status) for name, job in jobs.items()}
    assert states == {
        "gone": (JobState.BOUNCED, 550, "5.1.1"),
        "disabled": (JobState.BOUNCED, 550, "5.2.1"),
        "full": (JobState.BOUNCED, 552, "5.2.2"),
        "big": (JobState.BOUNCED, 552, "5.3.4"),
        "policy": (JobState.FAILED, 550, "5.7.1"),
        "plain": (JobState.FAILED, 554, None),
        "ok": (JobState.SENT, 250, "2.0.0"),
    }
    suppressions = _suppressions(database)
    assert set(suppressions) == {"gone@example.com", "disabled@example.com", "unsub@example.com"}
    gone = suppressions["gone@example.com"]
    assert gone.reason == "hard_bounce"
    assert gone.detail == jobs["gone"].last_reply
    assert "User unknown" in (gone.detail or "")


@pytest.mark.parametrize(
    ("policy", "state"), [("hold", JobState.UNKNOWN), ("retry", JobState.DEFERRED)]
)
def test_a_lost_reply_to_the_final_dot_is_held_or_deferred_by_the_unknown_policy(
    database: Database, redis_url: str, tmp_path: Path, policy: str, state: JobState
) -> None:
    with RecordingSmtpServer(data_behaviour=lambda _rcpts: DataEnd.DROP) as server:
        job_ids = _campaign(database, tmp_path, ["dropped@example.com"])
        deliver(delivery_context(database, server, redis_url, unknown_policy=policy), job_ids)
        assert len(server.messages) == 1
    job = _jobs_by_local_part(database)["dropped"]
    assert job.state == state
    assert "no reply after the message was sent" in (job.last_reply or "")
    assert (job.next_attempt_at is not None) == (policy == "retry")


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    environment.update(EDM_DATA_DIR=str(tmp_path / "data"), EDM_DATABASE_URL=database_url)
    return environment


def test_failures_csv_lists_everyone_not_sent_and_neutralises_formulas(
    database: Database, cli_env: dict[str, str]
) -> None:
    campaign_id, ids = campaign_in_every_state(database)
    with database.session() as session:
        recipient_id = session.get_one(Job, ids["plain"]).recipient_id
        session.execute(
            update(Recipient).where(Recipient.id == recipient_id).values(email="-2+3@example.com")
        )

    result = run_edm(["campaigns", "failures", str(campaign_id), "--csv"], cli_env)

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(ids) - 1
    plain = next(row for row in rows if row["state"] == "failed" and row["last_code"] == "554")
    assert plain["email"] == "'-2+3@example.com"
    assert plain["last_reply"] == "'=cmd|x"
    assert Counter(row["class"] for row in rows)["hard_bounce"] == 1
    hard = next(row for row in rows if row["class"] == "hard_bounce")
    assert (hard["state"], hard["last_code"], hard["enhanced_status"]) == (
        "bounced",
        "550",
        "5.1.1",
    )

    table = run_edm(["campaigns", "failures", str(campaign_id)], cli_env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["email", "state", "class"]
    assert len(lines) == len(ids)


def test_failures_and_retry_of_an_unknown_campaign_fail_in_one_line_and_print_nothing(
    cli_env: dict[str, str], database: Database
) -> None:
    for args in (["failures", "42", "--csv"], ["retry", "42"]):
        result = run_edm(["campaigns", *args], cli_env)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr == "edm: error: campaign 42 not found\n"


def test_retry_command_reports_what_it_queued(database: Database, cli_env: dict[str, str]) -> None:
    campaign_id, _ = campaign_in_every_state(database)
    result = run_edm(["campaigns", "retry", str(campaign_id)], cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"campaign {campaign_id} is running: 4 recipients queued again "
        "(1 not_sent, 1 permanent, 1 soft_bounce, 1 transient), 1 deferred now due\n"
    )
