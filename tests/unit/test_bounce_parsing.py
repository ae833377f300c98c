"""Every message of the bounce corpus is read as what it is: the right kind, recipient, status
and class. Pure parsing: no database, no network."""

from __future__ import annotations

import pytest

from campaigns.bounces.classify import classify_bounce
from campaigns.bounces.reading import MailKind, read_mail
from campaigns.core.reply_classes import ReplyClass
from tests.bounce_mail import CORPUS_DIR, corpus_message

RETURN_PATH = "bounces+bgmoqmw3ab4ndgfmtdpixq@bounces.example.com"
MESSAGE_ID = "<0f0e7c1a-8a53-4c0e-9d3f-6f7b2b7d1c11.42@news.example.com>"
RECIPIENT = "pat.example@example.com"

# name: (kind, action, status, class) of the recipient a bounce reports
BOUNCES = {
    "postfix_user_unknown": (MailKind.DSN, "failed", "5.1.1", ReplyClass.HARD_BOUNCE),
    "postfix_mailbox_full": (MailKind.DSN, "failed", "5.2.2", ReplyClass.SOFT_BOUNCE),
    "postfix_expired_4xx": (MailKind.DSN, "failed", "4.4.1", ReplyClass.SOFT_BOUNCE),
    "exim_no_such_user": (MailKind.DSN, "failed", "5.0.0", ReplyClass.HARD_BOUNCE),
    "gmail_account_does_not_exist": (MailKind.DSN, "failed", "5.1.1", ReplyClass.HARD_BOUNCE),
    "exchange_recipient_not_found": (MailKind.DSN, "failed", "5.1.10", ReplyClass.HARD_BOUNCE),
    "outlook_policy_block": (MailKind.DSN, "failed", "5.7.1", ReplyClass.POLICY),
    "yahoo_delayed_dsn": (MailKind.DSN, "delayed", "4.7.0", ReplyClass.SOFT_BOUNCE),
    "sendmail_to_from_address": (MailKind.DSN, "failed", "5.1.1", ReplyClass.HARD_BOUNCE),
    "forged_token": (MailKind.DSN, "failed", "5.1.1", ReplyClass.HARD_BOUNCE),
    "yahoo_failure_notice": (MailKind.NONSTANDARD_BOUNCE, "failed", None, ReplyClass.HARD_BOUNCE),
    "qmail_no_mailbox": (MailKind.NONSTANDARD_BOUNCE, "failed", "5.1.1", ReplyClass.HARD_BOUNCE),
    "qmail_over_quota": (MailKind.NONSTANDARD_BOUNCE, "failed", "5.2.2", ReplyClass.SOFT_BOUNCE),
}
AUTO_REPLIES = (
    "autoreply_out_of_office",
    "autoreply_outlook_automatic_reply",
    "autoreply_x_autoreply",
)


def read(name: str) -> object:
    return read_mail(
        corpus_message(name, return_path=RETURN_PATH, message_id=MESSAGE_ID, recipient=RECIPIENT)
    )


def test_every_corpus_message_has_an_expectation() -> None:
    expected = {*BOUNCES, *AUTO_REPLIES, "arf_complaint", "arf_redacted_recipient"}
    expected |= {"arf_auth_failure", "malformed_truncated"}
    assert {path.stem for path in CORPUS_DIR.glob("*.eml")} == expected


@pytest.mark.parametrize("name", sorted(BOUNCES))
def test_bounces_are_read_with_their_recipient_status_and_class(name: str) -> None:
    kind, action, status, bounce_class = BOUNCES[name]
    reading = read(name)
    assert reading.kind == kind
    assert [
        (report.recipient, report.action, report.status, report.bounce_class)
        for report in reading.recipients
    ] == [(RECIPIENT, action, status, bounce_class)]


@pytest.mark.parametrize(
    "name", sorted(set(BOUNCES) - {"forged_token", "sendmail_to_from_address"})
)
def test_bounces_name_the_return_path_they_came_back_to(name: str) -> None:
    assert RETURN_PATH in read(name).delivered_to


@pytest.mark.parametrize(
    "name", ["postfix_user_unknown", "gmail_account_does_not_exist", "sendmail_to_from_address"]
)
def test_the_returned_message_id_is_kept_as_a_fallback(name: str) -> None:
    assert MESSAGE_ID in read(name).original_message_ids


