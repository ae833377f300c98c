"""Bounce intake under attack: crafted messages are read within the test's timeout and refused
or classed right, a read past the CPU limit is stopped, and complaints that do not prove
themselves change nothing. ``edm bounces serve`` under attack is in
tests/integration/test_bounce_intake.py."""

from __future__ import annotations

import email.utils
import functools
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from campaigns.bounces.address_scan import addresses_in, typed_address
from campaigns.bounces.intake import BounceIntake, IntakeOutcome
from campaigns.bounces.isolated_reading import read_mail_isolated
from campaigns.bounces.policy import BouncePolicy
from campaigns.bounces.reading import MailReading, read_mail
from campaigns.bounces.reading_limits import MailTooCostly
from campaigns.bounces.reporter_auth import is_from_reporter
from campaigns.content.dkim import DkimSigner
from campaigns.content.dkim_keys import dns_record, generate_private_key
from campaigns.core.models import Suppression
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from tests.bounce_mail import corpus_message, message_for, sent_jobs
from tests.hostile_mail import (
    HOSTILE_MESSAGES,
    REFUSED,
    HostileMessage,
    deep_mime,
    forged_complaint,
    many_dsn_blocks,
)

SECRET = b"test-secret"
REPORTER = "fbl.example-mailbox.net"


@pytest.mark.parametrize("hostile", HOSTILE_MESSAGES, ids=lambda hostile: hostile.name)
def test_the_worst_messages_are_read_quickly_and_refused_or_classed(
    hostile: HostileMessage,
) -> None:
    raw = hostile.build(1)
    if hostile.expected == REFUSED:
        with pytest.raises(MailTooCostly):
            read_mail(raw)
        return
    reading = read_mail(raw)
    assert reading.kind == hostile.expected
    assert reading.recipients == ()


def test_a_folded_header_of_megabytes_yields_only_the_addresses_within_the_bound() -> None:
    raw = b"Delivered-To: " + b"x@example.com,\r\n " * 500_000 + b"y@example.com\r\n\r\nhi"
    assert len(read_mail(raw).delivered_to) == 1  # the same address, kept once


@pytest.mark.parametrize(
    "value",
    [
        "Ann Example <Ann@Example.com>",
        '"Doe, John" <j.doe@example.org>, b@example.net (Bob, the other)',
        "<bounces+abc@bounces.example.com>",
        "a@example.com, , <b@example.com>; c@example.com",
        'undisclosed-recipients:;, "x@y" <real@example.com>',
        "(comment (nested)) c@example.com",
        "Team: a@example.com, b@example.com;, c@example.com",
        "not an address, also@",
    ],
)
def test_the_address_scan_agrees_with_the_standard_parser_on_ordinary_headers(value: str) -> None:
    expected = [
        address.lower() for _name, address in email.utils.getaddresses([value]) if "@" in address
    ]
    expected = [address for address in expected if re.fullmatch(r"[^@\s]+@[^@\s]+", address)]
    assert addresses_in(value) == expected


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("rfc822; Pat@Example.com", "pat@example.com"),
        ("rfc822;<pat@example.com>", "pat@example.com"),
        ("rfc822; John <pat@example.com> ", "pat@example.com"),
        ("pat@example.com", "pat@example.com"),
        ("rfc822; pat@example.com>>", None),
        ("rfc822; @", None),
        ("rfc822; ", None),
        ("rfc822; " + "a" * 100_000, None),
    ],
)
def test_typed_addresses(field: str, expected: str | None) -> None:
    assert typed_address(field) == expected


# --- the CPU limit ----------------------------------------------------------------------------


def spin_in_python(raw: bytes) -> MailReading:
    while True:
        time.monotonic()


def spin_in_c(raw: bytes) -> MailReading:
    # Exponential backtracking inside the regex engine: no signal handler runs until it returns.
    re.match(r"(a+)+$", "a" * 64 + "b")
    raise AssertionError("unreachable")


@pytest.mark.parametrize("read", [spin_in_python, spin_in_c])
def test_a_read_past_the_cpu_limit_is_stopped_and_refused(read: object) -> None:
    with pytest.raises(MailTooCostly, match="CPU"):
        read_mail_isolated(b"Subject: x\r\n\r\nx", cpu_limit_s=0.5, read=read)  # type: ignore[arg-type]


def test_the_isolated_read_gives_what_the_read_in_process_gives() -> None:
    raw = corpus_message(
        "postfix_user_unknown",
        return_path="bounces+x@bounces.example.com",
        message_id="<x@y>",
        recipient="pat@example.com",
    )
    assert read_mail_isolated(raw) == read_mail(raw)
    with pytest.raises(MailTooCostly, match="Content-Type lines"):
        read_mail_isolated(deep_mime(1))


