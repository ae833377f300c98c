"""RFC 3464 delivery status notifications: what happened to each recipient of a returned message."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from campaigns.bounces.address_scan import typed_address
from campaigns.bounces.classify import classify_bounce
from campaigns.bounces.mail_parts import header_blocks, header_text, report_part
from campaigns.core.reply_classes import ReplyClass
from campaigns.core.smtp_replies import find_status

FINAL_ACTIONS = frozenset({"failed"})
"""``delayed`` means the reporting MTA is still trying; ``delivered``, ``relayed`` and
``expanded`` are successes. Only ``failed`` is a bounce."""


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a DSN (or one address a non-standard bounce names)."""

    recipient: str | None
    original_recipient: str | None
    action: str
    status: str | None
    diagnostic: str
    bounce_class: ReplyClass

    @property
    def is_failure(self) -> bool:
        return self.action in FINAL_ACTIONS


@dataclass(frozen=True)
class DeliveryStatusReport:
    reporting_mta: str
    arrival_date: str
    recipients: tuple[RecipientStatus, ...]


def read_delivery_status(message: Message) -> DeliveryStatusReport | None:
    part = report_part(message, "message/delivery-status")
    if part is None:
        return None
    blocks = header_blocks(part)
    if not blocks:
        return None
    per_message, per_recipient = blocks[0], blocks[1:]
    if per_message.get("Final-Recipient") or per_message.get("Action"):
        # Some MTAs leave out the per-message block: the first block is already a recipient.
        per_message, per_recipient = Message(), blocks
    recipients = tuple(_recipient_status(block) for block in per_recipient)
    return DeliveryStatusReport(
        reporting_mta=typed_address_or_text(header_text(per_message, "Reporting-MTA")),
        arrival_date=header_text(per_message, "Arrival-Date"),
        recipients=tuple(status for status in recipients if status is not None),
    )


def typed_address_or_text(field: str) -> str:
    return field.rsplit(";", 1)[-1].strip()


def _recipient_status(block: Message) -> RecipientStatus | None:
    final = typed_address(header_text(block, "Final-Recipient"))
    original = typed_address(header_text(block, "Original-Recipient"))
    if final is None and original is None:
        return None
    status = find_status(header_text(block, "Status"))
    diagnostic = header_text(block, "Diagnostic-Code")
    action = header_text(block, "Action").lower()
    if not action:
        # A mangled block without Action: a permanent status still says it failed.
        action = "failed" if (status or find_status(diagnostic) or "").startswith("5.") else ""
    return RecipientStatus(
        recipient=final or original,
        original_recipient=original,
        action=action,
        status=status or find_status(diagnostic),
        diagnostic=diagnostic[:2000],
        bounce_class=classify_bounce(status, diagnostic),
    )