def test_an_arf_report_is_a_complaint_with_the_envelope_sender_and_recipient() -> None:
    reading = read("arf_complaint")
    assert reading.kind == MailKind.COMPLAINT
    assert reading.complaint is not None
    assert reading.complaint.is_complaint
    assert reading.complaint.feedback_type == "abuse"
    assert reading.complaint.original_recipient == RECIPIENT
    assert reading.original_return_paths[0] == RETURN_PATH
    assert reading.recipients == ()


def test_a_redacted_arf_report_still_leads_to_the_return_path_of_the_returned_message() -> None:
    reading = read("arf_redacted_recipient")
    assert reading.kind == MailKind.COMPLAINT
    assert reading.original_return_paths == (RETURN_PATH,)
    assert MESSAGE_ID in reading.original_message_ids


def test_a_dmarc_failure_report_is_not_a_complaint() -> None:
    reading = read("arf_auth_failure")
    assert reading.kind == MailKind.COMPLAINT
    assert reading.complaint is not None
    assert not reading.complaint.is_complaint


@pytest.mark.parametrize("name", AUTO_REPLIES)
def test_automatic_replies_are_not_bounces(name: str) -> None:
    reading = read(name)
    assert reading.kind == MailKind.AUTO_REPLY
    assert reading.recipients == ()


def test_a_mangled_report_is_read_without_an_exception_and_reports_no_recipient() -> None:
    reading = read("malformed_truncated")
    assert reading.recipients == ()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nno boundary",
        b"Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822"
        b"\r\n\r\n--x--",
        b"Subject: =?utf-8?q?broken?=\xff\r\nFrom: <<<>>>\r\n\r\nhello",
        b"Content-Type: message/feedback-report\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!",
    ],
)
def test_garbage_never_raises(raw: bytes) -> None:
    reading = read_mail(raw)
    assert reading.kind in set(MailKind)


def test_a_plain_message_is_unrecognised() -> None:
    raw = b"From: someone@example.org\r\nSubject: hello\r\n\r\nJust saying hello.\r\n"
    assert read_mail(raw).kind == MailKind.UNRECOGNISED


def test_copies_of_a_report_that_travelled_differently_have_one_fingerprint() -> None:
    crlf = corpus_message(
        "postfix_user_unknown", return_path=RETURN_PATH, message_id=MESSAGE_ID, recipient=RECIPIENT
    )
    lf = corpus_message(
        "postfix_user_unknown",
        return_path=RETURN_PATH,
        message_id=MESSAGE_ID,
        recipient=RECIPIENT,
        crlf=False,
    )
    relayed = b"Received: from mx2 by mx3; Tue, 24 Nov 2026 10:03:00 +0000\r\n" + crlf
    prints = {read_mail(raw).fingerprint for raw in (crlf, lf, relayed)}
    assert len(prints) == 1
    other = corpus_message(
        "postfix_mailbox_full", return_path=RETURN_PATH, message_id=MESSAGE_ID, recipient=RECIPIENT
    )
    assert read_mail(other).fingerprint not in prints


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("5.1.1", "", ReplyClass.HARD_BOUNCE),
        ("5.1.2", "", ReplyClass.HARD_BOUNCE),
        ("5.1.10", "", ReplyClass.HARD_BOUNCE),
        ("5.2.1", "", ReplyClass.HARD_BOUNCE),
        ("5.2.2", "", ReplyClass.SOFT_BOUNCE),
        ("5.3.4", "", ReplyClass.SOFT_BOUNCE),
        ("4.2.2", "user unknown", ReplyClass.SOFT_BOUNCE),
        ("4.0.0", "450 user unknown, try later", ReplyClass.SOFT_BOUNCE),
        ("5.7.1", "user unknown", ReplyClass.POLICY),
        ("5.7.26", "DMARC policy", ReplyClass.POLICY),
        ("5.4.4", "unable to route", ReplyClass.SOFT_BOUNCE),
        ("5.0.0", "smtp; 550 5.1.1 <a@b>: Recipient address rejected", ReplyClass.HARD_BOUNCE),
        ("5.0.0", "smtp; 550 No such user here", ReplyClass.HARD_BOUNCE),
        ("5.0.0", "smtp; 550 rejected for policy reasons", ReplyClass.SOFT_BOUNCE),
        (None, "", ReplyClass.SOFT_BOUNCE),
        (None, "mailbox unavailable", ReplyClass.SOFT_BOUNCE),
        ("banana", "", ReplyClass.SOFT_BOUNCE),
    ],
)
def test_classification_by_enhanced_status_code(
    status: str | None, diagnostic: str, expected: ReplyClass
) -> None:
    assert classify_bounce(status, diagnostic) == expected