def test_the_intake_ignores_a_message_refused_unread(database: Database) -> None:
    intake = BounceIntake(database, secret=SECRET, policy=BouncePolicy())
    (job,) = sent_jobs(database, 1, secret=SECRET)
    result = intake.receive_mail(many_blocks_about(job.recipient), [job.return_path])
    assert result.outcome == IntakeOutcome.TOO_COSTLY
    assert suppressions(database) == {}


def many_blocks_about(recipient: str) -> bytes:
    return many_dsn_blocks(1).replace(b"r0@example.com", recipient.encode())


# --- complaints that must prove themselves ------------------------------------------------------


def suppressions(database: Database) -> dict[str, str]:
    with database.session() as session:
        return dict(session.execute(select(Suppression.email_key, Suppression.reason)).all())


def test_an_arf_report_naming_an_address_changes_nothing(database: Database) -> None:
    intake = BounceIntake(database, secret=SECRET, policy=BouncePolicy())
    mine, victim = sent_jobs(database, 2, secret=SECRET)
    for return_path in ("news@news.example.com", mine.return_path, victim.return_path):
        result = intake.receive_mail(forged_complaint(victim.recipient, return_path=return_path))
        assert result.outcome == IntakeOutcome.UNAUTHENTICATED
    assert suppressions(database) == {}


class SignedReports:
    """A reporter's DKIM key, its DNS record, and reports signed with it."""

    def __init__(self, domain: str) -> None:
        key = generate_private_key("rsa")
        self.record = dns_record(key, selector="fbl", domain=domain)
        self.signer = DkimSigner(key, domain=domain, selector="fbl")

    def dns(self, name: bytes, timeout: int = 5) -> bytes | None:
        return self.record.value.encode() if name.decode().rstrip(".") == self.record.name else None


@pytest.fixture(scope="module")
def reporter() -> SignedReports:
    return SignedReports(REPORTER)


def reporter_intake(database: Database, reporter: SignedReports) -> BounceIntake:
    return BounceIntake(
        database,
        secret=SECRET,
        policy=BouncePolicy(),
        reporter_domains=["example-mailbox.net"],
        reader=functools.partial(read_mail, check_signatures=True, signature_dns=reporter.dns),
    )


def test_a_redacted_report_signed_by_a_reporter_domain_counts(
    database: Database, reporter: SignedReports
) -> None:
    intake = reporter_intake(database, reporter)
    (job,) = sent_jobs(database, 1, secret=SECRET)
    raw = reporter.signer.sign(forged_complaint(job.recipient, return_path="", reporter=REPORTER))
    result = intake.receive_mail(raw)
    assert (result.outcome, result.job_id) == (IntakeOutcome.RECORDED, job.job_id)
    assert suppressions(database) == {job.recipient: "complaint"}


def test_a_report_signed_by_another_domain_or_tampered_with_does_not_count(
    database: Database, reporter: SignedReports
) -> None:
    intake = reporter_intake(database, reporter)
    (job,) = sent_jobs(database, 1, secret=SECRET)
    stranger = SignedReports("fbl-example-mailbox.net")
    report = forged_complaint(job.recipient, return_path=job.return_path, reporter=REPORTER)
    signed_by_stranger = stranger.signer.sign(report)
    tampered = reporter.signer.sign(report).replace(b"An abuse report.", b"An abuse reporT.")
    for raw in (signed_by_stranger, tampered):
        assert intake.receive_mail(raw).outcome == IntakeOutcome.UNAUTHENTICATED
    assert suppressions(database) == {}


def test_a_report_returning_our_signed_message_id_counts_without_a_reporter_domain(
    database: Database,
) -> None:
    intake = BounceIntake(database, secret=SECRET, policy=BouncePolicy())
    (job,) = sent_jobs(database, 1, secret=SECRET)
    assert intake.receive_mail(message_for(job, "arf_complaint")).outcome == IntakeOutcome.RECORDED
    assert suppressions(database) == {job.recipient: "complaint"}


def test_reporter_domains_match_themselves_and_their_subdomains_only() -> None:
    reporters = Settings(complaint_reporter_domains=" Example-Mailbox.net., ,other.example ")
    domains = reporters.complaint_reporter_domain_list
    assert domains == ("example-mailbox.net", "other.example")
    assert is_from_reporter(["fbl.example-mailbox.net"], domains)
    assert is_from_reporter(["other.example"], domains)
    assert not is_from_reporter(["evil-example-mailbox.net", "example.net"], domains)


def test_settings_read_reporter_domains_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"EDM_DATA_DIR": str(tmp_path), "EDM_COMPLAINT_REPORTER_DOMAINS": "a.example,b.example"}
    )
    assert settings.complaint_reporter_domain_list == ("a.example", "b.example")
