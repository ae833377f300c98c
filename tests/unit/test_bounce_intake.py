"""Bounces and complaints recorded from messages, on a real database: one event per report,
counters that agree, suppression as the policy says, and replays that change nothing.

Here through the intake itself; ``edm bounces serve`` and ``edm bounces poll`` are in
tests/integration/test_bounce_intake.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.audience.erasure import erase_person
from campaigns.bounces.intake import BounceIntake, IntakeOutcome
from campaigns.bounces.policy import BouncePolicy
from campaigns.core.errors import InputError
from campaigns.core.events import campaign_counters, job_history
from campaigns.core.models import Job, JobState, Suppression
from campaigns.core.storage import Database
from campaigns.tracking.tokens import sign_job_token
from tests.bounce_mail import SentJob, corpus_message, message_for, sent_jobs
from workers.receivers.bounce_mailbox import parse_mailbox_url

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


def test_a_hard_bounce_bounces_the_sent_job_and_suppresses_the_address(
    database: Database, intake: BounceIntake
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    result = intake.receive_mail(message_for(job, "postfix_user_unknown"))
    assert result.outcome == IntakeOutcome.RECORDED
    assert result.job_id == job.job_id
    assert job_state(database, job.job_id) == JobState.BOUNCED
    assert suppressions(database) == {job.recipient: "hard_bounce"}
    assert events(database, job) == [("bounced", "hard")]
    assert campaign_counters(database, job.campaign_id) == {"bounces": 1, "bounces_hard": 1}
    with database.session() as session:
        stored = session.get(Job, job.job_id)
        assert (stored.last_code, stored.last_status) == (550, "5.1.1")


def test_a_replayed_report_changes_nothing(database: Database, intake: BounceIntake) -> None:
    first, second = sent_jobs(database, 2, secret=SECRET)
    for _ in range(2):
        intake.receive_mail(message_for(first, "gmail_account_does_not_exist"))
        intake.receive_mail(message_for(second, "arf_complaint"))
    replay = intake.receive_mail(message_for(first, "gmail_account_does_not_exist"))
    assert replay.outcome == IntakeOutcome.DUPLICATE
    assert events(database, first) == [("bounced", "hard")]
    assert events(database, second) == [("complained", None)]
    assert campaign_counters(database, first.campaign_id) == {
        "bounces": 1,
        "bounces_hard": 1,
        "complaints": 1,
    }


def test_soft_bounces_suppress_only_at_the_limit(database: Database, intake: BounceIntake) -> None:
    jobs = sent_jobs(database, 1, secret=SECRET)
    # Three different soft reports about one address (three campaigns' messages in real life).
    reports = ["postfix_mailbox_full", "postfix_expired_4xx", "qmail_over_quota"]
    for count, name in enumerate(reports, start=1):
        result = intake.receive_mail(message_for(jobs[0], name))
        assert result.outcome == IntakeOutcome.RECORDED
        assert result.bounce_class == "soft"
        expected = {jobs[0].recipient: "hard_bounce"} if count == 3 else {}
        assert suppressions(database) == expected
    assert job_state(database, jobs[0].job_id) == JobState.SENT
    assert campaign_counters(database, jobs[0].campaign_id) == {"bounces": 3, "bounces_soft": 3}


def test_soft_bounces_older_than_the_window_do_not_count(database: Database) -> None:
    intake = BounceIntake(
        database, secret=SECRET, policy=BouncePolicy(soft_bounce_limit=2, soft_bounce_days=0)
    )
    (job,) = sent_jobs(database, 1, secret=SECRET)
    intake.receive_mail(message_for(job, "postfix_mailbox_full"))
    intake.receive_mail(message_for(job, "qmail_over_quota"))
    assert suppressions(database) == {}


def test_a_policy_block_is_recorded_without_suppressing(
    database: Database, intake: BounceIntake
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    result = intake.receive_mail(message_for(job, "outlook_policy_block"))
    assert (result.outcome, result.bounce_class) == (IntakeOutcome.RECORDED, "policy")
    assert suppressions(database) == {}
    assert job_state(database, job.job_id) == JobState.SENT
    assert campaign_counters(database, job.campaign_id) == {"bounces": 1, "bounces_policy": 1}


@pytest.mark.parametrize("name", ["arf_complaint", "arf_redacted_recipient"])
def test_a_complaint_suppresses_at_once(
    database: Database, intake: BounceIntake, name: str
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    result = intake.receive_mail(message_for(job, name), ["fbl@bounces.example.com"])
    assert (result.outcome, result.kind) == (IntakeOutcome.RECORDED, "complained")
    assert suppressions(database) == {job.recipient: "complaint"}
    assert events(database, job) == [("complained", None)]
    assert campaign_counters(database, job.campaign_id) == {"complaints": 1}
    assert job_state(database, job.job_id) == JobState.SENT


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("autoreply_out_of_office", IntakeOutcome.AUTO_REPLY),
        ("autoreply_outlook_automatic_reply", IntakeOutcome.AUTO_REPLY),
        ("autoreply_x_autoreply", IntakeOutcome.AUTO_REPLY),
        ("forged_token", IntakeOutcome.FORGED),
        ("yahoo_delayed_dsn", IntakeOutcome.NOT_FINAL),
        ("arf_auth_failure", IntakeOutcome.NOT_A_COMPLAINT),
        ("malformed_truncated", IntakeOutcome.NOT_FINAL),
    ],
)
def test_messages_that_are_not_bounces_of_ours_change_nothing(
    database: Database, intake: BounceIntake, name: str, outcome: IntakeOutcome
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    assert intake.receive_mail(message_for(job, name)).outcome == outcome
    assert events(database, job) == []
    assert suppressions(database) == {}
    assert campaign_counters(database, job.campaign_id) == {}


def test_a_forged_envelope_recipient_is_ignored_even_when_the_headers_name_a_job(
    database: Database, intake: BounceIntake
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    forged = job.return_path.replace("bounces+", "bounces+b")
    result = intake.receive_mail(message_for(job, "postfix_user_unknown"), [forged])
    assert result.outcome == IntakeOutcome.FORGED
    assert suppressions(database) == {}


def test_without_a_return_path_the_message_id_and_recipient_find_the_job(
    database: Database, intake: BounceIntake
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    result = intake.receive_mail(message_for(job, "sendmail_to_from_address"))
    assert (result.outcome, result.job_id) == (IntakeOutcome.RECORDED, job.job_id)
    assert suppressions(database) == {job.recipient: "hard_bounce"}


def test_a_message_id_fallback_naming_another_recipient_finds_no_job(
    database: Database, intake: BounceIntake
) -> None:
    first, second = sent_jobs(database, 2, secret=SECRET)
    # A report about the first job's message, claiming the second person bounced.
    raw = message_for(first, "sendmail_to_from_address").replace(
        first.recipient.encode(), second.recipient.encode()
    )
    assert intake.receive_mail(raw).outcome == IntakeOutcome.NO_JOB
    assert suppressions(database) == {}


@pytest.mark.parametrize("name", ["sendmail_to_from_address", "arf_complaint"])
def test_a_message_id_without_a_valid_tag_names_no_job(
    database: Database, intake: BounceIntake, name: str
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    tag = sign_job_token(SECRET, "message-id", job.job_id)
    assert f".{tag}@" in job.message_id
    untagged = job.message_id.replace(f".{tag}@", "@")
    wrong_tag = job.message_id.replace(tag, sign_job_token(SECRET, "bounce", job.job_id))
    # A complaint without our signed Message-ID is not even looked up.
    expected = IntakeOutcome.UNAUTHENTICATED if name.startswith("arf") else IntakeOutcome.NO_JOB
    for guessed in (untagged, wrong_tag):
        # A DSN or ARF report with no return path of ours, naming the job by a guessed id.
        raw = corpus_message(
            name, return_path="news@news.example.com", message_id=guessed, recipient=job.recipient
        )
        assert intake.receive_mail(raw).outcome == expected
    assert suppressions(database) == {}
    assert events(database, job) == []
    genuine = corpus_message(
        name,
        return_path="news@news.example.com",
        message_id=job.message_id,
        recipient=job.recipient,
    )
    assert intake.receive_mail(genuine).outcome == IntakeOutcome.RECORDED


def test_every_kind_of_bounce_in_one_campaign_adds_up(
    database: Database, intake: BounceIntake
) -> None:
    names = [
        "postfix_user_unknown",
        "exim_no_such_user",
        "gmail_account_does_not_exist",
        "exchange_recipient_not_found",
        "yahoo_failure_notice",
        "qmail_no_mailbox",
        "postfix_mailbox_full",
        "outlook_policy_block",
        "arf_complaint",
    ]
    jobs = sent_jobs(database, len(names), secret=SECRET)
    for job, name in zip(jobs, names, strict=True):
        assert intake.receive_mail(message_for(job, name)).outcome == IntakeOutcome.RECORDED
    assert campaign_counters(database, jobs[0].campaign_id) == {
        "bounces": 8,
        "bounces_hard": 6,
        "bounces_soft": 1,
        "bounces_policy": 1,
        "complaints": 1,
    }
    states = [job_state(database, job.job_id) for job in jobs]
    assert states == [JobState.BOUNCED] * 6 + [JobState.SENT] * 3
    assert sorted(suppressions(database).values()) == ["complaint"] + ["hard_bounce"] * 6


# --- through `edm bounces serve` -------------------------------------------------------------


def test_a_mailbox_url_is_checked_before_anything_runs(database_url: str, tmp_path: Path) -> None:
    for url, problem in (
        ("http://user:pass@host", "expected imap://"),
        ("imap://host", "needs user, password and host"),
        ("pop3://u:p@host:notaport", "invalid port"),
    ):
        with pytest.raises(InputError, match=problem):
            parse_mailbox_url(url)


def test_a_bounce_for_an_erased_person_counts_but_names_no_one(
    database: Database, intake: BounceIntake, tmp_path: Path
) -> None:
    (job,) = sent_jobs(database, 1, secret=SECRET)
    erase_person(database, job.recipient, secret=SECRET, data_dir=tmp_path, actor="test")
    before = suppressions(database)

    result = intake.receive_mail(message_for(job, "postfix_user_unknown"))

    assert result.outcome == IntakeOutcome.RECORDED
    assert campaign_counters(database, job.campaign_id) == {"bounces": 1, "bounces_hard": 1}
    [event] = job_history(database, job.job_id)
    assert set(event.detail) == {"dedup_key", "source", "class", "status"}
    assert job.recipient not in str(event.detail)
    assert suppressions(database) == before
