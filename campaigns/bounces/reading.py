"""What a message that reached the bounce address is: a DSN, a complaint, a non-standard bounce,
an automatic reply, or something else; and the clues that lead to its job.

Order matters: a standard report is trusted first; automatic-reply markers are checked before
the heuristic parser (out-of-office text can look like a bounce to it); the weak
``Auto-Submitted`` marker only after, since some MTAs put it on their bounces.

Every step is bounded (:mod:`campaigns.bounces.reading_limits`); a message past a bound raises
:class:`MailTooCostly`. :mod:`campaigns.bounces.isolated_reading` runs this in a child process
with a CPU-time limit besides.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import TypedDict

from flufl.bounce import all_failures

from campaigns.bounces.arf import AbuseReport, is_feedback_report, read_feedback_report
from campaigns.bounces.auto_replies import auto_reply_marker, is_auto_submitted
from campaigns.bounces.classify import classify_bounce
from campaigns.bounces.dsn import RecipientStatus, read_delivery_status
from campaigns.bounces.mail_parts import (
    fingerprint,
    first_text,
    header_addresses,
    header_text,
    parse_message,
    returned_headers,
    with_short_headers,
)
from campaigns.bounces.reading_limits import MAX_MESSAGE_IDS, MAX_NONSTANDARD_BYTES
from campaigns.bounces.reporter_auth import DnsTxtLookup, dkim_signing_domains
from campaigns.core.smtp_replies import find_status

log = logging.getLogger(__name__)

# Where the envelope recipient survives once a message sits in a mailbox, most reliable first.
_DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# Where non-standard bounces start quoting the original message, whose text proves nothing.
_QUOTE_START = re.compile(
    r"^.*(?:copy of the message|original message|message follows|returned mail|headers of"
    r"|forwarded message|message header follows|undelivered message).*$",
    re.IGNORECASE | re.MULTILINE,
)


class MailKind(enum.StrEnum):
    DSN = "dsn"
    COMPLAINT = "complaint"
    NONSTANDARD_BOUNCE = "nonstandard"
    AUTO_REPLY = "auto_reply"
    UNRECOGNISED = "unrecognised"


@dataclass(frozen=True)
class MailReading:
    kind: MailKind
    fingerprint: str
    """The same for every copy of this message: what makes a replay change nothing."""
    recipients: tuple[RecipientStatus, ...] = ()
    """Per-recipient outcomes of a bounce (failures and others, such as ``delayed``)."""
    complaint: AbuseReport | None = None
    delivered_to: tuple[str, ...] = ()
    """Where the message was addressed (the return path it came back to), from its headers."""
    original_return_paths: tuple[str, ...] = ()
    """The envelope sender of the message this one reports on, when the report carries it."""
    original_message_ids: tuple[str, ...] = ()
    original_recipients: tuple[str, ...] = ()
    arrival_date: str = ""
    signing_domains: tuple[str, ...] = ()
    """Domains whose DKIM signatures on a complaint verify (when asked to check them)."""
    note: str = ""
    """Why a message is ignored, for the log."""
    extra: dict[str, str] = field(default_factory=dict)


class _Clues(TypedDict):
    """The fields of ``MailReading`` that lead to a job, read from any kind of message."""

    delivered_to: tuple[str, ...]
    original_return_paths: tuple[str, ...]
    original_message_ids: tuple[str, ...]
    original_recipients: tuple[str, ...]


def read_mail(
    raw: bytes, *, check_signatures: bool = False, signature_dns: DnsTxtLookup | None = None
) -> MailReading:
    """What ``raw`` is; with ``check_signatures``, a complaint's verified DKIM signers too,
    their keys looked up with ``signature_dns`` (default: DNS)."""
    message = parse_message(raw)
    clues = _clues(message)
    digest = fingerprint(raw, message)
    report = read_delivery_status(message)
    if report is not None:
        return MailReading(
            kind=MailKind.DSN,
            fingerprint=digest,
            recipients=report.recipients,
            arrival_date=report.arrival_date,
            extra={"reporting_mta": report.reporting_mta},
            **clues,
        )
    if is_feedback_report(message):
        complaint = read_feedback_report(message)
        if complaint is not None and complaint.original_mail_from:
            clues["original_return_paths"] = (
                complaint.original_mail_from,
                *clues["original_return_paths"],
            )
        if complaint is not None and complaint.original_recipient:
            clues["original_recipients"] = (complaint.original_recipient,)
        signers = dkim_signing_domains(raw, dns=signature_dns) if check_signatures else ()
        return MailReading(
            kind=MailKind.COMPLAINT,
            fingerprint=digest,
            complaint=complaint,
            signing_domains=signers,
            arrival_date=complaint.arrival_date if complaint else "",
            **clues,
        )
    marker = auto_reply_marker(message)
    if marker is not None:
        return MailReading(
            kind=MailKind.AUTO_REPLY, fingerprint=digest, note=f"marked by {marker}", **clues
        )
    # Its own parse of a shorter window: its detectors' regexes scan every text part whole.
    failures = _nonstandard_failures(
        with_short_headers(parse_message(raw, max_bytes=MAX_NONSTANDARD_BYTES))
    )
    if failures:
        return MailReading(
            kind=MailKind.NONSTANDARD_BOUNCE, fingerprint=digest, recipients=failures, **clues
        )
    if is_auto_submitted(message):
        return MailReading(
            kind=MailKind.AUTO_REPLY, fingerprint=digest, note="marked by Auto-Submitted", **clues
        )
    subject = header_text(message, "Subject")[:80]
    return MailReading(
        kind=MailKind.UNRECOGNISED,
        fingerprint=digest,
        note=f"neither a DSN, an ARF report nor a known bounce format (subject {subject!r})",
        **clues,
    )


def _clues(message: Message) -> _Clues:
    delivered_to: list[str] = []
    for name in _DELIVERY_HEADERS:
        delivered_to.extend(header_addresses(message, name))
    original = returned_headers(message)
    return_paths: list[str] = []
    message_ids: list[str] = []
    recipients: list[str] = []
    if original is not None:
        return_paths = header_addresses(original, "Return-Path")
        message_ids = [header_text(original, "Message-ID")]
        recipients = header_addresses(original, "To")
    # A bounce in a reply-like format sometimes quotes the original Message-ID only here.
    message_ids.append(header_text(message, "In-Reply-To"))
    message_ids.extend(header_text(message, "References").split())
    return {
        "delivered_to": tuple(dict.fromkeys(delivered_to)),
        "original_return_paths": tuple(dict.fromkeys(return_paths)),
        "original_message_ids": tuple(dict.fromkeys(mid for mid in message_ids if mid))[
            :MAX_MESSAGE_IDS
        ],
        "original_recipients": tuple(dict.fromkeys(recipients)),
    }


def _nonstandard_failures(message: Message) -> tuple[RecipientStatus, ...]:
    try:
        _temporary, permanent = all_failures(message)
    except Exception as error:
        # The heuristic parser has its own bugs; a message that trips it is just not a bounce.
        log.info("non-standard bounce parser failed on a message: %r", error)
        return ()
    if not permanent:
        return ()
    explanation = _explanation(message)
    return tuple(
        RecipientStatus(
            recipient=address.decode("utf-8", "replace").strip("<>").lower(),
            original_recipient=None,
            action="failed",
            status=find_status(explanation),
            diagnostic=explanation[:2000],
            bounce_class=classify_bounce(None, explanation),
        )
        for address in sorted(permanent)
    )


def _explanation(message: Message) -> str:
    """The bounce's own words, without the quoted original message that follows them."""
    text = first_text(message)
    match = _QUOTE_START.search(text)
    if match is not None and match.start() > 0:
        text = text[: match.start()]
    return " ".join(text.split())
