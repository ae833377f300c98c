"""RFC 5965 abuse reports (ARF): a mailbox provider's "this person marked it as spam"."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from campaigns.bounces.address_scan import typed_address
from campaigns.bounces.mail_parts import header_blocks, header_text, report_part

COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
"""``not-spam`` is the opposite of a complaint, ``auth-failure`` a DMARC/DKIM failure report:
neither says the recipient objects."""


@dataclass(frozen=True)
class AbuseReport:
    feedback_type: str
    original_mail_from: str | None
    """The envelope sender of the reported message: our VERP return path, even when the
    provider redacts the recipient."""
    original_recipient: str | None
    arrival_date: str
    user_agent: str

    @property
    def is_complaint(self) -> bool:
        return self.feedback_type in COMPLAINT_TYPES


def is_feedback_report(message: Message) -> bool:
    return report_part(message, "message/feedback-report") is not None


def read_feedback_report(message: Message) -> AbuseReport | None:
    part = report_part(message, "message/feedback-report")
    if part is None:
        return None
    blocks = header_blocks(part)
    if not blocks:
        return None
    fields = blocks[0]
    return AbuseReport(
        feedback_type=header_text(fields, "Feedback-Type").lower() or "abuse",
        original_mail_from=typed_address(header_text(fields, "Original-Mail-From")),
        original_recipient=typed_address(header_text(fields, "Original-Rcpt-To")),
        arrival_date=header_text(fields, "Arrival-Date") or header_text(fields, "Received-Date"),
        user_agent=header_text(fields, "User-Agent"),
    )
